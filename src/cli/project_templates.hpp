// The files that `fluxlit new` writes for each profile.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fluxlit::cli {

enum class project_profile { minimal, api_heavy, deploy };

struct project_file {
  std::string path;  // relative to the project directory, with "/" separators
  std::string content;
};

// Returns the title an app named `name` gets: its words, split at "-", "_" and ".", each with
// a capital first letter ("my-app" becomes "My App").
std::string title_from_name(std::string_view name);

// Returns an empty string when `name` can be a project directory name, else why it cannot:
// 1 to 64 characters, letters, digits, ".", "_" and "-", starting with a letter or a digit.
std::string check_project_name(std::string_view name);

// Returns the files of a new project called `name`: app.py, fluxlit.toml, requirements.txt,
// conftest.py, tests/test_app.py, README.md and .gitignore, plus routers/ and models.py for
// api_heavy and k8s/deployment.yaml for deploy. The Dockerfile and .dockerignore of `deploy`
// come from the build command's writer, not from here.
std::vector<project_file> project_files(std::string_view name, project_profile profile);

}  // namespace fluxlit::cli
