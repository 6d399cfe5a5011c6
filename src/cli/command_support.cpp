#include "cli/command_support.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "config/value_text.hpp"

extern char** environ;

namespace fluxlit::cli {

std::map<std::string, std::string> environment_with_prefix(std::string_view prefix) {
  std::map<std::string, std::string> found;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const auto equals = text.find('=');
    if (!text.starts_with(prefix) || equals == std::string_view::npos) {
      continue;
    }
    found.emplace(std::string(text.substr(0, equals)), std::string(text.substr(equals + 1)));
  }
  return found;
}

std::map<std::string, std::string> fluxlit_environment() {
  return environment_with_prefix("FLUXLIT_");
}

config::loaded_settings load_checked_settings(const config::cli_values& given) {
  config::loaded_settings loaded =
      config::load(given, fluxlit_environment(), std::filesystem::current_path().string());
  config::validate(loaded);
  return loaded;
}

bool strict_requested(bool flag) {
  if (flag) {
    return true;
  }
  const char* value = std::getenv("FLUXLIT_STRICT");
  if (value == nullptr || *value == '\0') {
    return false;
  }
  try {
    return config::detail::parse_bool(value);
  } catch (const std::invalid_argument& error) {
    throw config::config_error("invalid value " + config::detail::quote(value) +
                               " for FLUXLIT_STRICT: " + error.what());
  }
}

std::string python_target_text(const config::app_target& target) {
  return (target.file.empty() ? target.module : target.file) + ":" + target.attribute;
}

void print_json(const nlohmann::ordered_json& document) {
  // A path or value that is not valid UTF-8 gets U+FFFD in place of the bad bytes instead of
  // making dump() throw.
  const std::string text = document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace fluxlit::cli
