// `fluxlit new NAME`: creates a project directory with a runnable app, its settings and tests.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/command_support.hpp"
#include "cli/commands.hpp"
#include "cli/docker_files.hpp"
#include "cli/project_templates.hpp"
#include "fluxlit/asgi/bridge.hpp"

namespace fluxlit::cli {

namespace {

namespace fs = std::filesystem;

constexpr int exit_usage = 2;

constexpr std::string_view new_footer =
    "Every profile writes app.py (a FluxLit app with an API route and a page), fluxlit.toml,\n"
    "requirements.txt, conftest.py, README.md, .gitignore and tests/test_app.py, which uses\n"
    "fluxlit.testing.\n\n"
    "Exit status: 0 when the project was created, 1 when NAME exists and is not an empty\n"
    "directory or a file cannot be written, 2 for a usage error such as an invalid NAME.";

const std::map<std::string, project_profile> profiles{
    {"minimal", project_profile::minimal},
    {"api-heavy", project_profile::api_heavy},
    {"deploy", project_profile::deploy},
};

// The rule that check_project_name() enforces, repeated in every message about a bad name.
constexpr std::string_view name_rule =
    "A project name has 1 to 64 characters (letters, digits, \".\", \"_\" and \"-\") and "
    "starts with a letter or a digit, for example my-app";

struct new_options {
  std::string name;
  std::string profile = "minimal";
  // Arguments that CLI11 could not match, such as "-bad", which it reads as an unknown option.
  std::vector<std::string> unmatched;
};

// Accepts the names of the profiles, and names the closest one for a misspelled value.
CLI::Validator profile_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        static const std::vector<std::string> profiles = {"minimal", "api-heavy", "deploy"};
        if (std::find(profiles.begin(), profiles.end(), value) != profiles.end()) return "";
        std::string error =
            "unknown profile \"" + value + "\"; the profiles are minimal, api-heavy and deploy";
        if (const auto closest = closest_name(value, profiles)) {
          error += ". Did you mean " + *closest + "?";
        }
        return error;
      },
      "{minimal,api-heavy,deploy}");
}

// Returns the usage error for a missing NAME or unmatched arguments, or "" when there is none.
std::string check_arguments(const new_options& options) {
  if (!options.unmatched.empty()) {
    const std::string& first = options.unmatched.front();
    if (options.name.empty() && first.starts_with('-')) {
      // CLI11 reads any argument that starts with "-" as an option, so a name like "-bad"
      // arrives here instead of in `name`.
      return "invalid project name \"" + first +
             "\": it must start with a letter or a digit, and an argument that starts with \"-\" "
             "is read as an option. " +
             std::string(name_rule);
    }
    return "unexpected argument \"" + first +
           "\": fluxlit new takes one NAME and the option --profile (see fluxlit new --help)";
  }
  if (options.name.empty()) {
    return "missing project name. " + std::string(name_rule);
  }
  return "";
}

// Returns an error message when `directory` exists and is anything but an empty directory.
std::string check_destination(const fs::path& directory) {
  std::error_code error;
  const fs::file_status status = fs::symlink_status(directory, error);
  if (!fs::exists(status)) {
    return "";
  }
  if (!fs::is_directory(status)) {
    return directory.string() + " already exists and is not a directory. Choose another NAME";
  }
  if (!fs::is_empty(directory, error)) {
    return directory.string() +
           " already exists and is not empty. Choose another NAME, or "
           "remove the directory first";
  }
  return "";
}

void write_project_file(const fs::path& directory, const project_file& file) {
  const fs::path path = directory / file.path;
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << file.content;
  out.close();
  if (!out) {
    throw fs::filesystem_error("cannot write the file", path,
                               std::make_error_code(std::errc::io_error));
  }
  std::printf("created %s\n", (fs::path(directory.filename()) / file.path).c_str());
}

void write_deploy_files(const fs::path& directory) {
  docker_options docker;
  docker.project_directory = directory.string();
  docker.image_name = image_name_for(docker.project_directory);
  docker.has_requirements = true;
  for (const std::string& line : write_docker_files(docker, false)) {
    std::printf("%s\n", line.c_str());
  }
}

int create_project(const new_options& options) {
  if (const std::string problem = check_arguments(options); !problem.empty()) {
    std::fprintf(stderr, "fluxlit: new: %s\n", problem.c_str());
    return exit_usage;
  }
  const std::string name_problem = check_project_name(options.name);
  if (!name_problem.empty()) {
    std::fprintf(stderr, "fluxlit: new: invalid project name \"%s\": %s. %s\n",
                 options.name.c_str(), name_problem.c_str(), std::string(name_rule).c_str());
    return exit_usage;
  }
  const fs::path directory = fs::absolute(options.name);
  if (const std::string problem = check_destination(directory); !problem.empty()) {
    std::fprintf(stderr, "fluxlit: new: %s\n", problem.c_str());
    return exit_check_failed;
  }
  const project_profile profile = profiles.at(options.profile);
  try {
    fs::create_directories(directory);
    for (const project_file& file : project_files(options.name, profile)) {
      write_project_file(directory, file);
    }
    if (profile == project_profile::deploy) {
      write_deploy_files(directory);
    }
  } catch (const fs::filesystem_error& error) {
    std::fprintf(stderr, "fluxlit: new: %s\n", error.what());
    return exit_check_failed;
  } catch (const asgi::startup_error& error) {
    std::fprintf(stderr, "fluxlit: new: %s\n", error.what());
    return exit_check_failed;
  }
  std::printf("\nNext: cd %s && fluxlit doctor && fluxlit run\n", options.name.c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace

void add_new_command(CLI::App& app, int& exit_status) {
  auto* command = app.add_subcommand(
      "new", "Create the directory NAME with a runnable app, its settings and a test.");
  command->footer(std::string(new_footer));
  auto options = std::make_shared<new_options>();
  command
      ->add_option("name", options->name,
                   "Directory to create, also the source of the app's title (my-app becomes "
                   "\"My App\"): letters, digits, \".\", \"_\" and \"-\".")
      ->type_name("NAME");
  // NAME is checked in create_project() rather than with required(), because CLI11 reads a
  // name such as "-bad" as an unknown option and would then report only that NAME is missing.
  command->allow_extras();
  command
      ->add_option("--profile", options->profile,
                   "minimal: one route and one page. api-heavy: adds a router (routers/) "
                   "and pydantic models (models.py). deploy: adds the Dockerfile and "
                   ".dockerignore that `fluxlit build` writes, with a copy of this binary in "
                   ".fluxlit/, and k8s/deployment.yaml. Default: minimal.")
      ->check(profile_validator());
  command->callback([options, command, &exit_status] {
    options->unmatched = command->remaining();
    // With allow_extras(), CLI11 also lists the "--" that ends the options.
    const auto separator = std::find(options->unmatched.begin(), options->unmatched.end(), "--");
    if (separator != options->unmatched.end()) {
      options->unmatched.erase(separator);
    }
    exit_status = create_project(*options);
  });
}

}  // namespace fluxlit::cli
