// The app target: which Python object FluxLit serves, written "module:attribute" or
// "path/to/file.py:attribute".
#pragma once

#include <string>
#include <string_view>

namespace fluxlit::config {

struct app_target {
  std::string module;         // dotted module name in module form, empty in file form
  std::string file;           // absolute, normalised path of the .py file, empty in module form
  std::string attribute;      // attribute path inside the module, e.g. "app" or "server.app"
  std::string app_directory;  // the working directory (module form) or the file's directory
};

// Checks the shape of a target without touching the file system. Throws config_error naming the
// target and giving an example of the expected form.
void check_target_syntax(std::string_view text);

// Parses and resolves a target. The file form applies when the part before the last ":" ends in
// ".py" or contains "/". A relative path is taken from `working_directory`, and the file must
// exist. Throws config_error.
app_target parse_target(std::string_view text, const std::string& working_directory);

}  // namespace fluxlit::config
