// Forwarding to the Streamlit child: a keep-alive connection pool, streamed HTTP forwarding
// and the WebSocket tunnel.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fluxlit/gateway/forwarded.hpp"

namespace fluxlit::observability {
class metrics;
}

namespace fluxlit::proxy {

using tcp = boost::asio::ip::tcp;

// Boost.Beast's parser for client request heads, except for a header field that Beast's fields
// cannot store. Beast (1.81) keeps each name and value length in 16 bits and throws
// std::length_error for a longer one, which would end the connection without a response. This
// parser fails such a head with http::error::header_limit instead.
class request_parser : public boost::beast::http::request_parser<boost::beast::http::buffer_body> {
 public:
  // Maximum length, in bytes, of a header field name or value that Beast's fields can store.
  static constexpr std::size_t max_field_bytes = std::numeric_limits<std::uint16_t>::max() - 2;

  // True when the head failed because a field name or value was longer than max_field_bytes.
  bool field_too_large() const { return field_too_large_; }

 private:
  void on_field_impl(boost::beast::http::field name, boost::beast::string_view name_string,
                     boost::beast::string_view value, boost::beast::error_code& error) override;

  bool field_too_large_ = false;
};

struct pool_limits {
  std::size_t max_idle_connections = 32;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds response_timeout{60000};
};

// Idle keep-alive connections to the child, by port. Runs on one executor; not thread-safe.
class upstream_pool {
 public:
  explicit upstream_pool(pool_limits limits) : limits_(limits) {}

  const pool_limits& limits() const { return limits_; }

  // Returns an idle connection to `port`, or an unconnected stream (`reused` false). Streams
  // live on the heap because moving a beast::tcp_stream allocates a new one with its timers.
  std::unique_ptr<boost::beast::tcp_stream> take(const boost::asio::any_io_executor& executor,
                                                 std::uint16_t port, bool& reused);
  void give_back(std::unique_ptr<boost::beast::tcp_stream> stream, std::uint16_t port);
  void clear();

 private:
  struct idle_connection {
    std::uint16_t port;
    std::unique_ptr<boost::beast::tcp_stream> stream;
  };
  pool_limits limits_;
  std::vector<idle_connection> idle_;
};

// Lets the gateway end a long relay early and cleanly during a shutdown: a WebSocket tunnel
// sends close 1001 to the client at a frame boundary, and an event stream ends with its final
// chunk. Used on the I/O thread only.
struct relay_interrupt {
  bool requested = false;
  std::function<void()> cancel_read;  // set by the relay while it waits on the child

  void request() {
    requested = true;
    if (cancel_read) cancel_read();
  }
};

// A read of a request body in progress, so that the connection can end one that waits longer
// than body_read_timeout_ms for the client's next bytes. The code that reads the body sets
// `waiting_since` before each read and clears it when the read returns. The connection sets
// `timed_out` and cancels the read. Used on the I/O thread only.
struct body_read_state {
  std::optional<std::chrono::steady_clock::time_point> waiting_since;
  bool timed_out = false;

  void begin_read() { waiting_since = std::chrono::steady_clock::now(); }
  void end_read() { waiting_since.reset(); }
};

// Returns whether a read of a request body failed on a malformed body, which gets a 400, rather
// than on a client that went away before the body's end (Beast's partial_message).
bool is_malformed_body(const boost::system::error_code& error);

// The gateway's decisions about one request that goes to the child.
struct forward_request {
  std::uint16_t port = 0;
  std::string target;  // the path and query to send upstream
  std::string request_id;
  gateway::client_identity client;
  std::string forwarded_prefix;          // X-Forwarded-Prefix, the public root path
  std::string connection_tag;            // "[C12]" for log lines
  relay_interrupt* interrupt = nullptr;  // optional; owned by the connection
  body_read_state* body_read = nullptr;  // optional; owned by the connection
  // Caps of a WebSocket tunnel; zero means no cap. The tunnel closes with 1001 at a frame
  // boundary once no byte moved for `websocket_idle_timeout`, or once it has been open for
  // `websocket_max_lifetime`.
  std::chrono::milliseconds websocket_idle_timeout{0};
  std::chrono::milliseconds websocket_max_lifetime{0};
};

// A read pending on the client connection while a request is forwarded. It notices a client
// that goes away, and after the response it can serve as the read of the next request.
struct client_watch;

struct forward_outcome {
  int status = 0;                // what the client received (or should receive, see local)
  std::uint64_t body_bytes = 0;  // response body bytes sent to the client
  bool keep_alive = false;       // the client connection can serve another request
  bool upgraded = false;         // a WebSocket tunnel ran
  bool client_gone = false;      // the client went away before the end (logged as 499)
  // Set when nothing was sent to the client yet and the gateway must reply itself, with
  // `status` and this machine-readable reason.
  std::string local_reason;
  // The local reply's `detail` for a person: the cause and the fix. Empty for most reasons.
  std::string local_detail;
  // Set with a local 502 when the connect to the child failed, or the child closed or reset the
  // connection before any byte of its response: the child may have exited just now.
  bool upstream_unreachable = false;
  // Set when the response went out whole on a keep-alive connection with nothing read ahead.
  // The client read is then still pending. The caller must finish it with await_next_request or
  // stop_watch before it reads from `client`, and before it destroys `client` or its buffer.
  std::shared_ptr<client_watch> next_request_watch;
};

// Sends the request whose header is in `parser` to the child, streaming the body, and
// streams the response back. Never throws; failures come back in the outcome.
boost::asio::awaitable<forward_outcome> forward_http(boost::beast::tcp_stream& client,
                                                     boost::beast::flat_buffer& client_buffer,
                                                     request_parser& parser,
                                                     const forward_request& request,
                                                     upstream_pool& pool);

// Waits up to `timeout` for the first bytes of the next request, which the watch reads into the
// client buffer that forward_http was given. Returns false when the client closed, the read
// failed or the time ran out; the watch is finished either way.
boost::asio::awaitable<bool> await_next_request(std::shared_ptr<client_watch> watch,
                                                boost::beast::tcp_stream& client,
                                                std::chrono::milliseconds timeout);

// Cancels the watch's read and waits until the watch let go of the client and its buffer.
boost::asio::awaitable<void> stop_watch(client_watch& watch, boost::beast::tcp_stream& client);

// Relays a WebSocket upgrade: the child's response goes back as it is, and after a 101 bytes
// flow both ways until either side closes, or until a cap in `request` or a shutdown closes
// the client's side with 1001. Defined in tunnel.cpp.
boost::asio::awaitable<forward_outcome> tunnel_websocket(boost::beast::tcp_stream& client,
                                                         boost::beast::flat_buffer& client_buffer,
                                                         request_parser& parser,
                                                         const forward_request& request,
                                                         upstream_pool& pool,
                                                         observability::metrics& metrics);

}  // namespace fluxlit::proxy
