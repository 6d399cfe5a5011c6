// A set of peer addresses written as one IP address, a CIDR range or "*", as used by
// forwarded_allow_ips to name the proxies whose forwarded headers are trusted.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <string>
#include <string_view>

namespace fluxlit::config {

// Immutable after parse(), so contains() is safe from any thread.
//
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d), as a dual-stack socket reports IPv4 peers, is
// compared as the IPv4 address it carries, both in a peer and in a range written that way.
class address_range {
 public:
  // Parses "*", an address ("10.0.0.1", "::1") or a CIDR range ("10.0.0.0/8", "fd00::/8").
  // Throws config_error for anything else, for a prefix length out of range, for a range with
  // host bits set ("10.0.0.1/8") and for an IPv6 zone index ("fe80::1%eth0").
  static address_range parse(std::string_view text);

  // Returns true when `peer` is in the range. The range "*" contains every address.
  bool contains(const boost::asio::ip::address& peer) const;

  // The text the range was parsed from.
  const std::string& text() const { return text_; }

 private:
  address_range() = default;

  std::string text_;
  bool any_ = false;
  boost::asio::ip::address network_;
  unsigned prefix_length_ = 0;
};

}  // namespace fluxlit::config
