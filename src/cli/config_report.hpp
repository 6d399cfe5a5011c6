// The effective configuration as `fluxlit config` and `fluxlit doctor --verbose` print it: every
// setting with its source, the values FluxLit derives from them, and the warnings, with secrets
// hidden.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fluxlit/config/settings.hpp"
#include "fluxlit/config/warnings.hpp"

namespace fluxlit::cli {

struct reported_setting {
  const config::key_info* key = nullptr;
  nlohmann::ordered_json value;  // typed: number, boolean, array of strings or string
  std::string text;              // the value as text, for the table
  std::string source;            // "default", "--port", "FLUXLIT_PORT" or "fluxlit.toml:3"
};

struct derived_value {
  std::string name;
  nlohmann::ordered_json value;    // a string, or null when it cannot be worked out
  std::string unavailable_reason;  // why the value is null
};

struct configuration_report {
  std::string file;  // the configuration file that was read, or empty
  std::vector<reported_setting> settings;
  std::vector<derived_value> derived;
  std::vector<config::config_warning> warnings;
};

// Builds the report of `loaded`, resolving the target against the working directory.
configuration_report make_configuration_report(const config::loaded_settings& loaded);

// {"settings": {name: {"value", "source"}}, "derived": {name: value}, "warnings": [{"code",
// "message"}]}.
nlohmann::ordered_json configuration_json(const configuration_report& report);

// The report as aligned text sections: file, settings, derived values and warnings.
std::string configuration_text(const configuration_report& report);

}  // namespace fluxlit::cli
