// The WebSocket tunnel: the upgrade handshake with the child, then a byte relay in both
// directions that follows frame boundaries toward the client.
#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>

#include "fluxlit/observability/log.hpp"
#include "fluxlit/observability/metrics.hpp"
#include "fluxlit/proxy/byte_chunk.hpp"
#include "fluxlit/proxy/frame_tracker.hpp"
#include "fluxlit/proxy/upstream.hpp"
#include "proxy/upstream_detail.hpp"

namespace fluxlit::proxy {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace detail;

namespace {

// Bytes read per step from one side of a tunnel. Every tunnel on an I/O thread reads into that
// thread's one buffer: a step reads and writes without suspending in between, and only bytes
// the other socket does not take at once are copied into a buffer of their own. An idle
// tunnel therefore has no buffer allocated.
constexpr std::size_t tunnel_scratch_bytes = 64 * 1024;

// Time the client gets to reply to the gateway's close frame before the sockets close. The
// other direction relays that reply to the child. A slower client has still received the close
// code.
constexpr auto close_reply_wait = std::chrono::milliseconds(250);

char* thread_scratch() {
  thread_local const auto scratch = std::make_unique_for_overwrite<char[]>(tunnel_scratch_bytes);
  return scratch.get();
}

// The result of moving the bytes that one socket has ready to the other.
struct relay_step {
  bool ended = false;                // the source closed or either socket failed
  bool write_failed = false;         // of those, the destination failed
  std::optional<byte_chunk> unsent;  // bytes the destination did not take yet
};

// One relayed WebSocket after the 101: a relay loop per direction, and a watch of the idle and
// lifetime caps when either is set. Both sockets are in non-blocking mode. Runs on the
// connection's I/O thread only.
class tunnel {
 public:
  tunnel(tcp::socket& client, tcp::socket& upstream, const forward_request& request)
      : client_(client),
        upstream_(upstream),
        interrupt_(request.interrupt),
        idle_timeout_(request.websocket_idle_timeout),
        max_lifetime_(request.websocket_max_lifetime),
        caps_timer_(client.get_executor()),
        connection_tag_(request.connection_tag),
        request_id_(request.request_id) {}

  asio::awaitable<void> run(observability::metrics& metrics) {
    using namespace asio::experimental::awaitable_operators;
    boost::system::error_code ignored;
    client_.non_blocking(true, ignored);
    upstream_.non_blocking(true, ignored);
    last_activity_ = std::chrono::steady_clock::now();
    if (interrupt_ != nullptr) {
      // Mid-frame, the rest of the frame is relayed first and the loop stops after it.
      interrupt_->cancel_read = [this] { cancel_upstream_wait_at_boundary(); };
    }
    co_await (relay(client_, upstream_, false) && relay(upstream_, client_, true) &&
              enforce_caps(metrics));
    if (interrupt_ != nullptr) interrupt_->cancel_read = nullptr;
  }

 private:
  bool close_requested() const {
    return cap_reason_ != nullptr || (interrupt_ != nullptr && interrupt_->requested);
  }

  void cancel_upstream_wait_at_boundary() {
    boost::system::error_code ignored;
    if (frames_.at_boundary()) upstream_.cancel(ignored);
  }

  // Copies bytes from `from` to `to` until either fails or the gateway closes the tunnel, then
  // shuts both sockets down so that the other direction ends too. Only the direction toward the
  // client (`to_client`) tracks frames and sends the gateway's close frame.
  asio::awaitable<void> relay(tcp::socket& from, tcp::socket& to, bool to_client) {
    bool write_failed = false;
    for (;;) {
      if (to_client && close_requested() && frames_.at_boundary()) {
        co_await send_close();
        break;
      }
      auto [wait_error] = co_await from.async_wait(tcp::socket::wait_read, nothrow_awaitable);
      if (wait_error == asio::error::operation_aborted && to_client && close_requested()) {
        continue;
      }
      if (wait_error) break;
      auto step = move_ready_bytes(from, to, to_client);
      write_failed = step.write_failed;
      if (step.ended) break;
      if (step.unsent) {
        auto [write_error, written] = co_await asio::async_write(
            to, asio::buffer(step.unsent->data(), step.unsent->size()), nothrow_awaitable);
        write_failed = static_cast<bool>(write_error);
        if (write_error) break;
      }
    }
    if (!to_client && write_failed && !finished_) {
      // The child closed while the client was still sending, typically after it sent a close
      // frame (1009 for a message over its size limit). That frame may still wait in the
      // child's socket, so the other direction gets a moment to relay it before both close.
      asio::steady_timer wait(from.get_executor());
      wait.expires_after(close_reply_wait);
      co_await wait.async_wait(nothrow_awaitable);
    }
    finish();
  }

  relay_step move_ready_bytes(tcp::socket& from, tcp::socket& to, bool to_client) {
    relay_step step;
    char* scratch = thread_scratch();
    boost::system::error_code error;
    const auto read = from.read_some(asio::buffer(scratch, tunnel_scratch_bytes), error);
    if (error == asio::error::would_block) return step;  // a spurious wake-up
    if (error) {
      step.ended = true;
      return step;
    }
    if (idle_timeout_.count() != 0) last_activity_ = std::chrono::steady_clock::now();
    if (to_client) frames_.consume(std::string_view(scratch, read));
    auto written = to.write_some(asio::buffer(scratch, read), error);
    if (error == asio::error::would_block) {
      written = 0;
      error = {};
    }
    if (error) {
      step.ended = true;
      step.write_failed = true;
      return step;
    }
    if (written < read) {
      step.unsent.emplace(read - written);
      std::memcpy(step.unsent->data(), scratch + written, read - written);
    }
    return step;
  }

  asio::awaitable<void> send_close() {
    const bool shutting_down = interrupt_ != nullptr && interrupt_->requested;
    const auto close =
        make_close_frame(1001, shutting_down ? "server shutting down" : cap_message_, false);
    auto [error, written] =
        co_await asio::async_write(client_, asio::buffer(close), nothrow_awaitable);
    if (!error) {
      asio::steady_timer wait(client_.get_executor());
      wait.expires_after(close_reply_wait);
      co_await wait.async_wait(nothrow_awaitable);
    }
  }

  // Waits for the earlier of the two caps; returns at once when neither is set.
  asio::awaitable<void> enforce_caps(observability::metrics& metrics) {
    if (idle_timeout_.count() == 0 && max_lifetime_.count() == 0) co_return;
    const auto opened = std::chrono::steady_clock::now();
    while (!finished_) {
      auto deadline = std::chrono::steady_clock::time_point::max();
      if (max_lifetime_.count() != 0) deadline = opened + max_lifetime_;
      if (idle_timeout_.count() != 0) deadline = std::min(deadline, last_activity_ + idle_timeout_);
      caps_timer_.expires_at(deadline);
      co_await caps_timer_.async_wait(nothrow_awaitable);
      if (finished_) break;
      const auto now = std::chrono::steady_clock::now();
      if (max_lifetime_.count() != 0 && now >= opened + max_lifetime_) {
        close_for_cap("websocket_max_lifetime", "maximum lifetime reached", metrics);
        break;
      }
      if (idle_timeout_.count() != 0 && now >= last_activity_ + idle_timeout_) {
        close_for_cap("websocket_idle_timeout", "idle timeout", metrics);
        break;
      }
    }
  }

  // NOTE: a child that stops sending in the middle of a frame keeps the tunnel open past a cap,
  // because the close frame may only go between two frames.
  void close_for_cap(const char* reason, const char* message, observability::metrics& metrics) {
    cap_reason_ = reason;
    cap_message_ = message;
    metrics.count_local_reply(reason);
    observability::logger("fluxlit")->debug("{} rid={} closing WebSocket with 1001: {}",
                                            connection_tag_, request_id_, reason);
    cancel_upstream_wait_at_boundary();
  }

  void finish() {
    finished_ = true;
    caps_timer_.cancel();
    boost::system::error_code ignored;
    upstream_.shutdown(tcp::socket::shutdown_both, ignored);
    client_.shutdown(tcp::socket::shutdown_both, ignored);
  }

  tcp::socket& client_;
  tcp::socket& upstream_;
  relay_interrupt* interrupt_;
  const std::chrono::milliseconds idle_timeout_;
  const std::chrono::milliseconds max_lifetime_;
  asio::steady_timer caps_timer_;
  const std::string& connection_tag_;
  const std::string& request_id_;
  frame_tracker frames_;  // of the bytes sent to the client
  std::chrono::steady_clock::time_point last_activity_;
  const char* cap_reason_ = nullptr;  // set once a cap closes the tunnel
  const char* cap_message_ = "";
  bool finished_ = false;
};

// Sends the upgrade request to the child and relays its response head. A request head larger
// than Streamlit's limit gets a local 431 before the child is contacted. On a 101 it also
// flushes bytes that arrived together with either head, moves the connection into
// `upstream_socket` and sets `outcome.upgraded`. A refusal (403, 404, ...) reaches the client
// with the child's status and body.
asio::awaitable<forward_outcome> exchange_heads(beast::tcp_stream& client,
                                                beast::flat_buffer& client_buffer,
                                                request_parser& parser,
                                                const forward_request& request, upstream_pool& pool,
                                                tcp::socket& upstream_socket) {
  const auto head = upstream_request_head(parser.get(), request, true);
  if (auto rejected = check_streamlit_header_limit(head, request)) co_return *rejected;

  beast::tcp_stream upstream(co_await asio::this_coro::executor);
  if (co_await connect_stream(upstream, request.port, pool.limits().connect_timeout)) {
    co_return unreachable_failure("upstream_connect_failed");
  }
  if (co_await write_text(upstream, head)) {
    co_return unreachable_failure("upstream_connect_failed");
  }

  http::response_parser<http::buffer_body> response_parser;
  response_parser.header_limit(max_upstream_header_bytes);
  response_parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  beast::flat_buffer upstream_buffer;
  upstream.expires_after(pool.limits().response_timeout);
  auto [read_error, read] = co_await http::async_read_header(upstream, upstream_buffer,
                                                             response_parser, nothrow_awaitable);
  upstream.expires_never();
  if (closed_before_response(read_error)) {
    co_return unreachable_failure("upstream_response_invalid");
  }
  if (read_error) {
    co_return local_failure(
        read_error == beast::error::timeout ? 504 : 502,
        read_error == beast::error::timeout ? "upstream_timeout" : "upstream_response_invalid");
  }

  auto& response = response_parser.get();
  forward_outcome outcome;
  outcome.status = response.result_int();
  outcome.keep_alive = false;

  // A 2xx other than 101 is a page served in place of the upgrade, such as the child's index
  // page for a path it has no WebSocket on. A WebSocket client cannot use it, so the client
  // gets a 502 instead. Refusals (3xx, 4xx, 5xx) pass through unchanged below.
  if (outcome.status >= 200 && outcome.status < 300) {
    observability::logger("fluxlit")->warn(
        "{} rid={} Streamlit answered the WebSocket upgrade of {} with {} instead of 101; "
        "replying 502",
        request.connection_tag, request.request_id, request.target, outcome.status);
    co_return local_failure(502, "upstream_upgrade_not_accepted");
  }

  if (outcome.status != 101) {
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

  // Frames that arrived together with the heads belong to the other side.
  if (upstream_buffer.size() != 0) {
    auto [error, written] =
        co_await asio::async_write(client, upstream_buffer.data(), nothrow_awaitable);
    if (error) co_return outcome;
  }
  if (client_buffer.size() != 0) {
    auto [error, written] =
        co_await asio::async_write(upstream, client_buffer.data(), nothrow_awaitable);
    if (error) co_return outcome;
    client_buffer.consume(client_buffer.size());
  }
  upstream_socket = upstream.release_socket();
  outcome.upgraded = true;
  co_return outcome;
}

}  // namespace

asio::awaitable<forward_outcome> tunnel_websocket(
    beast::tcp_stream& client, beast::flat_buffer& client_buffer, request_parser& parser,
    const forward_request& request, upstream_pool& pool, observability::metrics& metrics) {
  tcp::socket upstream(co_await asio::this_coro::executor);
  auto outcome = co_await exchange_heads(client, client_buffer, parser, request, pool, upstream);
  if (!outcome.upgraded) co_return outcome;

  // A tunnel may stay open for hours: release what only the handshake needed.
  parser.get().clear();
  client_buffer.shrink_to_fit();
  client.expires_never();

  metrics.websocket_opened();
  tunnel relay(client.socket(), upstream, request);
  co_await relay.run(metrics);
  metrics.websocket_closed();
  co_return outcome;
}

}  // namespace fluxlit::proxy
