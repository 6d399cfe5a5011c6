// Defaults of the numeric limits and the table of every configuration key.
#include "fluxlit/config/settings.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include "config/value_text.hpp"

namespace fluxlit::config {

namespace {

constexpr std::uint64_t kib = 1024;
constexpr std::uint64_t mib = 1024 * kib;

constexpr std::uint64_t no_upper_limit = std::numeric_limits<std::uint64_t>::max();

// Durations stop at 24 hours: a timer that long is indistinguishable from no timer, and the cap
// keeps `now + duration` far from overflowing the clock's 64-bit tick count.
constexpr std::uint64_t max_duration_ms = 24 * 60 * 60 * 1000;
// The shortest send_timeout_ms and body_read_timeout_ms other than 0 (see optional_limit_key).
constexpr std::uint64_t min_client_limit_ms = 1000;

// Beast's HTTP parser takes its header limit as a 32-bit count.
constexpr std::uint64_t max_header_limit = std::numeric_limits<std::uint32_t>::max();

// Every idle connection to Streamlit uses one local loopback port, and there are 65535 ports.
constexpr std::uint64_t max_idle_connection_limit = 65535;
// Each worker contains an interpreter and the app (tens of megabytes), so more than a few hundred
// is a typo rather than a plan.
constexpr std::uint64_t max_workers = 512;

// The supervisor keeps the time of each crash within the window, so the count bounds that list.
constexpr std::uint64_t max_crash_loop_count = 1000;

// A threshold above this leaves a hung child taking traffic for hours at any useful interval.
constexpr std::uint64_t max_health_failure_threshold = 1000;

constexpr std::array<std::string_view, 7> log_levels = {"trace", "debug", "info",    "warning",
                                                        "warn",  "error", "critical"};
constexpr std::array<std::string_view, 2> log_formats = {"json", "text"};
constexpr std::array<std::string_view, 3> io_scheduling_modes = {"auto", "batch", "normal"};

struct key_names {
  std::string_view name;
  std::string_view env;
  std::string_view cli_flag;
  std::string_view description;
};

key_info make_key(const key_names& names, std::string_view type, std::string_view unit) {
  key_info key;
  key.name = names.name;
  key.env = names.env;
  key.cli_flag = names.cli_flag;
  key.type = type;
  key.unit = unit;
  key.description = names.description;
  return key;
}

key_info string_key(const key_names& names, std::string_view type, std::string settings::*field) {
  key_info key = make_key(names, type, "");
  key.assign = [field](settings& values, std::string_view text) { values.*field = text; };
  key.format = [field](const settings& values) { return values.*field; };
  return key;
}

key_info choice_key(const key_names& names, std::span<const std::string_view> choices,
                    std::string settings::*field) {
  key_info key = make_key(names, "string", "");
  key.assign = [field, choices](settings& values, std::string_view text) {
    std::string chosen = detail::parse_choice(text, choices);
    // "warn" is stored as "warning", so code downstream compares against one name per level.
    values.*field = (chosen == "warn") ? "warning" : std::move(chosen);
  };
  key.format = [field](const settings& values) { return values.*field; };
  return key;
}

key_info bool_key(const key_names& names, bool settings::*field) {
  key_info key = make_key(names, "bool", "");
  key.assign = [field](settings& values, std::string_view text) {
    values.*field = detail::parse_bool(text);
  };
  key.format = [field](const settings& values) {
    return std::string(values.*field ? "true" : "false");
  };
  return key;
}

key_info unsigned_key(const key_names& names, std::string_view unit, std::uint64_t minimum,
                      std::uint64_t maximum, std::uint64_t settings::*field) {
  key_info key = make_key(names, "integer", unit);
  key.minimum = minimum;
  key.maximum = maximum;
  key.assign = [field, minimum, maximum, unit](settings& values, std::string_view text) {
    values.*field = detail::parse_unsigned(text, minimum, maximum, unit);
  };
  key.format = [field](const settings& values) { return std::to_string(values.*field); };
  return key;
}

// A time limit that 0 turns off. Otherwise it is at least `minimum`: the check behind it runs a
// quarter of the limit apart, and on shorter limits clients whose acknowledgements the kernel
// delays would count as stalled.
key_info optional_limit_key(const key_names& names, std::uint64_t minimum, std::uint64_t maximum,
                            std::uint64_t settings::*field) {
  key_info key = unsigned_key(names, "ms", 0, maximum, field);
  key.assign = [field, minimum, maximum](settings& values, std::string_view text) {
    const auto expected = "expected 0 (no limit) or an integer from " + std::to_string(minimum) +
                          " to " + std::to_string(maximum) + " (milliseconds)";
    std::uint64_t value = 0;
    try {
      value = detail::parse_unsigned(text, 0, maximum, "ms");
    } catch (const std::invalid_argument&) {
      throw std::invalid_argument(expected);
    }
    if (value != 0 && value < minimum) throw std::invalid_argument(expected);
    values.*field = value;
  };
  return key;
}

key_info port_key(const key_names& names, std::uint16_t settings::*field) {
  key_info key = make_key(names, "port", "");
  key.minimum = 0;
  key.maximum = 65535;
  key.assign = [field](settings& values, std::string_view text) {
    values.*field = static_cast<std::uint16_t>(detail::parse_unsigned(text, 0, 65535, ""));
  };
  key.format = [field](const settings& values) { return std::to_string(values.*field); };
  return key;
}

key_info list_key(const key_names& names, std::vector<std::string> settings::*field) {
  key_info key = make_key(names, "list", "");
  key.assign = [field](settings& values, std::string_view text) {
    values.*field = detail::parse_list(text);
  };
  key.format = [field](const settings& values) { return detail::join_list(values.*field); };
  return key;
}

std::vector<key_info> build_keys() {
  using s = settings;
  std::vector<key_info> all;
  all.push_back(
      string_key({"target", "FLUXLIT_TARGET", "",
                  "Python app to serve, as module:attribute or path/to/file.py:attribute"},
                 "string", &s::target));
  all.push_back(string_key({"host", "FLUXLIT_HOST", "--host",
                            "IP address to listen on (0.0.0.0 or :: for every interface)"},
                           "string", &s::host));
  all.push_back(port_key(
      {"port", "FLUXLIT_PORT", "--port", "TCP port to listen on (0 picks a free port)"}, &s::port));
  all.push_back(string_key(
      {"api_prefix", "FLUXLIT_API_PREFIX", "--api-prefix",
       "URL path prefix whose requests go to the Python app, while every other path goes to "
       "Streamlit"},
      "string", &s::api_prefix));
  all.push_back(string_key(
      {"root_path", "FLUXLIT_ROOT_PATH", "--root-path",
       "Path prefix under which a reverse proxy publishes FluxLit (empty when served at /)"},
      "string", &s::root_path));
  all.push_back(
      choice_key({"log_level", "FLUXLIT_LOG_LEVEL", "--log-level",
                  "Lowest severity that is logged: trace, debug, info, warning, error or critical"},
                 log_levels, &s::log_level));
  all.push_back(choice_key({"log_format", "FLUXLIT_LOG_FORMAT", "--log-format",
                            "Log line format: json (one object per line) or text"},
                           log_formats, &s::log_format));
  all.push_back(string_key({"python", "FLUXLIT_PYTHON", "--python",
                            "Python interpreter of the environment that holds the app's packages "
                            "(empty: the active VIRTUAL_ENV, else /usr/bin/python3)"},
                           "path", &s::python));
  all.push_back(bool_key(
      {"no_ui", "FLUXLIT_NO_UI", "--no-ui", "Serve only the API and do not start Streamlit"},
      &s::no_ui));
  all.push_back(unsigned_key(
      {"workers", "FLUXLIT_WORKERS", "--workers",
       "Number of processes that serve the API, each with its own interpreter and lifespan, "
       "sharing the port and one Streamlit child"},
      "", 1, max_workers, &s::workers));
  all.push_back(choice_key(
      {"io_scheduling", "FLUXLIT_IO_SCHEDULING", "--io-scheduling",
       "Kernel scheduling policy of the I/O thread: auto, batch or normal. batch keeps its "
       "wake-ups from preempting the Python thread, normal lets them, and auto picks batch when "
       "the process may run on one CPU only"},
      io_scheduling_modes, &s::io_scheduling));
  all.push_back(bool_key(
      {"proxy_headers", "FLUXLIT_PROXY_HEADERS", "--proxy-headers",
       "Take the client address and scheme from X-Forwarded-* headers sent by peers listed in "
       "forwarded_allow_ips"},
      &s::proxy_headers));
  all.push_back(list_key(
      {"forwarded_allow_ips", "FLUXLIT_FORWARDED_ALLOW_IPS", "--forwarded-allow-ips",
       "Peers trusted to send forwarded headers: IP addresses, CIDR ranges, or * for any peer"},
      &s::forwarded_allow_ips));

  all.push_back(unsigned_key(
      {"max_request_body_bytes", "FLUXLIT_MAX_REQUEST_BODY_BYTES", "--max-request-body-bytes",
       "Maximum size of a request body (larger requests get 413)"},
      "bytes", 1, no_upper_limit, &s::max_request_body_bytes));
  all.push_back(unsigned_key(
      {"max_header_bytes", "FLUXLIT_MAX_HEADER_BYTES", "--max-header-bytes",
       "Maximum total size of request headers (larger headers get 431, and a request line "
       "longer than this gets 414). UI requests must also fit Streamlit's own limit of 64 KiB "
       "once the forwarding headers are added"},
      "bytes", 1, max_header_limit, &s::max_header_bytes));
  all.push_back(unsigned_key(
      {"header_read_timeout_ms", "FLUXLIT_HEADER_READ_TIMEOUT_MS", "--header-read-timeout-ms",
       "Time a client has to send the complete headers of a request"},
      "ms", 1, max_duration_ms, &s::header_read_timeout_ms));
  all.push_back(optional_limit_key(
      {"body_read_timeout_ms", "FLUXLIT_BODY_READ_TIMEOUT_MS", "--body-read-timeout-ms",
       "Time a client may send no bytes while a request body is read before it gets 408 (0: no "
       "limit, else at least 1000)"},
      min_client_limit_ms, max_duration_ms, &s::body_read_timeout_ms));
  all.push_back(unsigned_key(
      {"keep_alive_timeout_ms", "FLUXLIT_KEEP_ALIVE_TIMEOUT_MS", "--keep-alive-timeout-ms",
       "Time an idle keep-alive connection stays open waiting for the next request"},
      "ms", 1, max_duration_ms, &s::keep_alive_timeout_ms));
  all.push_back(optional_limit_key(
      {"send_timeout_ms", "FLUXLIT_SEND_TIMEOUT_MS", "--send-timeout-ms",
       "Time a client may take no bytes of a response that waits for it before the connection "
       "is closed (0: no limit, else at least 1000)"},
      min_client_limit_ms, max_duration_ms, &s::send_timeout_ms));
  all.push_back(unsigned_key(
      {"upstream_connect_timeout_ms", "FLUXLIT_UPSTREAM_CONNECT_TIMEOUT_MS",
       "--upstream-connect-timeout-ms", "Time allowed to connect to the Streamlit child"},
      "ms", 1, max_duration_ms, &s::upstream_connect_timeout_ms));
  all.push_back(
      unsigned_key({"upstream_response_timeout_ms", "FLUXLIT_UPSTREAM_RESPONSE_TIMEOUT_MS",
                    "--upstream-response-timeout-ms",
                    "Time Streamlit has to send the headers of a response, not counting the body"},
                   "ms", 1, max_duration_ms, &s::upstream_response_timeout_ms));
  all.push_back(
      unsigned_key({"upstream_max_idle_connections", "FLUXLIT_UPSTREAM_MAX_IDLE_CONNECTIONS",
                    "--upstream-max-idle-connections",
                    "Maximum number of idle keep-alive connections kept open to Streamlit"},
                   "", 0, max_idle_connection_limit, &s::upstream_max_idle_connections));
  all.push_back(unsigned_key(
      {"websocket_idle_timeout_ms", "FLUXLIT_WEBSOCKET_IDLE_TIMEOUT_MS",
       "--websocket-idle-timeout-ms",
       "Time a relayed Streamlit WebSocket may pass with no bytes in either direction before it "
       "is closed with 1001 (0: no limit)"},
      "ms", 0, max_duration_ms, &s::websocket_idle_timeout_ms));
  all.push_back(unsigned_key(
      {"websocket_max_lifetime_ms", "FLUXLIT_WEBSOCKET_MAX_LIFETIME_MS",
       "--websocket-max-lifetime-ms",
       "Time after which a relayed Streamlit WebSocket is closed with 1001, busy or not (0: no "
       "limit)"},
      "ms", 0, max_duration_ms, &s::websocket_max_lifetime_ms));
  all.push_back(
      unsigned_key({"asgi_send_high_water_bytes", "FLUXLIT_ASGI_SEND_HIGH_WATER_BYTES",
                    "--asgi-send-high-water-bytes",
                    "Response bytes the app may queue for a slow client before its send() waits"},
                   "bytes", 1, no_upper_limit, &s::asgi_send_high_water_bytes));
  all.push_back(unsigned_key(
      {"asgi_receive_high_water_bytes", "FLUXLIT_ASGI_RECEIVE_HIGH_WATER_BYTES",
       "--asgi-receive-high-water-bytes",
       "Request body bytes read ahead of the app's receive() before reading from the client "
       "pauses"},
      "bytes", 1, no_upper_limit, &s::asgi_receive_high_water_bytes));
  all.push_back(unsigned_key(
      {"asgi_websocket_max_message_bytes", "FLUXLIT_ASGI_WEBSOCKET_MAX_MESSAGE_BYTES",
       "--asgi-websocket-max-message-bytes",
       "Maximum size of one WebSocket message a client sends to the app (larger ones close the "
       "connection with 1009)"},
      "bytes", 1, no_upper_limit, &s::asgi_websocket_max_message_bytes));
  all.push_back(unsigned_key(
      {"readiness_max_loop_lag_ms", "FLUXLIT_READINESS_MAX_LOOP_LAG_MS",
       "--readiness-max-loop-lag-ms",
       "Delay of the Python event loop above which the readiness endpoint reports not ready"},
      "ms", 1, max_duration_ms, &s::readiness_max_loop_lag_ms));
  all.push_back(
      unsigned_key({"streamlit_start_timeout_ms", "FLUXLIT_STREAMLIT_START_TIMEOUT_MS",
                    "--streamlit-start-timeout-ms",
                    "Time Streamlit has to pass its first health check after it is started"},
                   "ms", 1, max_duration_ms, &s::streamlit_start_timeout_ms));
  all.push_back(unsigned_key(
      {"streamlit_stop_timeout_ms", "FLUXLIT_STREAMLIT_STOP_TIMEOUT_MS",
       "--streamlit-stop-timeout-ms",
       "Time Streamlit has to exit after SIGTERM before it gets SIGKILL (0 sends SIGKILL at once)"},
      "ms", 0, max_duration_ms, &s::streamlit_stop_timeout_ms));
  all.push_back(unsigned_key(
      {"streamlit_restart_initial_delay_ms", "FLUXLIT_STREAMLIT_RESTART_INITIAL_DELAY_MS",
       "--streamlit-restart-initial-delay-ms",
       "Wait before restarting Streamlit after its first crash; the wait doubles with each "
       "further crash"},
      "ms", 1, max_duration_ms, &s::streamlit_restart_initial_delay_ms));
  all.push_back(unsigned_key(
      {"streamlit_restart_max_delay_ms", "FLUXLIT_STREAMLIT_RESTART_MAX_DELAY_MS",
       "--streamlit-restart-max-delay-ms",
       "Upper bound of the doubling restart wait, and the wait between restarts in a crash loop"},
      "ms", 1, max_duration_ms, &s::streamlit_restart_max_delay_ms));
  all.push_back(unsigned_key(
      {"streamlit_crash_loop_count", "FLUXLIT_STREAMLIT_CRASH_LOOP_COUNT",
       "--streamlit-crash-loop-count",
       "Number of Streamlit crashes within streamlit_crash_loop_window_ms that counts as a crash "
       "loop"},
      "", 1, max_crash_loop_count, &s::streamlit_crash_loop_count));
  all.push_back(unsigned_key(
      {"streamlit_crash_loop_window_ms", "FLUXLIT_STREAMLIT_CRASH_LOOP_WINDOW_MS",
       "--streamlit-crash-loop-window-ms",
       "Time window in which streamlit_crash_loop_count crashes count as a crash loop"},
      "ms", 1, max_duration_ms, &s::streamlit_crash_loop_window_ms));
  all.push_back(
      unsigned_key({"streamlit_health_interval_ms", "FLUXLIT_STREAMLIT_HEALTH_INTERVAL_MS",
                    "--streamlit-health-interval-ms",
                    "Wait between two health checks of Streamlit once it is ready"},
                   "ms", 1, max_duration_ms, &s::streamlit_health_interval_ms));
  all.push_back(unsigned_key(
      {"streamlit_health_timeout_ms", "FLUXLIT_STREAMLIT_HEALTH_TIMEOUT_MS",
       "--streamlit-health-timeout-ms",
       "Time one health check of Streamlit has to return its status line before it counts as "
       "failed"},
      "ms", 1, max_duration_ms, &s::streamlit_health_timeout_ms));
  all.push_back(unsigned_key(
      {"streamlit_health_failure_threshold", "FLUXLIT_STREAMLIT_HEALTH_FAILURE_THRESHOLD",
       "--streamlit-health-failure-threshold",
       "Number of failed health checks in a row after which a ready Streamlit is marked not "
       "ready and restarted"},
      "", 1, max_health_failure_threshold, &s::streamlit_health_failure_threshold));
  all.push_back(
      unsigned_key({"shutdown_grace_ms", "FLUXLIT_SHUTDOWN_GRACE_MS", "--shutdown-grace-ms",
                    "Time in-flight requests have to finish after a shutdown signal"},
                   "ms", 0, max_duration_ms, &s::shutdown_grace_ms));
  all.push_back(
      string_key({"pidfile", "FLUXLIT_PIDFILE", "--pidfile",
                  "File to write the server's process id to, for `fluxlit shutdown` (empty: none)"},
                 "path", &s::pidfile));
  all.push_back(bool_key(
      {"reload", "FLUXLIT_RELOAD", "--reload", "Re-import the app in the same process when a watched file changes"},
      &s::reload));
  all.push_back(
      list_key({"reload_dirs", "FLUXLIT_RELOAD_DIRS", "--reload-dirs",
                "Directories watched for changes, including their subdirectories (empty: the app "
                "directory)"},
               &s::reload_dirs));
  all.push_back(list_key(
      {"reload_includes", "FLUXLIT_RELOAD_INCLUDES", "--reload-includes",
       "Glob patterns of files whose changes cause a reload, matched against the file name and "
       "the path relative to the watched directory"},
      &s::reload_includes));
  all.push_back(
      list_key({"reload_excludes", "FLUXLIT_RELOAD_EXCLUDES", "--reload-excludes",
                "Glob patterns of files and directories whose changes never cause a reload"},
               &s::reload_excludes));
  all.push_back(
      unsigned_key({"reload_debounce_ms", "FLUXLIT_RELOAD_DEBOUNCE_MS", "--reload-debounce-ms",
                    "Quiet time after the last file change before a reload starts"},
                   "ms", 1, max_duration_ms, &s::reload_debounce_ms));
  return all;
}

}  // namespace

settings::settings() {
  // Above Streamlit's default upload limit (server.maxUploadSize = 200 MB) plus multipart
  // framing, so an oversized upload gets Streamlit's own 413 and message rather than ours.
  max_request_body_bytes = 256 * mib;
  // Eight times Beast's 8 KiB default: room for large cookies and bearer tokens while one
  // connection's header buffer stays small.
  max_header_bytes = 64 * kib;
  // Bounds clients that open a connection and trickle headers. A real client on a slow mobile
  // link sends a few kilobytes of headers well within 10 s.
  header_read_timeout_ms = 10'000;
  // The default of nginx's client_body_timeout. The time counts from each read of the body, so a
  // slow upload that keeps sending is never cut off, and one that sends nothing for a minute has
  // stalled.
  body_read_timeout_ms = 60'000;
  // uvicorn's default (--timeout-keep-alive 5), so FastAPI users see the behaviour they know.
  keep_alive_timeout_ms = 5'000;
  // The default of nginx's send_timeout. A client that takes no bytes for a minute has stopped
  // reading, while one on a slow link takes some within seconds.
  send_timeout_ms = 60'000;
  // Streamlit listens on loopback, where a connect either succeeds at once or the child is not
  // listening. The 5 s only cover a machine under heavy load.
  upstream_connect_timeout_ms = 5'000;
  // Streamlit's HTTP responses are static files and small endpoints, so a minute without
  // response headers means it is stuck. WebSocket traffic is not an HTTP response and is exempt.
  upstream_response_timeout_ms = 60'000;
  // A browser opens up to 6 connections per host for assets. With 32, a few tabs can load at
  // once without reconnecting, and the idle sockets kept open stay few.
  upstream_max_idle_connections = 32;
  // A Streamlit session lives as long as its browser tab, and the WebSocket carries every rerun,
  // so no idle or lifetime cap applies unless an operator sets one (for example to rebalance
  // long sessions across replicas).
  websocket_idle_timeout_ms = 0;
  websocket_max_lifetime_ms = 0;
  // Lets typical JSON and small file responses be queued whole without a wait, while a slow
  // client costs at most 1 MiB of memory per request.
  asgi_send_high_water_bytes = 1 * mib;
  // The same bound for request bodies: reading pauses until the app has consumed 1 MiB. The
  // mark is checked before each piece of body is read, so one piece (up to 64 KiB) may pass it.
  asgi_receive_high_water_bytes = 1 * mib;
  // The same bound uvicorn applies by default, because a message is held whole before the app
  // receives it.
  asgi_websocket_max_message_bytes = 16 * mib;
  // A loop that has not run a callback for a second is visibly slow to users, and the margin
  // stays above typical garbage-collection pauses.
  readiness_max_loop_lag_ms = 1'000;
  // Starting Streamlit imports the user's script, which may load large libraries or models on a
  // cold container, and a minute covers that.
  streamlit_start_timeout_ms = 60'000;
  // An estimate: time for Streamlit to close its sessions after SIGTERM, short enough that a
  // stuck child does not hold up a restart or a shutdown for long.
  streamlit_stop_timeout_ms = 5'000;
  // One crash of a healthy server costs half a second of UI downtime, and the doubling reaches
  // the 10 s maximum after five crashes in a row.
  streamlit_restart_initial_delay_ms = 500;
  // A child that cannot start (a broken app, a missing package) is retried six times a minute,
  // which keeps its log output and CPU use small, and a fixed app is back within 10 s.
  streamlit_restart_max_delay_ms = 10'000;
  // With the default delays, five crashes take about 7.5 s of waiting: one crash is bad luck,
  // but five in a row within a minute means the child cannot run as it is.
  streamlit_crash_loop_count = 5;
  streamlit_crash_loop_window_ms = 60'000;
  // An estimate: one loopback request a second costs Streamlit nothing measurable. With a 2 s
  // timeout and three failures in a row, a hung child is restarted within about 9 s. One slow
  // response from a busy child (a long garbage collection, a script holding the GIL in C code)
  // does not restart it.
  streamlit_health_interval_ms = 1'000;
  streamlit_health_timeout_ms = 2'000;
  streamlit_health_failure_threshold = 3;
  // Long enough to group the steps of an editor's save (write a temporary file, rename it,
  // change its mode) into one reload, and short enough to feel immediate.
  reload_debounce_ms = 200;
  // The drain, then the app's lifespan shutdown and streamlit_stop_timeout_ms (5 s), fit inside
  // Kubernetes' default 30 s terminationGracePeriodSeconds before it sends SIGKILL.
  shutdown_grace_ms = 20'000;
  // One process with its I/O thread and its Python thread, as uvicorn runs by default. More
  // workers pay off only with more cores than the API's Python code keeps busy.
  workers = 1;
}

// Tuning knobs whose names or units may still change with the bridge, the supervisor and the
// reloader they belong to.
constexpr std::array<std::string_view, 16> experimental_keys = {
    "io_scheduling",
    "upstream_max_idle_connections",
    "websocket_idle_timeout_ms",
    "websocket_max_lifetime_ms",
    "asgi_send_high_water_bytes",
    "asgi_receive_high_water_bytes",
    "asgi_websocket_max_message_bytes",
    "readiness_max_loop_lag_ms",
    "streamlit_restart_initial_delay_ms",
    "streamlit_restart_max_delay_ms",
    "streamlit_crash_loop_count",
    "streamlit_crash_loop_window_ms",
    "streamlit_health_interval_ms",
    "streamlit_health_timeout_ms",
    "streamlit_health_failure_threshold",
    "reload_debounce_ms",
};

std::vector<key_info> build_keys_with_stability() {
  std::vector<key_info> all = build_keys();
  for (key_info& key : all) {
    if (std::find(experimental_keys.begin(), experimental_keys.end(), key.name) !=
        experimental_keys.end()) {
      key.stability = "experimental";
    }
  }
  return all;
}

std::span<const key_info> keys() {
  static const std::vector<key_info> all = build_keys_with_stability();
  return all;
}

const key_info* find_key(std::string_view name) {
  for (const key_info& key : keys()) {
    if (key.name == name) {
      return &key;
    }
  }
  return nullptr;
}

}  // namespace fluxlit::config
