// One HTTP request in flight between an I/O thread and the Python thread.
//
// Thread contract: the I/O side (the connection's executor) calls the `io_*` members; the
// Python side (the Python thread, GIL held) calls the `py_*` members. Both sides only exchange
// plain C++ values under `mutex_`; no Python object is ever stored here, so the exchange may be
// destroyed on either thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace fluxlit::asgi {

using header_list = std::vector<std::pair<std::string, std::string>>;

// The parts of an ASGI HTTP scope that the gateway computes.
struct http_request_head {
  std::string method;
  std::string http_version;  // "1.0" or "1.1"
  std::string scheme;        // "http" or "https"
  std::string path;          // percent-decoded, API prefix removed
  std::string raw_path;      // as sent, API prefix removed, query removed
  std::string query_string;  // without the "?"
  std::string root_path;     // public root path plus API prefix
  header_list headers;       // names lower-cased, values as received
  std::string client_host;
  std::uint16_t client_port = 0;
  std::string server_host;
  std::uint16_t server_port = 0;
};

// A piece of request body or the end of the client's side of the exchange.
struct receive_event {
  enum class kind { body, disconnect } what = kind::body;
  std::string body;
  bool more_body = false;
};

struct response_start {
  int status = 200;
  header_list headers;  // names as the app sent them
};

struct response_body {
  std::string data;
  bool more_body = false;
};

// The app raised or broke the protocol; the connection answers 500 or closes.
struct response_abort {
  std::string reason;
};

using response_event = std::variant<response_start, response_body, response_abort>;

class http_exchange {
 public:
  http_exchange(http_request_head head, std::uint64_t send_high_water_bytes,
                std::uint64_t receive_high_water_bytes);

  const http_request_head& head() const { return head_; }

  // --- I/O side -----------------------------------------------------------------------------

  // Called by the connection to be told, on its own executor, that response events wait.
  // `notify` must be cheap and thread-safe (it posts to the connection's executor).
  void io_set_notify(std::function<void()> notify);

  // Appends request body bytes; returns false when the app has not consumed enough and the
  // connection should stop reading until `io_wants_more_body()` turns true again.
  bool io_push_body(std::string data, bool more_body);
  bool io_wants_more_body() const;

  // The client closed or the connection failed.
  void io_client_gone();

  // Moves out every response event queued so far.
  std::deque<response_event> io_take_response_events();

  // Records that `bytes` of response body were written to the socket.
  void io_written(std::uint64_t bytes);

  // The response ended on the wire (or was aborted); a later receive() returns disconnect.
  void io_response_finished();

  // --- Python side --------------------------------------------------------------------------

  // Returns the next receive event, or nothing when the app must wait for one.
  std::optional<receive_event> py_receive();

  // Queues a response event; returns true when the app should wait for the output to drain.
  bool py_send(response_event event, std::uint64_t body_bytes);

  // True while unsent response bytes are above the high-water mark.
  bool py_must_wait_for_drain() const;

  // Marks that the Python side sleeps on this exchange and must be woken by `wake`.
  void py_set_waiting(bool waiting);

  bool py_client_gone() const;

  // Set once by the bridge: schedules a wake-up of this exchange on the Python thread.
  std::function<void()> wake_python;

 private:
  void wake_python_if_waiting_locked(std::unique_lock<std::mutex>& lock);

  http_request_head head_;
  const std::uint64_t send_high_water_bytes_;
  const std::uint64_t receive_high_water_bytes_;

  mutable std::mutex mutex_;
  std::deque<receive_event> inbound_;
  std::uint64_t inbound_bytes_ = 0;
  bool body_complete_ = false;
  bool client_gone_ = false;
  bool response_finished_ = false;
  bool python_waiting_ = false;

  std::deque<response_event> outbound_;
  std::uint64_t unsent_bytes_ = 0;
  std::function<void()> notify_io_;
};

}  // namespace fluxlit::asgi
