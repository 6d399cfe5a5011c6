// Forwarded-header policy, hop-by-hop headers and request ids. Pure logic, no I/O.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fluxlit/config/address_range.hpp"

namespace fluxlit::gateway {

struct forwarded_policy {
  bool proxy_headers = true;
  std::vector<config::address_range> trusted;  // peers whose X-Forwarded-* headers count

  bool is_trusted(const boost::asio::ip::address& address) const;
};

// The client's identity, as far as the policy lets the gateway trust the headers.
struct client_identity {
  std::string client_host;
  std::uint16_t client_port = 0;
  std::string scheme = "http";
  std::string host;           // the Host the client used
  std::string forwarded_for;  // the X-Forwarded-For value to send on, peer appended
  bool via_trusted_proxy = false;
};

struct incoming_forwarded_headers {
  std::string_view forwarded_for;
  std::string_view forwarded_proto;
  std::string_view forwarded_host;
  std::string_view host;
};

// Applies the policy: from a trusted peer the client is the rightmost X-Forwarded-For entry
// that is not itself trusted, and the scheme is the first X-Forwarded-Proto entry; from any
// other peer the incoming X-Forwarded-* headers are ignored.
// `peer_text` is address_text(peer), which a connection computes once for all its requests.
client_identity resolve_client(const forwarded_policy& policy, const boost::asio::ip::address& peer,
                               std::string_view peer_text, std::uint16_t peer_port,
                               const incoming_forwarded_headers& headers);

// Formats an address as a client or server host, an IPv4-mapped IPv6 address as plain IPv4.
std::string address_text(const boost::asio::ip::address& address);

inline client_identity resolve_client(const forwarded_policy& policy,
                                      const boost::asio::ip::address& peer,
                                      std::uint16_t peer_port,
                                      const incoming_forwarded_headers& headers) {
  return resolve_client(policy, peer, address_text(peer), peer_port, headers);
}

// True for headers that belong to one connection (RFC 9110 section 7.6.1), including any
// named in the Connection header's value.
bool is_hop_by_hop(std::string_view name, std::string_view connection_value);

// True when `value` lists `token` (comma-separated, case-insensitive), as in
// "Connection: keep-alive, Upgrade".
bool has_token(std::string_view value, std::string_view token);

// Keeps a client's X-Request-ID when it is 1-128 characters of [A-Za-z0-9._-]; otherwise
// returns a new random 32-hex-digit id.
std::string choose_request_id(std::string_view incoming);

bool iequals(std::string_view left, std::string_view right);

}  // namespace fluxlit::gateway
