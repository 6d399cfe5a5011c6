// `fluxlit pages manifest` and `fluxlit pages validate`: the app's pages as JSON, and checks on
// them. Both import the app in a child process of the chosen interpreter (fluxlit._manifest).
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/command_support.hpp"
#include "cli/commands.hpp"
#include "cli/python_runner.hpp"
#include "cli/setting_flags.hpp"
#include "fluxlit/asgi/bridge.hpp"

namespace fluxlit::cli {

namespace {

constexpr std::string_view manifest_footer =
    "Exit status: 0 when the manifest was printed, 1 when the app could not be loaded or is not\n"
    "a FluxLit object, 2 for a usage error or an invalid setting.";

constexpr std::string_view validate_footer =
    "Exit status: 0 when no problem was found, 1 when there is a problem or the app could not\n"
    "be loaded, 2 for a usage error or an invalid setting.";

struct pages_options {
  config::cli_values given;
  bool strict = false;
  std::uint64_t import_timeout_ms = 30'000;
};

// Loads the settings, imports the app with `command` and returns the module's JSON object.
// Throws asgi::startup_error when the app could not be loaded.
nlohmann::ordered_json run_pages_module(const pages_options& options, const std::string& command,
                                        const std::vector<std::string>& extra) {
  const config::loaded_settings loaded = load_checked_settings(options.given);
  const config::app_target target =
      config::parse_target(loaded.values.target, std::filesystem::current_path().string());
  const std::string python = asgi::choose_interpreter(loaded.values.python);
  manifest_module_result result =
      run_manifest_module(python, command, python_target_text(target), target.app_directory, extra,
                          std::chrono::milliseconds(options.import_timeout_ms));
  // What the app logged or printed while it was imported reaches the user as it would in `run`.
  std::fwrite(result.errors.data(), 1, result.errors.size(), stderr);
  if (result.document.contains("error")) {
    throw asgi::startup_error(load_error_message(result.document["error"], true));
  }
  return std::move(result.document);
}

int report_failure(std::string_view command, const std::exception& error) {
  std::fflush(stdout);
  std::fprintf(stderr, "fluxlit: pages %.*s: %s\n", static_cast<int>(command.size()),
               command.data(), error.what());
  return exit_check_failed;
}

int run_manifest(const pages_options& options) {
  try {
    print_json(run_pages_module(options, "manifest", {}));
  } catch (const asgi::startup_error& error) {
    return report_failure("manifest", error);
  }
  return 0;
}

int run_validate(const pages_options& options) {
  const bool strict = strict_requested(options.strict);
  nlohmann::ordered_json report;
  try {
    report = run_pages_module(
        options, "validate",
        strict ? std::vector<std::string>{"--strict"} : std::vector<std::string>{});
  } catch (const asgi::startup_error& error) {
    return report_failure("validate", error);
  }
  const auto problems = report.value("problems", nlohmann::ordered_json::array());
  for (const auto& problem : problems) {
    std::printf("%s: %s\n", problem.value("path", "").c_str(),
                problem.value("message", "").c_str());
  }
  if (problems.empty()) {
    std::printf("%d page(s) checked%s, no problems\n", report.value("pages", 0),
                strict ? " with handler signatures" : "");
  }
  std::fflush(stdout);
  return problems.empty() ? 0 : exit_check_failed;
}

void add_common_options(CLI::App& command, pages_options& options) {
  add_target_argument(command, options.given);
  add_setting_flags(command, options.given);
  command
      .add_option("--import-timeout-ms", options.import_timeout_ms,
                  "Time importing the app may take, in milliseconds. Default: 30000.")
      ->type_name("MS")
      ->check(CLI::Range(1, 86'400'000));
}

}  // namespace

void add_pages_command(CLI::App& app, int& exit_status) {
  auto* pages = app.add_subcommand("pages", "Describe and check the app's Streamlit pages.");
  pages->require_subcommand(1);

  auto* manifest = pages->add_subcommand(
      "manifest",
      "Print the pages as JSON (manifest_version 1): title, then per page its path, title, "
      "tags, description, icon, handler parameters and dependencies.");
  manifest->footer(std::string(manifest_footer));
  auto manifest_options = std::make_shared<pages_options>();
  add_common_options(*manifest, *manifest_options);
  manifest->callback(
      [manifest_options, &exit_status] { exit_status = run_manifest(*manifest_options); });

  auto* validate = pages->add_subcommand(
      "validate",
      "Check the pages: invalid paths, paths registered twice, and paths that map to the same "
      "URL path (\"/a-b\" and \"/a/b\"). Prints one line per problem.");
  validate->footer(std::string(validate_footer));
  auto validate_options = std::make_shared<pages_options>();
  add_common_options(*validate, *validate_options);
  validate->add_flag("--strict", validate_options->strict,
                     "Also check that the page runner can call each handler as handler(st, "
                     "client): two positional parameters, defaults for the rest, not async. "
                     "FLUXLIT_STRICT=1 does the same.");
  validate->callback(
      [validate_options, &exit_status] { exit_status = run_validate(*validate_options); });
}

}  // namespace fluxlit::cli
