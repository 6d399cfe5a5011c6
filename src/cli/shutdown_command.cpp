// `fluxlit shutdown`: stops a server through its pid file.
#include <signal.h>
#include <string.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli/command_support.hpp"
#include "cli/commands.hpp"
#include "cli/pidfile.hpp"
#include "supervisor/process_table.hpp"

namespace fluxlit::cli {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int exit_stopped = 0;
constexpr int exit_still_running = 1;
constexpr int exit_no_server = 2;

constexpr const char* default_pid_file = "fluxlit.pid";

// The server drains for shutdown_grace_ms (20 s by default) and then gives Streamlit
// streamlit_stop_timeout_ms (5 s) to exit, so the default wait covers a default shutdown.
constexpr std::uint64_t default_timeout_ms = 30'000;

// How often the command checks whether the server has exited.
constexpr std::chrono::milliseconds exit_poll_interval = 50ms;

// The kernel ends a process within milliseconds of SIGKILL unless it waits in an uninterruptible
// call (a hung network file system), so this only bounds that case.
constexpr std::chrono::milliseconds kill_wait = 5s;

struct shutdown_request {
  std::string pid_file;
  bool wait = false;
  bool force = false;
  std::uint64_t timeout_ms = default_timeout_ms;
};

// Returns --pidfile, else the `pidfile` setting from FLUXLIT_PIDFILE or the configuration file
// in the working directory, else fluxlit.pid.
std::string resolve_pid_file(const std::string& given) {
  if (!given.empty()) {
    return given;
  }
  try {
    const config::loaded_settings loaded =
        config::load({}, fluxlit_environment(), fs::current_path().string());
    if (!loaded.values.pidfile.empty()) {
      return loaded.values.pidfile;
    }
  } catch (const config::config_error& error) {
    // A broken setting elsewhere must not prevent stopping the server.
    std::fprintf(stderr, "fluxlit shutdown: ignoring the configuration: %s\n", error.what());
    if (const char* variable = std::getenv("FLUXLIT_PIDFILE"); variable && *variable) {
      return variable;
    }
  }
  return default_pid_file;
}

// Polls until `pid` is no longer a running fluxlit process or `timeout` passes. Returns true
// when it has exited.
bool wait_for_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (is_running_fluxlit(pid)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(exit_poll_interval);
  }
  return true;
}

// Returns the children of `pid` that lead process groups of their own, as the Streamlit child
// does. SIGKILL to the server would leave them running.
std::vector<pid_t> find_child_group_leaders(pid_t pid) {
  std::vector<pid_t> leaders;
  for (const pid_t candidate : supervisor::detail::list_processes()) {
    const auto status = supervisor::detail::read_process_status(candidate);
    if (status && status->parent == pid && status->process_group == candidate) {
      leaders.push_back(candidate);
    }
  }
  return leaders;
}

// Kills the server and the process groups of its children.
void kill_server(pid_t pid) {
  // A stopped server cannot reap its children, so their process and group ids stay reserved
  // until the server dies. No unrelated process can be signalled by mistake.
  ::kill(pid, SIGSTOP);
  for (const pid_t leader : find_child_group_leaders(pid)) {
    std::printf("sending SIGKILL to process group %d (child of fluxlit)\n", leader);
    ::kill(-leader, SIGKILL);
  }
  ::kill(pid, SIGKILL);
}

int run_shutdown(const shutdown_request& request) {
  const std::string path = resolve_pid_file(request.pid_file);
  std::error_code read_error;
  const std::optional<pid_t> pid = read_pid_file(path, read_error);
  if (!pid) {
    if (read_error == std::errc::no_such_file_or_directory) {
      std::fprintf(stderr,
                   "fluxlit shutdown: no pid file at %s. Start the server with --pidfile, or "
                   "pass the file it uses with --pidfile\n",
                   path.c_str());
    } else {
      std::fprintf(stderr, "fluxlit shutdown: cannot read the pid file %s: %s\n", path.c_str(),
                   read_error.message().c_str());
    }
    return exit_no_server;
  }
  if (!is_running_fluxlit(*pid)) {
    std::fprintf(stderr,
                 "fluxlit shutdown: the pid file %s names process %d, which is not a running "
                 "fluxlit process; the file is stale\n",
                 path.c_str(), *pid);
    return exit_no_server;
  }

  if (::kill(*pid, SIGTERM) != 0) {
    const int error = errno;
    if (error == ESRCH) {
      std::printf("fluxlit (pid %d) stopped\n", *pid);
      return exit_stopped;
    }
    std::fprintf(stderr, "fluxlit shutdown: cannot send SIGTERM to process %d: %s\n", *pid,
                 ::strerror(error));
    return exit_still_running;
  }
  std::printf("sent SIGTERM to fluxlit (pid %d)\n", *pid);
  std::fflush(stdout);
  if (!request.wait && !request.force) {
    return exit_stopped;
  }

  const std::chrono::milliseconds timeout(request.timeout_ms);
  if (wait_for_exit(*pid, timeout)) {
    std::printf("fluxlit (pid %d) stopped\n", *pid);
    return exit_stopped;
  }
  if (!request.force) {
    std::fprintf(stderr, "fluxlit shutdown: fluxlit (pid %d) is still running after %llu ms\n",
                 *pid, static_cast<unsigned long long>(request.timeout_ms));
    return exit_still_running;
  }

  std::printf("fluxlit (pid %d) is still running after %llu ms; sending SIGKILL\n", *pid,
              static_cast<unsigned long long>(request.timeout_ms));
  kill_server(*pid);
  if (wait_for_exit(*pid, kill_wait)) {
    std::printf("fluxlit (pid %d) killed\n", *pid);
    return exit_stopped;
  }
  std::fprintf(stderr, "fluxlit shutdown: fluxlit (pid %d) is still running after SIGKILL\n",
               *pid);
  return exit_still_running;
}

}  // namespace

void add_shutdown_command(CLI::App& app, int& exit_status) {
  auto* command = app.add_subcommand(
      "shutdown", "Stop a server started with --pidfile: send it SIGTERM, which drains it as Ctrl-C does.");
  auto request = std::make_shared<shutdown_request>();
  command
      ->add_option("--pidfile", request->pid_file,
                   "Pid file of the server. Default: the pidfile setting (FLUXLIT_PIDFILE or the "
                   "configuration file), else fluxlit.pid in the working directory")
      ->type_name("PATH");
  command->add_flag("--wait", request->wait, "Wait until the server has exited");
  command
      ->add_option("--timeout-ms", request->timeout_ms,
                   "How long --wait and --force wait for the server to exit. Unit: milliseconds. "
                   "Default: 30000")
      ->type_name("MS")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{24} * 60 * 60 * 1000));
  command->add_flag("--force", request->force,
                    "If the server is still running after --timeout-ms, send SIGKILL to it and to "
                    "its Streamlit child's process group");
  command->footer(
      "Exit status: 0 when the server stopped (or, without --wait and --force, when SIGTERM was "
      "sent); 1 when it is still running after the timeout, or cannot be signalled; 2 when the "
      "pid file is missing or unreadable, or names no running fluxlit process.");
  command->callback([request, &exit_status] { exit_status = run_shutdown(*request); });
}

}  // namespace fluxlit::cli
