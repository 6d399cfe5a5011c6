// The state machine behind streamlit_supervisor, shared by the files that implement it.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fluxlit/observability/log.hpp"
#include "fluxlit/supervisor/streamlit_supervisor.hpp"
#include "supervisor/child_process.hpp"
#include "supervisor/health_probe.hpp"
#include "supervisor/output_lines.hpp"

namespace fluxlit::supervisor {

// `ready` follows within one interval of the health endpoint returning 200, at the cost of one
// loopback request per interval while the child starts. Once it is ready,
// streamlit_options::health_interval applies instead.
inline constexpr std::chrono::milliseconds health_poll_interval{100};

// Used only when pidfd_open is unavailable (kernels before 5.3, or a seccomp filter that
// rejects it): the supervisor then polls waitpid at this interval.
inline constexpr std::chrono::milliseconds exit_poll_interval{100};

// After the child exits (and its group is killed), the pipes reach end of file almost at once.
// This bounds the wait for the final output in case a process outside the group keeps a pipe
// open.
inline constexpr std::chrono::milliseconds output_drain_timeout{500};

// Lines of recent output repeated in the log message about an unexpected exit.
inline constexpr std::size_t output_tail_lines = 20;

// Longer lines are cut, so a child writing without newlines cannot grow memory.
inline constexpr std::size_t max_output_line_bytes = 8192;

inline constexpr std::size_t output_read_bytes = 4096;

inline std::shared_ptr<spdlog::logger> supervisor_log() {
  return observability::logger("fluxlit");
}

// The state machine behind streamlit_supervisor. Every pending operation keeps a shared_ptr to
// it, so it outlives the public object until those operations complete. Handlers carry the run
// number of the child they were started for and do nothing when a newer run (or kill_now) has
// begun since.
class supervisor_core : public std::enable_shared_from_this<supervisor_core> {
 public:
  supervisor_core(boost::asio::any_io_executor executor, streamlit_options options);

  void start();
  void restart();
  void async_stop(std::function<void()> done);
  void kill_now(bool call_stop_handlers);
  void hold_restarts();

  child_state state() const { return state_.load(); }
  std::uint16_t port() const { return port_.load(); }
  int pid() const { return public_pid_.load(); }

 private:
  struct output_pipe {
    explicit output_pipe(const boost::asio::any_io_executor& executor)
        : descriptor(executor), splitter(max_output_line_bytes) {}

    boost::asio::posix::stream_descriptor descriptor;
    detail::line_splitter splitter;
    detail::level_classifier levels;
    std::array<char, output_read_bytes> buffer{};
  };

  // The reason the supervisor killed the current child, for the exit's log message.
  enum class kill_reason { none, start_timeout, foreign_listener, unresponsive };

  // Spawning and its timers.
  void log_config_conflicts();
  boost::system::error_code launch();
  void attach_descriptors(const detail::spawned_child& child);
  void set_state(child_state phase);
  void set_pid(pid_t pid);

  // Output.
  void read_output(output_pipe& pipe, std::uint64_t run);
  void on_output(output_pipe& pipe, std::uint64_t run, const boost::system::error_code& error,
                 std::size_t bytes);
  void close_output(output_pipe& pipe);
  void log_output_line(output_pipe& pipe, std::string line);
  std::string format_output_tail() const;

  // Health.
  void schedule_health_check(std::uint64_t run);
  void on_health_timer(std::uint64_t run, const boost::system::error_code& error);
  void on_health_result(std::uint64_t run, unsigned status);
  void on_ready_health_result(std::uint64_t run, unsigned status);
  void stop_unresponsive_child();
  bool verify_listener();
  void on_start_deadline(std::uint64_t run, const boost::system::error_code& error);
  void kill_starting_child(kill_reason reason);
  void on_stable_timer(std::uint64_t run, const boost::system::error_code& error);

  // Exit, stop and restart.
  void wait_for_exit(std::uint64_t run);
  void on_exit_event(std::uint64_t run, const boost::system::error_code& error);
  void on_drain_timeout(std::uint64_t run, const boost::system::error_code& error);
  void finish_exit();
  void log_unexpected_exit(std::chrono::milliseconds restart_delay, bool entered_crash_loop);
  bool record_crash();
  void reset_crash_history();
  std::chrono::milliseconds take_restart_delay();
  void arm_restart_timer(std::chrono::milliseconds delay);
  void on_restart_timer(const boost::system::error_code& error);
  void relaunch();
  void on_launch_failed(const boost::system::error_code& launch_error);
  void begin_stop(const char* action);
  void on_stop_timeout(std::uint64_t run, const boost::system::error_code& error);
  void cancel_start_checks();
  void post_stop_handlers();

  boost::asio::any_io_executor executor_;
  streamlit_options options_;
  std::string health_target_;

  // What other threads read. state_ shows crash_loop where phase_ is starting or restarting
  // during a crash loop.
  std::atomic<child_state> state_{child_state::stopped};
  std::atomic<std::uint16_t> port_{0};
  std::atomic<int> public_pid_{-1};

  child_state phase_ = child_state::stopped;  // never crash_loop
  pid_t pid_ = -1;             // running child, which is also its process group id; -1 when none
  pid_t exited_pid_ = -1;      // the child whose exit is being finished, for log messages
  std::uint64_t run_ = 0;      // increases with every spawn and with kill_now
  bool exit_pending_ = false;  // reaped, waiting for the output pipes to drain
  bool config_checked_ = false;
  bool pass_empty_base_url_path_ = false;  // a Streamlit config sets a base path FluxLit clears
  bool restart_requested_ = false;         // the current stop ends in a new start
  bool restarts_held_ = false;             // an exit ends in `stopped`; see hold_restarts()
  bool crash_loop_ = false;
  kill_reason kill_reason_ = kill_reason::none;
  std::string exit_description_;
  unsigned last_health_status_ = 0;
  std::size_t health_failures_ = 0;  // failed checks in a row since the child became ready
  std::chrono::milliseconds restart_delay_;
  std::chrono::milliseconds max_restart_delay_;
  std::deque<std::chrono::steady_clock::time_point> crash_times_;  // within crash_loop_window
  std::deque<std::string> output_tail_;
  std::vector<std::function<void()>> stop_handlers_;

  boost::asio::posix::stream_descriptor exit_descriptor_;  // pidfd of the child
  output_pipe stdout_;
  output_pipe stderr_;
  std::shared_ptr<detail::health_probe> probe_;
  boost::asio::steady_timer health_timer_;
  boost::asio::steady_timer start_deadline_timer_;
  boost::asio::steady_timer exit_poll_timer_;
  boost::asio::steady_timer drain_timer_;
  boost::asio::steady_timer stop_timer_;
  boost::asio::steady_timer restart_timer_;
  boost::asio::steady_timer stable_timer_;
};

}  // namespace fluxlit::supervisor
