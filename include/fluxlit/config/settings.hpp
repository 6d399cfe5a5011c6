// The resolved configuration of one FluxLit process and the table that describes every key.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fluxlit::config {

// Every value that FluxLit reads from a flag, a FLUXLIT_* variable or a configuration file.
// Durations carry `_ms`, sizes `_bytes`; the defaults and their reasons are in settings.cpp.
struct settings {
  std::string target = "app:app";
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;
  std::string api_prefix = "/api";
  std::string root_path;
  std::string log_level = "info";
  std::string log_format = "json";  // "json" or "text"
  std::string python;               // empty: VIRTUAL_ENV, then /usr/bin/python3
  bool no_ui = false;
  std::uint64_t workers = 0;
  std::string io_scheduling = "auto";  // "auto", "batch" or "normal"

  bool proxy_headers = true;
  std::vector<std::string> forwarded_allow_ips = {"127.0.0.1", "::1"};

  std::uint64_t max_request_body_bytes = 0;
  std::uint64_t max_header_bytes = 0;
  std::uint64_t header_read_timeout_ms = 0;
  std::uint64_t body_read_timeout_ms = 0;
  std::uint64_t keep_alive_timeout_ms = 0;
  std::uint64_t send_timeout_ms = 0;
  std::uint64_t upstream_connect_timeout_ms = 0;
  std::uint64_t upstream_response_timeout_ms = 0;
  std::uint64_t upstream_max_idle_connections = 0;
  std::uint64_t websocket_idle_timeout_ms = 0;
  std::uint64_t websocket_max_lifetime_ms = 0;
  std::uint64_t asgi_send_high_water_bytes = 0;
  std::uint64_t asgi_receive_high_water_bytes = 0;
  std::uint64_t asgi_websocket_max_message_bytes = 0;
  std::uint64_t readiness_max_loop_lag_ms = 0;
  std::uint64_t streamlit_start_timeout_ms = 0;
  std::uint64_t streamlit_stop_timeout_ms = 0;
  std::uint64_t streamlit_restart_initial_delay_ms = 0;
  std::uint64_t streamlit_restart_max_delay_ms = 0;
  std::uint64_t streamlit_crash_loop_count = 0;
  std::uint64_t streamlit_crash_loop_window_ms = 0;
  std::uint64_t streamlit_health_interval_ms = 0;
  std::uint64_t streamlit_health_timeout_ms = 0;
  std::uint64_t streamlit_health_failure_threshold = 0;
  std::uint64_t shutdown_grace_ms = 0;

  std::string pidfile;  // empty: no pid file

  bool reload = false;
  std::vector<std::string> reload_dirs;  // empty: the app directory
  std::vector<std::string> reload_includes = {"*.py"};
  std::vector<std::string> reload_excludes;
  std::uint64_t reload_debounce_ms = 0;

  settings();
};

// The origin of a resolved value, for `fluxlit config` and for error messages.
enum class source_kind { default_value, file, environment, cli };

struct value_source {
  source_kind kind = source_kind::default_value;
  std::string where;  // "--port", "FLUXLIT_PORT", "fluxlit.toml:12", or "default"
};

// One configuration key: its names in each source and how to parse its text form.
struct key_info {
  std::string_view name;         // settings field and file key, e.g. "max_header_bytes"
  std::string_view env;          // e.g. "FLUXLIT_MAX_HEADER_BYTES"
  std::string_view cli_flag;     // e.g. "--max-header-bytes"; empty when there is none
  std::string_view type;         // "string", "bool", "integer", "port", "list", "path"
  std::string_view unit;         // "ms", "bytes", or empty
  std::string_view description;  // one sentence for --help and docs
  // "stable" keys keep their name and meaning across releases; "experimental" ones may change.
  std::string_view stability = "stable";
  // Accepted range of "integer" and "port" keys; both are 0 for other types.
  std::uint64_t minimum = 0;
  std::uint64_t maximum = 0;
  // Parses `text` into the field; throws std::invalid_argument with the expected form.
  std::function<void(settings&, std::string_view text)> assign;
  // Formats the field's current value as text.
  std::function<std::string(const settings&)> format;
};

// All keys, in the order the docs and `fluxlit config` list them.
std::span<const key_info> keys();

// Returns the key called `name` (the settings field name), or nullptr when there is none.
const key_info* find_key(std::string_view name);

// Raised for a bad value; what() names the key, the source, the value and the expected form.
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Values given on the command line, by key name; only keys the user passed appear.
using cli_values = std::map<std::string, std::string, std::less<>>;

struct loaded_settings {
  settings values;
  std::map<std::string, value_source, std::less<>> sources;
  std::vector<std::string> warnings;  // unknown keys, ignored files
  // The stable code of each entry of `warnings`, at the same index ("W001"; see warnings.hpp).
  std::vector<std::string> warning_codes;
  std::string file;                   // path of the configuration file read, or empty
};

// Resolves every key: CLI, then FLUXLIT_* environment, then fluxlit.toml or [tool.fluxlit] in
// pyproject.toml (searched in `directory`), then the default. Throws config_error.
loaded_settings load(const cli_values& cli, const std::map<std::string, std::string>& environment,
                     const std::string& directory);

// Checks cross-key rules (prefix shapes, ranges). Throws config_error.
void validate(const settings& values);

// Same checks as above; the message also names the source of the offending value.
void validate(const loaded_settings& loaded);

}  // namespace fluxlit::config
