// The fluxlit subcommands. Each `add_*` registers one command on the CLI11 app; the command
// runs from its callback and reports its exit status through `exit_status`.
#pragma once

#include <CLI/CLI.hpp>

namespace fluxlit::cli {

// `run` (production: JSON logs) and `dev` (text logs at debug level, a banner).
void add_serve_commands(CLI::App& app, int& exit_status);

void add_version_command(CLI::App& app, int& exit_status);

// `shutdown`: SIGTERM (and with --force, SIGKILL) to the server named by a pid file.
void add_shutdown_command(CLI::App& app, int& exit_status);

// `config`: the resolved settings, their sources, derived values and coded warnings.
void add_config_command(CLI::App& app, int& exit_status);

// `doctor`: one PASS, WARN or FAIL row per check of the interpreter, packages, app and settings.
void add_doctor_command(CLI::App& app, int& exit_status);

// `pages manifest` and `pages validate`: the app's pages as JSON, and checks on them.
void add_pages_command(CLI::App& app, int& exit_status);

// `new`: a new project directory from a profile.
void add_new_command(CLI::App& app, int& exit_status);

// `build`: a Dockerfile and .dockerignore for the project in the working directory.
void add_build_command(CLI::App& app, int& exit_status);

}  // namespace fluxlit::cli
