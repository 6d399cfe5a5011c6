// Helpers shared by the commands that inspect or scaffold a project: config, doctor, pages,
// new and build.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fluxlit/config/settings.hpp"
#include "fluxlit/config/target.hpp"

namespace fluxlit::cli {

// Exit status of a command whose check found a problem. Success is 0, and main() returns 2 for
// usage and configuration errors.
constexpr int exit_check_failed = 1;

// Returns the variables of this process's environment whose names start with `prefix`, by name.
std::map<std::string, std::string> environment_with_prefix(std::string_view prefix);

// Returns the FLUXLIT_* variables of this process's environment, by name.
std::map<std::string, std::string> fluxlit_environment();

// Resolves the settings as `run` does: `given` flags, FLUXLIT_* variables and the configuration
// file in the working directory, then validates them. Throws config::config_error.
config::loaded_settings load_checked_settings(const config::cli_values& given);

// Returns true when `flag` is set or FLUXLIT_STRICT is a true boolean ("1", "true", "yes",
// "on"). Throws config::config_error when FLUXLIT_STRICT is not a boolean.
bool strict_requested(bool flag);

// Returns the target as the Python side loads it: "module:attribute", or the absolute file path
// and the attribute.
std::string python_target_text(const config::app_target& target);

// Writes `document` to stdout as JSON indented by two spaces, with a final newline.
void print_json(const nlohmann::ordered_json& document);

// Returns the name in `names` closest to the mistyped `given` ("--prot" gives "--port"), or
// nothing when no name is close: at most two edits, a swap of neighbours counting as one, and
// at most half the letters of `given`. Case does not count, and text after an "=" in `given`
// is ignored.
std::optional<std::string> closest_name(std::string_view given,
                                        const std::vector<std::string>& names);

}  // namespace fluxlit::cli
