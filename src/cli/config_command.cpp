// `fluxlit config`: prints the settings a `run` with the same flags, environment and working
// directory would use, where each came from, the values FluxLit derives from them, and warnings.
#include <cstdio>
#include <memory>

#include "cli/command_support.hpp"
#include "cli/commands.hpp"
#include "cli/config_report.hpp"
#include "cli/setting_flags.hpp"

namespace fluxlit::cli {

namespace {

constexpr std::string_view config_footer =
    "Takes the same setting flags as `run`, so you can see what a flag would change. Derived\n"
    "values: the public mount (root_path + \"/\"), the API base URL that pages call, the app\n"
    "directory, the interpreter and the Streamlit command line. Values of settings whose name\n"
    "suggests a secret, and passwords in URLs, are shown as ***.\n\n"
    "Exit status: 0 when the settings are valid (warnings allowed), 1 when --strict is set and\n"
    "there is a warning, 2 for a usage error or an invalid setting.";

struct config_options {
  config::cli_values given;
  bool json = false;
  bool strict = false;
};

int run_config(const config_options& options) {
  const config::loaded_settings loaded = load_checked_settings(options.given);
  const bool strict = strict_requested(options.strict);
  const configuration_report report = make_configuration_report(loaded);
  if (options.json) {
    print_json(configuration_json(report));
  } else {
    const std::string text = configuration_text(report);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  }
  if (strict && !report.warnings.empty()) {
    std::fprintf(stderr,
                 "fluxlit: config: %zu warning(s), and strict mode turns them into a failure\n",
                 report.warnings.size());
    return exit_check_failed;
  }
  return 0;
}

}  // namespace

void add_config_command(CLI::App& app, int& exit_status) {
  auto* command = app.add_subcommand(
      "config",
      "Print the resolved settings with their sources, the values derived from them and "
      "warnings with codes.");
  command->footer(std::string(config_footer));
  auto options = std::make_shared<config_options>();
  add_target_argument(*command, options->given);
  add_setting_flags(*command, options->given);
  command->add_flag("--json", options->json,
                    "Print one JSON object with the keys settings, derived and warnings.");
  command->add_flag(
      "--strict", options->strict,
      "Exit with status 1 when there is any warning. FLUXLIT_STRICT=1 does the same.");
  command->callback([options, &exit_status] { exit_status = run_config(*options); });
}

}  // namespace fluxlit::cli
