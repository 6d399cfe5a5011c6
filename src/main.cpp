// The fluxlit binary: one command-line front end for every subcommand.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <exception>
#include <system_error>

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
