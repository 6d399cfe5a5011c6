// Checks on resolved settings that go beyond parsing one value: path shapes, the listen host,
// the trusted proxy list and the app target's syntax.
#include <arpa/inet.h>
#include <net/if.h>

#include <algorithm>
#include <charconv>
#include <system_error>

#include "config/value_text.hpp"
#include "fluxlit/config/address_range.hpp"
#include "fluxlit/config/settings.hpp"
#include "fluxlit/config/target.hpp"

namespace fluxlit::config {

namespace {

using source_map = std::map<std::string, value_source, std::less<>>;

// Throws config_error with `message`, naming the source of `key` when it was not the default.
[[noreturn]] void fail(std::string_view key, std::string message, const source_map* sources) {
  if (sources != nullptr) {
    const auto found = sources->find(key);
    if (found != sources->end() && found->second.kind != source_kind::default_value) {
      message += " (set by " + found->second.where + ")";
    }
  }
  throw config_error(message);
}

std::string subject(std::string_view key, std::string_view value) {
  return std::string(key) + " " + detail::quote(value);
}

bool is_hex_digit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Characters RFC 3986 allows in a path segment (pchar), besides percent-encoded octets.
bool is_path_character(char c) {
  static constexpr std::string_view allowed = "-._~!$&'()*+,;=:@";
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         allowed.find(c) != std::string_view::npos;
}

// Returns a description of the first character that cannot appear in a URL path, or empty.
std::string find_invalid_path_character(std::string_view path) {
  for (std::size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '/' || is_path_character(c)) {
      continue;
    }
    if (c == '%' && i + 2 < path.size() && is_hex_digit(path[i + 1]) && is_hex_digit(path[i + 2])) {
      i += 2;
      continue;
    }
    return detail::quote(std::string_view(&path[i], 1));
  }
  return "";
}

std::string strip_slashes(std::string_view path) {
  const auto first = path.find_first_not_of('/');
  if (first == std::string_view::npos) {
    return "";
  }
  const auto last = path.find_last_not_of('/');
  return std::string(path.substr(first, last - first + 1));
}

std::string strip_brackets(std::string_view host) {
  std::string_view inner = host.substr(1);
  if (!inner.empty() && inner.back() == ']') {
    inner.remove_suffix(1);
  }
  return std::string(inner);
}

// Shared rules of api_prefix and root_path: "/name" with no trailing "/", no empty, "." or ".."
// segment, and only characters that a URL path may hold.
void check_path_prefix(std::string_view key, std::string_view value, std::string_view example,
                       const source_map* sources) {
  const std::string stripped = strip_slashes(value);
  const std::string suggestion =
      detail::quote("/" + (stripped.empty() ? std::string(example) : stripped));
  if (value.front() != '/') {
    fail(key, subject(key, value) + " must start with \"/\", for example " + suggestion, sources);
  }
  if (value.size() > 1 && value.back() == '/') {
    fail(key, subject(key, value) + " must not end with \"/\". Use " + suggestion, sources);
  }
  if (value.find("//") != std::string_view::npos) {
    fail(key, subject(key, value) + " must not contain an empty segment (\"//\")", sources);
  }
  // Appends rather than `"/" + std::string(...) + "/"`, which GCC 12 flags with a false
  // -Wrestrict warning at -O2.
  std::string segments(1, '/');
  segments += value.substr(1);
  segments += '/';
  if (segments.find("/./") != std::string::npos || segments.find("/../") != std::string::npos) {
    fail(key, subject(key, value) + " must not contain \".\" or \"..\" segments", sources);
  }
  const std::string invalid = find_invalid_path_character(value);
  if (!invalid.empty()) {
    fail(key,
         subject(key, value) + " contains " + invalid +
             ", which is not allowed in a URL path. Percent-encode it or remove it",
         sources);
  }
}

void check_api_prefix(const settings& values, const source_map* sources) {
  const std::string& prefix = values.api_prefix;
  if (prefix.empty()) {
    fail("api_prefix", "api_prefix must not be empty. Use a path such as \"/api\"", sources);
  }
  if (prefix == "/") {
    fail("api_prefix",
         "api_prefix \"/\" would send every path to the app and none to Streamlit. Use a path "
         "such as \"/api\"",
         sources);
  }
  check_path_prefix("api_prefix", prefix, "api", sources);
}

void check_root_path(const settings& values, const source_map* sources) {
  const std::string& root_path = values.root_path;
  if (root_path.empty()) {
    return;
  }
  if (root_path == "/") {
    fail("root_path", "root_path \"/\" must be left empty when FluxLit is served at the root",
         sources);
  }
  check_path_prefix("root_path", root_path, "app", sources);
}

// True when `zone` is the name or the index of a network interface of this machine.
bool zone_names_interface(const std::string& zone) {
  if (zone.empty()) return false;
  if (if_nametoindex(zone.c_str()) != 0) return true;
  unsigned int index = 0;
  const auto [end, error] = std::from_chars(zone.data(), zone.data() + zone.size(), index);
  if (error != std::errc() || end != zone.data() + zone.size() || index == 0) return false;
  char name[IF_NAMESIZE] = {};
  return if_indextoname(index, name) != nullptr;
}

void check_host(const settings& values, const source_map* sources) {
  const std::string& host = values.host;
  if (host.empty()) {
    fail("host",
         "host must not be empty. Use 127.0.0.1 for local access or 0.0.0.0 for every interface",
         sources);
  }
  if (host.front() == '[') {
    fail("host",
         subject("host", host) + " must be written without brackets, for example " +
             detail::quote(strip_brackets(host)),
         sources);
  }
  const bool has_space = std::any_of(host.begin(), host.end(), [](char c) {
    return c == ' ' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  if (has_space) {
    fail("host", subject("host", host) + " must not contain white space or control characters",
         sources);
  }
  // The listener binds the address itself, without a name lookup. Only an IPv6 address may
  // name a zone ("fe80::1%eth0"), which must be an interface of this machine.
  const auto zone_start = host.find('%');
  const std::string address = host.substr(0, zone_start);
  in6_addr parsed{};
  const bool ipv4 = inet_pton(AF_INET, address.c_str(), &parsed) == 1;
  const bool ipv6 = !ipv4 && inet_pton(AF_INET6, address.c_str(), &parsed) == 1;
  if (!ipv4 && !ipv6) {
    fail("host",
         subject("host", host) +
             " is not an IP address. Use 127.0.0.1 (or ::1) for local access, or 0.0.0.0 (or ::) "
             "for every interface",
         sources);
  }
  if (zone_start != std::string::npos) {
    const std::string zone = host.substr(zone_start + 1);
    if (ipv4) {
      fail("host", subject("host", host) + " names a zone, which only an IPv6 address may",
           sources);
    }
    if (!zone_names_interface(zone)) {
      fail("host",
           subject("host", host) + " names the zone " + detail::quote(zone) +
               ", which is no network interface of this machine (see `ip link`)",
           sources);
    }
  }
}

void check_forwarded_allow_ips(const settings& values, const source_map* sources) {
  for (const std::string& entry : values.forwarded_allow_ips) {
    try {
      address_range::parse(entry);
    } catch (const config_error& error) {
      fail("forwarded_allow_ips", std::string("forwarded_allow_ips: ") + error.what(), sources);
    }
  }
}

void check_target(const settings& values, const source_map* sources) {
  try {
    check_target_syntax(values.target);
  } catch (const config_error& error) {
    fail("target", error.what(), sources);
  }
}

// Names where `key` was set, for a message about two keys at once.
std::string origin(std::string_view key, const source_map* sources) {
  if (sources == nullptr) return "";
  const auto found = sources->find(key);
  if (found == sources->end() || found->second.kind == source_kind::default_value) return "";
  return " (set by " + found->second.where + ")";
}

void check_workers(const settings& values, const source_map* sources) {
  if (values.workers <= 1 || !values.reload) return;
  throw config_error("workers = " + std::to_string(values.workers) + origin("workers", sources) +
                     " cannot be combined with reload = true" + origin("reload", sources) +
                     ": a reload restarts one process. Turn reload off (--no-reload, "
                     "FLUXLIT_RELOAD=false or reload = false), or use one worker");
}

void check_all(const settings& values, const source_map* sources) {
  check_target(values, sources);
  check_host(values, sources);
  check_api_prefix(values, sources);
  check_root_path(values, sources);
  check_forwarded_allow_ips(values, sources);
  check_workers(values, sources);
}

}  // namespace

void validate(const settings& values) {
  check_all(values, nullptr);
}

void validate(const loaded_settings& loaded) {
  check_all(loaded.values, &loaded.sources);
}

}  // namespace fluxlit::config
