// The checks of `fluxlit doctor`, each returning rows of PASS, WARN or FAIL with a detail, and
// the pure helpers behind them.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fluxlit/asgi/bridge.hpp"
#include "fluxlit/config/settings.hpp"
#include "fluxlit/supervisor/streamlit_config.hpp"

namespace fluxlit::cli {

enum class check_status { pass, warn, fail };

struct check_result {
  std::string name;  // such as "interpreter" or "port"
  check_status status = check_status::pass;
  std::string detail;
};

// "PASS", "WARN" or "FAIL".
std::string_view status_text(check_status status);

// One line per result, "STATUS  name  detail", with the names padded to one width.
std::string format_check_rows(const std::vector<check_result>& results);

// Returns true when the dotted version `text` ("1.39.0", "0.92.0", "1.36.0rc1") is at least
// `minimum` ("1.36"), comparing the leading numbers of each part. Returns nothing when `text`
// does not start with a number.
std::optional<bool> version_at_least(std::string_view text, std::string_view minimum);

// A package's version as the interpreter reported it: nullopt when the package is not installed,
// "" when it is installed but its version is unknown.
using package_version = std::optional<std::string>;

struct package_requirement {
  std::string check_name;    // "fastapi"
  std::string display_name;  // "FastAPI"
  std::string pip_name;      // "fastapi"
  std::string minimum;       // "0.90"
  std::string reason;        // why that version, for the message when it is older
  // The behaviour that still works without the package; empty when nothing does. A missing package with a
  // fallback is a WARN, not a FAIL.
  std::string fallback;
};

// FAIL when the package is missing (WARN when it has a fallback) or older than the minimum,
// naming the install command for `python`. WARN when its version is unknown.
check_result check_package(const package_requirement& requirement, const package_version& found,
                           const std::string& python);

// Streamlit's upload limit (server.maxUploadSize, in MB of 2^20 bytes) and where it is set.
struct upload_limit {
  std::uint64_t megabytes = 200;  // Streamlit's default
  std::string source = "Streamlit's default";
};

// Returns the upload limit as Streamlit resolves it: the STREAMLIT_SERVER_MAX_UPLOAD_SIZE
// variable, else the last of `files` (ordered global, then project) that sets it, else 200.
// Values that are not a whole number are skipped.
upload_limit find_upload_limit(std::span<const supervisor::streamlit_config_file> files,
                               const std::map<std::string, std::string>& environment);

// WARN when `max_request_body_bytes` is below the upload limit, because uploads between the two
// then get FluxLit's 413 rather than Streamlit's message.
check_result check_body_limit(std::uint64_t max_request_body_bytes, const upload_limit& limit);

// Binds host:port with the listener's options and closes it again. FAIL with the error when
// the bind fails; PASS for port 0, which the system fills at start.
check_result check_port(const std::string& host, std::uint16_t port);

// One WARN row per Streamlit setting that FluxLit's flags override, or per unreadable file, and
// PASS when there is none.
std::vector<check_result> check_streamlit_config(const config::settings& values,
                                                 const std::string& app_directory);

// W005 and W006 as WARN rows named forwarded_trust and root_path_trust, or PASS rows.
std::vector<check_result> check_proxy_trust(const config::settings& values);

// Reads the Streamlit config.toml files that a child started in `app_directory` would read:
// $HOME/.streamlit/config.toml, then <app_directory>/.streamlit/config.toml. Missing files are
// skipped.
std::vector<supervisor::streamlit_config_file> read_streamlit_config_files(
    const std::string& app_directory);

}  // namespace fluxlit::cli
