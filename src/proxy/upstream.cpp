#include "fluxlit/proxy/upstream.hpp"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "fluxlit/gateway/http_text.hpp"
#include "fluxlit/observability/log.hpp"
#include "fluxlit/observability/metrics.hpp"
#include "fluxlit/proxy/byte_chunk.hpp"
#include "proxy/upstream_detail.hpp"

namespace fluxlit::proxy {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

void request_parser::on_field_impl(http::field name, beast::string_view name_string,
                                   beast::string_view value, beast::error_code& error) {
  if (name_string.size() > max_field_bytes || value.size() > max_field_bytes) {
    field_too_large_ = true;
    error = http::error::header_limit;
    return;
  }
  get().insert(name, name_string, value);
}

namespace detail {
namespace {

tcp::endpoint child_endpoint(std::uint16_t port) {
  return {asio::ip::address_v4::loopback(), port};
}

bool is_forwarding_header(std::string_view name) {
  return gateway::iequals(name, "x-forwarded-for") || gateway::iequals(name, "x-forwarded-proto") ||
         gateway::iequals(name, "x-forwarded-host") ||
         gateway::iequals(name, "x-forwarded-prefix") || gateway::iequals(name, "x-request-id") ||
         gateway::iequals(name, "forwarded");
}

}  // namespace

std::string upstream_request_head(const http::request<http::buffer_body>& request,
                                  const forward_request& forward, bool upgrade) {
  std::string head;
  head.reserve(1024);
  head += request.method_string();
  head += ' ';
  head += forward.target;
  head += " HTTP/1.1\r\n";

  const auto connection_value = request[http::field::connection];
  for (const auto& field : request.base()) {
    const auto name = field.name_string();
    if (gateway::is_hop_by_hop(name, connection_value) || is_forwarding_header(name)) continue;
    if (gateway::iequals(name, "expect")) continue;  // the gateway sent 100 Continue itself
    gateway::append_header(head, name, field.value());
  }
  gateway::append_header(head, "X-Forwarded-For", forward.client.forwarded_for);
  gateway::append_header(head, "X-Forwarded-Proto", forward.client.scheme);
  if (!forward.client.host.empty()) {
    gateway::append_header(head, "X-Forwarded-Host", forward.client.host);
  }
  if (!forward.forwarded_prefix.empty()) {
    gateway::append_header(head, "X-Forwarded-Prefix", forward.forwarded_prefix);
  }
  gateway::append_header(head, "X-Request-ID", forward.request_id);

  if (upgrade) {
    gateway::append_header(head, "Connection", "Upgrade");
    gateway::append_header(head, "Upgrade", request[http::field::upgrade]);
  } else {
    if (request.chunked()) gateway::append_header(head, "Transfer-Encoding", "chunked");
    gateway::append_header(head, "Connection", "keep-alive");
  }
  head += "\r\n";
  return head;
}

std::string client_response_head(const http::response<http::buffer_body>& response,
                                 const forward_request& forward, client_framing framing,
                                 bool keep_alive, bool upgrade) {
  std::string head;
  head.reserve(1024);
  gateway::append_status_line(head, response.result_int(), response.reason());

  bool has_request_id = false;
  const auto connection_value = response[http::field::connection];
  for (const auto& field : response.base()) {
    const auto name = field.name_string();
    if (!upgrade && gateway::is_hop_by_hop(name, connection_value)) continue;
    if (upgrade &&
        (gateway::iequals(name, "transfer-encoding") || gateway::iequals(name, "keep-alive"))) {
      continue;
    }
    has_request_id = has_request_id || gateway::iequals(name, "x-request-id");
    gateway::append_header(head, name, field.value());
  }
  if (!has_request_id) gateway::append_header(head, "X-Request-ID", forward.request_id);
  if (!upgrade) {
    if (framing == client_framing::chunked) {
      gateway::append_header(head, "Transfer-Encoding", "chunked");
    }
    gateway::append_header(head, "Connection", keep_alive ? "keep-alive" : "close");
  }
  head += "\r\n";
  return head;
}

asio::awaitable<boost::system::error_code> write_text(beast::tcp_stream& stream,
                                                      const std::string& text) {
  auto [error, written] = co_await asio::async_write(stream, asio::buffer(text), nothrow_awaitable);
  co_return error;
}

asio::awaitable<boost::system::error_code> write_body_piece(beast::tcp_stream& stream,
                                                            const char* data, std::size_t size,
                                                            bool chunked, std::string_view head,
                                                            bool last_chunk) {
  static constexpr std::string_view crlf = "\r\n";
  static constexpr std::string_view final_chunk = "0\r\n\r\n";
  const bool framed = chunked && size != 0;
  const auto framing = framed ? gateway::chunk_header(size) : std::string();
  const std::array<asio::const_buffer, 5> pieces = {
      asio::buffer(head.data(), head.size()), asio::buffer(framing), asio::buffer(data, size),
      framed ? asio::buffer(crlf.data(), crlf.size()) : asio::const_buffer(),
      chunked && last_chunk ? asio::buffer(final_chunk.data(), final_chunk.size())
                            : asio::const_buffer()};
  auto [error, written] = co_await asio::async_write(stream, pieces, nothrow_awaitable);
  co_return error;
}

namespace {

// Streams the client's request body to the child. Returns the error of the side that failed.
struct body_copy_result {
  boost::system::error_code client_error;
  boost::system::error_code upstream_error;
};

asio::awaitable<body_copy_result> copy_request_body(beast::tcp_stream& client,
                                                    beast::flat_buffer& client_buffer,
                                                    request_parser& parser,
                                                    beast::tcp_stream& upstream,
                                                    body_read_state* read_state) {
  body_copy_result result;
  const bool chunked = parser.get().chunked();
  byte_chunk chunk(body_chunk_bytes);
  while (!parser.is_done()) {
    auto& body = parser.get().body();
    body.data = chunk.data();
    body.size = chunk.size();
    // A slow upload that keeps making progress is never cut off: body_read_timeout_ms counts
    // from the start of each read.
    client.expires_never();
    if (read_state) read_state->begin_read();
    auto [error, read] =
        co_await http::async_read_some(client, client_buffer, parser, nothrow_awaitable);
    if (read_state) read_state->end_read();
    if (error == http::error::need_buffer) error = {};
    if (error) {
      result.client_error = error;
      co_return result;
    }
    const auto got = chunk.size() - body.size;
    if (got == 0) continue;
    if (auto write_error = co_await write_body_piece(upstream, chunk.data(), got, chunked)) {
      result.upstream_error = write_error;
      co_return result;
    }
  }
  if (chunked) {
    if (auto write_error = co_await write_text(upstream, "0\r\n\r\n")) {
      result.upstream_error = write_error;
    }
  }
  co_return result;
}

bool request_has_body(const http::request<http::buffer_body>& request) {
  if (request.chunked()) return true;
  const auto length = request[http::field::content_length];
  return !length.empty() && length != "0";
}

}  // namespace

asio::awaitable<boost::system::error_code> connect_stream(beast::tcp_stream& stream,
                                                          std::uint16_t port,
                                                          std::chrono::milliseconds timeout) {
  stream.expires_after(timeout);
  auto [error] = co_await stream.async_connect(child_endpoint(port), nothrow_awaitable);
  stream.expires_never();
  if (!error) stream.socket().set_option(tcp::no_delay(true));
  co_return error;
}

forward_outcome local_failure(int status, std::string reason) {
  forward_outcome outcome;
  outcome.status = status;
  outcome.local_reason = std::move(reason);
  return outcome;
}

std::optional<forward_outcome> check_streamlit_header_limit(std::string_view head,
                                                            const forward_request& request) {
  if (head.size() <= streamlit_max_header_bytes) return std::nullopt;
  observability::logger("fluxlit")->warn(
      "{} rid={} request head of {} bytes with the forwarding headers is larger than "
      "Streamlit's limit of {} bytes; answering 431",
      request.connection_tag, request.request_id, head.size(), streamlit_max_header_bytes);
  auto outcome = local_failure(431, "streamlit_request_header_too_large");
  outcome.local_detail = "the request line and headers come to " + std::to_string(head.size()) +
                         " bytes once forwarded to Streamlit, which accepts at most " +
                         std::to_string(streamlit_max_header_bytes) +
                         " bytes; send fewer or smaller cookies or headers";
  return outcome;
}

forward_outcome unreachable_failure(std::string reason) {
  auto outcome = local_failure(502, std::move(reason));
  outcome.upstream_unreachable = true;
  return outcome;
}

bool closed_before_response(const boost::system::error_code& error) {
  return error == http::error::end_of_stream || error == asio::error::eof ||
         error == asio::error::connection_reset || error == asio::error::broken_pipe;
}

}  // namespace detail

using namespace detail;

namespace {

// Checks that an idle connection can carry the next request: the child has neither closed it
// nor sent bytes since its last response. Such bytes (a body longer than its Content-Length, a
// body after a HEAD or 204 response) would be parsed as the head of the next response, which
// another client would then receive.
// NOTE: bytes that arrive after this check still reach the request sent next.
bool idle_connection_is_clean(tcp::socket& socket, std::uint16_t port) {
  if (!socket.is_open()) return false;
  char byte = 0;
  const ssize_t peeked = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (peeked < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
  if (peeked > 0) {
    observability::logger("fluxlit")->warn(
        "Streamlit (port {}) sent bytes on an idle connection after its response ended; the "
        "connection is closed instead of reused",
        port);
  }
  return false;
}

}  // namespace

std::unique_ptr<beast::tcp_stream> upstream_pool::take(const asio::any_io_executor& executor,
                                                       std::uint16_t port, bool& reused) {
  while (!idle_.empty()) {
    auto candidate = std::move(idle_.back());
    idle_.pop_back();
    if (candidate.port == port && idle_connection_is_clean(candidate.stream->socket(), port)) {
      reused = true;
      return std::move(candidate.stream);
    }
  }
  reused = false;
  return std::make_unique<beast::tcp_stream>(executor);
}

void upstream_pool::give_back(std::unique_ptr<beast::tcp_stream> stream, std::uint16_t port) {
  if (idle_.size() >= limits_.max_idle_connections) return;  // the stream closes here
  idle_.push_back(idle_connection{port, std::move(stream)});
}

void upstream_pool::clear() {
  idle_.clear();
}

// Keeps one read pending on the client while the child works on a response, so a client that
// goes away aborts the request to the child at once instead of when the response arrives.
struct client_watch {
  explicit client_watch(const asio::any_io_executor& executor) : finished_signal(executor) {}

  beast::tcp_stream* upstream = nullptr;  // the attempt's connection to the child
  bool client_gone = false;
  bool finished = false;
  // Set once the response is complete: the read then waits for the next request, and the
  // watch ends with its first bytes.
  bool awaiting_next_request = false;
  asio::steady_timer finished_signal;
};

namespace {

// Bytes of a pipelined next request kept while watching; past this the watch stops reading.
constexpr std::size_t max_watched_bytes = 64 * 1024;

asio::awaitable<void> watch_client(beast::tcp_stream& client, beast::flat_buffer& buffer,
                                   std::shared_ptr<client_watch> watch) {
  while (buffer.size() < max_watched_bytes) {
    auto [error, read] = co_await client.async_read_some(buffer.prepare(4096), nothrow_awaitable);
    buffer.commit(read);
    if (error) {
      if (error != asio::error::operation_aborted) {
        watch->client_gone = true;
        if (watch->upstream != nullptr) watch->upstream->socket().cancel();
      }
      break;
    }
    if (watch->awaiting_next_request) break;
  }
  watch->finished = true;
  watch->finished_signal.cancel();
}

asio::awaitable<void> wait_until_finished(client_watch& watch) {
  while (!watch.finished) {
    watch.finished_signal.expires_at(asio::steady_timer::time_point::max());
    co_await watch.finished_signal.async_wait(nothrow_awaitable);
  }
}

asio::awaitable<forward_outcome> forward_attempts(
    beast::tcp_stream& client, beast::flat_buffer& client_buffer, request_parser& parser,
    const forward_request& request, upstream_pool& pool, std::shared_ptr<client_watch>& watch);

}  // namespace

asio::awaitable<forward_outcome> forward_http(beast::tcp_stream& client,
                                              beast::flat_buffer& client_buffer,
                                              request_parser& parser,
                                              const forward_request& request, upstream_pool& pool) {
  std::shared_ptr<client_watch> watch;
  auto outcome = co_await forward_attempts(client, client_buffer, parser, request, pool, watch);
  if (watch) {
    watch->upstream = nullptr;
    // The pending read becomes the read of the next request, which saves cancelling it and
    // starting another, unless bytes of a pipelined request are already buffered.
    if (outcome.keep_alive && !watch->finished && client_buffer.size() == 0 &&
        outcome.local_reason.empty()) {
      watch->awaiting_next_request = true;
      outcome.next_request_watch = std::move(watch);
      co_return outcome;
    }
    co_await stop_watch(*watch, client);
    if (watch->client_gone && (outcome.status == 0 || !outcome.local_reason.empty())) {
      // The client left before the response was complete; no local reply can reach it.
      forward_outcome gone;
      gone.status = 499;
      gone.client_gone = true;
      gone.body_bytes = outcome.body_bytes;
      co_return gone;
    }
    if (watch->client_gone) outcome.keep_alive = false;
  }
  co_return outcome;
}

asio::awaitable<bool> await_next_request(std::shared_ptr<client_watch> watch,
                                         beast::tcp_stream& client,
                                         std::chrono::milliseconds timeout) {
  bool timed_out = false;
  watch->finished_signal.expires_after(timeout);
  while (!watch->finished) {
    auto [error] = co_await watch->finished_signal.async_wait(nothrow_awaitable);
    if (!error && !watch->finished) {
      timed_out = true;
      client.socket().cancel();
      co_await wait_until_finished(*watch);
    }
  }
  co_return !timed_out && !watch->client_gone;
}

asio::awaitable<void> stop_watch(client_watch& watch, beast::tcp_stream& client) {
  watch.upstream = nullptr;
  if (!watch.finished) client.socket().cancel();
  co_await wait_until_finished(watch);
}

namespace {

asio::awaitable<forward_outcome> forward_attempts(
    beast::tcp_stream& client, beast::flat_buffer& client_buffer, request_parser& parser,
    const forward_request& request, upstream_pool& pool, std::shared_ptr<client_watch>& watch) {
  auto& message = parser.get();
  const bool has_body = request_has_body(message);
  const bool is_head = message.method() == http::verb::head;
  const auto executor = co_await asio::this_coro::executor;
  const auto head = upstream_request_head(message, request, false);
  // Checked before the 100 Continue, so that a rejected client never sends its body.
  if (auto rejected = check_streamlit_header_limit(head, request)) co_return *rejected;

  if (has_body && gateway::iequals(message[http::field::expect], "100-continue")) {
    // The limits were checked on the head; let the client send its body.
    if (co_await write_text(client, "HTTP/1.1 100 Continue\r\n\r\n")) {
      forward_outcome gone;
      gone.client_gone = true;
      gone.status = 499;
      co_return gone;
    }
  }

  // A request without a body is sent once more, on a new connection, when a reused keep-alive
  // connection turns out to have been closed by the child in the meantime. The other idle
  // connections may be just as stale, for example when the child was killed.
  for (int attempt = 0;; ++attempt) {
    // The previous attempt's connection is freed by now, so a client that leaves while this
    // attempt connects must not reach it through the watch.
    if (watch) watch->upstream = nullptr;
    bool reused = false;
    auto connection = attempt == 0 ? pool.take(executor, request.port, reused)
                                   : std::make_unique<beast::tcp_stream>(executor);
    auto& upstream = *connection;
    if (!reused) {
      if (auto error =
              co_await connect_stream(upstream, request.port, pool.limits().connect_timeout)) {
        if (error == beast::error::timeout)
          co_return local_failure(504, "upstream_connect_timeout");
        co_return unreachable_failure("upstream_connect_failed");
      }
    }

    auto write_error = co_await write_text(upstream, head);
    body_copy_result body_result;
    if (!write_error && has_body) {
      body_result =
          co_await copy_request_body(client, client_buffer, parser, upstream, request.body_read);
      if (request.body_read && request.body_read->timed_out) {
        co_return local_failure(408, "body_read_timeout");
      }
      if (body_result.client_error == http::error::body_limit) {
        auto outcome = local_failure(413, "request_body_too_large");
        co_return outcome;
      }
      if (is_malformed_body(body_result.client_error)) {
        co_return local_failure(400, "bad_request_body");
      }
      if (body_result.client_error) {
        forward_outcome gone;
        gone.client_gone = true;
        gone.status = 499;
        co_return gone;
      }
      // When the child stopped reading early, its response (often a 413) may still be there.
    }
    if (!watch) {
      watch = std::make_shared<client_watch>(executor);
      asio::co_spawn(executor, watch_client(client, client_buffer, watch), asio::detached);
    }
    watch->upstream = &upstream;

    http::response_parser<http::buffer_body> response_parser;
    response_parser.header_limit(max_upstream_header_bytes);
    response_parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (is_head) response_parser.skip(true);
    beast::flat_buffer upstream_buffer;
    // Beast reads at most the buffer's free capacity (512 bytes at least) per call, so room for
    // a whole chunk keeps a large body to a few reads.
    upstream_buffer.reserve(body_chunk_bytes);

    boost::system::error_code read_error = write_error;
    if (!write_error || has_body) {
      upstream.expires_after(pool.limits().response_timeout);
      auto [error, read] = co_await http::async_read_header(upstream, upstream_buffer,
                                                            response_parser, nothrow_awaitable);
      read_error = error;
      upstream.expires_never();
    }
    if (read_error) {
      const bool stale = reused && !has_body && attempt == 0 && closed_before_response(read_error);
      if (stale) continue;
      if (read_error == beast::error::timeout) co_return local_failure(504, "upstream_timeout");
      if (closed_before_response(read_error)) {
        co_return unreachable_failure("upstream_response_invalid");
      }
      co_return local_failure(502, "upstream_response_invalid");
    }

    auto& response = response_parser.get();
    const int status = response.result_int();
    forward_outcome outcome;
    outcome.status = status;
    outcome.keep_alive =
        message.keep_alive() && body_result.upstream_error == boost::system::error_code{};

    client_framing framing = client_framing::none;
    if (!is_head && !gateway::status_forbids_body(status)) {
      if (response.has_content_length()) {
        framing = client_framing::content_length;
      } else if (message.version() >= 11) {
        // Chunked from the child, or delimited by its close: chunks keep the client's
        // connection reusable either way.
        framing = client_framing::chunked;
      } else {
        framing = client_framing::until_close;
        outcome.keep_alive = false;
      }
    }

    // When the first body bytes came with the head, the head waits for them, so that a small
    // response leaves in one write. Otherwise it goes out at once: the body may take long.
    auto client_head = client_response_head(response, request, framing, outcome.keep_alive, false);
    if (upstream_buffer.size() == 0 && !response_parser.is_done()) {
      if (co_await write_text(client, client_head)) {
        outcome.client_gone = true;
        outcome.keep_alive = false;
        co_return outcome;
      }
      client_head.clear();
    }

    const bool chunked = framing == client_framing::chunked;
    bool final_chunk_sent = false;
    // An event stream never ends by itself; a shutdown ends it between two reads instead.
    auto* interrupt = response[http::field::content_type].starts_with("text/event-stream")
                          ? request.interrupt
                          : nullptr;
    if (interrupt != nullptr) {
      interrupt->cancel_read = [&upstream] { upstream.socket().cancel(); };
    }
    const auto drained = [interrupt] { return interrupt != nullptr && interrupt->requested; };
    byte_chunk chunk(body_chunk_bytes);
    // A Content-Length body bypasses the parser, so no byte is copied in between. The part that
    // came with the head goes to the client straight from the read buffer. The rest is read from
    // the socket into the relay chunk, and `unread` counts the body bytes still to read. Bytes
    // past the end stay in the read buffer, where the reuse check below finds them.
    std::optional<std::uint64_t> unread;
    if (framing == client_framing::content_length) {
      if (const auto remaining = response_parser.content_length_remaining()) {
        const auto buffered = static_cast<std::size_t>(
            std::min<std::uint64_t>(*remaining, upstream_buffer.size()));
        unread = *remaining - buffered;
        if (buffered > 0) {
          const auto* data = static_cast<const char*>(upstream_buffer.data().data());
          if (co_await write_body_piece(client, data, buffered, false, client_head, false)) {
            outcome.client_gone = true;
            outcome.keep_alive = false;
            co_return outcome;
          }
          upstream_buffer.consume(buffered);
          client_head.clear();
          outcome.body_bytes += buffered;
        }
      }
    }
    const auto body_done = [&] { return unread ? *unread == 0 : response_parser.is_done(); };
    while (!body_done() && !drained()) {
      boost::system::error_code error;
      std::size_t got = 0;
      if (unread) {
        const auto read_size =
            static_cast<std::size_t>(std::min<std::uint64_t>(*unread, chunk.size()));
        std::tie(error, got) = co_await upstream.async_read_some(
            asio::buffer(chunk.data(), read_size), nothrow_awaitable);
        *unread -= got;
      } else {
        auto& body = response.body();
        body.data = chunk.data();
        body.size = chunk.size();
        std::tie(error, std::ignore) = co_await http::async_read_some(
            upstream, upstream_buffer, response_parser, nothrow_awaitable);
        if (error == http::error::need_buffer) error = {};
        got = chunk.size() - body.size;
      }
      if (error && drained()) break;
      if (error && watch->client_gone) {
        // The watch cancelled the read because the client went away.
        outcome.client_gone = true;
        outcome.keep_alive = false;
        co_return outcome;
      }
      if (error) {
        // The child broke off mid-body; the client must see a truncated response, not a
        // complete one, so its connection closes without the final chunk.
        observability::logger("fluxlit")->warn("{} upstream body read failed: {}",
                                               request.connection_tag, error.message());
        outcome.keep_alive = false;
        if (!client_head.empty()) co_await write_text(client, client_head);
        co_return outcome;
      }
      const bool last = chunked && response_parser.is_done();
      if (got == 0 && !last) continue;
      if (co_await write_body_piece(client, chunk.data(), got, chunked, client_head, last)) {
        outcome.client_gone = true;
        outcome.keep_alive = false;
        co_return outcome;  // closing `upstream` here aborts the child's side too
      }
      client_head.clear();
      final_chunk_sent = last;
      outcome.body_bytes += got;
    }
    if (interrupt != nullptr) interrupt->cancel_read = nullptr;
    if (drained()) outcome.keep_alive = false;
    if (chunked && !final_chunk_sent) client_head += "0\r\n\r\n";
    if (!client_head.empty() && co_await write_text(client, client_head)) {
      outcome.client_gone = true;
      outcome.keep_alive = false;
      co_return outcome;
    }
    if (drained()) co_return outcome;  // the child's connection closes here

    // A child that rejects a request with a body (an upload's 403 or 413) may not have read the
    // whole body, and such a connection is not safe to reuse.
    const bool early_rejection = has_body && status >= 400;
    // Bytes buffered past the end of the response belong to no request, so the connection
    // closes instead of going back to the pool.
    const bool stray_bytes = upstream_buffer.size() > 0;
    if (stray_bytes) {
      observability::logger("fluxlit")->warn(
          "{} Streamlit sent {} bytes past the end of its response; its connection is closed "
          "instead of reused",
          request.connection_tag, upstream_buffer.size());
    }
    if (response_parser.keep_alive() && !early_rejection && !stray_bytes &&
        body_result.upstream_error == boost::system::error_code{}) {
      pool.give_back(std::move(connection), request.port);
    }
    co_return outcome;
  }
}

}  // namespace

bool is_malformed_body(const boost::system::error_code& error) {
  return error.category() == http::make_error_code(http::error::bad_chunk).category() &&
         error != http::error::partial_message && error != http::error::end_of_stream;
}

}  // namespace fluxlit::proxy
