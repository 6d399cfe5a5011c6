// `fluxlit doctor`: checks that a `run` with the same settings would work, one row per check.
// Every check runs even when an earlier one failed, unless it depends on the earlier result.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/command_support.hpp"
#include "cli/commands.hpp"
#include "cli/config_report.hpp"
#include "cli/doctor_checks.hpp"
#include "cli/python_runner.hpp"
#include "cli/serve_support.hpp"
#include "cli/setting_flags.hpp"
#include "fluxlit/config/target.hpp"

namespace fluxlit::cli {

namespace {

constexpr std::string_view doctor_footer =
    "Checks: configuration, interpreter (against the linked libpython), fastapi (0.90 or\n"
    "newer), streamlit (1.36 or newer unless no_ui), target (imported in a child process),\n"
    "pages (with --check-pages), port, streamlit_config, forwarded_trust, root_path_trust and\n"
    "body_limit.\n\n"
    "Exit status: 0 when no check fails (warnings allowed), 1 when a check fails, or when\n"
    "--strict is set and a check warns, 2 for a usage error.";

// Printed as one JSON object by the interpreter: the version of each package, null when it is
// not installed, "" when it is installed without a known version. A package without metadata
// (a copy on PYTHONPATH) is imported to read its __version__.
constexpr const char* package_probe_script = R"(import importlib.metadata, importlib.util, json
def version(name):
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return str(getattr(__import__(name), "__version__", ""))
    except Exception:
        return ""
print(json.dumps({name: version(name) for name in ("fastapi", "streamlit")}))
)";

const package_requirement fastapi_requirement{
    "fastapi", "FastAPI", "fastapi", "0.90", "the oldest release FluxLit is tested with", ""};
const package_requirement streamlit_requirement{
    "streamlit", "Streamlit", "streamlit", std::string(streamlit_minimum_version),
    "and FluxLit's page navigation needs st.navigation, which Streamlit 1.36 added",
    "`fluxlit run` serves the API alone, and UI paths answer 503 with these instructions"};

struct doctor_options {
  config::cli_values given;
  bool json = false;
  bool verbose = false;
  bool strict = false;
  bool check_pages = false;
  std::uint64_t import_timeout_ms = 30'000;
};

// The results so far, and the facts that later checks depend on.
struct doctor_state {
  const doctor_options& options;
  std::vector<check_result> results;
  std::optional<config::loaded_settings> loaded;
  std::optional<asgi::interpreter_info> interpreter;
  std::optional<config::app_target> target;
  bool fastapi_usable = false;
};

std::chrono::milliseconds import_timeout(const doctor_options& options) {
  return std::chrono::milliseconds(options.import_timeout_ms);
}

void check_configuration(doctor_state& state) {
  try {
    state.loaded = load_checked_settings(state.options.given);
  } catch (const config::config_error& error) {
    state.results.push_back({"configuration", check_status::fail, error.what()});
    return;
  }
  const config::loaded_settings& loaded = *state.loaded;
  for (std::size_t i = 0; i < loaded.warnings.size(); ++i) {
    state.results.push_back(
        {"configuration", check_status::warn, loaded.warning_codes[i] + " " + loaded.warnings[i]});
  }
  if (loaded.warnings.empty()) {
    const std::string file = loaded.file.empty() ? "no configuration file" : loaded.file;
    state.results.push_back({"configuration", check_status::pass, file + ", no warnings"});
  }
}

void check_interpreter(doctor_state& state) {
  try {
    state.interpreter =
        asgi::query_interpreter(asgi::choose_interpreter(state.loaded->values.python));
  } catch (const asgi::startup_error& error) {
    state.results.push_back({"interpreter", check_status::fail, error.what()});
    return;
  }
  state.results.push_back({"interpreter", check_status::pass,
                           "Python " + state.interpreter->version + " at " +
                               state.interpreter->executable + " matches the linked libpython " +
                               FLUXLIT_PYTHON_VERSION});
}

package_version read_version(const nlohmann::json& versions, const char* name) {
  const auto found = versions.find(name);
  if (found == versions.end() || !found->is_string()) {
    return std::nullopt;
  }
  return found->get<std::string>();
}

void check_packages(doctor_state& state) {
  const std::string& python = state.interpreter->executable;
  const python_run run =
      run_python(python, {"-c", package_probe_script}, ".", import_timeout(state.options));
  const nlohmann::json versions = nlohmann::json::parse(run.output, nullptr, false);
  if (run.exit_status != 0 || !versions.is_object()) {
    state.results.push_back(
        {"packages", check_status::fail,
         "cannot list the packages of " + python + ": " + last_lines(run.errors, 3)});
    return;
  }
  const check_result fastapi =
      check_package(fastapi_requirement, read_version(versions, "fastapi"), python);
  state.fastapi_usable = fastapi.status != check_status::fail;
  state.results.push_back(fastapi);
  if (state.loaded->values.no_ui) {
    state.results.push_back(
        {"streamlit", check_status::pass, "not needed: no_ui is on, so Streamlit is not started"});
    return;
  }
  state.results.push_back(
      check_package(streamlit_requirement, read_version(versions, "streamlit"), python));
}

check_result describe_probed_target(const nlohmann::ordered_json& probe, const std::string& target,
                                    bool no_ui) {
  const std::string kind = probe.value("kind", "");
  const std::string type = probe.value("type", "");
  if (kind == "fluxlit") {
    return {"target", check_status::pass,
            target + " is a FluxLit app \"" + probe.value("title", "") + "\" with " +
                std::to_string(probe.value("pages", 0)) + " page(s)"};
  }
  if (kind == "asgi" && no_ui) {
    return {"target", check_status::pass, target + " is an ASGI app (" + type + ")"};
  }
  if (kind == "asgi") {
    return {"target", check_status::warn,
            target + " is an ASGI app (" + type +
                "), not a FluxLit object, so the UI has no "
                "pages. Wrap it with FluxLit(api=app), or turn on no_ui"};
  }
  return {"target", check_status::fail,
          target + " is a " + type + ", which is neither a FluxLit object nor an ASGI app"};
}

// Runs fluxlit._manifest with `command` on the target and returns the object it printed.
nlohmann::ordered_json run_module(const doctor_state& state, const std::string& command,
                                  const std::vector<std::string>& extra) {
  return run_manifest_module(state.interpreter->executable, command,
                             python_target_text(*state.target), state.target->app_directory, extra,
                             import_timeout(state.options))
      .document;
}

void check_target(doctor_state& state) {
  const config::settings& values = state.loaded->values;
  try {
    state.target = config::parse_target(values.target, std::filesystem::current_path().string());
  } catch (const config::config_error& error) {
    state.results.push_back({"target", check_status::fail, error.what()});
    return;
  }
  if (!state.fastapi_usable) {
    state.results.push_back({"target", check_status::fail,
                             "not imported: the fluxlit package needs a supported FastAPI"});
    return;
  }
  try {
    const nlohmann::ordered_json probe = run_module(state, "probe", {});
    if (probe.contains("error")) {
      state.results.push_back({"target", check_status::fail,
                               load_error_message(probe["error"], state.options.verbose)});
      return;
    }
    state.results.push_back(describe_probed_target(probe, values.target, values.no_ui));
  } catch (const asgi::startup_error& error) {
    state.results.push_back({"target", check_status::fail, error.what()});
  }
}

void check_pages(doctor_state& state) {
  const bool strict = strict_requested(state.options.strict);
  try {
    const nlohmann::ordered_json report =
        run_module(state, "validate",
                   strict ? std::vector<std::string>{"--strict"} : std::vector<std::string>{});
    if (report.contains("error")) {
      state.results.push_back({"pages", check_status::fail,
                               load_error_message(report["error"], state.options.verbose)});
      return;
    }
    const auto problems = report.value("problems", nlohmann::ordered_json::array());
    for (const auto& problem : problems) {
      state.results.push_back({"pages", check_status::fail,
                               problem.value("path", "") + ": " + problem.value("message", "")});
    }
    if (problems.empty()) {
      state.results.push_back({"pages", check_status::pass,
                               std::to_string(report.value("pages", 0)) + " page(s), no problems"});
    }
  } catch (const asgi::startup_error& error) {
    state.results.push_back({"pages", check_status::fail, error.what()});
  }
}

void check_settings(doctor_state& state) {
  const config::settings& values = state.loaded->values;
  state.results.push_back(check_port(values.host, values.port));
  const std::string app_directory =
      state.target ? state.target->app_directory : std::filesystem::current_path().string();
  for (check_result& result : check_streamlit_config(values, app_directory)) {
    state.results.push_back(std::move(result));
  }
  for (check_result& result : check_proxy_trust(values)) {
    state.results.push_back(std::move(result));
  }
  if (values.no_ui) {
    state.results.push_back(
        {"body_limit", check_status::pass, "not checked: no_ui is on, so there are no uploads"});
    return;
  }
  const auto files = read_streamlit_config_files(app_directory);
  state.results.push_back(
      check_body_limit(values.max_request_body_bytes,
                       find_upload_limit(files, environment_with_prefix("STREAMLIT_"))));
}

void run_checks(doctor_state& state) {
  check_configuration(state);
  if (!state.loaded) {
    return;
  }
  check_interpreter(state);
  if (state.interpreter) {
    check_packages(state);
    check_target(state);
  } else {
    state.results.push_back(
        {"target", check_status::fail, "not imported: there is no usable interpreter"});
  }
  const bool target_loaded = !state.results.empty() && state.results.back().name == "target" &&
                             state.results.back().status != check_status::fail;
  if (state.options.check_pages && target_loaded) {
    check_pages(state);
  } else if (state.options.check_pages) {
    state.results.push_back(
        {"pages", check_status::fail, "not checked: the target could not be loaded"});
  }
  check_settings(state);
}

struct check_counts {
  std::size_t passed = 0;
  std::size_t warned = 0;
  std::size_t failed = 0;
};

check_counts count_results(const std::vector<check_result>& results) {
  check_counts counts;
  for (const check_result& result : results) {
    switch (result.status) {
      case check_status::pass:
        ++counts.passed;
        break;
      case check_status::warn:
        ++counts.warned;
        break;
      case check_status::fail:
        ++counts.failed;
        break;
    }
  }
  return counts;
}

void print_text(const doctor_state& state, const check_counts& counts, bool strict) {
  std::string text = format_check_rows(state.results);
  text += "\nSummary: " + std::to_string(counts.passed) + " PASS, " +
          std::to_string(counts.warned) + " WARN, " + std::to_string(counts.failed) + " FAIL" +
          (strict ? " (strict: warnings fail)" : "") + "\n";
  if (state.options.verbose && state.loaded) {
    text += "\nEffective configuration\n\n" +
            configuration_text(make_configuration_report(*state.loaded));
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void print_json_report(const doctor_state& state, const check_counts& counts, bool strict,
                       int exit_status) {
  nlohmann::ordered_json document;
  document["checks"] = nlohmann::ordered_json::array();
  for (const check_result& result : state.results) {
    document["checks"].push_back(
        {{"name", result.name}, {"status", status_text(result.status)}, {"detail", result.detail}});
  }
  document["summary"] = {{"pass", counts.passed}, {"warn", counts.warned}, {"fail", counts.failed}};
  document["strict"] = strict;
  document["exit_status"] = exit_status;
  if (state.options.verbose && state.loaded) {
    document["configuration"] = configuration_json(make_configuration_report(*state.loaded));
  }
  print_json(document);
}

int run_doctor(const doctor_options& options) {
  const bool strict = strict_requested(options.strict);
  doctor_state state{options};
  run_checks(state);
  const check_counts counts = count_results(state.results);
  const bool failed = counts.failed > 0 || (strict && counts.warned > 0);
  const int exit_status = failed ? exit_check_failed : 0;
  if (options.json) {
    print_json_report(state, counts, strict, exit_status);
  } else {
    print_text(state, counts, strict);
  }
  return exit_status;
}

}  // namespace

void add_doctor_command(CLI::App& app, int& exit_status) {
  auto* command = app.add_subcommand(
      "doctor",
      "Check that `run` with the same settings would work, with one PASS, WARN or FAIL row per "
      "check.");
  command->footer(std::string(doctor_footer));
  auto options = std::make_shared<doctor_options>();
  add_target_argument(*command, options->given);
  add_setting_flags(*command, options->given);
  command->add_flag("--json", options->json,
                    "Print one JSON object with the keys checks, summary, strict and exit_status "
                    "(and configuration with --verbose).");
  command->add_flag("--verbose", options->verbose,
                    "Also print the effective configuration (secrets hidden) and the traceback "
                    "of a failed import.");
  command->add_flag("--strict", options->strict,
                    "Fail (exit status 1) on warnings too, and check page handlers with "
                    "--check-pages. FLUXLIT_STRICT=1 does the same.");
  command->add_flag("--check-pages", options->check_pages,
                    "Also run the checks of `fluxlit pages validate`.");
  command
      ->add_option("--import-timeout-ms", options->import_timeout_ms,
                   "Time each Python run (package versions, importing the app) may take, in "
                   "milliseconds. Default: 30000.")
      ->type_name("MS")
      ->check(CLI::Range(1, 86'400'000));
  command->callback([options, &exit_status] { exit_status = run_doctor(*options); });
}

}  // namespace fluxlit::cli
