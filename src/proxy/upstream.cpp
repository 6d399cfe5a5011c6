#include "fluxlit/proxy/upstream.hpp"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <limits>
#include <vector>

#include "fluxlit/gateway/http_text.hpp"
#include "fluxlit/observability/log.hpp"
#include "fluxlit/observability/metrics.hpp"
#include "fluxlit/proxy/byte_chunk.hpp"
#include "fluxlit/proxy/frame_tracker.hpp"

namespace fluxlit::proxy {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

// Bytes moved per read while a body streams through. Large enough that a 300 KiB file takes a
// handful of reads, small enough that a thousand concurrent transfers stay within ~64 MiB.
constexpr std::size_t body_chunk_bytes = 64 * 1024;

// Bytes per direction and per read in a WebSocket tunnel. Streamlit's frames are mostly small,
// and a thousand idle tunnels then hold 16 MiB at most.
constexpr std::size_t tunnel_chunk_bytes = 8 * 1024;

// Upper bound on the child's response head. Streamlit's heads are well under 4 KiB.
constexpr std::uint32_t max_upstream_header_bytes = 256 * 1024;

tcp::endpoint child_endpoint(std::uint16_t port) {
  return {asio::ip::address_v4::loopback(), port};
}

bool is_forwarding_header(std::string_view name) {
  return gateway::iequals(name, "x-forwarded-for") || gateway::iequals(name, "x-forwarded-proto") ||
         gateway::iequals(name, "x-forwarded-host") ||
         gateway::iequals(name, "x-forwarded-prefix") || gateway::iequals(name, "x-request-id") ||
         gateway::iequals(name, "forwarded");
}

// The head sent to the child: the client's headers minus hop-by-hop and forwarding headers,
// plus the gateway's own forwarding headers. For an upgrade, Upgrade and Connection stay.
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

enum class client_framing { none, content_length, chunked, until_close };

// The head sent to the client: the child's status and headers minus hop-by-hop ones.
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
                                                            bool chunked) {
  if (!chunked) {
    auto [error, written] =
        co_await asio::async_write(stream, asio::buffer(data, size), nothrow_awaitable);
    co_return error;
  }
  const auto framing = gateway::chunk_header(size);
  static constexpr std::string_view crlf = "\r\n";
  const std::array<asio::const_buffer, 3> pieces = {asio::buffer(framing), asio::buffer(data, size),
                                                    asio::buffer(crlf.data(), crlf.size())};
  auto [error, written] = co_await asio::async_write(stream, pieces, nothrow_awaitable);
  co_return error;
}

// Streams the client's request body to the child. Returns the error of the side that failed.
struct body_copy_result {
  boost::system::error_code client_error;
  boost::system::error_code upstream_error;
};

asio::awaitable<body_copy_result> copy_request_body(beast::tcp_stream& client,
                                                    beast::flat_buffer& client_buffer,
                                                    request_parser& parser,
                                                    beast::tcp_stream& upstream) {
  body_copy_result result;
  const bool chunked = parser.get().chunked();
  byte_chunk chunk(body_chunk_bytes);
  while (!parser.is_done()) {
    auto& body = parser.get().body();
    body.data = chunk.data();
    body.size = chunk.size();
    // A slow upload that keeps making progress is never cut off.
    client.expires_never();
    auto [error, read] =
        co_await http::async_read_some(client, client_buffer, parser, nothrow_awaitable);
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

}  // namespace

beast::tcp_stream upstream_pool::take(const asio::any_io_executor& executor, std::uint16_t port,
                                      bool& reused) {
  while (!idle_.empty()) {
    auto candidate = std::move(idle_.back());
    idle_.pop_back();
    if (candidate.port == port && candidate.stream.socket().is_open()) {
      reused = true;
      return std::move(candidate.stream);
    }
  }
  reused = false;
  return beast::tcp_stream(executor);
}

void upstream_pool::give_back(beast::tcp_stream stream, std::uint16_t port) {
  if (idle_.size() >= limits_.max_idle_connections) return;  // the stream closes here
  idle_.push_back(idle_connection{port, std::move(stream)});
}

void upstream_pool::clear() {
  idle_.clear();
}

namespace {

// Keeps one read pending on the client while the child works on a response, so a client that
// goes away aborts the request to the child at once instead of when the response arrives.
struct client_watch {
  explicit client_watch(const asio::any_io_executor& executor) : finished_signal(executor) {}

  beast::tcp_stream* upstream = nullptr;  // the attempt's connection to the child
  bool client_gone = false;
  bool finished = false;
  asio::steady_timer finished_signal;
};

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
  }
  watch->finished = true;
  watch->finished_signal.cancel();
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
    if (!watch->finished) {
      client.socket().cancel();
      while (!watch->finished) {
        watch->finished_signal.expires_at(asio::steady_timer::time_point::max());
        co_await watch->finished_signal.async_wait(nothrow_awaitable);
      }
    }
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

namespace {

asio::awaitable<forward_outcome> forward_attempts(
    beast::tcp_stream& client, beast::flat_buffer& client_buffer, request_parser& parser,
    const forward_request& request, upstream_pool& pool, std::shared_ptr<client_watch>& watch) {
  auto& message = parser.get();
  const bool has_body = request_has_body(message);
  const bool is_head = message.method() == http::verb::head;
  const auto executor = co_await asio::this_coro::executor;
  const auto head = upstream_request_head(message, request, false);

  if (has_body && gateway::iequals(message[http::field::expect], "100-continue")) {
    // The limits were checked on the head; let the client send its body.
    if (co_await write_text(client, "HTTP/1.1 100 Continue\r\n\r\n")) {
      forward_outcome gone;
      gone.client_gone = true;
      gone.status = 499;
      co_return gone;
    }
  }

  // A request without a body can be sent again when a reused keep-alive connection turns out
  // to have been closed by the child in the meantime.
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    auto upstream = pool.take(executor, request.port, reused);
    if (!reused) {
      if (auto error =
              co_await connect_stream(upstream, request.port, pool.limits().connect_timeout)) {
        co_return local_failure(error == beast::error::timeout ? 504 : 502,
                                error == beast::error::timeout ? "upstream_connect_timeout"
                                                               : "upstream_connect_failed");
      }
    }

    auto write_error = co_await write_text(upstream, head);
    body_copy_result body_result;
    if (!write_error && has_body) {
      body_result = co_await copy_request_body(client, client_buffer, parser, upstream);
      if (body_result.client_error == http::error::body_limit) {
        auto outcome = local_failure(413, "request_body_too_large");
        co_return outcome;
      }
      if (body_result.client_error.category() ==
          http::make_error_code(http::error::bad_chunk).category()) {
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
      const bool stale =
          reused && !has_body && attempt == 0 &&
          (read_error == http::error::end_of_stream || read_error == asio::error::eof ||
           read_error == asio::error::connection_reset || read_error == asio::error::broken_pipe);
      if (stale) continue;
      if (read_error == beast::error::timeout) co_return local_failure(504, "upstream_timeout");
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

    const auto client_head =
        client_response_head(response, request, framing, outcome.keep_alive, false);
    if (co_await write_text(client, client_head)) {
      outcome.client_gone = true;
      outcome.keep_alive = false;
      co_return outcome;
    }

    const bool chunked = framing == client_framing::chunked;
    // An event stream never ends by itself; a shutdown ends it between two reads instead.
    auto* interrupt = response[http::field::content_type].starts_with("text/event-stream")
                          ? request.interrupt
                          : nullptr;
    if (interrupt != nullptr) {
      interrupt->cancel_read = [&upstream] { upstream.socket().cancel(); };
    }
    const auto drained = [interrupt] { return interrupt != nullptr && interrupt->requested; };
    byte_chunk chunk(body_chunk_bytes);
    while (!response_parser.is_done() && !drained()) {
      auto& body = response.body();
      body.data = chunk.data();
      body.size = chunk.size();
      auto [error, read] = co_await http::async_read_some(upstream, upstream_buffer,
                                                          response_parser, nothrow_awaitable);
      if (error == http::error::need_buffer) error = {};
      if (error && drained()) break;
      if (error) {
        // The child broke off mid-body; the client must see a truncated response, not a
        // complete one, so its connection closes without the final chunk.
        observability::logger("fluxlit")->warn("{} upstream body read failed: {}",
                                               request.connection_tag, error.message());
        outcome.keep_alive = false;
        co_return outcome;
      }
      const auto got = chunk.size() - body.size;
      if (got == 0) continue;
      if (co_await write_body_piece(client, chunk.data(), got, chunked)) {
        outcome.client_gone = true;
        outcome.keep_alive = false;
        co_return outcome;  // closing `upstream` here aborts the child's side too
      }
      outcome.body_bytes += got;
    }
    if (interrupt != nullptr) interrupt->cancel_read = nullptr;
    if (drained()) outcome.keep_alive = false;
    if (chunked && co_await write_text(client, "0\r\n\r\n")) {
      outcome.client_gone = true;
      outcome.keep_alive = false;
      co_return outcome;
    }
    if (drained()) co_return outcome;  // the child's connection closes here

    // A child that rejects a request with a body (an upload's 403 or 413) may not have read the
    // whole body, and such a connection is not safe to reuse.
    const bool early_rejection = has_body && status >= 400;
    if (response_parser.keep_alive() && !early_rejection &&
        body_result.upstream_error == boost::system::error_code{}) {
      pool.give_back(std::move(upstream), request.port);
    }
    co_return outcome;
  }
}

}  // namespace

namespace {

// Copies bytes from one side of a tunnel to the other until either fails, then closes both so
// the opposite direction ends too.
asio::awaitable<void> pump(beast::tcp_stream& from, beast::tcp_stream& to) {
  byte_chunk chunk(tunnel_chunk_bytes);
  for (;;) {
    auto [read_error, read] =
        co_await from.async_read_some(asio::buffer(chunk.data(), chunk.size()), nothrow_awaitable);
    if (read_error) break;
    auto [write_error, written] =
        co_await asio::async_write(to, asio::buffer(chunk.data(), read), nothrow_awaitable);
    if (write_error) break;
  }
  boost::system::error_code ignored;
  from.socket().shutdown(tcp::socket::shutdown_both, ignored);
  to.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

// The child-to-client direction of a tunnel. It follows frame boundaries so that, when the
// gateway shuts down, it can end the client's side with close 1001 between two frames.
asio::awaitable<void> pump_to_client(beast::tcp_stream& upstream, beast::tcp_stream& client,
                                     relay_interrupt* interrupt) {
  // Time the client gets to reply to the gateway's close frame before the sockets close. The
  // other direction relays that reply to the child. A slower client has still received the
  // close code.
  constexpr auto close_reply_wait = std::chrono::milliseconds(250);

  byte_chunk chunk(tunnel_chunk_bytes);
  frame_tracker frames;
  if (interrupt != nullptr) {
    interrupt->cancel_read = [&upstream, &frames] {
      // Mid-frame, the rest of the frame is relayed first and the read loop stops after it.
      if (frames.at_boundary()) upstream.socket().cancel();
    };
  }
  for (;;) {
    if (interrupt != nullptr && interrupt->requested && frames.at_boundary()) {
      const auto close = make_close_frame(1001, "server shutting down", false);
      auto [error, written] =
          co_await asio::async_write(client, asio::buffer(close), nothrow_awaitable);
      if (!error) {
        asio::steady_timer wait(client.get_executor());
        wait.expires_after(close_reply_wait);
        co_await wait.async_wait(nothrow_awaitable);
      }
      break;
    }
    auto [read_error, read] = co_await upstream.async_read_some(
        asio::buffer(chunk.data(), chunk.size()), nothrow_awaitable);
    if (read_error == asio::error::operation_aborted && interrupt != nullptr &&
        interrupt->requested) {
      continue;
    }
    if (read_error) break;
    frames.consume(std::string_view(chunk.data(), read));
    auto [write_error, written] =
        co_await asio::async_write(client, asio::buffer(chunk.data(), read), nothrow_awaitable);
    if (write_error) break;
  }
  if (interrupt != nullptr) interrupt->cancel_read = nullptr;
  boost::system::error_code ignored;
  upstream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  client.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace

asio::awaitable<forward_outcome> tunnel_websocket(
    beast::tcp_stream& client, beast::flat_buffer& client_buffer, request_parser& parser,
    const forward_request& request, upstream_pool& pool, observability::metrics& metrics) {
  using namespace asio::experimental::awaitable_operators;
  const auto executor = co_await asio::this_coro::executor;
  auto& message = parser.get();

  beast::tcp_stream upstream(executor);
  if (auto error = co_await connect_stream(upstream, request.port, pool.limits().connect_timeout)) {
    co_return local_failure(502, "upstream_connect_failed");
  }
  if (co_await write_text(upstream, upstream_request_head(message, request, true))) {
    co_return local_failure(502, "upstream_connect_failed");
  }

  http::response_parser<http::buffer_body> response_parser;
  response_parser.header_limit(max_upstream_header_bytes);
  response_parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  beast::flat_buffer upstream_buffer;
  upstream.expires_after(pool.limits().response_timeout);
  auto [read_error, read] = co_await http::async_read_header(upstream, upstream_buffer,
                                                             response_parser, nothrow_awaitable);
  upstream.expires_never();
  if (read_error) {
    co_return local_failure(
        read_error == beast::error::timeout ? 504 : 502,
        read_error == beast::error::timeout ? "upstream_timeout" : "upstream_response_invalid");
  }

  auto& response = response_parser.get();
  forward_outcome outcome;
  outcome.status = response.result_int();
  outcome.keep_alive = false;

  if (outcome.status != 101) {
    // A refusal (403, 404, ...) reaches the client with the child's status and body.
    const bool has_length = response.has_content_length();
    const auto framing = has_length ? client_framing::content_length : client_framing::until_close;
    if (co_await write_text(client,
                            client_response_head(response, request, framing, false, false))) {
      outcome.client_gone = true;
      co_return outcome;
    }
    byte_chunk chunk(body_chunk_bytes);
    while (!response_parser.is_done()) {
      auto& body = response.body();
      body.data = chunk.data();
      body.size = chunk.size();
      auto [error, got_bytes] = co_await http::async_read_some(upstream, upstream_buffer,
                                                               response_parser, nothrow_awaitable);
      if (error == http::error::need_buffer) error = {};
      if (error) break;
      const auto got = chunk.size() - body.size;
      if (got != 0 && co_await write_body_piece(client, chunk.data(), got, false)) break;
      outcome.body_bytes += got;
    }
    co_return outcome;
  }

  if (co_await write_text(
          client, client_response_head(response, request, client_framing::none, false, true))) {
    outcome.client_gone = true;
    co_return outcome;
  }
  outcome.upgraded = true;

  // Frames that arrived together with the heads belong to the other side.
  if (upstream_buffer.size() != 0) {
    auto [error, written] =
        co_await asio::async_write(client, upstream_buffer.data(), nothrow_awaitable);
    if (error) co_return outcome;
    upstream_buffer.consume(upstream_buffer.size());
  }
  if (client_buffer.size() != 0) {
    auto [error, written] =
        co_await asio::async_write(upstream, client_buffer.data(), nothrow_awaitable);
    if (error) co_return outcome;
    client_buffer.consume(client_buffer.size());
  }

  client.expires_never();
  metrics.websocket_opened();
  co_await (pump(client, upstream) && pump_to_client(upstream, client, request.interrupt));
  metrics.websocket_closed();
  co_return outcome;
}

}  // namespace fluxlit::proxy
