// Runs Python helpers of the fluxlit package in a child process of the chosen interpreter, so
// that an app whose import crashes, exits or hangs cannot take the command down with it.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace fluxlit::cli {

struct python_run {
  int exit_status = -1;  // the exit code, or 128 + the signal number
  bool timed_out = false;
  std::string output;  // stdout
  std::string errors;  // stderr
};

// Runs `python` with `arguments` in `working_directory`, with the fluxlit package directory first
// on PYTHONPATH, and returns what it wrote. Kills the child's process group once `timeout` has
// passed. Throws asgi::startup_error when the interpreter cannot be started.
python_run run_python(const std::string& python, const std::vector<std::string>& arguments,
                      const std::string& working_directory, std::chrono::milliseconds timeout);

struct manifest_module_result {
  // The object the module printed, with an "error" object when the target could not be loaded.
  nlohmann::ordered_json document;
  std::string errors;  // what the app and the module wrote to stderr
};

// Runs `python -m fluxlit._manifest COMMAND TARGET APP_DIR [extra...]` in `app_directory` and
// returns what it printed. Throws asgi::startup_error, naming the exit status and the last lines
// of stderr, when the run timed out, crashed or printed no JSON object.
manifest_module_result run_manifest_module(const std::string& python, const std::string& command,
                                           const std::string& target,
                                           const std::string& app_directory,
                                           const std::vector<std::string>& extra,
                                           std::chrono::milliseconds timeout);

// Returns the message of the module's "error" object, followed by the traceback when
// `with_traceback` is set and the object has one.
std::string load_error_message(const nlohmann::ordered_json& error, bool with_traceback);

// Returns the last `count` non-empty lines of `text`, joined by newlines.
std::string last_lines(const std::string& text, std::size_t count);

}  // namespace fluxlit::cli
