// Resolution of every key from the command line, FLUXLIT_* variables, a configuration file and
// the defaults, recording where each value came from.
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "config/value_text.hpp"
#include "fluxlit/config/settings.hpp"
#include "fluxlit/config/warnings.hpp"

namespace fluxlit::config {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view env_prefix = "FLUXLIT_";

// FLUXLIT_* variables that are not settings: what FluxLit passes to its Streamlit child, where
// to find the Python package, and the scripts' and tests' own switches. A process started from
// such an environment inherits them, so they must not produce an unknown-variable warning.
constexpr std::array<std::string_view, 6> child_process_variables = {
    "FLUXLIT_API_BASE_URL", "FLUXLIT_APP_DIR",           "FLUXLIT_STRICT",
    "FLUXLIT_PACKAGE_DIR",  "FLUXLIT_INSTALL_STREAMLIT", "FLUXLIT_BINARY",
};

// The table that contains FluxLit's keys, with the document that owns it. The document lives on
// the heap so that `table`, which may point at it, stays valid when the struct moves.
struct config_file {
  std::unique_ptr<toml::table> document;
  const toml::table* table = nullptr;
  std::string path;         // as opened, for parse errors
  std::string source_name;  // "fluxlit.toml" or "pyproject.toml:[tool.fluxlit]", for sources
};

void add_warning(loaded_settings& loaded, std::string_view code, std::string message) {
  loaded.warnings.push_back(std::move(message));
  loaded.warning_codes.emplace_back(code);
}

std::string invalid_value_message(std::string_view key, std::string_view displayed_value,
                                  std::string_view where, std::string_view expected) {
  std::string message = "invalid value ";
  message += displayed_value;
  message += " for ";
  message += key;
  message += " from ";
  message += where;
  message += ": ";
  message += expected;
  return message;
}

void assign_text(settings& values, const key_info& key, std::string_view text,
                 std::string_view where) {
  try {
    key.assign(values, text);
  } catch (const std::invalid_argument& error) {
    throw config_error(invalid_value_message(key.name, detail::quote(text), where, error.what()));
  }
}

toml::table parse_toml(const fs::path& path) {
  try {
    return toml::parse_file(path.string());
  } catch (const toml::parse_error& error) {
    const toml::source_position& position = error.source().begin;
    std::ostringstream message;
    message << "invalid TOML in " << path.string() << " at line " << position.line << ", column "
            << position.column << ": " << error.description();
    throw config_error(message.str());
  }
}

bool regular_file_exists(const fs::path& path) {
  std::error_code error;
  return fs::is_regular_file(path, error);
}

const toml::table* find_tool_table(const toml::table& pyproject, const fs::path& path) {
  const toml::node* node = pyproject.at_path("tool.fluxlit").node();
  if (node == nullptr) {
    return nullptr;
  }
  if (!node->is_table()) {
    throw config_error("[tool.fluxlit] in " + path.string() +
                       " must be a table of settings, for example [tool.fluxlit] port = 8000");
  }
  return node->as_table();
}

// Reads fluxlit.toml, or [tool.fluxlit] from pyproject.toml when there is no fluxlit.toml.
std::optional<config_file> read_config_file(const fs::path& directory, loaded_settings& loaded) {
  const fs::path fluxlit_path = directory / "fluxlit.toml";
  const fs::path pyproject_path = directory / "pyproject.toml";
  const bool has_pyproject = regular_file_exists(pyproject_path);

  if (regular_file_exists(fluxlit_path)) {
    config_file file;
    file.document = std::make_unique<toml::table>(parse_toml(fluxlit_path));
    file.table = file.document.get();
    file.path = fluxlit_path.string();
    file.source_name = "fluxlit.toml";
    if (has_pyproject) {
      // pyproject.toml is only inspected for the warning, so a broken one is reported, not fatal.
      try {
        const toml::table pyproject = parse_toml(pyproject_path);
        if (pyproject.at_path("tool.fluxlit").node() != nullptr) {
          add_warning(loaded, warning_code::ignored_tool_table,
                      "[tool.fluxlit] in " + pyproject_path.string() + " is ignored because " +
                          fluxlit_path.string() + " exists and takes precedence");
        }
      } catch (const config_error& error) {
        add_warning(
            loaded, warning_code::unreadable_pyproject,
            std::string("could not check pyproject.toml for [tool.fluxlit]: ") + error.what());
      }
    }
    return file;
  }

  if (!has_pyproject) {
    return std::nullopt;
  }
  config_file file;
  file.document = std::make_unique<toml::table>(parse_toml(pyproject_path));
  file.table = find_tool_table(*file.document, pyproject_path);
  if (file.table == nullptr) {
    return std::nullopt;
  }
  file.path = pyproject_path.string();
  file.source_name = "pyproject.toml:[tool.fluxlit]";
  return file;
}

std::string file_location(const config_file& file, const toml::key& key) {
  const auto line = key.source().begin.line;
  if (line == 0) {
    return file.source_name;
  }
  return file.source_name + ":" + std::to_string(line);
}

std::string display_node(const toml::node& node) {
  if (const auto* text = node.as_string()) {
    return detail::quote(text->get());
  }
  std::ostringstream formatted;
  node.visit([&formatted](const auto& value) { formatted << value; });
  return formatted.str();
}

// The expected form named when a TOML value has a type the key cannot take.
std::string expected_toml_type(const key_info& key) {
  if (key.type == "integer" || key.type == "port") {
    // The key's own parser names its whole rule, such as a limit's "0 (no limit) or" part.
    settings scratch;
    try {
      key.assign(scratch, "");
    } catch (const std::invalid_argument& error) {
      return error.what();
    }
    return detail::expected_unsigned(key.minimum, key.maximum, key.unit);
  }
  if (key.type == "bool") {
    return "expected true or false";
  }
  if (key.type == "list") {
    return "expected an array of strings or a comma-separated string";
  }
  return "expected a string";
}

// Converts a TOML value into the text form that key_info::assign parses, or returns nothing when
// the TOML type does not fit the key. A TOML string is accepted for every key.
std::optional<std::string> node_text(const key_info& key, const toml::node& node) {
  if (const auto* text = node.as_string()) {
    return text->get();
  }
  if (key.type == "integer" || key.type == "port") {
    if (const auto* number = node.as_integer()) {
      return std::to_string(number->get());
    }
  }
  if (key.type == "bool") {
    if (const auto* flag = node.as_boolean()) {
      return std::string(flag->get() ? "true" : "false");
    }
  }
  if (key.type == "list") {
    if (const auto* array = node.as_array()) {
      std::vector<std::string> entries;
      for (const toml::node& element : *array) {
        const auto* entry = element.as_string();
        if (entry == nullptr) {
          return std::nullopt;
        }
        entries.push_back(entry->get());
      }
      return detail::join_list(entries);
    }
  }
  return std::nullopt;
}

void assign_node(settings& values, const key_info& key, const toml::node& node,
                 const std::string& where) {
  const std::optional<std::string> text = node_text(key, node);
  if (!text) {
    throw config_error(
        invalid_value_message(key.name, display_node(node), where, expected_toml_type(key)));
  }
  try {
    key.assign(values, *text);
  } catch (const std::invalid_argument& error) {
    throw config_error(invalid_value_message(key.name, display_node(node), where, error.what()));
  }
}

std::vector<std::string> key_names() {
  std::vector<std::string> names;
  for (const key_info& key : keys()) {
    names.emplace_back(key.name);
  }
  return names;
}

std::vector<std::string> env_names() {
  std::vector<std::string> names;
  for (const key_info& key : keys()) {
    names.emplace_back(key.env);
  }
  return names;
}

std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates) {
  const std::string closest = detail::closest_match(name, candidates);
  if (closest.empty()) {
    return "";
  }
  return ". Did you mean " + closest + "?";
}

void warn_unknown_variables(const std::map<std::string, std::string>& environment,
                            loaded_settings& loaded) {
  const std::vector<std::string> known = env_names();
  for (const auto& [name, value] : environment) {
    if (!name.starts_with(env_prefix)) {
      continue;
    }
    const bool is_setting = std::find(known.begin(), known.end(), name) != known.end();
    const bool is_child_variable =
        std::find(child_process_variables.begin(), child_process_variables.end(), name) !=
        child_process_variables.end();
    if (!is_setting && !is_child_variable) {
      add_warning(
          loaded, warning_code::unknown_variable,
          "unknown environment variable " + name + " is ignored" + did_you_mean(name, known));
    }
  }
}

void warn_unknown_file_keys(const config_file& file, loaded_settings& loaded) {
  const std::vector<std::string> known = key_names();
  for (const auto& [key, value] : *file.table) {
    if (find_key(key.str()) == nullptr) {
      add_warning(loaded, warning_code::unknown_key,
                  "unknown key " + detail::quote(key.str()) + " at " + file_location(file, key) +
                      " is ignored" + did_you_mean(key.str(), known));
    }
  }
}

// Returns the entry of `file` for `name` together with its key, whose source gives the line.
std::optional<std::pair<const toml::key*, const toml::node*>> find_file_entry(
    const config_file& file, std::string_view name) {
  for (const auto& [key, value] : *file.table) {
    if (key.str() == name) {
      return std::make_pair(&key, &value);
    }
  }
  return std::nullopt;
}

}  // namespace

loaded_settings load(const cli_values& cli, const std::map<std::string, std::string>& environment,
                     const std::string& directory) {
  for (const auto& [name, text] : cli) {
    if (find_key(name) == nullptr) {
      throw std::logic_error("load() was given a command-line value for unknown key " + name);
    }
  }

  loaded_settings loaded;
  const std::optional<config_file> file = read_config_file(directory, loaded);
  if (file) {
    loaded.file = file->path;
    warn_unknown_file_keys(*file, loaded);
  }
  warn_unknown_variables(environment, loaded);

  for (const key_info& key : keys()) {
    value_source source;
    if (const auto given = cli.find(key.name); given != cli.end()) {
      source = {source_kind::cli,
                key.cli_flag.empty() ? "command line" : std::string(key.cli_flag)};
      assign_text(loaded.values, key, given->second, source.where);
    } else if (const auto variable = environment.find(std::string(key.env));
               variable != environment.end()) {
      source = {source_kind::environment, std::string(key.env)};
      assign_text(loaded.values, key, variable->second, source.where);
    } else if (const auto entry = file ? find_file_entry(*file, key.name) : std::nullopt) {
      source = {source_kind::file, file_location(*file, *entry->first)};
      assign_node(loaded.values, key, *entry->second, source.where);
    } else {
      source = {source_kind::default_value, "default"};
    }
    loaded.sources.emplace(std::string(key.name), std::move(source));
  }
  return loaded;
}

}  // namespace fluxlit::config
