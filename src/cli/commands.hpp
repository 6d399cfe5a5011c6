// The fluxlit subcommands. Each `add_*` registers one command on the CLI11 app; the command
// runs from its callback and reports its exit status through `exit_status`.
#pragma once

#include <CLI/CLI.hpp>

namespace fluxlit::cli {

// `run` (production: JSON logs) and `dev` (text logs at debug level, a banner).
void add_serve_commands(CLI::App& app, int& exit_status);

void add_version_command(CLI::App& app, int& exit_status);

}  // namespace fluxlit::cli
