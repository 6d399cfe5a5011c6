#include "cli/serve_support.hpp"

#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "cli/command_support.hpp"
#include "fluxlit/observability/log.hpp"
#include "supervisor/child_process.hpp"

namespace fluxlit::cli {

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

// Debian's interpreter rejects a plain pip install (PEP 668), so the hint for it uses a virtual
// environment with access to Debian's packages.
install_steps pip_install_steps(const std::string& python, const std::string& requirement) {
  if (python.rfind("/usr/bin/", 0) == 0) {
    return {python + " -m venv --system-site-packages .venv && .venv/bin/pip install '" +
                requirement + "'",
            "--python .venv/bin/python"};
  }
  return {python + " -m pip install '" + requirement + "'", {}};
}

std::string pip_install_hint(const std::string& python, const std::string& requirement) {
  auto steps = pip_install_steps(python, requirement);
  if (steps.start_option.empty()) return steps.command;
  return steps.command + ", then start FluxLit with " + steps.start_option;
}

namespace {

std::string streamlit_requirement() {
  return "streamlit>=" + std::string(streamlit_minimum_version);
}

}  // namespace

std::string streamlit_install_hint(const std::string& python) {
  return pip_install_hint(python, streamlit_requirement());
}

std::string streamlit_missing_page(const asgi::interpreter_info& info) {
  const auto python = html_escape(info.executable);
  const auto steps = pip_install_steps(info.executable, streamlit_requirement());
  return "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Streamlit is not "
         "installed</title></head><body>\n<h1>Streamlit is not installed</h1>\n<p>FluxLit serves "
         "the API, but the UI needs the <code>streamlit</code> package in the Python interpreter "
         "<code>" +
         python + "</code> (Python " + html_escape(info.version) +
         ").</p>\n"
         "<p>Install it with <code>" +
         html_escape(steps.command) + "</code>" +
         (steps.start_option.empty()
              ? std::string()
              : ", then start FluxLit with <code>" + html_escape(steps.start_option) + "</code>") +
         ", or activate a virtual environment that has it and start FluxLit again. Run "
         "with <code>--no-ui</code> to serve the API alone.</p>\n</body></html>\n";
}

std::string display_host(const std::string& host) {
  if (host == "0.0.0.0") return "127.0.0.1";
  if (host == "::") return "[::1]";
  if (host.find(':') != std::string::npos) return "[" + host + "]";
  return host;
}

bool log_ui_unavailable(const config::settings& settings,
                        const asgi::interpreter_info& interpreter) {
  auto log = observability::logger("fluxlit");
  if (settings.no_ui) {
    log->info("UI disabled (--no-ui); serving the API only");
    return true;
  }
  if (!interpreter.has_streamlit) {
    log->warn(
        "Streamlit is not installed for {}; the API is served, and UI paths respond with 503 "
        "until it is installed: {}",
        interpreter.executable, streamlit_install_hint(interpreter.executable));
    return true;
  }
  return false;
}

void run_io_loop(boost::asio::io_context& io) {
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& error) {
      observability::logger("fluxlit")->error(
          "unexpected exception in an I/O handler (a bug; please report it): {}", error.what());
    }
  }
}

io_policy apply_io_scheduling(const std::string& mode) {
  // A policy that the process was started under (chrt -b, chrt -i, a real-time one) stays.
  const int started_with = sched_getscheduler(0);
  if (started_with != SCHED_OTHER) return io_policy::inherited;
  bool batch = mode == "batch";
  if (mode == "auto") {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    batch = sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) == 1;
  }
  if (!batch) return io_policy::normal;
  const sched_param priority{};
  if (const int rc = pthread_setschedparam(pthread_self(), SCHED_BATCH, &priority); rc != 0) {
    observability::logger("fluxlit")->warn(
        "io_scheduling = {}: switching the I/O thread to SCHED_BATCH failed ({}), so it keeps the "
        "normal policy",
        mode, std::strerror(rc));
    return io_policy::normal;
  }
  supervisor::detail::set_child_scheduling_policy(SCHED_OTHER);
  return io_policy::batch;
}

std::string no_ui_page(const config::settings& settings) {
  return "<!doctype html>\n<html><body><h1>No UI</h1><p>This FluxLit server runs with "
         "<code>--no-ui</code>: only the API under <code>" +
         html_escape(settings.api_prefix) + "</code> is served.</p></body></html>\n";
}

supervisor::streamlit_options streamlit_start_options(const config::settings& settings,
                                                      const config::app_target& target,
                                                      const asgi::interpreter_info& interpreter,
                                                      std::uint16_t public_port) {
  const auto package_directory = asgi::python_package_directory();
  supervisor::streamlit_options options;
  options.python = interpreter.executable;
  options.entry_script = package_directory + "/fluxlit/_streamlit_entry.py";
  options.base_url_path = settings.root_path;
  options.working_directory = target.app_directory;
  options.start_timeout = std::chrono::milliseconds(settings.streamlit_start_timeout_ms);
  options.stop_timeout = std::chrono::milliseconds(settings.streamlit_stop_timeout_ms);
  options.restart_initial_delay =
      std::chrono::milliseconds(settings.streamlit_restart_initial_delay_ms);
  options.restart_max_delay = std::chrono::milliseconds(settings.streamlit_restart_max_delay_ms);
  options.crash_loop_count = settings.streamlit_crash_loop_count;
  options.crash_loop_window = std::chrono::milliseconds(settings.streamlit_crash_loop_window_ms);
  options.health_interval = std::chrono::milliseconds(settings.streamlit_health_interval_ms);
  options.health_timeout = std::chrono::milliseconds(settings.streamlit_health_timeout_ms);
  options.health_failure_threshold = settings.streamlit_health_failure_threshold;

  const bool wildcard = settings.host == "0.0.0.0" || settings.host == "::";
  const auto api_host = wildcard ? std::string("127.0.0.1") : display_host(settings.host);
  const std::string python_path = asgi::child_python_path();
  options.environment = {
      {"FLUXLIT_TARGET", python_target_text(target)},
      {"FLUXLIT_APP_DIR", target.app_directory},
      {"FLUXLIT_API_PREFIX", settings.api_prefix},
      {"FLUXLIT_ROOT_PATH", settings.root_path},
      {"FLUXLIT_API_BASE_URL",
       "http://" + api_host + ":" + std::to_string(public_port) + settings.api_prefix},
      {"PYTHONPATH", python_path},
  };
  return options;
}

}  // namespace fluxlit::cli
