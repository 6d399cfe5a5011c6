#include "gateway/connection.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/container/small_vector.hpp>
#include <cctype>
#include <cerrno>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "fluxlit/asgi/bridge.hpp"
#include "fluxlit/gateway/http_text.hpp"
#include "fluxlit/observability/log.hpp"
#include "fluxlit/observability/metrics.hpp"
#include "fluxlit/proxy/byte_chunk.hpp"
#include "fluxlit/supervisor/ui_upstream.hpp"
#include "gateway/response_framer.hpp"

namespace fluxlit::gateway {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace std::chrono_literals;

namespace {

constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

// Request body bytes read per step before they are handed to the app.
constexpr std::size_t asgi_body_chunk_bytes = proxy::byte_chunk::recycled_size;

// After the body, the connection keeps one read pending to notice a client that goes away.
// Pipelined requests read meanwhile wait in the buffer; past this many bytes it stops reading.
constexpr std::size_t max_pipelined_bytes = 64 * 1024;

// A completion condition for asio::async_write that, unlike asio::transfer_all, does not split
// the output into writes of at most 64 KiB, so a response's head and body go out in one sendmsg
// when the socket takes them.
std::size_t write_without_cap(const boost::system::error_code& error, std::size_t) {
  return error ? 0 : std::numeric_limits<std::size_t>::max();
}

// Returns the most a connection's read buffer holds: a request head, the bytes that one read
// brings in after it, and a chunk-size line or a trailer section. Beast's parser keeps such a
// line whole in the buffer and sets no limit on it, so without this cap a client could grow
// the buffer without bound. A longer line fails the request with a 400 (bad_request_body).
std::size_t read_buffer_limit(const config::settings& settings) {
  constexpr std::size_t framing_room = 256 * 1024;
  return static_cast<std::size_t>(settings.max_header_bytes) + framing_room;
}

// Streamlit takes a few seconds to start; browsers retry a 503 with this delay.
constexpr std::string_view ui_retry_after_seconds = "2";

bool is_quiet_close(const boost::system::error_code& error) {
  return error == http::error::end_of_stream || error == asio::error::eof ||
         error == asio::error::connection_reset || error == asio::error::operation_aborted ||
         error == asio::error::broken_pipe || error == beast::error::timeout;
}

std::string lower_ascii(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string json_reply(int status, std::string_view reason, std::string_view detail = {}) {
  nlohmann::json body = {{"status", status}, {"reason", reason}};
  if (!detail.empty()) body["detail"] = detail;
  return body.dump() + "\n";
}

// Names a size limit for the client, with its value: "max_header_bytes (65536 bytes)".
std::string limit_detail(std::string_view setting, std::uint64_t bytes) {
  return std::string(setting) + " (" + std::to_string(bytes) + " bytes)";
}

// Tells the operator how to raise a size limit, by flag, variable and configuration key.
std::string raise_hint(std::string_view setting) {
  const auto* key = config::find_key(setting);
  return "raise it with " + std::string(key->cli_flag) + ", " + std::string(key->env) + " or " +
         std::string(setting) + " in fluxlit.toml if clients need more";
}

// The detail of a 408 for a request body that stalled, for the client.
std::string body_timeout_detail(const config::settings& settings) {
  return "no request body bytes arrived within body_read_timeout_ms (" +
         std::to_string(settings.body_read_timeout_ms) + " ms)";
}

// With the UI on, raising max_header_bytes helps only API routes: Streamlit's own server
// closes the connection on a request head over 65536 bytes.
std::string_view ui_header_note(const config::settings& settings) {
  if (settings.no_ui) return {};
  return " (API routes only: UI requests stay within Streamlit's limit of 65536 bytes)";
}

// Logs a request that broke the size limit `setting`, with how to raise it and `note`, and
// returns the JSON reply that names the limit for the client. `what` names the part and the
// comparison: "request header larger".
std::string over_limit(std::string_view tag, int status, std::string_view reason,
                       std::string_view what, std::string_view setting, std::uint64_t bytes,
                       std::string_view note = {}) {
  observability::logger("fluxlit")->warn("{} {} than {} ({} bytes); answering {}; {}{}", tag, what,
                                         setting, bytes, status, raise_hint(setting), note);
  return json_reply(status, reason, std::string(what) + " than " + limit_detail(setting, bytes));
}

// True when a head that broke `max_header_bytes` did so within its request line. Beast sets
// the target once it has parsed the line, and until then the unparsed head is in `buffer`.
// RFC 9110 section 15.5.15 assigns 414 to a target that is too long.
bool request_line_too_long(const proxy::request_parser& parser, const beast::flat_buffer& buffer,
                           std::uint64_t max_header_bytes) {
  if (!parser.get().target().empty()) return false;
  const auto bytes = buffer.data();
  const std::string_view head(static_cast<const char*>(bytes.data()), bytes.size());
  const auto line_end = head.find('\n');
  return line_end == std::string_view::npos || line_end >= max_header_bytes;
}

// Ends an exchange's response when it goes out of scope, unless serve_api ended it already.
struct response_end_guard {
  asgi::http_exchange& exchange;
  bool ended = false;
  ~response_end_guard() {
    if (!ended) exchange.io_response_finished();
  }
};

struct framing_error {
  int status;
  const char* reason;
};

// Checks what RFC 9112 requires of a request head beyond what the parser checks: exactly one
// Host in HTTP/1.1 (section 3.2), and no transfer coding other than chunked, which the
// gateway cannot decode (section 6.1: 501).
std::optional<framing_error> framing_problem(const http::request<http::buffer_body>& message) {
  std::size_t hosts = 0;
  for (const auto& field : message.base()) {
    if (field.name() == http::field::host) ++hosts;
    if (field.name() == http::field::transfer_encoding && !iequals(field.value(), "chunked")) {
      return framing_error{501, "unsupported_transfer_coding"};
    }
  }
  if (hosts > 1) return framing_error{400, "duplicate_host"};
  if (hosts == 0 && message.version() >= 11) return framing_error{400, "missing_host"};
  return std::nullopt;
}

}  // namespace

void connection_wakeups::request(std::weak_ptr<connection> target) {
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    first = pending_.empty();
    pending_.push_back(std::move(target));
  }
  if (first) asio::post(executor_, [self = shared_from_this()] { self->run(); });
}

void connection_wakeups::run() {
  {
    std::lock_guard lock(mutex_);
    running_.swap(pending_);
  }
  for (const auto& weak : running_) {
    if (auto target = weak.lock()) target->wake_for_exchange();
  }
  running_.clear();
}

connection::connection(asio::ip::tcp::socket socket, gateway_context& context,
                       std::shared_ptr<connection_wakeups> wakeups, std::uint64_t id,
                       closed_callback on_closed)
    : stream_(std::move(socket)),
      buffer_(read_buffer_limit(context.settings)),
      context_(context),
      wakeups_(std::move(wakeups)),
      id_(id),
      tag_("[C" + std::to_string(id) + "]"),
      on_closed_(std::move(on_closed)),
      response_timer_(stream_.get_executor()),
      body_timer_(stream_.get_executor()),
      pump_timer_(stream_.get_executor()),
      read_deadline_(stream_.get_executor()) {
  boost::system::error_code ignored;
  peer_ = stream_.socket().remote_endpoint(ignored);
  local_ = stream_.socket().local_endpoint(ignored);
  peer_host_ = address_text(peer_.address());
  local_host_ = address_text(local_.address());
  stream_.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
}

void connection::start() {
  asio::co_spawn(
      stream_.get_executor(), [self = shared_from_this()] { return self->run(); }, asio::detached);
}

void connection::close() {
  boost::system::error_code ignored;
  std::lock_guard lock(socket_mutex_);
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  stream_.close();
  socket_closed_ = true;
}

std::size_t connection::write_now(std::span<const asio::const_buffer> buffers,
                                  boost::system::error_code& error) {
  std::array<iovec, 16> vectors{};
  // More pieces than this are left to the I/O thread, which writes whatever is left.
  if (buffers.size() > vectors.size()) return 0;
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    vectors[i].iov_base = const_cast<void*>(buffers[i].data());
    vectors[i].iov_len = buffers[i].size();
  }
  msghdr message{};
  message.msg_iov = vectors.data();
  message.msg_iovlen = buffers.size();
  std::lock_guard lock(socket_mutex_);
  if (socket_closed_) {
    error = asio::error::bad_descriptor;
    return 0;
  }
  for (;;) {
    const auto sent =
        ::sendmsg(stream_.socket().native_handle(), &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent >= 0) return static_cast<std::size_t>(sent);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      error = boost::system::error_code(errno, boost::system::system_category());
    }
    return 0;
  }
}

asio::awaitable<void> connection::drain_unread_input() {
  // A client still sending a body would get a reset on close, and a reset can discard the
  // response before the client reads it. So stop sending, then read and drop what still
  // comes, for a bounded time and amount, before closing (as nginx's lingering close does).
  constexpr auto linger_time = std::chrono::seconds(2);
  constexpr std::size_t max_linger_bytes = 16 * 1024 * 1024;

  boost::system::error_code ignored;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  arm_read_deadline(std::chrono::steady_clock::now() + linger_time);
  std::size_t dropped = 0;
  std::array<char, 16 * 1024> sink;
  while (dropped < max_linger_bytes) {
    auto [error, read] = co_await stream_.async_read_some(asio::buffer(sink), nothrow_awaitable);
    if (error) break;
    dropped += read;
  }
  disarm_read_deadline();
}

void connection::arm_read_deadline(std::chrono::steady_clock::time_point deadline) {
  const auto generation = ++read_deadline_generation_;
  read_deadline_passed_ = false;
  read_deadline_.expires_at(deadline);
  read_deadline_.async_wait(
      [self = shared_from_this(), generation](boost::system::error_code error) {
        if (error || generation != self->read_deadline_generation_) return;
        self->read_deadline_passed_ = true;
        boost::system::error_code ignored;
        self->stream_.socket().cancel(ignored);
      });
}

void connection::disarm_read_deadline() {
  ++read_deadline_generation_;  // a deadline that passed meanwhile must not cancel a later read
  read_deadline_.cancel();
}

asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> connection::read_when_idle(
    std::chrono::steady_clock::duration timeout) {
  arm_read_deadline(std::chrono::steady_clock::now() + timeout);
  auto result = co_await stream_.async_read_some(buffer_.prepare(4096), nothrow_awaitable);
  disarm_read_deadline();
  co_return result;
}

asio::awaitable<void> connection::finish_sending() {
  const auto send_limit = std::chrono::milliseconds(context_.settings.send_timeout_ms);
  if (send_limit.count() == 0 || socket_closed_) co_return;
  const int socket = stream_.socket().native_handle();
  auto counts = read_tcp_counts(socket);
  if (!counts || !counts->waiting()) co_return;
  // The client sees the end of the connection once it has read what waits.
  boost::system::error_code ignored;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  const auto period = client_check_period(
      send_limit, std::chrono::milliseconds(context_.settings.body_read_timeout_ms));
  asio::steady_timer timer(stream_.get_executor());
  // check_send_progress resets the connection if the client stalls meanwhile, and a shutdown
  // closes it.
  while (!socket_closed_ && counts && counts->waiting()) {
    timer.expires_after(period);
    co_await timer.async_wait(nothrow_awaitable);
    if (!socket_closed_) counts = read_tcp_counts(socket);
  }
}

void connection::close_for_shutdown() {
  if (socket_closed_) return;
  const auto counts = read_tcp_counts(stream_.socket().native_handle());
  if (counts && send_progress_.stalled_since_last_check(*counts)) {
    reset();
  } else {
    close();
  }
}

void connection::reset() {
  // After a plain close the kernel would keep the unsent bytes and probe a client that reads
  // nothing for minutes. A reset frees them at once.
  boost::system::error_code ignored;
  stream_.socket().set_option(asio::socket_base::linger(true, 0), ignored);
  close();
}

void connection::begin_shutdown() {
  shutdown_requested_ = true;
  relay_interrupt_.request();
  wake(response_timer_, response_pending_);
}

void connection::check_send_progress(std::chrono::steady_clock::time_point now,
                                     std::chrono::steady_clock::duration limit) {
  if (socket_closed_) return;
  const auto queue = read_tcp_counts(stream_.socket().native_handle());
  if (!queue || !send_progress_.stalled(*queue, now, limit)) return;
  send_timed_out_ = true;
  context_.metrics.count_local_reply("send_timeout");
  observability::logger("fluxlit")->info(
      "{} closed: the client took none of the response bytes waiting for it ({} unsent) within "
      "send_timeout_ms ({} ms); {}",
      tag_, queue->unsent_bytes,
      std::chrono::duration_cast<std::chrono::milliseconds>(limit).count(),
      raise_hint("send_timeout_ms"));
  reset();  // the response is cut short either way
}

void connection::check_body_progress(std::chrono::steady_clock::time_point now,
                                     std::chrono::steady_clock::duration limit) {
  if (socket_closed_ || body_read_.timed_out || !body_read_.waiting_since) return;
  // Beast's read returns only once the parser makes progress, so chunk framing that trickles in
  // keeps one read pending. The kernel's count of received bytes includes those bytes.
  if (const auto counts = read_tcp_counts(stream_.socket().native_handle());
      counts && counts->received_bytes != received_bytes_seen_) {
    received_bytes_seen_ = counts->received_bytes;
    received_bytes_at_ = now;
  }
  if (now - std::max(*body_read_.waiting_since, received_bytes_at_) < limit) return;
  body_read_.timed_out = true;
  observability::logger("fluxlit")->info(
      "{} the client sent no request body bytes within body_read_timeout_ms ({} ms); answering "
      "408 if no response started, else closing the connection; {}",
      tag_, std::chrono::duration_cast<std::chrono::milliseconds>(limit).count(),
      raise_hint("body_read_timeout_ms"));
  // The read ends with operation_aborted, and its reader then sees `timed_out`.
  boost::system::error_code ignored;
  stream_.socket().cancel(ignored);
}

asio::awaitable<void> connection::wait_for(asio::steady_timer& timer, const bool& flag) {
  while (!flag) {
    timer.expires_at(asio::steady_timer::time_point::max());
    co_await timer.async_wait(nothrow_awaitable);
  }
}

void connection::wake(asio::steady_timer& timer, bool& flag) {
  flag = true;
  timer.cancel();
}

void connection::wake_for_exchange() {
  wake(response_timer_, response_pending_);
  wake(body_timer_, body_pending_);
}

asio::awaitable<void> connection::run() {
  auto self = shared_from_this();
  context_.metrics.connection_opened();
  const auto& settings = context_.settings;
  const auto connected_at = std::chrono::steady_clock::now();
  const auto header_timeout = std::chrono::milliseconds(settings.header_read_timeout_ms);

  for (bool first = true;; first = false) {
    proxy::request_parser parser;
    parser.header_limit(static_cast<std::uint32_t>(std::min<std::uint64_t>(
        settings.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    parser.body_limit(settings.max_request_body_bytes);

    if (first) {
      // Counted from the connection's start, so a client that trickles bytes cannot hold it.
      arm_read_deadline(connected_at + header_timeout);
    } else if (next_request_watch_) {
      const auto keep_alive_timeout = std::chrono::milliseconds(settings.keep_alive_timeout_ms);
      auto watch = std::move(next_request_watch_);
      if (!co_await proxy::await_next_request(std::move(watch), stream_, keep_alive_timeout)) {
        break;
      }
      arm_read_deadline(std::chrono::steady_clock::now() + header_timeout);
    } else {
      if (buffer_.size() == 0) {
        auto [error, read] =
            co_await read_when_idle(std::chrono::milliseconds(settings.keep_alive_timeout_ms));
        buffer_.commit(read);
        if (error) break;
      }
      arm_read_deadline(std::chrono::steady_clock::now() + header_timeout);
    }

    auto [error, read] =
        co_await http::async_read_header(stream_, buffer_, parser, nothrow_awaitable);
    disarm_read_deadline();
    if (error && read_deadline_passed_) error = beast::error::timeout;
    // The send check or a shutdown closed the socket meanwhile, so no reply can go out.
    if (error && socket_closed_) break;
    if (error) {
      request_view rejected;
      rejected.started = std::chrono::steady_clock::now();
      rejected.method = "-";
      rejected.target = "-";
      rejected.request_id = choose_request_id({});
      // Bounds the reply's write; no read follows on this connection.
      stream_.expires_after(header_timeout);
      if (error == http::error::header_limit &&
          request_line_too_long(parser, buffer_, settings.max_header_bytes)) {
        const auto reply =
            over_limit(tag_, 414, "uri_too_long", "request line longer", "max_header_bytes",
                       settings.max_header_bytes, ui_header_note(settings));
        co_await reply_locally(rejected, 414, "uri_too_long", "application/json", reply);
      } else if (error == http::error::header_limit && parser.field_too_large()) {
        observability::logger("fluxlit")->warn(
            "{} request header field larger than {} bytes, the maximum that Boost.Beast can "
            "store; answering 431",
            tag_, proxy::request_parser::max_field_bytes);
        const auto detail = "a header field name or value is larger than " +
                            std::to_string(proxy::request_parser::max_field_bytes) + " bytes";
        co_await reply_locally(rejected, 431, "request_header_too_large", "application/json",
                               json_reply(431, "request_header_too_large", detail));
      } else if (error == http::error::header_limit) {
        const auto reply =
            over_limit(tag_, 431, "request_header_too_large", "request header larger",
                       "max_header_bytes", settings.max_header_bytes, ui_header_note(settings));
        co_await reply_locally(rejected, 431, "request_header_too_large", "application/json",
                               reply);
      } else if (error == http::error::body_limit) {
        const auto reply =
            over_limit(tag_, 413, "request_body_too_large", "declared request body larger",
                       "max_request_body_bytes", settings.max_request_body_bytes);
        co_await reply_locally(rejected, 413, "request_body_too_large", "application/json", reply);
      } else if (error == beast::error::timeout) {
        // A client that sends its head this slowly would not read a reply either; only count it.
        context_.metrics.count_local_reply("header_read_timeout");
        observability::logger("fluxlit")->debug(
            "{} closed: no complete request head within "
            "header_read_timeout_ms",
            tag_);
      } else if (!is_quiet_close(error)) {
        co_await reply_locally(rejected, 400, "bad_request", "application/json",
                               json_reply(400, "bad_request", error.message()));
      }
      break;
    }
    busy_ = true;
    const auto record = co_await serve(parser);
    busy_ = false;
    if (!record.keep_alive || context_.draining) break;
  }

  if (next_request_watch_) {
    co_await proxy::stop_watch(*next_request_watch_, stream_);
    next_request_watch_.reset();
  }

  if (lingering_close_) co_await drain_unread_input();
  co_await finish_sending();
  close();
  context_.metrics.connection_closed();
  if (on_closed_) on_closed_(id_);
}

namespace {

// Joins every line of a list-valued header with ", ", as RFC 9110 reads repeated field lines.
std::string joined_field(const http::fields& fields, std::string_view name) {
  std::string joined;
  for (auto [line, end] = fields.equal_range(name); line != end; ++line) {
    if (!joined.empty()) joined += ", ";
    joined += std::string_view(line->value());
  }
  return joined;
}

}  // namespace

asio::awaitable<connection::request_record> connection::serve(proxy::request_parser& parser) {
  auto& message = parser.get();
  request_view request;
  request.started = std::chrono::steady_clock::now();
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  request.request_id = choose_request_id(message["x-request-id"]);
  // A proxy chain may add its hops as separate lines; each list header is read as one list.
  const auto forwarded_for = joined_field(message, "x-forwarded-for");
  const auto forwarded_proto = joined_field(message, "x-forwarded-proto");
  request.client = resolve_client(
      context_.forwarding, peer_.address(), peer_host_, peer_.port(),
      {forwarded_for, forwarded_proto, message["x-forwarded-host"], message[http::field::host]});
  request.destination = route_target(context_.routes, request.target);
  request.head_only = message.method() == http::verb::head;
  request.has_body = message.chunked() ||
                     (message.has_content_length() && message[http::field::content_length] != "0");
  request.keep_alive = message.keep_alive() && !context_.draining;
  request.upgrade = parser.upgrade();
  request.version = message.version();
  body_read_ = {};

  if (auto problem = framing_problem(message)) {
    auto record =
        co_await reply_locally(request, problem->status, problem->reason, "application/json",
                               json_reply(problem->status, problem->reason));
    record.keep_alive = false;
    lingering_close_ = request.has_body;
    log_request(request, record);
    co_return record;
  }

  request_record record;
  switch (request.destination.kind) {
    case route_kind::native_health:
    case route_kind::native_ready:
    case route_kind::native_metrics:
      record = co_await serve_native(request);
      break;
    case route_kind::redirect: {
      std::string headers;
      append_header(headers, "Location", request.destination.location);
      record = co_await reply_locally(
          request, request.destination.redirect_status, "redirect", "text/plain; charset=utf-8",
          "Redirecting to " + request.destination.location + "\n", headers);
      break;
    }
    case route_kind::api:
      record = co_await serve_api(parser, request);
      break;
    case route_kind::ui:
      record = co_await serve_ui(parser, request);
      break;
  }
  // An unread request body would be taken for the next request's head.
  if (!parser.is_done()) {
    record.keep_alive = false;
    lingering_close_ = true;
  }
  log_request(request, record);
  co_return record;
}

asio::awaitable<connection::request_record> connection::serve_native(const request_view& request) {
  request_record record;
  if (request.destination.kind == route_kind::native_health) {
    record = co_await reply_locally(request, 200, {}, "application/json", "{\"status\":\"ok\"}\n");
  } else if (request.destination.kind == route_kind::native_metrics) {
    record = co_await reply_locally(request, 200, {}, "text/plain; version=0.0.4",
                                    context_.metrics.serialize());
  } else {
    const auto lag = context_.bridge.loop_lag();
    const auto max_lag = std::chrono::milliseconds(context_.settings.readiness_max_loop_lag_ms);
    const bool python_ok = context_.bridge.running() && lag <= max_lag;

    nlohmann::json streamlit_check;
    bool streamlit_ok = false;
    if (context_.settings.no_ui) {
      streamlit_ok = true;
      streamlit_check = {{"ok", true}, {"state", "disabled"}};
    } else if (context_.streamlit == nullptr) {
      streamlit_check = {{"ok", false}, {"state", "not_installed"}};
    } else {
      streamlit_ok = context_.streamlit->ready();
      streamlit_check = {{"ok", streamlit_ok},
                         {"state", supervisor::to_string(context_.streamlit->state())}};
    }
    const bool draining = context_.draining;
    const bool ready = python_ok && streamlit_ok && !draining;
    nlohmann::json body = {
        {"ready", ready},
        {"checks",
         {{"python",
           {{"ok", python_ok}, {"loop_lag_ms", lag.count()}, {"max_lag_ms", max_lag.count()}}},
          {"streamlit", streamlit_check},
          {"shutdown", {{"ok", !draining}, {"draining", draining}}}}}};
    record = co_await reply_locally(request, ready ? 200 : 503, ready ? "" : "not_ready",
                                    "application/json", body.dump() + "\n");
  }
  record.route = "native";
  co_return record;
}

asio::awaitable<connection::request_record> connection::serve_ui(proxy::request_parser& parser,
                                                                 const request_view& request) {
  if (context_.streamlit == nullptr) {
    const bool disabled = context_.settings.no_ui;
    co_return co_await reply_locally(request, context_.ui_unavailable_status,
                                     disabled ? "ui_disabled" : "streamlit_not_installed",
                                     "text/html; charset=utf-8", context_.ui_unavailable_page);
  }
  if (!context_.streamlit->ready() || context_.streamlit->port() == 0) {
    co_return co_await reply_streamlit_not_ready(request);
  }

  proxy::forward_request forward;
  forward.port = context_.streamlit->port();
  forward.target = request.destination.path;
  forward.request_id = request.request_id;
  forward.client = request.client;
  forward.forwarded_prefix = context_.routes.root_path;
  forward.connection_tag = tag_;
  relay_interrupt_ = {};
  relay_interrupt_.requested = shutdown_requested_;
  forward.interrupt = &relay_interrupt_;
  forward.body_read = &body_read_;
  forward.websocket_idle_timeout =
      std::chrono::milliseconds(context_.settings.websocket_idle_timeout_ms);
  forward.websocket_max_lifetime =
      std::chrono::milliseconds(context_.settings.websocket_max_lifetime_ms);

  proxy::forward_outcome outcome;
  if (request.upgrade) {
    outcome = co_await proxy::tunnel_websocket(stream_, buffer_, parser, forward,
                                               context_.upstreams, context_.metrics);
  } else {
    outcome = co_await proxy::forward_http(stream_, buffer_, parser, forward, context_.upstreams);
  }
  relay_interrupt_.cancel_read = nullptr;  // it may name a stream that is gone now
  next_request_watch_ = std::move(outcome.next_request_watch);

  // The child may have died after the check above, before the supervisor noticed: the client
  // should then retry later, as it would during a restart.
  if (outcome.upstream_unreachable && co_await streamlit_gone()) {
    co_return co_await reply_streamlit_not_ready(request);
  }
  if (!outcome.local_reason.empty()) {
    const auto reply =
        outcome.status == 413
            ? over_limit(tag_, 413, outcome.local_reason, "request body larger",
                         "max_request_body_bytes", context_.settings.max_request_body_bytes)
        : outcome.status == 408
            ? json_reply(408, outcome.local_reason, body_timeout_detail(context_.settings))
            : json_reply(outcome.status, outcome.local_reason, outcome.local_detail);
    auto record = co_await reply_locally(request, outcome.status, outcome.local_reason,
                                         "application/json", reply);
    record.keep_alive = record.keep_alive && outcome.status != 413;
    co_return record;
  }

  request_record record;
  record.route = "ui";
  record.status = outcome.client_gone ? 499 : outcome.status;
  record.body_bytes = outcome.body_bytes;
  record.keep_alive = outcome.keep_alive && request.keep_alive && !outcome.upgraded;
  co_return record;
}

asio::awaitable<bool> connection::streamlit_gone() {
  // A killed process closes its sockets a moment before it becomes a zombie that waitid can
  // see, so a child that still looks alive is checked once more after this wait.
  constexpr auto exit_settle_time = std::chrono::milliseconds(50);

  const auto gone = [this] {
    return !context_.streamlit->ready() || context_.streamlit->child_exited();
  };
  if (gone()) co_return true;
  asio::steady_timer wait(stream_.get_executor());
  wait.expires_after(exit_settle_time);
  co_await wait.async_wait(nothrow_awaitable);
  co_return gone();
}

asio::awaitable<connection::request_record> connection::reply_streamlit_not_ready(
    const request_view& request) {
  std::string headers;
  append_header(headers, "Retry-After", ui_retry_after_seconds);
  // A child that exited before the supervisor handled the exit still shows as ready.
  const auto detail = context_.streamlit->ready()
                          ? std::string("the Streamlit server has exited")
                          : std::string("the Streamlit server is ") +
                                supervisor::to_string(context_.streamlit->state());
  co_return co_await reply_locally(request, 503, "streamlit_not_ready", "application/json",
                                   json_reply(503, "streamlit_not_ready", detail), headers);
}

asio::awaitable<void> connection::pump_request_body(std::shared_ptr<asgi::http_exchange> exchange,
                                                    proxy::request_parser& parser,
                                                    bool submit_after_body) {
  auto self = shared_from_this();
  // Most API requests have no body; they never allocate the chunk.
  std::optional<proxy::byte_chunk> chunk;
  if (!parser.is_done()) {
    chunk.emplace(asgi_body_chunk_bytes);
    // Beast reads as much as the buffer has room for, at least 512 bytes. After a small head
    // that is little more, so give the body room for a whole chunk per read.
    if (buffer_.capacity() < asgi_body_chunk_bytes) buffer_.reserve(asgi_body_chunk_bytes);
  }
  while (continue_pending_ && !response_done_) {
    body_pending_ = false;
    co_await wait_for(body_timer_, body_pending_);
  }
  while (!parser.is_done() && !response_done_) {
    if (!exchange->io_wants_more_body()) {
      // Backpressure: the app has not consumed what it has; read again once it does.
      body_pending_ = false;
      if (!exchange->io_wants_more_body()) co_await wait_for(body_timer_, body_pending_);
      continue;
    }
    auto& body = parser.get().body();
    body.data = chunk->data();
    body.size = chunk->size();
    body_read_.begin_read();
    auto [error, read] =
        co_await http::async_read_some(stream_, buffer_, parser, nothrow_awaitable);
    body_read_.end_read();
    if (error == http::error::need_buffer) error = {};
    if (error) {
      if (body_read_.timed_out) {
        body_error_ = 408;
      } else if (error == http::error::body_limit) {
        body_error_ = 413;  // serve_api logs it once it can tell whether a 413 can still be sent
      } else if (proxy::is_malformed_body(error)) {
        body_error_ = 400;  // a malformed body, such as an invalid chunk size
      }
      exchange->io_client_gone();
      client_gone_ = true;
      if (submit_after_body) context_.bridge.submit(exchange);
      wake(response_timer_, response_pending_);
      wake(pump_timer_, pump_done_);
      co_return;
    }
    const auto got = chunk->size() - body.size;
    if (got != 0 || parser.is_done()) {
      exchange->io_push_body(std::string(chunk->data(), got), !parser.is_done());
    }
  }
  // An idle keep-alive connection keeps only the room its next head needs.
  if (chunk) buffer_.shrink_to_fit();
  if (submit_after_body) context_.bridge.submit(exchange);

  // Watch for the client going away while the app works on its response, but only once the app
  // waits for a message after the body (a disconnect is what it can still get) or the response
  // outlasts one batch. Most responses finish before that, and the watch would cost a read that
  // fails with EAGAIN. A client that leaves meanwhile is noticed when the response is written.
  while (!response_done_ && !response_streaming_ && !exchange->io_receive_requested()) {
    body_pending_ = false;
    co_await wait_for(body_timer_, body_pending_);
  }
  while (!response_done_ && buffer_.size() < max_pipelined_bytes) {
    auto [error, read] = co_await stream_.async_read_some(buffer_.prepare(4096), nothrow_awaitable);
    buffer_.commit(read);
    if (error) {
      if (!response_done_) {
        exchange->io_client_gone();
        client_gone_ = true;
        wake(response_timer_, response_pending_);
      }
      break;
    }
  }
  wake(pump_timer_, pump_done_);
}

asgi::http_request_head connection::make_asgi_head(proxy::request_parser& parser,
                                                   const request_view& request) const {
  auto& message = parser.get();
  asgi::http_request_head head;
  head.method = request.method;
  head.http_version = request.version == 10 ? "1.0" : "1.1";
  head.scheme = request.client.scheme;
  // The spec's raw_path is the path as received. The API prefix and any root path stay in it,
  // as a Starlette Mount leaves it, while `path` is relative to `root_path`.
  const std::string_view target = request.target;
  head.raw_path = target.starts_with('/') ? std::string(target.substr(0, target.find('?')))
                                          : request.destination.path;
  head.path = percent_decode(request.destination.path);
  head.query_string = request.destination.query;
  head.root_path = context_.routes.root_path + context_.routes.api_prefix;
  head.headers.reserve(16);
  for (const auto& field : message.base()) {
    if (iequals(field.name_string(), "x-request-id")) continue;
    head.headers.emplace_back(lower_ascii(field.name_string()), std::string(field.value()));
  }
  head.headers.emplace_back("x-request-id", request.request_id);
  head.client_host = request.client.client_host;
  head.client_port = request.client.client_port;
  head.server_host = local_host_;
  head.server_port = local_.port();
  return head;
}

// Routes the exchange's notifications to this connection's executor and resets the signals.
template <typename Exchange>
void connection::connect_exchange(Exchange& exchange) {
  exchange.io_set_notify([weak = weak_from_this(), wakeups = wakeups_] { wakeups->request(weak); });
  response_pending_ = false;
  body_pending_ = false;
  pump_done_ = false;
  response_done_ = false;
  client_gone_ = false;
  response_streaming_ = false;
  body_error_ = 0;
}

template void connection::connect_exchange(asgi::websocket_exchange&);

asio::awaitable<connection::request_record> connection::serve_api(proxy::request_parser& parser,
                                                                  const request_view& request) {
  if (request.upgrade) co_return co_await serve_api_websocket(parser, request);
  auto& message = parser.get();
  const auto& settings = context_.settings;

  auto exchange = std::make_shared<asgi::http_exchange>(make_asgi_head(parser, request),
                                                        settings.asgi_send_high_water_bytes,
                                                        settings.asgi_receive_high_water_bytes);
  connect_exchange(*exchange);

  if (!request.has_body) exchange->io_push_body({}, false);
  // The client waits for 100 Continue before it sends the body. It is sent when the app first
  // calls receive(), so an app that responds at once (401, 413) never makes it upload.
  continue_pending_ = request.has_body && iequals(message[http::field::expect], "100-continue");
  // When the whole body already sits in the read buffer, queue it before the app starts, so
  // that its first receive() completes at once instead of waiting for a wake-up.
  const auto declared_body = parser.content_length();
  const bool submit_after_body = request.has_body && !continue_pending_ && declared_body &&
                                 *declared_body <= asgi_body_chunk_bytes &&
                                 buffer_.size() >= *declared_body;
  if (!submit_after_body) context_.bridge.submit(exchange);
  asio::co_spawn(stream_.get_executor(), pump_request_body(exchange, parser, submit_after_body),
                 asio::detached);

  request_record record;
  record.route = "api";
  record.keep_alive = request.keep_alive;

  response_framer framer(
      {request.request_id, request.head_only, request.keep_alive, request.version});
  // Kept across batches, so that their storage serves the whole response.
  std::vector<asgi::response_event> events;
  response_output output;
  boost::container::small_vector<asio::const_buffer, 6> buffers;
  // Gathers the output's buffers, leaving out its first `skip` bytes.
  const auto gather = [&](std::size_t skip) {
    buffers.clear();
    output.for_each([&](std::string_view piece) {
      if (skip >= piece.size()) {
        skip -= piece.size();
        return;
      }
      piece.remove_prefix(skip);
      skip = 0;
      buffers.push_back(asio::buffer(piece.data(), piece.size()));
    });
  };

  // On a shared CPU the I/O thread runs only once the Python thread has finished a whole batch
  // of requests, so a response that waited for it would leave late. The Python thread then
  // frames and writes a response itself, after the loop iteration in which the app sent its
  // end, provided that this loop has taken none of it. The framer and the output belong to
  // whichever thread the exchange gives them to: the writer until this loop takes an event.
  struct lent_write {
    std::size_t total = 0;
    std::size_t written = 0;
    boost::system::error_code error;
  } lent;
  bool writer_lent = context_.python_writes_responses && !continue_pending_;
  // Takes the writer back before the locals it uses go, however this coroutine ends.
  response_end_guard end_guard{*exchange};
  if (writer_lent) {
    exchange->io_lend_writer([this, &framer, &output, &gather, &lent,
                              &buffers](std::vector<asgi::response_event>& lent_events) {
      framer.add(lent_events, output, tag_);
      gather(0);
      for (const auto& each : buffers) lent.total += each.size();
      lent.written = write_now(std::span<const asio::const_buffer>(buffers), lent.error);
      // After an error nothing more is written, and the app need not wait.
      return lent.error ? 0 : lent.total - lent.written;
    });
  }

  bool written_by_python = false;
  bool ended_early = false;   // an event stream that a shutdown ended
  bool write_failed = false;  // a write of this loop failed, so the response did not all go
  // While the writer is lent, the framer is not this loop's to read.
  while (!client_gone_ && (writer_lent || (!framer.finished() && !framer.aborted()))) {
    co_await wait_for(response_timer_, response_pending_);
    response_pending_ = false;
    events.clear();
    written_by_python = exchange->io_take_response_events(events);
    if (written_by_python) {
      // The Python thread wrote what the socket took at once; the rest goes from here.
      if (!lent.error && lent.written < lent.total) {
        gather(lent.written);
        std::tie(lent.error, std::ignore) =
            co_await asio::async_write(stream_, std::span<const asio::const_buffer>(buffers),
                                       write_without_cap, nothrow_awaitable);
        if (!lent.error) {
          exchange->io_written(lent.total - lent.written);
          lent.written = lent.total;
        }
      }
      if (lent.error) {
        exchange->io_client_gone();
        client_gone_ = true;
        record.keep_alive = false;
      }
      break;
    }
    if (!events.empty()) writer_lent = false;
    if (client_gone_) break;
    if (continue_pending_ && exchange->io_receive_requested() && !framer.started()) {
      static constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";
      auto [error, written] =
          co_await asio::async_write(stream_, asio::buffer(continue_line), nothrow_awaitable);
      continue_pending_ = false;
      wake(body_timer_, body_pending_);
      if (error) {
        exchange->io_client_gone();
        client_gone_ = true;
        break;
      }
    }
    if (shutdown_requested_ && !writer_lent && framer.endless_stream()) {
      // An event stream never ends by itself: end it cleanly and tell the app the client left.
      static constexpr std::string_view last_chunk = "0\r\n\r\n";
      co_await asio::async_write(stream_, asio::buffer(last_chunk), nothrow_awaitable);
      exchange->io_client_gone();
      record.keep_alive = false;
      ended_early = true;
      break;
    }
    // With no events taken, the output may still be the lent writer's.
    const auto batch_body_bytes = events.empty() ? 0 : framer.add(events, output, tag_);
    if (!events.empty() && !output.empty()) {
      gather(0);
      // One gathered write for the head and every body of the batch. async_write copies its
      // buffer sequence, so it gets a span rather than the vector.
      auto [error, written] =
          co_await asio::async_write(stream_, std::span<const asio::const_buffer>(buffers),
                                     write_without_cap, nothrow_awaitable);
      if (error) {
        exchange->io_client_gone();
        client_gone_ = true;
        write_failed = true;
        break;
      }
      exchange->io_written(batch_body_bytes);
      output.clear();
    }
    const bool going_on = writer_lent || (!framer.finished() && !framer.aborted());
    if (going_on && !response_streaming_) {
      response_streaming_ = true;
      wake(body_timer_, body_pending_);
    }
  }

  response_done_ = true;
  // The writer may have sent the response after the loop saw the client go.
  written_by_python = exchange->io_response_finished() || written_by_python;
  end_guard.ended = true;
  const bool started = framer.started();
  // A response is finished only once all of it went, whichever thread wrote it.
  const bool lent_complete = !lent.error && lent.written == lent.total;
  const bool all_written = !write_failed && (!written_by_python || lent_complete);
  // A client that leaves after the whole declared body, but before the app's last event, got
  // the response all the same.
  const bool finished = (framer.complete_for_client() && all_written) || ended_early;
  const bool aborted = framer.aborted();
  record.status = framer.status();
  record.body_bytes = framer.body_bytes();
  record.keep_alive = record.keep_alive && framer.keep_alive() && all_written;
  // Stop the body pump or the disconnect watch, and wait until it let go of the parser.
  wake(body_timer_, body_pending_);
  if (!pump_done_) {
    stream_.cancel();
    co_await wait_for(pump_timer_, pump_done_);
  }

  if (body_error_ == 408 && started) {
    // No 408 can go out, so reply_locally does not count this one.
    context_.metrics.count_local_reply("body_read_timeout");
  }
  if (body_error_ == 413 && started) {
    observability::logger("fluxlit")->warn(
        "{} request body larger than max_request_body_bytes ({} bytes) after the response "
        "started; closing the connection; {}",
        tag_, context_.settings.max_request_body_bytes, raise_hint("max_request_body_bytes"));
  }
  if (body_error_ != 0 && !started) {
    // The body broke a limit, its framing or body_read_timeout_ms while the app read it, and
    // nothing was sent yet. The reply is built before the co_await: GCC 12 miscompiles a
    // conditional with class temporaries inside one.
    const int status = body_error_;
    body_error_ = 0;
    std::string reason = "bad_request_body";
    std::string body;
    if (status == 413) {
      reason = "request_body_too_large";
      body = over_limit(tag_, 413, reason, "request body larger", "max_request_body_bytes",
                        context_.settings.max_request_body_bytes);
    } else if (status == 408) {
      reason = "body_read_timeout";
      body = json_reply(408, reason, body_timeout_detail(context_.settings));
    } else {
      body = json_reply(400, reason);
    }
    auto reply = co_await reply_locally(request, status, reason, "application/json", body);
    reply.keep_alive = false;
    co_return reply;
  }
  if (client_gone_ && !finished) {
    record.status = 499;
    record.keep_alive = false;
    co_return record;
  }
  if (aborted) {
    record.keep_alive = false;
    if (!started) {
      // Nothing reached the client yet, so it gets a clean 500 rather than a reset.
      auto reply = co_await reply_locally(request, 500, "app_exception",
                                          "text/plain; charset=utf-8", "Internal Server Error\n");
      reply.route = "api";
      co_return reply;
    }
    record.status = record.status == 0 ? 500 : record.status;
    // The status line already went out, so the access log names the failure by its reason.
    record.reason = "app_exception";
  }
  co_return record;
}

asio::awaitable<connection::request_record> connection::reply_locally(
    const request_view& request, int status, std::string reason, std::string content_type,
    std::string body, std::string extra_headers) {
  request_record record;
  record.route = "local";
  record.status = status;
  record.reason = reason;
  record.keep_alive = request.keep_alive && !request.has_body && status < 500 && status != 408 &&
                      status != 431 && status != 414 && status != 413 && status != 400;
  if (!reason.empty() && status >= 400) context_.metrics.count_local_reply(reason);

  std::string head;
  append_status_line(head, status);
  append_header(head, "date", http_date());
  append_header(head, "content-type", content_type);
  append_header(head, "content-length", std::to_string(body.size()));
  append_header(head, "x-request-id", request.request_id);
  if (!reason.empty() && status >= 400) append_header(head, "x-fluxlit-reason", reason);
  head += extra_headers;
  append_header(head, "connection", record.keep_alive ? "keep-alive" : "close");
  head += "\r\n";

  const bool send_body = !request.head_only && !status_forbids_body(status);
  const std::array<asio::const_buffer, 2> buffers = {
      asio::buffer(head), send_body ? asio::buffer(body) : asio::const_buffer()};
  auto [error, written] = co_await asio::async_write(stream_, buffers, nothrow_awaitable);
  if (error) record.keep_alive = false;
  record.body_bytes = send_body ? body.size() : 0;
  co_return record;
}

void connection::log_request(const request_view& request, const request_record& record) {
  const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - request.started);
  context_.metrics.count_request(record.route, record.status);
  auto access = observability::logger("access");
  if (!access->should_log(spdlog::level::info)) return;
  std::string_view reason = record.reason;
  if (reason.empty() && send_timed_out_) reason = "send_timeout";
  if (reason.empty() && body_read_.timed_out) reason = "body_read_timeout";
  access->info("{} rid={} {} \"{} {}\" {} {} {:.3f}ms route={}{}{}", tag_, request.request_id,
               request.client.client_host, request.method, request.target, record.status,
               record.body_bytes, static_cast<double>(elapsed.count()) / 1000.0, record.route,
               reason.empty() ? "" : " reason=", reason);
}

}  // namespace fluxlit::gateway
