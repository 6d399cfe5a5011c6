// `fluxlit run` and `fluxlit dev`: resolve the settings, start the app in the embedded
// interpreter, listen, start Streamlit, and serve until a signal requests a stop.
#include <errno.h>
#include <fcntl.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "cli/command_support.hpp"
#include "cli/commands.hpp"
#include "cli/pidfile.hpp"
#include "cli/serve_support.hpp"
#include "cli/setting_flags.hpp"
#include "cli/worker_link.hpp"
#include "cli/worker_parent.hpp"
#include "fluxlit/asgi/bridge.hpp"
#include "fluxlit/config/settings.hpp"
#include "fluxlit/config/target.hpp"
#include "fluxlit/gateway/server.hpp"
#include "fluxlit/observability/log.hpp"
#include "fluxlit/observability/metrics.hpp"
#include "fluxlit/observability/metrics_board.hpp"
#include "fluxlit/proxy/upstream.hpp"
#include "fluxlit/supervisor/file_watcher.hpp"
#include "fluxlit/supervisor/streamlit_supervisor.hpp"

namespace fluxlit::cli {
namespace asio = boost::asio;
namespace {

// How often the drain checks whether in-flight requests finished.
constexpr std::chrono::milliseconds drain_poll_interval{50};

enum class serve_mode { run, dev };

spdlog::level::level_enum parse_level(const std::string& name) {
  if (name == "warning") return spdlog::level::warn;
  return spdlog::level::from_str(name);
}

// Everything one serving process owns, in the order it is built and torn down. A worker of
// `--workers` is one too: it accepts on the listener its parent bound, and learns Streamlit's
// state from its parent instead of running the child.
class serve_process {
 public:
  serve_process(config::loaded_settings loaded, serve_mode mode,
                std::optional<worker_handoff> worker)
      : loaded_(std::move(loaded)), settings_(loaded_.values), mode_(mode), worker_(worker) {}

  int run();

 private:
  void start_streamlit(std::uint16_t port);
  void start_reloader();
  void print_banner(std::uint16_t port);
  int serve();
  void start_parent_link();
  void read_parent_link();
  void publish_metrics();
  void on_signal(int signal_number);
  void begin_drain();
  void drain_step();
  void finish_shutdown();

  config::loaded_settings loaded_;
  const config::settings& settings_;
  serve_mode mode_;
  std::optional<worker_handoff> worker_;

  asio::io_context io_{1};
  asgi::bridge bridge_;
  observability::metrics metrics_;
  std::unique_ptr<proxy::upstream_pool> upstreams_;
  std::unique_ptr<supervisor::streamlit_supervisor> streamlit_;
  relayed_ui_state relayed_ui_;
  std::unique_ptr<asio::local::stream_protocol::socket> parent_link_;
  asio::streambuf parent_input_;
  std::unique_ptr<gateway::gateway_context> context_;
  std::unique_ptr<gateway::server> server_;
  std::unique_ptr<supervisor::file_watcher> watcher_;
  std::unique_ptr<pid_file> pid_file_;
  asio::signal_set signals_{io_, SIGINT, SIGTERM};
  asio::steady_timer drain_timer_{io_};
  asio::steady_timer metrics_timer_{io_};
  std::chrono::steady_clock::time_point drain_deadline_;
  std::thread lifespan_shutdown_;
  config::app_target target_;
  asgi::interpreter_info interpreter_;
  bool stopping_ = false;
  int exit_status_ = 0;
};

namespace {

void swallow_signal(int) {}

// Makes a write to a connection that the peer closed fail with EPIPE instead of killing the
// server. Asio's sends pass MSG_NOSIGNAL, but the app's C extensions may write to sockets and
// pipes without it, and CPython run as a program ignores SIGPIPE for them. A handler that does
// nothing, unlike SIG_IGN, is reset by exec, so programs that the app starts (os.system, say)
// still die quietly on a closed pipe.
void ignore_sigpipe_until_exec() {
  struct sigaction action {};
  action.sa_handler = swallow_signal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGPIPE, &action, nullptr);
}

}  // namespace

int serve_process::run() {
  auto log = observability::logger("fluxlit");
  ignore_sigpipe_until_exec();
  // A worker's parent logged the warnings and owns the pid file.
  if (!worker_) {
    for (const auto& warning : loaded_.warnings) log->warn("{}", warning);
  }
  if (!settings_.pidfile.empty() && !worker_) {
    pid_file_ = std::make_unique<pid_file>(settings_.pidfile);
  }

  const auto working_directory = std::filesystem::current_path().string();
  target_ = config::parse_target(settings_.target, working_directory);
  interpreter_ = asgi::query_interpreter(asgi::choose_interpreter(settings_.python));
  log->debug("interpreter {} (Python {}), streamlit {}", interpreter_.executable,
             interpreter_.version,
             !interpreter_.has_streamlit              ? "not installed"
             : interpreter_.streamlit_version.empty() ? "installed (version unknown)"
                                                      : interpreter_.streamlit_version);

  proxy::pool_limits limits;
  limits.max_idle_connections = settings_.upstream_max_idle_connections;
  limits.connect_timeout = std::chrono::milliseconds(settings_.upstream_connect_timeout_ms);
  limits.response_timeout = std::chrono::milliseconds(settings_.upstream_response_timeout_ms);
  upstreams_ = std::make_unique<proxy::upstream_pool>(limits);

  gateway::forwarded_policy forwarding;
  forwarding.proxy_headers = settings_.proxy_headers;
  for (const auto& entry : settings_.forwarded_allow_ips) {
    forwarding.trusted.push_back(config::address_range::parse(entry));
  }
  context_ = std::unique_ptr<gateway::gateway_context>(new gateway::gateway_context{
      settings_, gateway::route_table{settings_.api_prefix, settings_.root_path}, forwarding,
      bridge_, metrics_, *upstreams_});

  if (worker_) {
    // Before the app starts, so that processes it starts do not inherit the region.
    ::fcntl(worker_->metrics_fd, F_SETFD, FD_CLOEXEC);
    metrics_.share(observability::metrics_board::attach(worker_->metrics_fd), worker_->index - 1);
  }

  server_ = std::make_unique<gateway::server>(io_, *context_);
  const auto bound = worker_ ? server_->adopt(worker_->listener_fd)
                             : server_->listen(settings_.host, settings_.port);

  // The port is bound first, so a port in use fails before the app is imported. Connections
  // wait in the backlog until the I/O loop runs.
  asgi::bridge_options options;
  options.interpreter = interpreter_;
  options.app_directory = target_.app_directory;
  options.target = python_target_text(target_);
  options.log_level = settings_.log_level;
  bridge_.start(options);
  log->info("app {} started in the embedded interpreter", settings_.target);
  // Applied after the Python thread started, so that it keeps the normal policy it inherited.
  const auto scheduling = apply_io_scheduling(settings_.io_scheduling);
  if (scheduling == io_policy::batch) {
    log->info(
        "the I/O thread runs under SCHED_BATCH (io_scheduling = {}), so its wake-ups do not "
        "preempt the Python thread on a shared CPU",
        settings_.io_scheduling);
    // The Python thread keeps the normal policy, so its wake-up still preempts the I/O thread.
    // The I/O thread therefore wakes it once it has handled every event that is ready.
    bridge_.defer_wakeups([this](std::function<void()> wake) {
      if (!io_.get_executor().running_in_this_thread()) return false;
      asio::post(io_, std::move(wake));
      return true;
    });
    context_->python_writes_responses = true;
  } else if (scheduling == io_policy::inherited) {
    log->info("the I/O thread keeps the scheduling policy that the process started with; "
              "io_scheduling = {} applies only to the normal policy",
              settings_.io_scheduling);
  }
  server_->start_accepting();

  start_streamlit(bound.port());
  signals_.async_wait([this](boost::system::error_code error, int number) {
    if (!error) on_signal(number);
  });
  if (worker_) {
    start_parent_link();
  } else {
    print_banner(bound.port());
    start_reloader();
  }
  return serve();
}

void serve_process::print_banner(std::uint16_t port) {
  const auto base = "http://" + display_host(settings_.host) + ":" + std::to_string(port);
  std::printf("fluxlit listening on %s\n", base.c_str());
  if (mode_ == serve_mode::dev) {
    const auto public_root = base + settings_.root_path;
    std::printf("\n  FluxLit dev server\n");
    if (!settings_.no_ui) std::printf("    UI:   %s/\n", public_root.c_str());
    std::printf("    API:  %s%s\n    Docs: %s%s/docs\n\n", public_root.c_str(),
                settings_.api_prefix.c_str(), public_root.c_str(), settings_.api_prefix.c_str());
  }
  std::fflush(stdout);
}

int serve_process::serve() {
  run_io_loop(io_);
  if (lifespan_shutdown_.joinable()) lifespan_shutdown_.join();
  observability::logger("fluxlit")->info("stopped");
  return exit_status_;
}

void serve_process::start_streamlit(std::uint16_t port) {
  if (settings_.no_ui) {
    context_->ui_unavailable_status = 404;
    context_->ui_unavailable_page = no_ui_page(settings_);
  } else if (!interpreter_.has_streamlit) {
    context_->ui_unavailable_page = streamlit_missing_page(interpreter_);
  }
  // A worker's parent logs the reason once for all workers.
  const bool unavailable = worker_ ? settings_.no_ui || !interpreter_.has_streamlit
                                   : log_ui_unavailable(settings_, interpreter_);
  if (unavailable) return;
  if (worker_) {
    // The parent runs Streamlit and sends its state over the control link.
    context_->streamlit = &relayed_ui_;
    return;
  }
  streamlit_ = std::make_unique<supervisor::streamlit_supervisor>(
      io_.get_executor(), streamlit_start_options(settings_, target_, interpreter_, port));
  context_->streamlit = streamlit_.get();
  streamlit_->start();
}

void serve_process::start_parent_link() {
  parent_link_ = std::make_unique<asio::local::stream_protocol::socket>(io_);
  ::fcntl(worker_->control_fd, F_SETFD, FD_CLOEXEC);
  parent_link_->assign(asio::local::stream_protocol(), worker_->control_fd);
  boost::system::error_code error;
  asio::write(*parent_link_, asio::buffer(std::string(ready_message) + "\n"), error);
  observability::logger("fluxlit")->info("worker {} (pid {}) serving", worker_->index, ::getpid());
  read_parent_link();
  publish_metrics();
}

void serve_process::publish_metrics() {
  // The worker that serves a scrape reads the others' slots, so they are at most this old.
  metrics_.publish();
  metrics_timer_.expires_after(std::chrono::seconds(1));
  metrics_timer_.async_wait([this](boost::system::error_code error) {
    if (!error) publish_metrics();
  });
}

void serve_process::read_parent_link() {
  asio::async_read_until(
      *parent_link_, parent_input_, '\n', [this](boost::system::error_code error, std::size_t) {
        auto log = observability::logger("fluxlit");
        if (error) {
          // End of file: the parent exited. Without it no Streamlit runs and no signal will
          // come, so drain and stop as on SIGTERM.
          if (!stopping_) {
            log->error(
                "the FluxLit parent process (pid {}) is gone; draining this worker for up to {} "
                "ms (shutdown_grace_ms)",
                worker_->parent, settings_.shutdown_grace_ms);
            begin_drain();
          }
          return;
        }
        std::string line;
        std::istream input(&parent_input_);
        std::getline(input, line);
        if (const auto update = parse_ui_update(line)) {
          relayed_ui_.apply(*update);
        } else {
          log->warn("ignoring an unknown message from the parent process: \"{}\"", line);
        }
        read_parent_link();
      });
}

void serve_process::start_reloader() {
  if (!settings_.reload) return;
  supervisor::file_watcher_options options;
  options.directories = settings_.reload_dirs;
  if (options.directories.empty()) options.directories.push_back(target_.app_directory);
  options.includes = settings_.reload_includes;
  options.excludes = settings_.reload_excludes;
  options.debounce = std::chrono::milliseconds(settings_.reload_debounce_ms);

  watcher_ = std::make_unique<supervisor::file_watcher>(
      io_.get_executor(), options, [this](std::vector<std::string> changed) {
        if (stopping_ || changed.empty()) return;
        observability::logger("fluxlit")->info(
            "{} changed{}; reloading the app{}", changed.front(),
            changed.size() > 1 ? " (and " + std::to_string(changed.size() - 1) + " more)" : "",
            streamlit_ ? " and restarting Streamlit" : "");
        bridge_.reload();
        if (streamlit_) streamlit_->restart();
      });
  watcher_->start();
  observability::logger("fluxlit")->info("watching {} for changes (--reload)",
                                         fmt::join(options.directories, ", "));
}

void serve_process::on_signal(int signal_number) {
  auto log = observability::logger("fluxlit");
  if (stopping_ && worker_) {
    // The parent sends one signal per stop and kills a worker whose drain takes too long. A
    // worker also gets SIGTERM when its parent dies mid-drain, so the drain goes on.
    return;
  }
  if (stopping_) {
    // A second signal: stop now, but still take the Streamlit process group down.
    log->warn("second signal ({}): stopping at once", signal_number);
    if (streamlit_) streamlit_->kill_now();
    pid_file_.reset();  // std::_Exit skips destructors
    spdlog::shutdown();
    std::_Exit(128 + signal_number);
  }
  log->info("signal {} received: draining for up to {} ms (shutdown_grace_ms)", signal_number,
            settings_.shutdown_grace_ms);
  signals_.async_wait([this](boost::system::error_code error, int number) {
    if (!error) on_signal(number);
  });
  begin_drain();
}

void serve_process::begin_drain() {
  stopping_ = true;
  if (watcher_) watcher_->stop();
  if (streamlit_) streamlit_->hold_restarts();
  context_->draining = true;
  server_->stop_accepting();
  // WebSockets and event streams count as busy; they are asked to end cleanly right away.
  server_->begin_shutdown();
  server_->close_idle_connections();
  drain_deadline_ =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(settings_.shutdown_grace_ms);
  drain_step();
}

void serve_process::drain_step() {
  server_->close_idle_connections();
  const bool expired = std::chrono::steady_clock::now() >= drain_deadline_;
  if (server_->busy_connections() != 0 && !expired) {
    drain_timer_.expires_after(drain_poll_interval);
    drain_timer_.async_wait([this](boost::system::error_code error) {
      if (!error) drain_step();
    });
    return;
  }
  if (expired && server_->busy_connections() != 0) {
    observability::logger("fluxlit")->warn(
        "{} requests still in flight after shutdown_grace_ms; closing them",
        server_->busy_connections());
  }
  server_->close_all_connections();
  upstreams_->clear();

  // The lifespan shutdown blocks until the app finished it; run it off the I/O thread so a
  // second signal is still handled meanwhile.
  lifespan_shutdown_ = std::thread([this] {
    bridge_.stop(std::chrono::milliseconds(settings_.shutdown_grace_ms));
    asio::post(io_, [this] { finish_shutdown(); });
  });
}

void serve_process::finish_shutdown() {
  if (!streamlit_) {
    io_.stop();
    return;
  }
  streamlit_->async_stop([this] { io_.stop(); });
}

// Returns what the parent of a `--workers` worker passed in worker_variable, and removes the
// variable; nullopt in any other process. A worker also gets SIGTERM when its parent dies.
std::optional<worker_handoff> take_worker_handoff() {
  const char* text = std::getenv(worker_variable);
  if (text == nullptr) return std::nullopt;
  const std::string value = text;
  ::unsetenv(worker_variable);
  auto handoff = parse_handoff(value);
  if (!handoff) {
    throw config::config_error(std::string(worker_variable) + "=\"" + value +
                               "\" is set by FluxLit for its worker processes only; unset it");
  }
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  // The parent starts workers through /proc/self/exe, which names the process "exe". The name
  // that the parent was started under lets ps -C and pgrep find the workers too.
  ::prctl(PR_SET_NAME, program_invocation_short_name);
  if (::getppid() != handoff->parent) {
    throw config::config_error("the FluxLit parent process (pid " +
                               std::to_string(handoff->parent) +
                               ") exited before this worker started");
  }
  return handoff;
}

void add_serve_command(CLI::App& app, int& exit_status, serve_mode mode) {
  const bool dev = mode == serve_mode::dev;
  auto* command = app.add_subcommand(
      dev ? "dev" : "run",
      dev ? "Serve the app for development: readable logs at debug level and a banner with the "
            "URLs."
          : "Serve the app: the API in-process and the Streamlit UI on one port, JSON logs.");
  auto given = std::make_shared<config::cli_values>();
  add_target_argument(*command, *given);
  add_setting_flags(*command, *given);
  if (dev) {
    // dev changes three defaults; the help text generated from the settings table shows run's.
    const std::pair<const char*, std::pair<const char*, const char*>> dev_defaults[] = {
        {"--reload", {"Default: false", "Default for dev: true"}},
        {"--log-level", {"Default: info", "Default for dev: debug"}},
        {"--log-format", {"Default: json", "Default for dev: text"}},
    };
    for (const auto& [flag, change] : dev_defaults) {
      auto* option = command->get_option(flag);
      auto text = option->get_description();
      if (const auto at = text.find(change.first); at != std::string::npos) {
        text.replace(at, std::strlen(change.first), change.second);
        option->description(text);
      }
    }
  }
  auto strict = std::make_shared<bool>(false);
  command->add_flag("--strict", *strict,
                    "Refuse to start when the configuration has warnings, such as unknown keys "
                    "(also FLUXLIT_STRICT=1)");

  command->callback([given, strict, mode, &exit_status] {
    // Read (and hide from the app and from the unknown-variable check) what a worker inherits.
    const auto worker = take_worker_handoff();
    auto loaded = load_checked_settings(*given);
    if (strict_requested(*strict) && !loaded.warnings.empty()) {
      std::string message = "strict mode: the configuration has warnings:";
      for (std::size_t i = 0; i < loaded.warnings.size(); ++i) {
        const auto& code = i < loaded.warning_codes.size() ? loaded.warning_codes[i] : "W000";
        message += "\n  " + code + "  " + loaded.warnings[i];
      }
      message += "\nFix them, or start without --strict and FLUXLIT_STRICT.";
      throw config::config_error(message);
    }
    auto& values = loaded.values;
    const bool level_given = loaded.sources["log_level"].kind != config::source_kind::default_value;
    const bool format_given =
        loaded.sources["log_format"].kind != config::source_kind::default_value;
    const bool reload_given = loaded.sources["reload"].kind != config::source_kind::default_value;
    if (mode == serve_mode::dev) {
      if (!level_given) values.log_level = "debug";
      if (!format_given) values.log_format = "text";
      if (!reload_given) values.reload = true;
    }
    // load_checked_settings refused workers with reload given anywhere; dev turns reload on
    // by default.
    if (!worker && values.workers > 1 && values.reload) {
      throw config::config_error(
          "workers = " + std::to_string(values.workers) + " (set by " +
          loaded.sources["workers"].where +
          ") cannot be combined with fluxlit dev's reload: a reload restarts one process. Add "
          "--no-reload, or use `fluxlit run --workers " + std::to_string(values.workers) + "`");
    }
    observability::configure_logging(values.log_format == "text" ? observability::log_format::text
                                                                 : observability::log_format::json,
                                     parse_level(values.log_level), worker ? worker->index : 0);
    if (!worker && values.workers > 1) {
      exit_status = run_worker_parent(std::move(loaded));
      return;
    }
    serve_process process(std::move(loaded), mode, worker);
    exit_status = process.run();
  });
}

}  // namespace

void add_serve_commands(CLI::App& app, int& exit_status) {
  add_serve_command(app, exit_status, serve_mode::run);
  add_serve_command(app, exit_status, serve_mode::dev);
}

}  // namespace fluxlit::cli
