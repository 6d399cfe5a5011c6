// `fluxlit run` and `fluxlit dev`: resolve the settings, start the app in the embedded
// interpreter, listen, start Streamlit, and serve until a signal requests a stop.
#include <fmt/ranges.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include "cli/command_support.hpp"
#include "cli/commands.hpp"
#include "cli/pidfile.hpp"
#include "cli/setting_flags.hpp"
#include "fluxlit/asgi/bridge.hpp"
#include "fluxlit/config/settings.hpp"
#include "fluxlit/config/target.hpp"
#include "fluxlit/gateway/server.hpp"
#include "fluxlit/observability/log.hpp"
#include "fluxlit/observability/metrics.hpp"
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

std::string html_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Returns the commands that install Streamlit for `python`. Debian's interpreter rejects a
// plain pip install (PEP 668), so the hint uses a virtual environment with Debian's packages.
std::string streamlit_install_hint(const std::string& python) {
  if (python.rfind("/usr/bin/", 0) == 0) {
    return python +
           " -m venv --system-site-packages .venv && .venv/bin/pip install streamlit, "
           "then start FluxLit with --python .venv/bin/python";
  }
  return python + " -m pip install streamlit";
}

std::string streamlit_missing_page(const asgi::interpreter_info& info) {
  const auto python = html_escape(info.executable);
  return "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Streamlit is not "
         "installed</title></head><body>\n<h1>Streamlit is not installed</h1>\n<p>FluxLit serves "
         "the API, but the UI needs the <code>streamlit</code> package in the Python interpreter "
         "<code>" +
         python + "</code> (Python " + html_escape(info.version) +
         ").</p>\n"
         "<p>Install it with <code>" +
         html_escape(streamlit_install_hint(info.executable)) +
         "</code>, or activate a virtual environment that has it and start FluxLit again. Run "
         "with <code>--no-ui</code> to serve the API alone.</p>\n</body></html>\n";
}

std::string display_host(const std::string& host) {
  if (host == "0.0.0.0") return "127.0.0.1";
  if (host == "::") return "[::1]";
  if (host.find(':') != std::string::npos) return "[" + host + "]";
  return host;
}

// Everything one serving process owns, in the order it is built and torn down.
class serve_process {
 public:
  serve_process(config::loaded_settings loaded, serve_mode mode)
      : loaded_(std::move(loaded)), settings_(loaded_.values), mode_(mode) {}

  int run();

 private:
  void start_streamlit(std::uint16_t port);
  void start_reloader();
  void on_signal(int signal_number);
  void drain_step();
  void finish_shutdown();

  config::loaded_settings loaded_;
  const config::settings& settings_;
  serve_mode mode_;

  asio::io_context io_{1};
  asgi::bridge bridge_;
  observability::metrics metrics_;
  std::unique_ptr<proxy::upstream_pool> upstreams_;
  std::unique_ptr<supervisor::streamlit_supervisor> streamlit_;
  std::unique_ptr<gateway::gateway_context> context_;
  std::unique_ptr<gateway::server> server_;
  std::unique_ptr<supervisor::file_watcher> watcher_;
  std::unique_ptr<pid_file> pid_file_;
  asio::signal_set signals_{io_, SIGINT, SIGTERM};
  asio::steady_timer drain_timer_{io_};
  std::chrono::steady_clock::time_point drain_deadline_;
  std::thread lifespan_shutdown_;
  config::app_target target_;
  asgi::interpreter_info interpreter_;
  bool stopping_ = false;
  int exit_status_ = 0;
};

int serve_process::run() {
  auto log = observability::logger("fluxlit");
  for (const auto& warning : loaded_.warnings) log->warn("{}", warning);
  if (!settings_.pidfile.empty()) pid_file_ = std::make_unique<pid_file>(settings_.pidfile);

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

  server_ = std::make_unique<gateway::server>(io_, *context_);
  const auto bound = server_->listen(settings_.host, settings_.port);

  // The port is bound first, so a port in use fails before the app is imported. Connections
  // wait in the backlog until the I/O loop runs.
  asgi::bridge_options options;
  options.interpreter = interpreter_;
  options.app_directory = target_.app_directory;
  options.target = python_target_text(target_);
  options.log_level = settings_.log_level;
  bridge_.start(options);
  log->info("app {} started in the embedded interpreter", settings_.target);

  const auto base = "http://" + display_host(settings_.host) + ":" + std::to_string(bound.port());
  std::printf("fluxlit listening on %s\n", base.c_str());
  if (mode_ == serve_mode::dev) {
    const auto public_root = base + settings_.root_path;
    std::printf("\n  FluxLit dev server\n");
    if (!settings_.no_ui) std::printf("    UI:   %s/\n", public_root.c_str());
    std::printf("    API:  %s%s\n    Docs: %s%s/docs\n\n", public_root.c_str(),
                settings_.api_prefix.c_str(), public_root.c_str(), settings_.api_prefix.c_str());
  }
  std::fflush(stdout);

  start_streamlit(bound.port());
  start_reloader();
  signals_.async_wait([this](boost::system::error_code error, int number) {
    if (!error) on_signal(number);
  });

  // No exception should leave an I/O handler. If a bug lets one out, log it and keep serving,
  // because stopping would drop every connection and the Streamlit child with it.
  for (;;) {
    try {
      io_.run();
      break;
    } catch (const std::exception& error) {
      log->error("unexpected exception in an I/O handler (a bug; please report it): {}",
                 error.what());
    }
  }
  if (lifespan_shutdown_.joinable()) lifespan_shutdown_.join();
  log->info("stopped");
  return exit_status_;
}

void serve_process::start_streamlit(std::uint16_t port) {
  auto log = observability::logger("fluxlit");
  if (settings_.no_ui) {
    context_->ui_unavailable_status = 404;
    context_->ui_unavailable_page =
        "<!doctype html>\n<html><body><h1>No UI</h1><p>This FluxLit server runs with "
        "<code>--no-ui</code>: only the API under <code>" +
        html_escape(settings_.api_prefix) + "</code> is served.</p></body></html>\n";
    log->info("UI disabled (--no-ui); serving the API only");
    return;
  }
  if (!interpreter_.has_streamlit) {
    context_->ui_unavailable_page = streamlit_missing_page(interpreter_);
    log->warn(
        "Streamlit is not installed for {}; the API is served, and UI paths respond with 503 "
        "until it is installed: {}",
        interpreter_.executable, streamlit_install_hint(interpreter_.executable));
    return;
  }

  const auto package_directory = asgi::python_package_directory();
  supervisor::streamlit_options options;
  options.python = interpreter_.executable;
  options.entry_script = package_directory + "/fluxlit/_streamlit_entry.py";
  options.base_url_path = settings_.root_path;
  options.working_directory = target_.app_directory;
  options.start_timeout = std::chrono::milliseconds(settings_.streamlit_start_timeout_ms);
  options.stop_timeout = std::chrono::milliseconds(settings_.streamlit_stop_timeout_ms);
  options.restart_initial_delay =
      std::chrono::milliseconds(settings_.streamlit_restart_initial_delay_ms);
  options.restart_max_delay = std::chrono::milliseconds(settings_.streamlit_restart_max_delay_ms);
  options.crash_loop_count = settings_.streamlit_crash_loop_count;
  options.crash_loop_window = std::chrono::milliseconds(settings_.streamlit_crash_loop_window_ms);

  const bool wildcard = settings_.host == "0.0.0.0" || settings_.host == "::";
  const auto api_host = wildcard ? std::string("127.0.0.1") : display_host(settings_.host);
  std::string python_path = package_directory;
  if (const char* existing = std::getenv("PYTHONPATH"); existing && *existing) {
    python_path += ":" + std::string(existing);
  }
  options.environment = {
      {"FLUXLIT_TARGET", python_target_text(target_)},
      {"FLUXLIT_APP_DIR", target_.app_directory},
      {"FLUXLIT_API_PREFIX", settings_.api_prefix},
      {"FLUXLIT_ROOT_PATH", settings_.root_path},
      {"FLUXLIT_API_BASE_URL",
       "http://" + api_host + ":" + std::to_string(port) + settings_.api_prefix},
      {"PYTHONPATH", python_path},
  };
  streamlit_ = std::make_unique<supervisor::streamlit_supervisor>(io_.get_executor(), options);
  context_->streamlit = streamlit_.get();
  streamlit_->start();
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
  if (stopping_) {
    // A second signal: stop now, but still take the Streamlit process group down.
    log->warn("second signal ({}): stopping at once", signal_number);
    if (streamlit_) streamlit_->kill_now();
    pid_file_.reset();  // std::_Exit skips destructors
    spdlog::shutdown();
    std::_Exit(128 + signal_number);
  }
  stopping_ = true;
  if (watcher_) watcher_->stop();
  log->info("signal {} received: draining for up to {} ms (shutdown_grace_ms)", signal_number,
            settings_.shutdown_grace_ms);
  context_->draining = true;
  server_->stop_accepting();
  // WebSockets and event streams count as busy; they are asked to end cleanly right away.
  server_->begin_shutdown();
  server_->close_idle_connections();
  drain_deadline_ =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(settings_.shutdown_grace_ms);
  signals_.async_wait([this](boost::system::error_code error, int number) {
    if (!error) on_signal(number);
  });
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
    observability::configure_logging(values.log_format == "text" ? observability::log_format::text
                                                                 : observability::log_format::json,
                                     parse_level(values.log_level));
    serve_process process(std::move(loaded), mode);
    exit_status = process.run();
  });
}

}  // namespace

void add_serve_commands(CLI::App& app, int& exit_status) {
  add_serve_command(app, exit_status, serve_mode::run);
  add_serve_command(app, exit_status, serve_mode::dev);
}

}  // namespace fluxlit::cli
