#include "cli/command_support.hpp"

#include <algorithm>
#include <cctype>
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

namespace {

// Edits that turn `from` into `to`: insertions, deletions, replacements and swaps of two
// neighbouring characters (the optimal string alignment distance).
std::size_t edit_distance(std::string_view from, std::string_view to) {
  const auto width = to.size() + 1;
  std::vector<std::size_t> cost((from.size() + 1) * width);
  const auto at = [&](std::size_t i, std::size_t j) -> std::size_t& { return cost[i * width + j]; };
  for (std::size_t i = 0; i <= from.size(); ++i) at(i, 0) = i;
  for (std::size_t j = 0; j <= to.size(); ++j) at(0, j) = j;
  for (std::size_t i = 1; i <= from.size(); ++i) {
    for (std::size_t j = 1; j <= to.size(); ++j) {
      const std::size_t replace = from[i - 1] == to[j - 1] ? 0 : 1;
      at(i, j) = std::min({at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + replace});
      if (i > 1 && j > 1 && from[i - 1] == to[j - 2] && from[i - 2] == to[j - 1]) {
        at(i, j) = std::min(at(i, j), at(i - 2, j - 2) + 1);
      }
    }
  }
  return at(from.size(), to.size());
}

}  // namespace

std::optional<std::string> closest_name(std::string_view given,
                                        const std::vector<std::string>& names) {
  std::string typed(given.substr(0, given.find('=')));
  std::transform(typed.begin(), typed.end(), typed.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto letters = typed.size() - std::min(typed.find_first_not_of('-'), typed.size());
  std::optional<std::string> best;
  std::size_t best_distance = 3;  // more than two edits is another word
  for (const auto& name : names) {
    const auto distance = edit_distance(typed, name);
    if (distance < best_distance && distance * 2 <= letters) {
      best = name;
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace fluxlit::cli
