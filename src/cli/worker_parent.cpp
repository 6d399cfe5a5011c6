#include "cli/worker_parent.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/pidfile.hpp"
#include "cli/serve_support.hpp"
#include "cli/worker_link.hpp"
#include "fluxlit/asgi/bridge.hpp"
#include "fluxlit/config/target.hpp"
#include "fluxlit/gateway/server.hpp"
#include "fluxlit/observability/log.hpp"
#include "fluxlit/observability/metrics_board.hpp"
#include "fluxlit/supervisor/streamlit_supervisor.hpp"
#include "supervisor/child_process.hpp"

extern char** environ;

namespace fluxlit::cli {
namespace asio = boost::asio;
using asio::ip::tcp;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
namespace {

// How often Streamlit's state is compared with the last state sent to the workers. A state change
// reaches the workers within this time; the supervisor's own health polling is slower.
constexpr milliseconds ui_relay_interval{20};
// A worker that served this long before it exited is replaced at once. One that dies sooner
// waits, and the wait doubles up to the maximum, so a worker that cannot stay up does not keep
// a core busy with restarts.
constexpr std::chrono::seconds stable_worker_run{10};
constexpr milliseconds first_replacement_delay{500};
constexpr milliseconds max_replacement_delay{10'000};
// Without a pidfd, how often a worker is checked for an exit.
constexpr milliseconds exit_poll_interval{100};
// A replacement worker that has not sent `ready` after this long, or after four times the first
// start of all workers when that took longer, is killed and counts as a failed start. The first
// start has no limit: an app may load large models before it serves, as in a single process.
constexpr milliseconds min_replacement_start_timeout{60'000};
constexpr int replacement_start_factor = 4;
// A worker drains for up to shutdown_grace_ms, then runs the lifespan shutdown for up to as
// long again. This margin on top covers the interpreter's exit before SIGKILL.
constexpr milliseconds worker_stop_margin{5'000};
// The descriptor numbers under which a worker finds the listener, its link to the parent and
// the workers' metrics region.
constexpr int worker_listener_fd = 3;
constexpr int worker_link_fd = 4;
constexpr int worker_metrics_fd = 5;
// Copies of descriptors made for a spawn get numbers above this, clear of the three above.
constexpr int spawn_copy_floor = 10;

std::vector<std::string> own_arguments() {
  std::ifstream input("/proc/self/cmdline", std::ios::binary);
  const std::string all{std::istreambuf_iterator<char>(input), std::istreambuf_iterator<char>()};
  std::vector<std::string> arguments;
  std::size_t start = 0;
  while (start < all.size()) {
    const auto end = all.find('\0', start);
    arguments.push_back(all.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return arguments;
}

// Workers run the parent's own executable file, even when the path now names another version
// or nothing: the kernel keeps the file the parent runs from.
constexpr const char* own_executable = "/proc/self/exe";

// Each worker costs the parent two descriptors (its link and its pidfd), so a large --workers
// could exceed the usual soft limit of 1024 while the hard limit allows far more.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

class worker_parent {
 public:
  explicit worker_parent(config::loaded_settings loaded)
      : loaded_(std::move(loaded)), settings_(loaded_.values) {}

  int run();

 private:
  struct worker {
    worker(asio::io_context& io, unsigned number)
        : index(number), exit_watch(io), exit_poll(io), restart_timer(io), start_timer(io) {}

    unsigned index;
    // The parent's copy of this worker's socket, bound but listening only once the worker
    // serves. It outlives a worker that dies, so that its replacement accepts what queued
    // meanwhile. It is closed when a start fails, so that nothing waits for a worker that
    // cannot come, and bound again for the next start.
    std::optional<tcp::acceptor> listener;
    pid_t pid = -1;
    std::unique_ptr<asio::local::stream_protocol::socket> link;
    asio::streambuf input;
    asio::posix::stream_descriptor exit_watch;  // the pidfd
    asio::steady_timer exit_poll;               // when there is no pidfd
    asio::steady_timer restart_timer;
    asio::steady_timer start_timer;  // a replacement's start timeout
    bool ready = false;
    steady_clock::time_point started;
    milliseconds next_delay = first_replacement_delay;
    std::uint64_t run = 0;  // one more for each spawn, so handlers of an earlier one do nothing
  };

  void spawn(worker& each);
  void retry_spawn(worker& each);
  void watch_exit(worker& each);
  void on_exit(worker& each, std::uint64_t run);
  void read_link(worker& each, std::uint64_t run);
  void on_ready(worker& each);
  void send_ui_state(worker& each);
  void relay_ui_state();
  void on_signal(int number);
  void stop_workers();
  void on_stop_deadline();
  void finish();
  void kill_all_now();
  std::size_t running_workers() const;
  std::size_t serving_workers() const;
  std::string describe(const worker& each) const;

  config::loaded_settings loaded_;
  const config::settings& settings_;
  asio::io_context io_{1};
  std::vector<std::unique_ptr<worker>> workers_;
  std::unique_ptr<supervisor::streamlit_supervisor> streamlit_;
  std::unique_ptr<pid_file> pid_file_;
  std::shared_ptr<observability::metrics_board> metrics_board_;
  asio::signal_set signals_{io_, SIGINT, SIGTERM};
  asio::steady_timer relay_timer_{io_};
  asio::steady_timer stop_deadline_{io_};
  ui_update last_relayed_{};
  std::vector<std::string> arguments_ = own_arguments();
  std::uint16_t port_ = 0;
  steady_clock::time_point started_ = steady_clock::now();
  milliseconds replacement_start_timeout_ = min_replacement_start_timeout;
  bool all_served_ = false;  // every worker has reported ready at least once
  bool stopping_ = false;
  int exit_status_ = 0;
};

int worker_parent::run() {
  auto log = observability::logger("fluxlit");
  for (const auto& warning : loaded_.warnings) log->warn("{}", warning);
  if (!settings_.pidfile.empty()) pid_file_ = std::make_unique<pid_file>(settings_.pidfile);

  raise_descriptor_limit();
  // A socket without SO_REUSEPORT first, so a port that another server has bound fails here as it
  // does for a single process, instead of the two servers sharing it. Each worker then gets its
  // own socket in one SO_REUSEPORT group: the kernel spreads new connections evenly over the
  // sockets that listen. One shared socket would not, because every worker's I/O thread is
  // always ready to accept.
  port_ = gateway::open_listener(io_, settings_.host, settings_.port, false).local_endpoint().port();
  metrics_board_ = observability::metrics_board::create(static_cast<unsigned>(settings_.workers));
  for (unsigned index = 1; index <= settings_.workers; ++index) {
    auto& each = *workers_.emplace_back(std::make_unique<worker>(io_, index));
    each.listener.emplace(gateway::open_listener(io_, settings_.host, port_, true));
  }

  const auto target =
      config::parse_target(settings_.target, std::filesystem::current_path().string());
  const auto interpreter = asgi::query_interpreter(asgi::choose_interpreter(settings_.python));
  log->info("starting {} workers for app {} on port {}", settings_.workers, settings_.target,
            port_);
  try {
    for (auto& each : workers_) spawn(*each);
    if (!settings_.no_ui && interpreter.has_streamlit) {
      streamlit_ = std::make_unique<supervisor::streamlit_supervisor>(
          io_.get_executor(), streamlit_start_options(settings_, target, interpreter, port_));
      streamlit_->start();
      relay_ui_state();
    }
  } catch (...) {
    kill_all_now();
    throw;
  }
  // Each worker serves the page that explains a missing UI; the parent logs the reason once.
  log_ui_unavailable(settings_, interpreter);

  signals_.async_wait([this](boost::system::error_code error, int number) {
    if (!error) on_signal(number);
  });
  run_io_loop(io_);
  log->info("stopped");
  return exit_status_;
}

void worker_parent::spawn(worker& each) {
  auto log = observability::logger("fluxlit");
  asio::local::stream_protocol::socket parent_end(io_);
  asio::local::stream_protocol::socket worker_end(io_);
  asio::local::connect_pair(parent_end, worker_end);
  ::fcntl(parent_end.native_handle(), F_SETFD, FD_CLOEXEC);
  // Copies numbered above the worker's descriptor numbers, so no dup2 of the spawn overwrites a
  // descriptor that a later dup2 still reads.
  if (!each.listener) {
    try {
      each.listener.emplace(gateway::open_listener(io_, settings_.host, port_, true));
    } catch (const std::system_error& error) {
      log->error("cannot open a socket for worker {}: {}; trying again in {} ms", each.index,
                 error.what(), each.next_delay.count());
      retry_spawn(each);
      return;
    }
  }
  const int listener_copy =
      ::fcntl(each.listener->native_handle(), F_DUPFD_CLOEXEC, spawn_copy_floor);
  const int link_copy = ::fcntl(worker_end.native_handle(), F_DUPFD_CLOEXEC, spawn_copy_floor);
  const int metrics_copy = ::fcntl(metrics_board_->fd(), F_DUPFD_CLOEXEC, spawn_copy_floor);

  supervisor::detail::spawn_request request;
  request.program = own_executable;
  request.arguments = arguments_;
  const worker_handoff handoff{each.index, worker_listener_fd, worker_link_fd, ::getpid(),
                               worker_metrics_fd};
  request.environment =
      supervisor::detail::merge_environment(environ, {{worker_variable, format_handoff(handoff)}});
  request.inherited = {{listener_copy, worker_listener_fd},
                       {link_copy, worker_link_fd},
                       {metrics_copy, worker_metrics_fd}};
  request.share_output = true;
  supervisor::detail::spawned_child child;
  const auto error = listener_copy < 0 || link_copy < 0 || metrics_copy < 0
                         ? std::error_code(errno, std::system_category())
                         : supervisor::detail::spawn_process(request, child);
  for (const int copy : {listener_copy, link_copy, metrics_copy}) {
    if (copy >= 0) ::close(copy);
  }
  if (error) {
    // Only resources the machine ran out of (processes, descriptors, memory) get here.
    log->error("cannot start worker {}: {}; trying again in {} ms", each.index, error.message(),
               each.next_delay.count());
    retry_spawn(each);
    return;
  }

  each.pid = child.pid;
  each.ready = false;
  each.started = steady_clock::now();
  each.input.consume(each.input.size());
  each.link = std::make_unique<asio::local::stream_protocol::socket>(std::move(parent_end));
  const auto run = ++each.run;
  log->info("started worker {} (pid {})", each.index, each.pid);
  if (all_served_) {
    each.start_timer.expires_after(replacement_start_timeout_);
    each.start_timer.async_wait([this, &each, run](boost::system::error_code error) {
      if (error || run != each.run || each.ready || each.pid < 0) return;
      observability::logger("fluxlit")->error("{} did not start within {} ms; killing it",
                                              describe(each), replacement_start_timeout_.count());
      supervisor::detail::signal_process_group(each.pid, SIGKILL);
    });
  }
  watch_exit(each);
  read_link(each, run);
  send_ui_state(each);
}

void worker_parent::retry_spawn(worker& each) {
  each.restart_timer.expires_after(each.next_delay);
  each.next_delay = std::min(each.next_delay * 2, max_replacement_delay);
  each.restart_timer.async_wait([this, &each](boost::system::error_code error) {
    if (!error && !stopping_) spawn(each);
  });
}

void worker_parent::watch_exit(worker& each) {
  const auto run = each.run;
  const int pidfd = supervisor::detail::open_pidfd(each.pid);
  if (pidfd >= 0) {
    each.exit_watch.assign(pidfd);
    each.exit_watch.async_wait(asio::posix::stream_descriptor::wait_read,
                               [this, &each, run](boost::system::error_code error) {
                                 if (!error) on_exit(each, run);
                               });
    return;
  }
  each.exit_poll.expires_after(exit_poll_interval);
  each.exit_poll.async_wait([this, &each, run](boost::system::error_code error) {
    if (!error) on_exit(each, run);
  });
}

void worker_parent::on_exit(worker& each, std::uint64_t run) {
  if (run != each.run || each.pid < 0) return;
  int status = 0;
  const pid_t reaped = ::waitpid(each.pid, &status, WNOHANG);
  if (reaped == 0) {
    watch_exit(each);  // the polling fallback found it still running
    return;
  }
  auto log = observability::logger("fluxlit");
  const auto described = reaped < 0 ? std::string("an unknown status")
                                    : supervisor::detail::describe_wait_status(status);
  const auto gone = describe(each);
  const bool was_ready = each.ready;
  each.pid = -1;
  each.ready = false;
  each.start_timer.cancel();
  boost::system::error_code ignored;
  each.exit_watch.close(ignored);
  each.link.reset();
  // Its gauges, such as open connections, no longer hold. A replacement starts its counters
  // from zero under the same worker label, which Prometheus reads as a counter reset.
  metrics_board_->clear(each.index - 1);

  if (stopping_) {
    log->info("{} stopped ({})", gone, described);
    if (running_workers() == 0) finish();
    return;
  }
  // A worker that fails while starting stops the server when nothing else serves: at the first
  // start (an import error or a failing lifespan startup, whose message the worker printed), or
  // when every other worker is gone too. Connections then fail at once instead of waiting.
  if (!was_ready && (!all_served_ || serving_workers() == 0)) {
    log->error("{} exited with {} while starting, and no other worker {}; stopping", gone,
               described, all_served_ ? "is serving" : "can serve without it");
    exit_status_ = WIFEXITED(status) && WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1;
    stop_workers();
    return;
  }
  if (!was_ready) {
    // Connections queued for a worker that failed to start are refused now rather than left
    // waiting; the next start opens a new socket.
    each.listener->close(ignored);
    each.listener.reset();
  }
  milliseconds delay{0};
  if (was_ready && steady_clock::now() - each.started >= stable_worker_run) {
    each.next_delay = first_replacement_delay;
  } else {
    delay = each.next_delay;
    each.next_delay = std::min(each.next_delay * 2, max_replacement_delay);
  }
  log->error("{} exited with {}; starting a replacement{}", gone, described,
             delay.count() == 0 ? std::string() : " in " + std::to_string(delay.count()) + " ms");
  each.restart_timer.expires_after(delay);
  each.restart_timer.async_wait([this, &each](boost::system::error_code error) {
    if (!error && !stopping_) spawn(each);
  });
}

void worker_parent::read_link(worker& each, std::uint64_t run) {
  asio::async_read_until(*each.link, each.input, '\n',
                         [this, &each, run](boost::system::error_code error, std::size_t) {
                           // End of file comes with the worker's exit, which on_exit handles.
                           if (error || run != each.run) return;
                           std::string line;
                           std::istream input(&each.input);
                           std::getline(input, line);
                           if (line == ready_message) on_ready(each);
                           read_link(each, run);
                         });
}

void worker_parent::on_ready(worker& each) {
  each.ready = true;
  if (all_served_ || stopping_) return;
  if (!std::all_of(workers_.begin(), workers_.end(), [](const auto& one) { return one->ready; })) {
    return;
  }
  all_served_ = true;
  const auto first_start = std::chrono::duration_cast<milliseconds>(steady_clock::now() - started_);
  replacement_start_timeout_ =
      std::max(min_replacement_start_timeout, first_start * replacement_start_factor);
  std::printf("fluxlit listening on http://%s:%u\n", display_host(settings_.host).c_str(),
              static_cast<unsigned>(port_));
  std::fflush(stdout);
  observability::logger("fluxlit")->info("{} workers serving", workers_.size());
}

void worker_parent::send_ui_state(worker& each) {
  if (!streamlit_ || !each.link) return;
  const auto message = format_ui_update(last_relayed_);
  // The worker reads these few bytes at once. The buffer could only fill if the worker were
  // stuck, and then dropping a message is harmless because the next change is sent anyway.
  (void)::send(each.link->native_handle(), message.data(), message.size(),
               MSG_NOSIGNAL | MSG_DONTWAIT);
}

void worker_parent::relay_ui_state() {
  const ui_update now{streamlit_->state(), streamlit_->port()};
  if (now.state != last_relayed_.state || now.port != last_relayed_.port) {
    last_relayed_ = now;
    for (auto& each : workers_) send_ui_state(*each);
  }
  relay_timer_.expires_after(ui_relay_interval);
  relay_timer_.async_wait([this](boost::system::error_code error) {
    if (!error) relay_ui_state();
  });
}

void worker_parent::on_signal(int number) {
  auto log = observability::logger("fluxlit");
  if (stopping_) {
    log->warn("second signal ({}): stopping at once", number);
    kill_all_now();
    pid_file_.reset();  // std::_Exit skips destructors
    spdlog::shutdown();
    std::_Exit(128 + number);
  }
  log->info("signal {} received: draining {} workers for up to {} ms (shutdown_grace_ms)", number,
            running_workers(), settings_.shutdown_grace_ms);
  signals_.async_wait([this](boost::system::error_code error, int again) {
    if (!error) on_signal(again);
  });
  stop_workers();
}

void worker_parent::stop_workers() {
  stopping_ = true;
  boost::system::error_code ignored;
  if (streamlit_) streamlit_->hold_restarts();
  for (auto& each : workers_) {
    // Without the parent's copy, a socket closes once its worker stops accepting.
    if (each->listener) each->listener->close(ignored);
    each->restart_timer.cancel();
    each->start_timer.cancel();
    if (each->pid > 0) ::kill(each->pid, SIGTERM);
  }
  if (running_workers() == 0) {
    finish();
    return;
  }
  stop_deadline_.expires_after(milliseconds(2 * settings_.shutdown_grace_ms) + worker_stop_margin);
  stop_deadline_.async_wait([this](boost::system::error_code error) {
    if (!error) on_stop_deadline();
  });
}

void worker_parent::on_stop_deadline() {
  for (auto& each : workers_) {
    if (each->pid <= 0) continue;
    observability::logger("fluxlit")->warn("{} did not stop in time; killing it", describe(*each));
    supervisor::detail::signal_process_group(each->pid, SIGKILL);
  }
}

void worker_parent::finish() {
  stop_deadline_.cancel();
  relay_timer_.cancel();
  if (!streamlit_) {
    io_.stop();
    return;
  }
  streamlit_->async_stop([this] { io_.stop(); });
}

void worker_parent::kill_all_now() {
  for (auto& each : workers_) {
    if (each->pid <= 0) continue;
    supervisor::detail::signal_process_group(each->pid, SIGKILL);
    int status = 0;
    ::waitpid(each->pid, &status, 0);
    each->pid = -1;
  }
  if (streamlit_) streamlit_->kill_now();
}

std::size_t worker_parent::serving_workers() const {
  return static_cast<std::size_t>(std::count_if(
      workers_.begin(), workers_.end(), [](const auto& each) { return each->pid > 0 && each->ready; }));
}

std::size_t worker_parent::running_workers() const {
  return static_cast<std::size_t>(std::count_if(workers_.begin(), workers_.end(),
                                                [](const auto& each) { return each->pid > 0; }));
}

std::string worker_parent::describe(const worker& each) const {
  return "worker " + std::to_string(each.index) + " (pid " + std::to_string(each.pid) + ")";
}

}  // namespace

int run_worker_parent(config::loaded_settings loaded) {
  worker_parent parent(std::move(loaded));
  return parent.run();
}

}  // namespace fluxlit::cli
