// Configuration warnings with stable codes: what `load` reports about the sources, and settings
// that parse but are risky behind a reverse proxy. `fluxlit config` and `fluxlit doctor` print
// them, and `--strict` turns any of them into a failure.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fluxlit/config/settings.hpp"

namespace fluxlit::config {

// A code keeps its meaning across releases, so CI scripts may match it. docs/commands.md lists
// the codes.
namespace warning_code {
inline constexpr std::string_view unknown_key = "W001";           // key in the file
inline constexpr std::string_view unknown_variable = "W002";      // FLUXLIT_* variable
inline constexpr std::string_view ignored_tool_table = "W003";    // [tool.fluxlit] shadowed
inline constexpr std::string_view unreadable_pyproject = "W004";  // could not be checked
inline constexpr std::string_view trusts_any_peer = "W005";       // "*" with proxy headers on
inline constexpr std::string_view untrusted_root_path = "W006";   // root_path, no proxy trusted
inline constexpr std::string_view unresolved_target = "W007";     // the target file is missing
}  // namespace warning_code

struct config_warning {
  std::string code;
  std::string message;
};

// Returns W005 when proxy headers are on and forwarded_allow_ips contains "*", so that any
// client can choose the address and scheme the app sees.
std::optional<config_warning> check_forwarded_trust(const settings& values);

// Returns W006 when root_path is set but no proxy on another host is trusted: proxy_headers is
// off, or every forwarded_allow_ips entry is a loopback address. A reverse proxy that publishes
// FluxLit under root_path then cannot pass the client's address and scheme.
std::optional<config_warning> check_root_path_trust(const settings& values);

// Returns every warning of `loaded`: those that load() found, then W005 and W006, then W007
// when the target names a file that does not exist under `working_directory`.
std::vector<config_warning> collect_warnings(const loaded_settings& loaded,
                                             const std::string& working_directory);

}  // namespace fluxlit::config
