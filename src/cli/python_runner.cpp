#include "cli/python_runner.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "fluxlit/asgi/bridge.hpp"
#include "supervisor/child_process.hpp"

extern char** environ;

namespace fluxlit::cli {

namespace {

using clock = std::chrono::steady_clock;

// Bytes stored of each output stream. A manifest or an error report is far smaller. Output
// beyond this is read and dropped, so that the child never blocks on a full pipe.
constexpr std::size_t max_stored_output_bytes = 16 * 1024 * 1024;

// Reads what is available on `fd` into `stored`. Returns false at end of file or on an error.
bool drain(int fd, std::string& stored) {
  std::array<char, 16384> chunk;
  const ssize_t count = ::read(fd, chunk.data(), chunk.size());
  if (count < 0 && (errno == EINTR || errno == EAGAIN)) {
    return true;
  }
  if (count <= 0) {
    return false;
  }
  const std::size_t room =
      max_stored_output_bytes - std::min(stored.size(), max_stored_output_bytes);
  stored.append(chunk.data(), std::min(room, static_cast<std::size_t>(count)));
  return true;
}

// Collects stdout and stderr until both close or the deadline passes. Returns false on timeout.
bool collect_output(const supervisor::detail::spawned_child& child, clock::time_point deadline,
                    python_run& run) {
  std::array<pollfd, 2> fds{pollfd{child.stdout_fd, POLLIN, 0}, pollfd{child.stderr_fd, POLLIN, 0}};
  std::array<std::string*, 2> targets{&run.output, &run.errors};
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (left.count() <= 0) {
      return false;
    }
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) {
      return false;
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd >= 0 && fds[i].revents != 0 && !drain(fds[i].fd, *targets[i])) {
        fds[i].fd = -1;  // poll() skips negative descriptors
      }
    }
  }
  return true;
}

int wait_for_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string describe_run(const python_run& run) {
  if (run.timed_out) {
    return "it did not finish in time and was killed";
  }
  std::string text = "it exited with status " + std::to_string(run.exit_status);
  const std::string tail = last_lines(run.errors, 5);
  if (!tail.empty()) {
    text += ". Its last lines on stderr:\n" + tail;
  }
  return text;
}

}  // namespace

python_run run_python(const std::string& python, const std::vector<std::string>& arguments,
                      const std::string& working_directory, std::chrono::milliseconds timeout) {
  const std::string python_path = asgi::child_python_path();
  supervisor::detail::spawn_request request;
  request.program = python;
  request.arguments = {python};
  request.arguments.insert(request.arguments.end(), arguments.begin(), arguments.end());
  request.environment =
      supervisor::detail::merge_environment(environ, {{"PYTHONPATH", python_path}});
  request.working_directory = working_directory;

  supervisor::detail::spawned_child child;
  if (const std::error_code error = supervisor::detail::spawn_process(request, child)) {
    throw asgi::startup_error("cannot run the Python interpreter " + python + ": " +
                              error.message() +
                              ". Pass --python (or set FLUXLIT_PYTHON) to an existing python3");
  }
  python_run run;
  run.timed_out = !collect_output(child, clock::now() + timeout, run);
  if (run.timed_out) {
    supervisor::detail::signal_process_group(child.pid, SIGKILL);
  }
  ::close(child.stdout_fd);
  ::close(child.stderr_fd);
  run.exit_status = wait_for_exit(child.pid);
  return run;
}

manifest_module_result run_manifest_module(const std::string& python, const std::string& command,
                                           const std::string& target,
                                           const std::string& app_directory,
                                           const std::vector<std::string>& extra,
                                           std::chrono::milliseconds timeout) {
  std::vector<std::string> arguments{"-m", "fluxlit._manifest", command, target, app_directory};
  arguments.insert(arguments.end(), extra.begin(), extra.end());
  const python_run run = run_python(python, arguments, app_directory, timeout);
  if (!run.timed_out && (run.exit_status == 0 || run.exit_status == 1)) {
    nlohmann::ordered_json document = nlohmann::ordered_json::parse(run.output, nullptr, false);
    if (document.is_object()) {
      return {std::move(document), run.errors};
    }
  }
  throw asgi::startup_error("loading the target " + target + " with " + python +
                            " failed: " + describe_run(run));
}

std::string load_error_message(const nlohmann::ordered_json& error, bool with_traceback) {
  std::string text = error.value("message", "the app could not be loaded");
  const auto traceback = error.find("traceback");
  if (with_traceback && traceback != error.end() && traceback->is_string()) {
    text += "\n" + traceback->get<std::string>();
  }
  return text;
}

std::string last_lines(const std::string& text, std::size_t count) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      end = text.size();
    }
    if (end > start) {
      lines.push_back(text.substr(start, end - start));
    }
    start = end + 1;
  }
  std::string joined;
  const std::size_t first = lines.size() > count ? lines.size() - count : 0;
  for (std::size_t i = first; i < lines.size(); ++i) {
    joined += (joined.empty() ? "" : "\n") + lines[i];
  }
  return joined;
}

}  // namespace fluxlit::cli
