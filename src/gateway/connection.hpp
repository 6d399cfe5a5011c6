// One client connection: reads requests, routes each, and serves it natively, through the
// ASGI bridge or through the proxy. Runs as one coroutine on the I/O thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "fluxlit/asgi/exchange.hpp"
#include "fluxlit/gateway/context.hpp"
#include "fluxlit/proxy/upstream.hpp"
#include "gateway/send_progress.hpp"

namespace fluxlit::gateway {

class connection;

// Wake-ups of connections that other threads request, run on the I/O thread in batches: the
// first request after a batch posts one handler, which wakes every connection requested since.
class connection_wakeups : public std::enable_shared_from_this<connection_wakeups> {
 public:
  explicit connection_wakeups(boost::asio::any_io_executor executor)
      : executor_(std::move(executor)) {}

  // Safe from any thread. A connection that is gone by then is skipped.
  void request(std::weak_ptr<connection> target);

 private:
  void run();

  boost::asio::any_io_executor executor_;
  std::mutex mutex_;
  std::vector<std::weak_ptr<connection>> pending_;
  std::vector<std::weak_ptr<connection>> running_;  // run() only, on the one I/O thread
};

class connection : public std::enable_shared_from_this<connection> {
 public:
  using closed_callback = std::function<void(std::uint64_t id)>;

  connection(boost::asio::ip::tcp::socket socket, gateway_context& context,
             std::shared_ptr<connection_wakeups> wakeups, std::uint64_t id,
             closed_callback on_closed);

  void start();

  // Closes the socket, so pending reads and writes end with an error. I/O thread only. It
  // waits for a write of the Python thread (see write_now) to end.
  void close();

  bool busy() const { return busy_; }

  // Closes the socket for a shutdown. A client whose bytes still wait and who took none of them
  // since the last check gets a reset, and any other a plain close, after which the kernel
  // sends what waits. I/O thread only.
  void close_for_shutdown();

  // Closes the socket with a TCP reset, which drops whatever still waits for the client. I/O
  // thread only.
  void reset();

  // Starts ending long-lived exchanges for a shutdown: relayed and API WebSockets close with
  // 1001 at a frame boundary, event streams end with their final chunk. I/O thread only.
  void begin_shutdown();

  // Closes the connection when, over the checks so far, bytes waited for the client and it took
  // none of them for `limit`. `now` is the time of this check. I/O thread only.
  void check_send_progress(std::chrono::steady_clock::time_point now,
                           std::chrono::steady_clock::duration limit);

  // Cancels a read of the request body that has waited `limit` for the client's next bytes, so
  // that the client gets 408. I/O thread only.
  void check_body_progress(std::chrono::steady_clock::time_point now,
                           std::chrono::steady_clock::duration limit);

 private:
  // The outcome of one request, for the access log.
  struct request_record {
    std::string route;  // "api", "ui", "native", "local"
    int status = 0;
    std::uint64_t body_bytes = 0;
    std::string reason;  // a local reply's machine-readable reason
    bool keep_alive = false;
  };

  // The parts of a request that every serving path needs.
  struct request_view {
    std::string method;
    std::string target;
    std::string request_id;
    client_identity client;
    route destination;
    bool head_only = false;
    bool has_body = false;
    bool keep_alive = false;
    bool upgrade = false;
    unsigned version = 11;
    std::chrono::steady_clock::time_point started;
  };

  boost::asio::awaitable<void> run();
  boost::asio::awaitable<request_record> serve(proxy::request_parser& parser);
  boost::asio::awaitable<request_record> serve_native(const request_view& request);
  boost::asio::awaitable<request_record> serve_ui(proxy::request_parser& parser,
                                                  const request_view& request);
  boost::asio::awaitable<request_record> serve_api(proxy::request_parser& parser,
                                                   const request_view& request);
  // Defined in api_websocket.cpp: a WebSocket route of the ASGI app.
  boost::asio::awaitable<request_record> serve_api_websocket(proxy::request_parser& parser,
                                                             const request_view& request);
  asgi::http_request_head make_asgi_head(proxy::request_parser& parser,
                                         const request_view& request) const;
  template <typename Exchange>
  void connect_exchange(Exchange& exchange);
  // Reads the request body into the exchange, then watches for the client going away. With
  // `submit_after_body`, hands the exchange to the app only once the body is queued.
  boost::asio::awaitable<void> pump_request_body(std::shared_ptr<asgi::http_exchange> exchange,
                                                 proxy::request_parser& parser,
                                                 bool submit_after_body);

  // Writes a reply the gateway makes itself, with its reason in X-FluxLit-Reason.
  boost::asio::awaitable<request_record> reply_locally(const request_view& request, int status,
                                                       std::string reason, std::string content_type,
                                                       std::string body,
                                                       std::string extra_headers = {});

  // Returns whether the Streamlit child has exited or is not ready, after a failed forward.
  boost::asio::awaitable<bool> streamlit_gone();
  // Replies 503 with Retry-After while the Streamlit child is starting, restarting or gone.
  boost::asio::awaitable<request_record> reply_streamlit_not_ready(const request_view& request);

  boost::asio::awaitable<void> drain_unread_input();
  // Cancels the socket's pending operations at `deadline`, unless disarm_read_deadline comes
  // first, and sets read_deadline_passed_. Unlike the stream's own timeout it leaves the socket
  // open, so that finish_sending can still check what waits for the client.
  void arm_read_deadline(std::chrono::steady_clock::time_point deadline);
  void disarm_read_deadline();
  // Reads the first bytes of the next request, for up to `timeout`.
  boost::asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> read_when_idle(
      std::chrono::steady_clock::duration timeout);
  // Keeps a connection that is about to close open while its last response still waits in the
  // kernel, until the client has taken it or check_send_progress resets it for stalling. After
  // a plain close the kernel would keep the bytes and probe a client that reads nothing.
  boost::asio::awaitable<void> finish_sending();
  boost::asio::awaitable<void> wait_for(boost::asio::steady_timer& timer, const bool& flag);
  void wake(boost::asio::steady_timer& timer, bool& flag);
  void log_request(const request_view& request, const request_record& record);
  // Writes what the socket takes of `buffers` at once, from any thread, unless the socket is
  // closed. Returns the bytes written, or the error.
  std::size_t write_now(std::span<const boost::asio::const_buffer> buffers,
                        boost::system::error_code& error);
  // Wakes whatever waits for the exchange: the response loop and the request body pump.
  void wake_for_exchange();
  friend class connection_wakeups;

  boost::beast::tcp_stream stream_;
  // Held by close() and write_now(), so that the Python thread never writes to a descriptor
  // that was closed, and perhaps reused by another connection.
  std::mutex socket_mutex_;
  bool socket_closed_ = false;  // under socket_mutex_
  boost::beast::flat_buffer buffer_;
  gateway_context& context_;
  std::shared_ptr<connection_wakeups> wakeups_;
  const std::uint64_t id_;
  const std::string tag_;
  closed_callback on_closed_;
  boost::asio::ip::tcp::endpoint peer_;
  boost::asio::ip::tcp::endpoint local_;
  // The endpoints' addresses as text, computed once for the scopes of all requests.
  std::string peer_host_;
  std::string local_host_;
  bool busy_ = false;

  // ASGI exchange signalling; all flags are touched on the I/O thread only.
  boost::asio::steady_timer response_timer_;
  bool response_pending_ = false;
  boost::asio::steady_timer body_timer_;
  bool body_pending_ = false;
  boost::asio::steady_timer pump_timer_;
  bool pump_done_ = false;
  bool response_done_ = false;
  bool client_gone_ = false;
  // Set once the response outlasted its first batch of events; see pump_request_body.
  bool response_streaming_ = false;

  bool continue_pending_ = false;  // `Expect: 100-continue` still waits for 100 Continue
  int body_error_ = 0;             // 413 or 400 when the request body broke a limit or its framing
  // Set when the connection closes with request body bytes unread: the client then gets time
  // to finish sending, so that it reads the response instead of a reset.
  bool lingering_close_ = false;
  bool shutdown_requested_ = false;
  send_progress send_progress_;
  boost::asio::steady_timer read_deadline_;
  std::uint64_t read_deadline_generation_ = 0;
  bool read_deadline_passed_ = false;
  proxy::body_read_state body_read_;  // of the request being served
  // The kernel's count of bytes received from the client at the last check of a body read that
  // changed it, and the time of that check.
  std::uint64_t received_bytes_seen_ = 0;
  std::chrono::steady_clock::time_point received_bytes_at_{};
  bool send_timed_out_ = false;  // check_send_progress closed the connection
  proxy::relay_interrupt relay_interrupt_;
  // The client read that a forwarded response left pending; it reads the next request.
  std::shared_ptr<proxy::client_watch> next_request_watch_;
};

}  // namespace fluxlit::gateway
