#include "fluxlit/gateway/forwarded.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <random>

namespace fluxlit::gateway {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::vector<std::string_view> split_list(std::string_view value) {
  std::vector<std::string_view> items;
  while (!value.empty()) {
    const auto comma = value.find(',');
    const auto item = trim(value.substr(0, comma));
    if (!item.empty()) items.push_back(item);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return items;
}

// Parses an X-Forwarded-For entry: "203.0.113.7", "[2001:db8::1]:443" or "2001:db8::1".
bool parse_forwarded_address(std::string_view text, boost::asio::ip::address& out) {
  if (text.size() > 2 && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return false;
    text = text.substr(1, close - 1);
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    text = text.substr(0, text.find(':'));
  }
  boost::system::error_code error;
  out = boost::asio::ip::make_address(std::string(text), error);
  return !error;
}

std::string lowered(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

bool iequals(std::string_view left, std::string_view right) {
  if (left.size() != right.size()) return false;
  for (std::size_t i = 0; i < left.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(left[i])) !=
        std::tolower(static_cast<unsigned char>(right[i]))) {
      return false;
    }
  }
  return true;
}

bool has_token(std::string_view value, std::string_view token) {
  for (const auto item : split_list(value)) {
    if (iequals(item, token)) return true;
  }
  return false;
}

bool forwarded_policy::is_trusted(const boost::asio::ip::address& address) const {
  for (const auto& range : trusted) {
    if (range.contains(address)) return true;
  }
  return false;
}

std::string address_text(const boost::asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6())
        .to_string();
  }
  return address.to_string();
}

client_identity resolve_client(const forwarded_policy& policy, const boost::asio::ip::address& peer,
                               std::string_view peer_text, std::uint16_t peer_port,
                               const incoming_forwarded_headers& headers) {
  client_identity identity;
  identity.client_host = peer_text;
  identity.client_port = peer_port;
  identity.host = std::string(headers.host);
  identity.forwarded_for = peer_text;

  if (!policy.proxy_headers || !policy.is_trusted(peer)) return identity;
  identity.via_trusted_proxy = true;

  const auto hops = split_list(headers.forwarded_for);
  if (!hops.empty()) {
    identity.forwarded_for = std::string(headers.forwarded_for) + ", " + std::string(peer_text);
    // Walk from the nearest hop outwards; the first address not run by a trusted proxy is the
    // client. When every hop is trusted, the farthest one is the best that is known.
    std::string chosen(hops.front());
    for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
      boost::asio::ip::address address;
      if (!parse_forwarded_address(*it, address) || !policy.is_trusted(address)) {
        chosen = std::string(*it);
        break;
      }
    }
    identity.client_host = chosen;
    identity.client_port = 0;
  }

  const auto protocols = split_list(headers.forwarded_proto);
  if (!protocols.empty()) {
    const auto scheme = lowered(protocols.front());
    if (scheme == "https" || scheme == "http") identity.scheme = scheme;
    if (scheme == "wss") identity.scheme = "https";
    if (scheme == "ws") identity.scheme = "http";
  }

  const auto hosts = split_list(headers.forwarded_host);
  if (!hosts.empty()) identity.host = std::string(hosts.front());
  return identity;
}

bool is_hop_by_hop(std::string_view name, std::string_view connection_value) {
  static constexpr std::array<std::string_view, 9> always = {"connection",
                                                             "keep-alive",
                                                             "proxy-connection",
                                                             "te",
                                                             "trailer",
                                                             "transfer-encoding",
                                                             "upgrade",
                                                             "proxy-authenticate",
                                                             "proxy-authorization"};
  for (const auto each : always) {
    if (iequals(name, each)) return true;
  }
  return !connection_value.empty() && has_token(connection_value, name);
}

std::string choose_request_id(std::string_view incoming) {
  constexpr std::size_t max_request_id_length = 128;
  const bool safe =
      !incoming.empty() && incoming.size() <= max_request_id_length &&
      std::all_of(incoming.begin(), incoming.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      });
  if (safe) return std::string(incoming);

  thread_local std::mt19937_64 generator{std::random_device{}()};
  static constexpr char digits[] = "0123456789abcdef";
  std::string id(32, '0');
  std::uint64_t bits = 0;
  for (std::size_t i = 0; i < id.size(); ++i) {
    if (i % 16 == 0) bits = generator();
    id[i] = digits[bits & 0xf];
    bits >>= 4;
  }
  return id;
}

}  // namespace fluxlit::gateway
