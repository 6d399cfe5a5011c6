// Command-line options generated from the configuration key table, shared by `run` and `dev`.
#pragma once

#include <CLI/CLI.hpp>

#include "fluxlit/config/settings.hpp"

namespace fluxlit::cli {

// Adds one option per key that has a CLI flag, with the key's description, unit, default and
// environment variable in the help text. Bool keys become flags: `--proxy-headers` sets true,
// and keys not already named "no_..." also get a negated form (`--no-proxy-headers`). A value
// may follow "=" (`--no-ui=false`). The options inject no defaults: while CLI11 parses, each
// option the user passes writes its text into `given` under the key's name, so `given` holds
// only what was passed and load() can apply the precedence. `given` must outlive the parse.
// A list option may be repeated, and its values are joined with commas.
void add_setting_flags(CLI::App& command, config::cli_values& given);

// Adds the optional positional TARGET argument ("module:attribute" or "path/to/file.py:attr"),
// which writes into `given["target"]` when passed.
void add_target_argument(CLI::App& command, config::cli_values& given);

}  // namespace fluxlit::cli
