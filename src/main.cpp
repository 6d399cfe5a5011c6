// The fluxlit binary: one command-line front end for every subcommand.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <exception>
#include <set>
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

// Returns a command's name as typed on the command line: "fluxlit run".
std::string command_path(const CLI::App& command) {
  std::string path = command.get_name();
  for (const auto* parent = command.get_parent(); parent != nullptr;
       parent = parent->get_parent()) {
    path = parent->get_name() + " " + path;
  }
  return path;
}

// After a parse error, names the option or command that each unexpected argument was probably
// meant to be: "--prot" gets "did you mean --port?". An option may belong to a later command of
// the line, as `--port` given before `run` does.
void suggest_names(const CLI::App& app) {
  std::vector<const CLI::App*> chain{&app};
  while (!chain.back()->get_subcommands().empty()) {
    chain.push_back(chain.back()->get_subcommands().back());
  }
  // The options of every command on the line, the last command's first, and their owners.
  std::vector<std::string> options;
  std::vector<const CLI::App*> owners;
  for (auto command = chain.rbegin(); command != chain.rend(); ++command) {
    for (const auto* option : (*command)->get_options()) {
      for (const auto& name : option->get_lnames()) {
        options.push_back("--" + name);
        owners.push_back(*command);
      }
    }
  }
  std::set<std::string> suggested;
  for (const auto* command : chain) {
    std::vector<std::string> commands;
    for (const auto* sub : command->get_subcommands([](const CLI::App*) { return true; })) {
      commands.push_back(sub->get_name());
    }
    for (const auto& given : command->remaining()) {
      const auto typed = given.substr(0, given.find('='));
      const bool option = typed.starts_with("--");
      if (!option && typed.starts_with('-')) continue;  // short flags are too short to guess
      if (!suggested.insert(typed).second) continue;
      const auto name = fluxlit::cli::closest_name(typed, option ? options : commands);
      if (!name) continue;
      const auto where = command_path(*command);
      if (!option) {
        std::fprintf(stderr, "fluxlit: %s is not a command of '%s'; did you mean %s?\n",
                     typed.c_str(), where.c_str(), name->c_str());
        continue;
      }
      const auto* owner = owners[static_cast<std::size_t>(
          std::find(options.begin(), options.end(), *name) - options.begin())];
      if (owner == command) {
        std::fprintf(stderr, "fluxlit: %s is not an option of '%s'; did you mean %s?\n",
                     typed.c_str(), where.c_str(), name->c_str());
      } else {
        std::fprintf(stderr,
                     "fluxlit: %s is not an option of '%s'; %s is an option of '%s', and goes "
                     "after '%s'\n",
                     typed.c_str(), where.c_str(), name->c_str(), command_path(*owner).c_str(),
                     owner->get_name().c_str());
      }
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
