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
#include <string>
#include <vector>

#include "fluxlit/gateway/forwarded.hpp"

namespace fluxlit::observability {
class metrics;
}

namespace fluxlit::proxy {

using tcp = boost::asio::ip::tcp;
using request_parser = boost::beast::http::request_parser<boost::beast::http::buffer_body>;

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

  // Returns an idle connection to `port`, or an unconnected stream (`reused` false).
  boost::beast::tcp_stream take(const boost::asio::any_io_executor& executor, std::uint16_t port,
                                bool& reused);
  void give_back(boost::beast::tcp_stream stream, std::uint16_t port);
  void clear();

 private:
  struct idle_connection {
    std::uint16_t port;
    boost::beast::tcp_stream stream;
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

// The gateway's decisions about one request that goes to the child.
struct forward_request {
  std::uint16_t port = 0;
  std::string target;  // the path and query to send upstream
  std::string request_id;
  gateway::client_identity client;
  std::string forwarded_prefix;          // X-Forwarded-Prefix, the public root path
  std::string connection_tag;            // "[C12]" for log lines
  relay_interrupt* interrupt = nullptr;  // optional; owned by the connection
  // Caps of a WebSocket tunnel; zero means no cap. The tunnel closes with 1001 at a frame
  // boundary once no byte moved for `websocket_idle_timeout`, or once it has been open for
  // `websocket_max_lifetime`.
  std::chrono::milliseconds websocket_idle_timeout{0};
  std::chrono::milliseconds websocket_max_lifetime{0};
};

struct forward_outcome {
  int status = 0;                // what the client received (or should receive, see local)
  std::uint64_t body_bytes = 0;  // response body bytes sent to the client
  bool keep_alive = false;       // the client connection can serve another request
  bool upgraded = false;         // a WebSocket tunnel ran
  bool client_gone = false;      // the client went away before the end (logged as 499)
  // Set when nothing was sent to the client yet and the gateway must reply itself, with
  // `status` and this machine-readable reason.
  std::string local_reason;
  // Set with a local 502 when the connect to the child failed, or the child closed or reset the
  // connection before any byte of its response: the child may have exited just now.
  bool upstream_unreachable = false;
};

// Sends the request whose header is in `parser` to the child, streaming the body, and
// streams the response back. Never throws; failures come back in the outcome.
boost::asio::awaitable<forward_outcome> forward_http(boost::beast::tcp_stream& client,
                                                     boost::beast::flat_buffer& client_buffer,
                                                     request_parser& parser,
                                                     const forward_request& request,
                                                     upstream_pool& pool);

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
