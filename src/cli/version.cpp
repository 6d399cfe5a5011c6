// `fluxlit version`: FluxLit's version, the Python it links, where its Python package is, and
// the versions of the libraries it was built with.
#include <Python.h>
#include <fmt/core.h>
#include <pybind11/detail/common.h>
#include <spdlog/version.h>
#include <toml++/toml.h>

#include <CLI/Version.hpp>
#include <boost/version.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "cli/command_support.hpp"
#include "cli/commands.hpp"
#include "fluxlit/asgi/bridge.hpp"

namespace fluxlit::cli {

namespace {

constexpr std::string_view version_footer =
    "Exit status: 0, or 1 with --package-dir when the package directory cannot be found.";

struct version_options {
  bool json = false;
  bool package_directory = false;
};

std::string dotted(long major, long minor, long patch) {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

// The libraries whose headers define a version, as they were at build time. prometheus-cpp
// defines no version macro, so it is not listed.
std::vector<std::pair<std::string, std::string>> library_versions() {
  return {
      {"boost", dotted(BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100)},
      {"spdlog", dotted(SPDLOG_VER_MAJOR, SPDLOG_VER_MINOR, SPDLOG_VER_PATCH)},
      {"fmt", dotted(FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100)},
      {"toml++", dotted(TOML_LIB_MAJOR, TOML_LIB_MINOR, TOML_LIB_PATCH)},
      {"nlohmann_json", dotted(NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                               NLOHMANN_JSON_VERSION_PATCH)},
      {"CLI11", dotted(CLI11_VERSION_MAJOR, CLI11_VERSION_MINOR, CLI11_VERSION_PATCH)},
      {"pybind11", dotted(PYBIND11_VERSION_MAJOR, PYBIND11_VERSION_MINOR, PYBIND11_VERSION_PATCH)},
  };
}

// Returns the package directory, or nothing with the reason in `problem`.
std::optional<std::string> find_package_directory(std::string& problem) {
  try {
    return asgi::python_package_directory();
  } catch (const asgi::startup_error& error) {
    problem = error.what();
    return std::nullopt;
  }
}

int print_version(const version_options& options) {
  std::string problem;
  const std::optional<std::string> package = find_package_directory(problem);
  if (options.package_directory) {
    if (!package) {
      std::fprintf(stderr, "fluxlit: version: %s\n", problem.c_str());
      return exit_check_failed;
    }
    std::printf("%s\n", package->c_str());
    return 0;
  }
  if (options.json) {
    nlohmann::ordered_json document{{"fluxlit", FLUXLIT_VERSION},
                                    {"python", PY_VERSION},
                                    {"package_directory", nullptr},
                                    {"libraries", nlohmann::ordered_json::object()}};
    if (package) {
      document["package_directory"] = *package;
    }
    for (const auto& [name, version] : library_versions()) {
      document["libraries"][name] = version;
    }
    print_json(document);
    return 0;
  }
  std::printf("fluxlit %s\npython %s (linked)\npackage %s\n", FLUXLIT_VERSION, PY_VERSION,
              package ? package->c_str() : ("not found: " + problem).c_str());
  for (const auto& [name, version] : library_versions()) {
    std::printf("%s %s\n", name.c_str(), version.c_str());
  }
  return 0;
}

}  // namespace

void add_version_command(CLI::App& app, int& exit_status) {
  auto* command = app.add_subcommand(
      "version",
      "Print FluxLit's version, the Python it links, its package directory and library "
      "versions.");
  command->footer(std::string(version_footer));
  auto options = std::make_shared<version_options>();
  command->add_flag("--json", options->json,
                    "Print one JSON object with the keys fluxlit, python, package_directory "
                    "and libraries.");
  command->add_flag("--package-dir", options->package_directory,
                    "Print only the directory that contains the fluxlit Python package, for "
                    "PYTHONPATH.");
  command->callback([options, &exit_status] { exit_status = print_version(*options); });
}

}  // namespace fluxlit::cli
