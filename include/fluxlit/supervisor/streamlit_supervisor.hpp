// Runs the Streamlit server as a child process and keeps track of whether it can take traffic.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fluxlit/supervisor/ui_upstream.hpp"

namespace fluxlit::supervisor {

struct streamlit_options {
  std::string python;         // interpreter that runs `-m streamlit`
  std::string entry_script;   // the FluxLit package's Streamlit entry script
  std::string base_url_path;  // passed as --server.baseUrlPath; empty for none
  std::string working_directory;
  // Added to (or replacing) the parent's environment for the child.
  std::vector<std::pair<std::string, std::string>> environment;
  std::chrono::milliseconds start_timeout{60000};
  std::chrono::milliseconds stop_timeout{5000};

  // Restart backoff: the first restart after a healthy run waits restart_initial_delay, and each
  // further crash doubles the wait up to restart_max_delay (raised to the initial delay when it
  // is smaller).
  std::chrono::milliseconds restart_initial_delay{500};
  std::chrono::milliseconds restart_max_delay{10000};
  // crash_loop_count crashes within crash_loop_window put the supervisor in a crash loop. A
  // crash is an unexpected exit, a kill after start_timeout, a listener owned by another
  // process, or a failed spawn on restart.
  std::size_t crash_loop_count = 5;
  std::chrono::milliseconds crash_loop_window{60000};
  // A child that stays ready this long counts as healthy again: the next crash waits
  // restart_initial_delay, and a crash loop ends.
  std::chrono::milliseconds stable_ready_duration{30000};

  // Once the child is ready, its health endpoint is polled every health_interval. After
  // health_failure_threshold failed checks in a row (an error status, no response, or no
  // response within health_timeout), the child is marked not ready and restarted like a crash.
  // health_timeout also bounds each check while the child starts.
  std::chrono::milliseconds health_interval{1000};
  std::chrono::milliseconds health_timeout{2000};
  std::size_t health_failure_threshold = 3;
};

// Starts `python -m streamlit run ...` on a free loopback port in its own process group, logs
// its output with source "streamlit", polls /_stcore/health until it returns 200, checks that
// the listener on the port belongs to the child, and restarts it with backoff when it exits.
// While the child is ready, the health endpoint is polled every health_interval, and a child
// that fails health_failure_threshold checks in a row is stopped and restarted like a crash.
// After crash_loop_count crashes within crash_loop_window it logs one error and keeps retrying
// every restart_max_delay. All members are called on the executor's thread only, and that
// executor must run its handlers one at a time (an io_context run by one thread, or a strand).
// Only state(), port(), pid() and ready() may also be called from other threads. Destroy the
// supervisor before its io_context.
//
// The child is reaped with waitpid on its own pid only, so other code in the process may spawn
// children too, but must not reap with waitpid(-1) or ignore SIGCHLD, which would take the
// child's exit status away from the supervisor.
class streamlit_supervisor final : public ui_upstream {
 public:
  streamlit_supervisor(boost::asio::any_io_executor executor, streamlit_options options);

  // Kills the child's process group and reaps the child like kill_now(), so no child outlives
  // the supervisor. Handlers of a pending async_stop are dropped without being called.
  ~streamlit_supervisor();

  streamlit_supervisor(const streamlit_supervisor&) = delete;
  streamlit_supervisor& operator=(const streamlit_supervisor&) = delete;

  // Picks a free port on 127.0.0.1 and spawns the child; health polling, output logging and
  // restarts then run on the executor. Does nothing unless the state is `stopped`. The first
  // start logs one warning for each Streamlit setting in a config.toml or STREAMLIT_* variable
  // that FluxLit's command-line flags override. Throws std::system_error when this spawn fails
  // (for example, `python` not found); a spawn that fails on a later restart is logged and
  // retried with backoff.
  void start();

  // Stops the running child like async_stop() and starts a new one at once, without backoff
  // and without counting a crash, for a reload after files changed. Between two runs it starts
  // the next child now, and when stopped it starts one. Ignored while a stop is in progress;
  // async_stop() and kill_now() cancel a pending restart. A failed spawn is logged and retried
  // with backoff, never thrown.
  void restart();

  // Sends SIGTERM to the child's process group, then SIGKILL after stop_timeout, and calls
  // `done` once the child has been reaped. Calls `done` at once when no child runs. `done` is
  // posted to the executor, never called inline. No restart follows until start() is called.
  void async_stop(std::function<void()> done);

  // Sends SIGKILL to the child's process group and reaps it, blocking; for a fast exit. The
  // state becomes `stopped`, and handlers of a pending async_stop are posted.
  void kill_now();

  // From now on a child that exits stays stopped instead of being restarted, and a pending
  // restart is cancelled. For a drain: the signal that started it (a whole process group
  // getting SIGTERM) may have reached the child as well, and a new child would only be stopped
  // again moments later.
  void hold_restarts();

  child_state state() const override;
  std::uint16_t port() const override;
  int pid() const;  // the running child's pid and process group id; -1 when none

  // Also true at the moment after an exit that the supervisor has not handled yet (state()
  // still `ready`). Leaves the exit status for the supervisor to collect.
  bool child_exited() const override;

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace fluxlit::supervisor
