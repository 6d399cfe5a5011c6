#include "fluxlit/supervisor/streamlit_config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "supervisor/streamlit_command.hpp"

namespace fluxlit::supervisor {

namespace {

constexpr std::string_view port_key = "server.port";
constexpr std::string_view base_url_path_key = "server.baseUrlPath";

// Options whose value Streamlit reads as a boolean.
constexpr std::array<std::string_view, 2> boolean_keys = {"server.headless",
                                                          "browser.gatherUsageStats"};

std::string to_lower(std::string_view text) {
  std::string lowered(text);
  for (char& c : lowered) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return lowered;
}

// Returns "true" or "false" for the boolean spellings that Streamlit's command line (Click)
// accepts. Other text is returned lower-cased, so it compares unequal to both.
std::string normalise_boolean(std::string_view text) {
  const std::string lowered = to_lower(text);
  for (const std::string_view yes : {"1", "true", "t", "yes", "y", "on"}) {
    if (lowered == yes) {
      return "true";
    }
  }
  for (const std::string_view no : {"0", "false", "f", "no", "n", "off"}) {
    if (lowered == no) {
      return "false";
    }
  }
  return lowered;
}

std::string strip_slashes(std::string_view path) {
  while (!path.empty() && path.front() == '/') {
    path.remove_prefix(1);
  }
  while (!path.empty() && path.back() == '/') {
    path.remove_suffix(1);
  }
  return std::string(path);
}

// Returns true when `set` and `passed` mean different values of `key`.
bool values_differ(std::string_view key, std::string_view set, std::string_view passed) {
  if (key == port_key) {
    return true;
  }
  if (key == base_url_path_key) {
    return strip_slashes(set) != strip_slashes(passed);
  }
  if (std::find(boolean_keys.begin(), boolean_keys.end(), key) != boolean_keys.end()) {
    return normalise_boolean(set) != normalise_boolean(passed);
  }
  return set != passed;
}

std::string display_fluxlit_value(const streamlit_flag& flag) {
  if (flag.key == port_key) {
    return "a free port chosen at each start";
  }
  if (flag.value.empty()) {
    return "\"\"";
  }
  return flag.value;
}

// Returns a TOML value as the text a user would write on the command line.
std::string node_text(const toml::node& node) {
  if (const auto* text = node.as_string()) {
    return text->get();
  }
  std::ostringstream formatted;
  node.visit([&formatted](const auto& value) { formatted << value; });
  return formatted.str();
}

void add_conflict(streamlit_config_report& report, std::string source, const streamlit_flag& flag,
                  std::string value) {
  if (values_differ(flag.key, value, flag.value)) {
    report.conflicts.push_back(
        {std::move(source), flag.key, std::move(value), display_fluxlit_value(flag)});
  }
}

void check_file(const streamlit_config_file& file, std::span<const streamlit_flag> flags,
                streamlit_config_report& report) {
  toml::table document;
  try {
    document = toml::parse(file.text, file.path);
  } catch (const toml::parse_error& error) {
    const toml::source_position& position = error.source().begin;
    report.problems.push_back("invalid TOML in " + file.path + " at line " +
                              std::to_string(position.line) + ", column " +
                              std::to_string(position.column) + ": " +
                              std::string(error.description()));
    return;
  }
  for (const streamlit_flag& flag : flags) {
    const toml::node* node = document.at_path(flag.key).node();
    if (node != nullptr) {
      add_conflict(report, file.path, flag, node_text(*node));
    }
  }
}

// Reads a whole file into `text`. Returns false when it does not exist; any other failure is
// added to `report.problems`.
bool read_file(const std::string& path, std::string& text, streamlit_config_report& report) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    return false;
  }
  std::ifstream input(path, std::ios::binary);
  std::ostringstream contents;
  contents << input.rdbuf();
  if (!input) {
    report.problems.push_back("cannot read " + path);
    return false;
  }
  text = contents.str();
  return true;
}

}  // namespace

std::vector<streamlit_flag> streamlit_flags(const streamlit_options& options) {
  return {
      {std::string(port_key), ""},
      {"server.address", "127.0.0.1"},
      {"server.headless", "true"},
      {"browser.gatherUsageStats", "false"},
      {std::string(base_url_path_key), options.base_url_path},
  };
}

std::string streamlit_environment_name(std::string_view key) {
  std::string name = "STREAMLIT_";
  for (const char c : key) {
    if (c == '.') {
      name.push_back('_');
    } else if (std::isupper(static_cast<unsigned char>(c))) {
      name.push_back('_');
      name.push_back(c);
    } else {
      name.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    }
  }
  return name;
}

streamlit_config_report find_streamlit_config_conflicts(
    const streamlit_options& options, std::span<const streamlit_config_file> files,
    const std::map<std::string, std::string>& environment) {
  const std::vector<streamlit_flag> flags = streamlit_flags(options);
  streamlit_config_report report;
  for (const streamlit_config_file& file : files) {
    check_file(file, flags, report);
  }
  for (const streamlit_flag& flag : flags) {
    const std::string name = streamlit_environment_name(flag.key);
    const auto found = environment.find(name);
    if (found != environment.end()) {
      add_conflict(report, name, flag, found->second);
    }
  }
  return report;
}

streamlit_config_report check_streamlit_config(const streamlit_options& options) {
  std::map<std::string, std::string> environment;
  for (const std::string& entry : detail::make_child_environment(options)) {
    const std::size_t equals = entry.find('=');
    if (equals != std::string::npos) {
      environment.emplace(entry.substr(0, equals), entry.substr(equals + 1));
    }
  }

  // Streamlit reads the global file first and lets the project's file override it, and the
  // report keeps that order.
  std::vector<std::string> paths;
  const auto home = environment.find("HOME");
  if (home != environment.end() && !home->second.empty()) {
    paths.push_back(home->second + "/.streamlit/config.toml");
  }
  const std::string project_directory =
      options.working_directory.empty() ? std::string(".") : options.working_directory;
  paths.push_back(project_directory + "/.streamlit/config.toml");

  streamlit_config_report read_problems;
  std::vector<streamlit_config_file> files;
  for (std::string& path : paths) {
    std::string text;
    if (read_file(path, text, read_problems)) {
      files.push_back({std::move(path), std::move(text)});
    }
  }

  streamlit_config_report report = find_streamlit_config_conflicts(options, files, environment);
  report.problems.insert(report.problems.begin(), read_problems.problems.begin(),
                         read_problems.problems.end());
  return report;
}

std::string describe(const streamlit_config_conflict& conflict) {
  return "Streamlit setting " + conflict.key + " is set to \"" + conflict.value + "\" in " +
         conflict.source + ", but FluxLit passes --" + conflict.key + " " +
         conflict.fluxlit_value + " on Streamlit's command line, which wins";
}

}  // namespace fluxlit::supervisor
