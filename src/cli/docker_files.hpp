// The Dockerfile and .dockerignore that `fluxlit build` (and `fluxlit new --profile deploy`)
// write for a project, and the copy of FluxLit they build the image from.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fluxlit::cli {

struct docker_options {
  std::string project_directory;  // absolute: the build context
  std::string image_name;         // used in the comments' docker commands
  // Absolute path of a FluxLit checkout to compile in the image, or empty to copy the running
  // binary and its Python package into <project>/.fluxlit/.
  std::string fluxlit_checkout;
  std::string target;         // passed as the image's CMD, or empty to use fluxlit.toml or app:app
  std::uint16_t port = 8000;  // EXPOSEd unless 0
  bool has_requirements = false;  // the project has a requirements.txt to install
};

// Returns the checkout's path relative to the project directory when it lies inside it, else
// an empty string: the Dockerfile then takes it from a named build context.
std::string checkout_in_context(const docker_options& options);

std::string render_dockerfile(const docker_options& options);
std::string render_dockerignore(const docker_options& options);

// Returns a name Docker accepts for an image of the project in `directory`: its last path
// component in lower case, with characters other than letters, digits, ".", "_" and "-"
// replaced by "-".
std::string image_name_for(const std::string& directory);

// Checks that `directory` is a FluxLit checkout (CMakeLists.txt of project fluxlit,
// python/fluxlit/__init__.py and scripts/install-deps.sh). Throws config::config_error naming
// what is missing.
void check_fluxlit_checkout(const std::string& directory);

// Writes Dockerfile and .dockerignore into the project directory and, without a checkout,
// copies the running binary and the fluxlit package into .fluxlit/. Returns one line per file
// written. When Dockerfile or .dockerignore exists and `overwrite` is false, writes nothing and
// throws file_exists_error. Throws std::filesystem::filesystem_error when writing fails and
// asgi::startup_error when the package directory cannot be found.
std::vector<std::string> write_docker_files(const docker_options& options, bool overwrite);

// Thrown by write_docker_files when a file exists and overwriting was not requested.
class file_exists_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace fluxlit::cli
