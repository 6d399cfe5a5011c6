// Start-up of supervisor_core: spawning, output logging and health checks.
#include "supervisor/supervisor_core.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <utility>

#include "fluxlit/supervisor/streamlit_config.hpp"
#include "supervisor/port_owner.hpp"
#include "supervisor/streamlit_command.hpp"

namespace fluxlit::supervisor {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// Status 0 means the connection failed or no status line arrived within the check's timeout.
std::string describe_health_status(unsigned status) {
  return status == 0 ? std::string("no HTTP response") : "HTTP " + std::to_string(status);
}

}  // namespace

supervisor_core::supervisor_core(asio::any_io_executor executor, streamlit_options options)
    : executor_(executor),
      options_(std::move(options)),
      health_target_(detail::make_health_target(options_.base_url_path)),
      exit_descriptor_(executor),
      stdout_(executor),
      stderr_(executor),
      health_timer_(executor),
      start_deadline_timer_(executor),
      exit_poll_timer_(executor),
      drain_timer_(executor),
      stop_timer_(executor),
      restart_timer_(executor),
      stable_timer_(executor) {
  restart_delay_ = options_.restart_initial_delay;
  max_restart_delay_ = std::max(options_.restart_max_delay, options_.restart_initial_delay);
}

void supervisor_core::start() {
  if (phase_ != child_state::stopped) {
    supervisor_log()->debug("Streamlit supervisor start() ignored: state is {}", to_string(phase_));
    return;
  }
  log_config_conflicts();
  reset_crash_history();
  const error_code error = launch();
  if (error) {
    throw std::system_error(std::error_code(error.value(), std::system_category()),
                            "failed to start Streamlit with '" + options_.python + "'");
  }
}

void supervisor_core::log_config_conflicts() {
  if (config_checked_) {
    return;
  }
  config_checked_ = true;
  const streamlit_config_report report = check_streamlit_config(options_);
  for (const std::string& problem : report.problems) {
    supervisor_log()->warn("Cannot check Streamlit's configuration: {}", problem);
  }
  for (const streamlit_config_conflict& conflict : report.conflicts) {
    supervisor_log()->warn("{}", describe(conflict));
    if (conflict.key == "server.baseUrlPath" && options_.base_url_path.empty()) {
      pass_empty_base_url_path_ = true;
    }
  }
}

error_code supervisor_core::launch() {
  std::uint16_t port = 0;
  if (error_code error = detail::pick_free_loopback_port(executor_, port)) {
    return error;
  }

  detail::spawn_request request;
  request.program = options_.python;
  request.arguments = detail::make_streamlit_arguments(options_, port, pass_empty_base_url_path_);
  request.environment = detail::make_child_environment(options_);
  request.working_directory = options_.working_directory;
  request.terminate_with_parent = true;

  detail::spawned_child child;
  if (std::error_code spawn_error = detail::spawn_process(request, child)) {
    return {spawn_error.value(), boost::system::system_category()};
  }

  ++run_;
  set_pid(child.pid);
  port_ = port;
  kill_reason_ = kill_reason::none;
  last_health_status_ = 0;
  health_failures_ = 0;
  stable_timer_.cancel();
  output_tail_.clear();
  for (output_pipe* pipe : {&stdout_, &stderr_}) {
    pipe->levels = detail::level_classifier();
  }
  attach_descriptors(child);
  set_state(child_state::starting);
  supervisor_log()->info("Started Streamlit (pid {}, port {}): {}", pid_, port,
                         detail::join_arguments(request.arguments));

  read_output(stdout_, run_);
  read_output(stderr_, run_);
  wait_for_exit(run_);

  start_deadline_timer_.expires_after(options_.start_timeout);
  start_deadline_timer_.async_wait([self = shared_from_this(), run = run_](const error_code& e) {
    self->on_start_deadline(run, e);
  });
  schedule_health_check(run_);
  return {};
}

void supervisor_core::attach_descriptors(const detail::spawned_child& child) {
  error_code error;
  stdout_.descriptor.assign(child.stdout_fd, error);
  if (error) {
    // The child then gets EPIPE (or SIGPIPE) on output and exits, which leads to a restart.
    supervisor_log()->error("Cannot watch the stdout pipe of Streamlit (pid {}): {}", pid_,
                            error.message());
    ::close(child.stdout_fd);
  }
  stderr_.descriptor.assign(child.stderr_fd, error);
  if (error) {
    supervisor_log()->error("Cannot watch the stderr pipe of Streamlit (pid {}): {}", pid_,
                            error.message());
    ::close(child.stderr_fd);
  }

  const int pidfd = detail::open_pidfd(child.pid);
  if (pidfd < 0) {
    const int open_error = errno;
    supervisor_log()->debug(
        "pidfd_open failed for Streamlit (pid {}): {}; polling waitpid every "
        "{} ms instead",
        pid_, std::generic_category().message(open_error), exit_poll_interval.count());
    return;
  }
  exit_descriptor_.assign(pidfd, error);
  if (error) {
    supervisor_log()->debug("Cannot watch the pidfd of Streamlit (pid {}): {}; polling waitpid",
                            pid_, error.message());
    ::close(pidfd);
  }
}

void supervisor_core::set_state(child_state phase) {
  phase_ = phase;
  const bool waiting = phase == child_state::starting || phase == child_state::restarting;
  state_ = crash_loop_ && waiting ? child_state::crash_loop : phase;
}

void supervisor_core::set_pid(pid_t pid) {
  pid_ = pid;
  public_pid_ = pid;
}

void supervisor_core::read_output(output_pipe& pipe, std::uint64_t run) {
  if (!pipe.descriptor.is_open()) {
    return;
  }
  pipe.descriptor.async_read_some(
      asio::buffer(pipe.buffer),
      [self = shared_from_this(), &pipe, run](const error_code& error, std::size_t bytes) {
        self->on_output(pipe, run, error, bytes);
      });
}

void supervisor_core::on_output(output_pipe& pipe, std::uint64_t run, const error_code& error,
                                std::size_t bytes) {
  if (run != run_ || error == asio::error::operation_aborted) {
    return;
  }

  std::vector<std::string> lines;
  if (bytes > 0) {
    pipe.splitter.feed(std::string_view(pipe.buffer.data(), bytes), lines);
  }
  if (error) {
    // End of file, or a read error that ends this pipe the same way.
    pipe.splitter.finish(lines);
  }
  for (std::string& line : lines) {
    log_output_line(pipe, std::move(line));
  }

  if (!error) {
    read_output(pipe, run);
    return;
  }

  close_output(pipe);
  if (exit_pending_ && !stdout_.descriptor.is_open() && !stderr_.descriptor.is_open()) {
    drain_timer_.cancel();
    finish_exit();
  }
}

void supervisor_core::close_output(output_pipe& pipe) {
  // A close error leaves nothing to clean up: the descriptor is released either way.
  error_code ignored;
  pipe.descriptor.close(ignored);
}

void supervisor_core::log_output_line(output_pipe& pipe, std::string line) {
  // Streamlit frames its start-up banner with blank lines, which carry nothing for a log.
  if (line.find_first_not_of(" \t") == std::string::npos) {
    return;
  }
  observability::logger("streamlit")->log(pipe.levels.classify(line), "{}", line);

  output_tail_.push_back(std::move(line));
  if (output_tail_.size() > output_tail_lines) {
    output_tail_.pop_front();
  }
}

std::string supervisor_core::format_output_tail() const {
  std::string tail;
  for (const std::string& line : output_tail_) {
    tail += "\n  ";
    tail += line;
  }
  return tail.empty() ? std::string(" (none)") : tail;
}

void supervisor_core::schedule_health_check(std::uint64_t run) {
  health_timer_.expires_after(phase_ == child_state::ready ? options_.health_interval
                                                           : health_poll_interval);
  health_timer_.async_wait([self = shared_from_this(), run](const error_code& error) {
    self->on_health_timer(run, error);
  });
}

void supervisor_core::on_health_timer(std::uint64_t run, const error_code& error) {
  const bool polling = phase_ == child_state::starting || phase_ == child_state::ready;
  if (error || run != run_ || !polling) {
    return;
  }
  probe_ = std::make_shared<detail::health_probe>(executor_, port_.load(), health_target_,
                                                  options_.health_timeout);
  probe_->start(
      [self = shared_from_this(), run](unsigned status) { self->on_health_result(run, status); });
}

void supervisor_core::on_health_result(std::uint64_t run, unsigned status) {
  if (run == run_ && phase_ == child_state::ready) {
    on_ready_health_result(run, status);
    return;
  }
  if (run != run_ || phase_ != child_state::starting) {
    return;
  }
  probe_.reset();
  last_health_status_ = status;
  if (status != 200) {
    schedule_health_check(run);
    return;
  }

  start_deadline_timer_.cancel();
  if (!verify_listener()) {
    return;
  }
  set_state(child_state::ready);
  supervisor_log()->info("Streamlit is ready on 127.0.0.1:{} (pid {})", port_.load(), pid_);

  stable_timer_.expires_after(options_.stable_ready_duration);
  stable_timer_.async_wait([self = shared_from_this(), run](const error_code& error) {
    self->on_stable_timer(run, error);
  });
  schedule_health_check(run);
}

void supervisor_core::on_ready_health_result(std::uint64_t run, unsigned status) {
  probe_.reset();
  if (status == 200) {
    health_failures_ = 0;
    schedule_health_check(run);
    return;
  }

  ++health_failures_;
  last_health_status_ = status;
  if (health_failures_ < options_.health_failure_threshold) {
    supervisor_log()->debug("Streamlit (pid {}) failed health check {} of {} on {}: {}", pid_,
                            health_failures_, options_.health_failure_threshold, health_target_,
                            describe_health_status(status));
    schedule_health_check(run);
    return;
  }
  stop_unresponsive_child();
}

void supervisor_core::stop_unresponsive_child() {
  supervisor_log()->error(
      "Streamlit (pid {}) failed {} health checks in a row on {} (last result: {}, with a "
      "timeout of {} ms per check); marking it not ready and restarting it: SIGTERM to its "
      "process group",
      pid_, health_failures_, health_target_, describe_health_status(last_health_status_),
      options_.health_timeout.count());

  // The exit handler counts this as a crash and restarts the child with backoff. The state
  // leaves `ready` now, so UI requests get 503 instead of waiting on the hung child.
  kill_reason_ = kill_reason::unresponsive;
  stable_timer_.cancel();
  set_state(child_state::restarting);
  detail::signal_process_group(pid_, SIGTERM);
  // A stopped process (SIGSTOP, a debugger) acts on SIGTERM only after it continues.
  detail::signal_process_group(pid_, SIGCONT);
  stop_timer_.expires_after(options_.stop_timeout);
  stop_timer_.async_wait([self = shared_from_this(), run = run_](const error_code& error) {
    self->on_stop_timeout(run, error);
  });
}

bool supervisor_core::verify_listener() {
  // Another process may bind the port between pick_free_loopback_port() and the child's bind.
  // The child then fails to listen, yet the health check reaches the other process.
  const std::uint16_t port = port_.load();
  switch (detail::find_listener_owner(port, pid_)) {
    case detail::listener_owner::process_group:
      return true;
    case detail::listener_owner::unknown:
      supervisor_log()->debug(
          "Cannot tell from /proc which process listens on 127.0.0.1:{}; taking Streamlit (pid "
          "{}) as its owner",
          port, pid_);
      return true;
    case detail::listener_owner::other_process:
      break;
  }
  supervisor_log()->error(
      "The listener on 127.0.0.1:{} answered Streamlit's health check, but it belongs to a "
      "process outside the process group of Streamlit (pid {}); killing Streamlit to restart it "
      "on another port",
      port, pid_);
  kill_starting_child(kill_reason::foreign_listener);
  return false;
}

void supervisor_core::on_start_deadline(std::uint64_t run, const error_code& error) {
  if (error || run != run_ || phase_ != child_state::starting || pid_ < 0) {
    return;
  }
  supervisor_log()->error(
      "Streamlit (pid {}) did not answer 200 on {} within {} ms (last result: {}); killing its "
      "process group",
      pid_, health_target_, options_.start_timeout.count(),
      describe_health_status(last_health_status_));
  kill_starting_child(kill_reason::start_timeout);
}

void supervisor_core::kill_starting_child(kill_reason reason) {
  // The exit handler counts the kill as a crash and restarts the child with backoff, on a new
  // port chosen by launch().
  kill_reason_ = reason;
  cancel_start_checks();
  detail::signal_process_group(pid_, SIGKILL);
}

void supervisor_core::on_stable_timer(std::uint64_t run, const error_code& error) {
  if (error || run != run_ || phase_ != child_state::ready) {
    return;
  }
  const bool was_crash_loop = crash_loop_;
  reset_crash_history();
  if (was_crash_loop) {
    set_state(phase_);
    supervisor_log()->info("Streamlit (pid {}) stayed ready for {} ms; the crash loop is over",
                           pid_, options_.stable_ready_duration.count());
  }
}

void supervisor_core::cancel_start_checks() {
  health_timer_.cancel();
  start_deadline_timer_.cancel();
  if (probe_) {
    probe_->cancel();
    probe_.reset();
  }
}

}  // namespace fluxlit::supervisor
