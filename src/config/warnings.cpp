#include "fluxlit/config/warnings.hpp"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <charconv>

#include "config/value_text.hpp"
#include "fluxlit/config/target.hpp"

namespace fluxlit::config {

namespace {

// True when every address that `entry` ("127.0.0.1", "::1", "127.0.0.0/8") covers is a loopback
// address. "*" and anything that does not parse count as not loopback.
bool is_loopback_entry(std::string_view entry) {
  const std::size_t slash = entry.find('/');
  const std::string address_text(entry.substr(0, slash));
  boost::system::error_code error;
  const auto address = boost::asio::ip::make_address(address_text, error);
  if (error || !address.is_loopback()) {
    return false;
  }
  if (slash == std::string_view::npos) {
    return true;
  }
  unsigned prefix_length = 0;
  const std::string_view digits = entry.substr(slash + 1);
  std::from_chars(digits.data(), digits.data() + digits.size(), prefix_length);
  // 127.0.0.0/8 is all loopback, while ::1 is the only IPv6 loopback address.
  return address.is_v4() ? prefix_length >= 8 : prefix_length == 128;
}

}  // namespace

std::optional<config_warning> check_forwarded_trust(const settings& values) {
  const auto& entries = values.forwarded_allow_ips;
  if (!values.proxy_headers || std::find(entries.begin(), entries.end(), "*") == entries.end()) {
    return std::nullopt;
  }
  return config_warning{
      std::string(warning_code::trusts_any_peer),
      "forwarded_allow_ips contains \"*\" while proxy_headers is on, so any client can set the "
      "client address and scheme that the app sees through X-Forwarded-* headers. List the "
      "addresses of your reverse proxies instead"};
}

std::optional<config_warning> check_root_path_trust(const settings& values) {
  if (values.root_path.empty()) {
    return std::nullopt;
  }
  const std::string subject = "root_path " + detail::quote(values.root_path) + " is set";
  if (!values.proxy_headers) {
    return config_warning{
        std::string(warning_code::untrusted_root_path),
        subject +
            " but proxy_headers is off, so the reverse proxy that publishes FluxLit cannot "
            "pass the client address and scheme. Turn proxy_headers on and list the proxy "
            "in forwarded_allow_ips"};
  }
  const auto& entries = values.forwarded_allow_ips;
  if (!std::all_of(entries.begin(), entries.end(), is_loopback_entry)) {
    return std::nullopt;
  }
  const std::string trusted =
      entries.empty() ? "is empty"
                      : "trusts only loopback peers (" + detail::join_list(entries) + ")";
  return config_warning{std::string(warning_code::untrusted_root_path),
                        subject + " but forwarded_allow_ips " + trusted +
                            ", so a reverse proxy on another host cannot pass the client address "
                            "and scheme. Add the proxy's address to forwarded_allow_ips"};
}

std::vector<config_warning> collect_warnings(const loaded_settings& loaded,
                                             const std::string& working_directory) {
  std::vector<config_warning> found;
  for (std::size_t i = 0; i < loaded.warnings.size(); ++i) {
    const std::string code = i < loaded.warning_codes.size() ? loaded.warning_codes[i] : "";
    found.push_back({code, loaded.warnings[i]});
  }
  for (auto check : {check_forwarded_trust, check_root_path_trust}) {
    if (auto warning = check(loaded.values)) {
      found.push_back(std::move(*warning));
    }
  }
  try {
    parse_target(loaded.values.target, working_directory);
  } catch (const config_error& error) {
    found.push_back({std::string(warning_code::unresolved_target), error.what()});
  }
  return found;
}

}  // namespace fluxlit::config
