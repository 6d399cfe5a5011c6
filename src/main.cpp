// The fluxlit binary: one command-line front end for every subcommand.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>
#include <system_error>
#include <vector>

#include "cli/command_support.hpp"
#include "cli/commands.hpp"
#include "fluxlit/asgi/bridge.hpp"
#include "fluxlit/config/settings.hpp"
#include "fluxlit/observability/log.hpp"

namespace {

// Exit statuses shared by every command.
constexpr int exit_startup_failed = 1;
constexpr int exit_usage = 2;

int report(const char* kind, const std::exception& error, int status) {
  std::fflush(stdout);
  std::fprintf(stderr, "fluxlit: %s: %s\n", kind, error.what());
  return status;
}

// After a parse error, names the option or command that each unexpected argument of the last
// command on the line was probably meant to be: "--prot" gets "did you mean --port?".
void suggest_names(const CLI::App& app) {
  const CLI::App* command = &app;
  while (!command->get_subcommands().empty()) command = command->get_subcommands().back();
  std::vector<std::string> options;
  for (const auto* option : command->get_options()) {
    for (const auto& name : option->get_lnames()) options.push_back("--" + name);
  }
  std::vector<std::string> commands;
  for (const auto* sub : command->get_subcommands([](const CLI::App*) { return true; })) {
    commands.push_back(sub->get_name());
  }
  std::string path = command->get_name();
  for (const auto* parent = command->get_parent(); parent != nullptr;
       parent = parent->get_parent()) {
    path = parent->get_name() + " " + path;
  }
  for (const auto& given : command->remaining()) {
    const bool option = given.starts_with("--");
    if (!option && given.starts_with('-')) continue;  // short flags are too short to guess
    if (auto name = fluxlit::cli::closest_name(given, option ? options : commands)) {
      const auto typed = given.substr(0, given.find('='));
      std::fprintf(stderr, "fluxlit: %s is not %s of '%s'; did you mean %s?\n", typed.c_str(),
                   option ? "an option" : "a command", path.c_str(), name->c_str());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // exec keeps an ignored SIGCHLD from the launcher. The kernel would then reap the Streamlit
  // child and the workers at once, and every exit status would be lost.
  std::signal(SIGCHLD, SIG_DFL);
  CLI::App app{"FluxLit: a FastAPI app and its Streamlit UI behind one port.", "fluxlit"};
  app.require_subcommand(1);
  app.set_version_flag("--version", FLUXLIT_VERSION);

  int exit_status = 0;
  fluxlit::cli::add_serve_commands(app, exit_status);
  fluxlit::cli::add_version_command(app, exit_status);
  fluxlit::cli::add_shutdown_command(app, exit_status);
  fluxlit::cli::add_config_command(app, exit_status);
  fluxlit::cli::add_doctor_command(app, exit_status);
  fluxlit::cli::add_pages_command(app, exit_status);
  fluxlit::cli::add_new_command(app, exit_status);
  fluxlit::cli::add_build_command(app, exit_status);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& done) {
    return app.exit(done);
  } catch (const CLI::ParseError& error) {
    app.exit(error);
    suggest_names(app);
    return exit_usage;
  } catch (const fluxlit::config::config_error& error) {
    return report("configuration error", error, exit_usage);
  } catch (const fluxlit::asgi::startup_error& error) {
    return report("start-up failed", error, exit_startup_failed);
  } catch (const std::system_error& error) {
    return report("start-up failed", error, exit_startup_failed);
  }
  spdlog::shutdown();
  return exit_status;
}
