#include "fluxlit/config/address_range.hpp"

#include <algorithm>
#include <array>
#include <cstddef>

#include "config/value_text.hpp"
#include "fluxlit/config/settings.hpp"

namespace fluxlit::config {

namespace {

namespace ip = boost::asio::ip;

constexpr unsigned ipv4_bits = 32;
constexpr unsigned ipv6_bits = 128;
// An IPv4-mapped IPv6 address is ::ffff: (96 bits) followed by the 32-bit IPv4 address.
constexpr unsigned mapped_prefix_bits = 96;

[[noreturn]] void reject(std::string_view text, std::string_view reason) {
  throw config_error("invalid address range " + detail::quote(text) + ": " + std::string(reason));
}

ip::address unmap(const ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, address.to_v6());
  }
  return address;
}

// Clears every bit after the first `prefix_length` bits.
template <std::size_t size>
std::array<unsigned char, size> mask(std::array<unsigned char, size> bytes,
                                     unsigned prefix_length) {
  for (std::size_t i = 0; i < size; ++i) {
    const unsigned first_bit = static_cast<unsigned>(i) * 8;
    if (prefix_length <= first_bit) {
      bytes[i] = 0;
    } else if (prefix_length < first_bit + 8) {
      const unsigned kept_bits = prefix_length - first_bit;
      bytes[i] &= static_cast<unsigned char>(0xff << (8 - kept_bits));
    }
  }
  return bytes;
}

// Returns `address` with every bit after `prefix_length` cleared.
ip::address network_of(const ip::address& address, unsigned prefix_length) {
  if (address.is_v4()) {
    return ip::make_address_v4(mask(address.to_v4().to_bytes(), prefix_length));
  }
  return ip::make_address_v6(mask(address.to_v6().to_bytes(), prefix_length));
}

unsigned parse_prefix_length(std::string_view text, std::string_view digits, unsigned max_bits,
                             std::string_view family) {
  const bool valid_digits =
      !digits.empty() && digits.size() <= 3 &&
      std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
  unsigned length = 0;
  for (const char digit : digits) {
    length = length * 10 + static_cast<unsigned>(digit - '0');
  }
  if (!valid_digits || length > max_bits) {
    reject(text, "the prefix length after \"/\" must be from 0 to " + std::to_string(max_bits) +
                     " for an " + std::string(family) + " address");
  }
  return length;
}

}  // namespace

address_range address_range::parse(std::string_view text) {
  address_range range;
  range.text_ = text;
  if (text == "*") {
    range.any_ = true;
    return range;
  }
  if (text.find('%') != std::string_view::npos) {
    reject(text, "IPv6 zone indexes (\"%\" and an interface) are not supported");
  }

  const std::size_t slash = text.find('/');
  const std::string address_text(text.substr(0, slash));
  boost::system::error_code error;
  const ip::address address = ip::make_address(address_text, error);
  if (error) {
    reject(text, "expected an IP address, a CIDR range such as 10.0.0.0/8 or fd00::/8, or *");
  }

  const unsigned max_bits = address.is_v4() ? ipv4_bits : ipv6_bits;
  unsigned prefix_length = max_bits;
  if (slash != std::string_view::npos) {
    prefix_length = parse_prefix_length(text, text.substr(slash + 1), max_bits,
                                        address.is_v4() ? "IPv4" : "IPv6");
  }
  const ip::address network = network_of(address, prefix_length);
  if (network != address) {
    reject(text, "the bits after the /" + std::to_string(prefix_length) +
                     " prefix must be zero, for example " +
                     detail::quote(network.to_string() + "/" + std::to_string(prefix_length)));
  }

  // NOTE: a mapped range shorter than /96 stays an IPv6 range. Peers are compared after
  // unmapping, so such a range matches only IPv6 peers. IPv4 ranges belong in IPv4 notation.
  if (address.is_v6() && address.to_v6().is_v4_mapped() && prefix_length >= mapped_prefix_bits) {
    range.network_ = unmap(address);
    range.prefix_length_ = prefix_length - mapped_prefix_bits;
  } else {
    range.network_ = address;
    range.prefix_length_ = prefix_length;
  }
  return range;
}

bool address_range::contains(const boost::asio::ip::address& peer) const {
  if (any_) {
    return true;
  }
  const ip::address candidate = unmap(peer);
  if (candidate.is_v4() != network_.is_v4()) {
    return false;
  }
  return network_of(candidate, prefix_length_) == network_;
}

}  // namespace fluxlit::config
