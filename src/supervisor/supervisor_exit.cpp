// Exit detection, restarts and stopping for supervisor_core.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <utility>

#include "supervisor/supervisor_core.hpp"

namespace fluxlit::supervisor {

namespace asio = boost::asio;
using boost::system::error_code;

void supervisor_core::wait_for_exit(std::uint64_t run) {
  auto handler = [self = shared_from_this(), run](const error_code& error) {
    self->on_exit_event(run, error);
  };
  if (exit_descriptor_.is_open()) {
    exit_descriptor_.async_wait(asio::posix::stream_descriptor::wait_read, std::move(handler));
    return;
  }
  exit_poll_timer_.expires_after(exit_poll_interval);
  exit_poll_timer_.async_wait(std::move(handler));
}

void supervisor_core::on_exit_event(std::uint64_t run, const error_code& error) {
  if (error == asio::error::operation_aborted || run != run_ || pid_ < 0) {
    return;
  }

  // Look without reaping first: while the exited leader is an unreaped zombie its pid cannot be
  // reused, so signalling its process group cannot reach an unrelated process.
  siginfo_t info{};
  const int peek_result = ::waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT);
  if (peek_result == 0 && info.si_pid == 0) {
    wait_for_exit(run);  // still running: a poll tick, or a spurious wake-up
    return;
  }

  // Kill what the child left behind in its group (workers, a shell's children) so nothing keeps
  // running, or keeps the output pipes open, after the leader is gone. When other code has
  // already reaped the leader (peek_result < 0), its pid may be reused, so nothing is signalled.
  if (peek_result == 0) {
    detail::signal_process_group(pid_, SIGKILL);
  }

  int status = 0;
  pid_t reaped = -1;
  do {
    reaped = ::waitpid(pid_, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  exit_description_ = reaped == pid_ ? detail::describe_wait_status(status)
                                     : std::string("an unknown status (reaped by other code)");

  exited_pid_ = pid_;
  set_pid(-1);
  exit_pending_ = true;
  cancel_start_checks();
  stop_timer_.cancel();
  error_code ignored;
  exit_descriptor_.close(ignored);

  if (!stdout_.descriptor.is_open() && !stderr_.descriptor.is_open()) {
    finish_exit();
    return;
  }
  drain_timer_.expires_after(output_drain_timeout);
  drain_timer_.async_wait(
      [self = shared_from_this(), run](const error_code& e) { self->on_drain_timeout(run, e); });
}

void supervisor_core::on_drain_timeout(std::uint64_t run, const error_code& error) {
  if (error || run != run_ || !exit_pending_) {
    return;
  }
  supervisor_log()->warn(
      "Output pipes of Streamlit (pid {}) stayed open {} ms after it exited; closing them",
      exited_pid_, output_drain_timeout.count());
  for (output_pipe* pipe : {&stdout_, &stderr_}) {
    std::vector<std::string> lines;
    pipe->splitter.finish(lines);
    for (std::string& line : lines) {
      log_output_line(*pipe, std::move(line));
    }
    close_output(*pipe);
  }
  finish_exit();
}

void supervisor_core::finish_exit() {
  exit_pending_ = false;

  if (phase_ == child_state::stopping) {
    stop_timer_.cancel();
    if (restart_requested_) {
      restart_requested_ = false;
      supervisor_log()->info("Streamlit (pid {}) stopped with {}; starting it again", exited_pid_,
                             exit_description_);
      relaunch();
      return;
    }
    set_state(child_state::stopped);
    supervisor_log()->info("Streamlit (pid {}) stopped with {}", exited_pid_, exit_description_);
    post_stop_handlers();
    return;
  }

  if (restarts_held_) {
    set_state(child_state::stopped);
    supervisor_log()->info("Streamlit (pid {}) exited with {} during shutdown; not restarting it",
                           exited_pid_, exit_description_);
    post_stop_handlers();
    return;
  }
  const bool entered_crash_loop = record_crash();
  const std::chrono::milliseconds delay = take_restart_delay();
  log_unexpected_exit(delay, entered_crash_loop);
  set_state(child_state::restarting);
  arm_restart_timer(delay);
}

void supervisor_core::log_unexpected_exit(std::chrono::milliseconds restart_delay,
                                          bool entered_crash_loop) {
  const char* what = "exited unexpectedly with";
  if (kill_reason_ == kill_reason::start_timeout) {
    what = "was killed after the start timeout with";
  } else if (kill_reason_ == kill_reason::foreign_listener) {
    what = "was killed because another process listens on its port, with";
  } else if (kill_reason_ == kill_reason::unresponsive) {
    what = "was stopped after failing its health checks, with";
  }

  if (entered_crash_loop) {
    supervisor_log()->error(
        "Streamlit (pid {}) {} {}. After {} crashes within {} ms, Streamlit is in a crash "
        "loop: FluxLit restarts it every {} ms until it stays ready for {} ms. Last {} output "
        "lines:{}",
        exited_pid_, what, exit_description_, crash_times_.size(),
        options_.crash_loop_window.count(), restart_delay.count(),
        options_.stable_ready_duration.count(), output_tail_.size(), format_output_tail());
    return;
  }
  if (crash_loop_) {
    // The error that started the crash loop showed the output, and repeating it every
    // restart would flood the log.
    supervisor_log()->info("Streamlit (pid {}) {} {} in a crash loop; restarting in {} ms",
                           exited_pid_, what, exit_description_, restart_delay.count());
    return;
  }
  supervisor_log()->warn("Streamlit (pid {}) {} {}; restarting in {} ms. Last {} output lines:{}",
                         exited_pid_, what, exit_description_, restart_delay.count(),
                         output_tail_.size(), format_output_tail());
}

bool supervisor_core::record_crash() {
  const auto now = std::chrono::steady_clock::now();
  crash_times_.push_back(now);
  while (now - crash_times_.front() > options_.crash_loop_window ||
         crash_times_.size() > options_.crash_loop_count) {
    crash_times_.pop_front();
  }
  if (crash_loop_ || crash_times_.size() < options_.crash_loop_count) {
    return false;
  }
  crash_loop_ = true;
  return true;
}

void supervisor_core::reset_crash_history() {
  crash_times_.clear();
  crash_loop_ = false;
  restart_delay_ = options_.restart_initial_delay;
}

std::chrono::milliseconds supervisor_core::take_restart_delay() {
  if (crash_loop_) {
    restart_delay_ = max_restart_delay_;
    return max_restart_delay_;
  }
  const std::chrono::milliseconds delay = restart_delay_;
  restart_delay_ = std::min(restart_delay_ * 2, max_restart_delay_);
  return delay;
}

void supervisor_core::arm_restart_timer(std::chrono::milliseconds delay) {
  restart_timer_.expires_after(delay);
  restart_timer_.async_wait(
      [self = shared_from_this()](const error_code& error) { self->on_restart_timer(error); });
}

void supervisor_core::hold_restarts() {
  restarts_held_ = true;
  if (phase_ == child_state::restarting) {
    restart_timer_.cancel();
    set_state(child_state::stopped);
  }
}

void supervisor_core::on_restart_timer(const error_code& error) {
  if (error || phase_ != child_state::restarting) {
    return;
  }
  if (error_code launch_error = launch()) {
    on_launch_failed(launch_error);
  }
}

void supervisor_core::relaunch() {
  reset_crash_history();
  if (error_code launch_error = launch()) {
    on_launch_failed(launch_error);
  }
}

void supervisor_core::on_launch_failed(const error_code& launch_error) {
  const bool entered_crash_loop = record_crash();
  const std::chrono::milliseconds delay = take_restart_delay();
  if (entered_crash_loop) {
    supervisor_log()->error(
        "Failed to restart Streamlit with '{}': {}. After {} crashes within {} ms, Streamlit is "
        "in a crash loop: FluxLit retries every {} ms",
        options_.python, launch_error.message(), crash_times_.size(),
        options_.crash_loop_window.count(), delay.count());
  } else if (crash_loop_) {
    supervisor_log()->info("Failed to restart Streamlit with '{}' in a crash loop: {}; retrying in "
                           "{} ms",
                           options_.python, launch_error.message(), delay.count());
  } else {
    supervisor_log()->error("Failed to restart Streamlit with '{}': {}; retrying in {} ms",
                            options_.python, launch_error.message(), delay.count());
  }
  set_state(child_state::restarting);
  arm_restart_timer(delay);
}

void supervisor_core::restart() {
  switch (phase_) {
    case child_state::stopped:
      log_config_conflicts();
      relaunch();
      return;
    case child_state::restarting:
      if (pid_ >= 0 || exit_pending_) {
        // A child that failed its health checks is still exiting, so the new one starts only
        // after that exit, as for a reload.
        restart_requested_ = true;
        begin_stop("Restarting");
        return;
      }
      // Between runs: skip the rest of the backoff.
      restart_timer_.cancel();
      supervisor_log()->info("Restarting Streamlit now instead of after the backoff delay");
      relaunch();
      return;
    case child_state::starting:
    case child_state::ready:
      restart_requested_ = true;
      begin_stop("Restarting");
      return;
    case child_state::stopping:
    case child_state::crash_loop:
      break;
  }
  supervisor_log()->debug("Streamlit restart ignored: a stop is in progress");
}

void supervisor_core::async_stop(std::function<void()> done) {
  if (phase_ == child_state::stopped) {
    if (done) {
      asio::post(executor_, std::move(done));
    }
    return;
  }
  if (done) {
    stop_handlers_.push_back(std::move(done));
  }
  restart_requested_ = false;
  if (phase_ == child_state::stopping) {
    return;
  }
  begin_stop("Stopping");
}

void supervisor_core::begin_stop(const char* action) {
  set_state(child_state::stopping);
  restart_timer_.cancel();
  stable_timer_.cancel();
  cancel_start_checks();

  if (pid_ < 0) {
    // Between runs there is nothing to signal. While a reaped child's output drains,
    // finish_exit() completes the stop.
    if (!exit_pending_) {
      set_state(child_state::stopped);
      supervisor_log()->info("Streamlit supervisor stopped between restarts");
      post_stop_handlers();
    }
    return;
  }

  supervisor_log()->info("{} Streamlit (pid {}): SIGTERM to its process group", action, pid_);
  detail::signal_process_group(pid_, SIGTERM);
  stop_timer_.expires_after(options_.stop_timeout);
  stop_timer_.async_wait([self = shared_from_this(), run = run_](const error_code& error) {
    self->on_stop_timeout(run, error);
  });
}

void supervisor_core::on_stop_timeout(std::uint64_t run, const error_code& error) {
  const bool stopping_unresponsive =
      phase_ == child_state::restarting && kill_reason_ == kill_reason::unresponsive;
  if (error || run != run_ || pid_ < 0 ||
      (phase_ != child_state::stopping && !stopping_unresponsive)) {
    return;
  }
  supervisor_log()->warn(
      "Streamlit (pid {}) did not exit within {} ms of SIGTERM; sending SIGKILL to its process "
      "group",
      pid_, options_.stop_timeout.count());
  detail::signal_process_group(pid_, SIGKILL);
}

void supervisor_core::kill_now(bool call_stop_handlers) {
  // A new run number turns every pending handler into a no-op.
  ++run_;
  restart_requested_ = false;
  restart_timer_.cancel();
  stable_timer_.cancel();
  stop_timer_.cancel();
  drain_timer_.cancel();
  exit_poll_timer_.cancel();
  cancel_start_checks();

  if (pid_ > 0) {
    // The group is signalled before the leader is reaped, while its pid cannot be reused.
    detail::signal_process_group(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    supervisor_log()->info("Killed Streamlit (pid {}) and its process group", pid_);
    set_pid(-1);
  }

  error_code ignored;
  exit_descriptor_.close(ignored);
  close_output(stdout_);
  close_output(stderr_);
  exit_pending_ = false;
  set_state(child_state::stopped);

  if (call_stop_handlers) {
    post_stop_handlers();
  } else {
    stop_handlers_.clear();
  }
}

void supervisor_core::post_stop_handlers() {
  std::vector<std::function<void()>> handlers = std::move(stop_handlers_);
  stop_handlers_.clear();
  for (std::function<void()>& handler : handlers) {
    asio::post(executor_, std::move(handler));
  }
}

}  // namespace fluxlit::supervisor
