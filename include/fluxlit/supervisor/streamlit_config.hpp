// Streamlit settings that FluxLit sets on the child's command line, and the places (config.toml
// files, STREAMLIT_* variables) where a user may have set them to something else.
#pragma once

#include <map>
#include <span>
#include <string>
#include <vector>

#include "fluxlit/supervisor/streamlit_supervisor.hpp"

namespace fluxlit::supervisor {

// A Streamlit option that FluxLit passes as `--<key> <value>`.
struct streamlit_flag {
  std::string key;    // Streamlit's option name, such as "server.address"
  std::string value;  // empty for server.port, which is chosen anew at every start
};

// Returns the options that every child started with `options` receives, in command-line order.
// server.baseUrlPath is listed even when options.base_url_path is empty.
std::vector<streamlit_flag> streamlit_flags(const streamlit_options& options);

// Returns Streamlit's environment variable for an option: "server.baseUrlPath" becomes
// "STREAMLIT_SERVER_BASE_URL_PATH".
std::string streamlit_environment_name(std::string_view key);

// The contents of one Streamlit config.toml.
struct streamlit_config_file {
  std::string path;  // named in messages
  std::string text;  // TOML
};

// A setting that a file or variable gives a value other than the one FluxLit passes.
struct streamlit_config_conflict {
  std::string source;         // the file's path, or the variable's name
  std::string key;            // Streamlit's option name
  std::string value;          // the value set there, as text
  std::string fluxlit_value;  // the value FluxLit passes, as text
};

struct streamlit_config_report {
  std::vector<streamlit_config_conflict> conflicts;
  // Files that could not be read or parsed, one message each.
  std::vector<std::string> problems;
};

// Compares every option of streamlit_flags(options) with the values that `files` and
// `environment` set. Values that mean the same (`true` and `1`, `/app/` and `app`) are no
// conflict, and any server.port is one. Reads nothing but its arguments.
streamlit_config_report find_streamlit_config_conflicts(
    const streamlit_options& options, std::span<const streamlit_config_file> files,
    const std::map<std::string, std::string>& environment);

// Reads `<working_directory>/.streamlit/config.toml` and `$HOME/.streamlit/config.toml`, where
// HOME and the STREAMLIT_* variables are those of the child's environment, and calls
// find_streamlit_config_conflicts. A missing file is skipped. Blocks on file reads.
streamlit_config_report check_streamlit_config(const streamlit_options& options);

// Returns a one-line warning: where the value is set, the key, the value, and that FluxLit's
// flag wins.
std::string describe(const streamlit_config_conflict& conflict);

}  // namespace fluxlit::supervisor
