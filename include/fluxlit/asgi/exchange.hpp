// One request or WebSocket in flight between an I/O thread and the Python thread.
//
// Thread contract: the I/O side (the connection's executor) calls the `io_*` members; the
// Python side (the Python thread, GIL held) calls the `py_*` members. Both sides only exchange
// plain C++ values under one mutex; no Python object is ever stored here, so an exchange may be
// destroyed on either thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace fluxlit::asgi {

using header_list = std::vector<std::pair<std::string, std::string>>;

// The parts of an ASGI HTTP or WebSocket scope that the gateway computes.
struct http_request_head {
  std::string method;
  std::string http_version;  // "1.0" or "1.1"
  std::string scheme;        // "http" or "https" ("ws"/"wss" for a WebSocket scope)
  std::string path;          // percent-decoded, API prefix removed
  std::string raw_path;      // as sent, prefixes kept, query removed
  std::string query_string;  // without the "?"
  std::string root_path;     // public root path plus API prefix
  header_list headers;       // names lower-cased, values as received
  std::string client_host;
  std::uint16_t client_port = 0;
  std::string server_host;
  std::uint16_t server_port = 0;
  std::vector<std::string> subprotocols;  // WebSocket only, in the client's order
};

// A piece of request body or the end of the client's side of an HTTP exchange.
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
  std::string data;  // the body, unless `kept` is set
  bool more_body = false;
  // Set when the body stays in the Python bytes object that the app sent, which `kept` keeps
  // alive: `kept_view` is then the body and `data` is empty. The last owner may drop `kept` on
  // any thread, because its deleter hands the object to the Python thread for release.
  std::shared_ptr<const void> kept;
  std::string_view kept_view;

  std::string_view bytes() const { return kept ? kept_view : std::string_view(data); }
  std::size_t size() const { return bytes().size(); }
};

// The app raised or broke the protocol, so the connection responds with 500 or closes.
struct response_abort {
  std::string reason;
};

using response_event = std::variant<response_start, response_body, response_abort>;

// Thrown when the app pushes a message after the connection has ended, because the client went
// away or the connection gave up on it. Nothing the app sends reaches the client any more. The
// bridge raises it in Python as fluxlit.ClientDisconnected, the OSError subclass that ASGI spec
// version 2.4 specifies.
struct client_disconnected : std::runtime_error {
  client_disconnected()
      : std::runtime_error("the client connection is closed, so the message cannot be sent") {}
};

// Appends the body piece `next` to the unread piece `last` when both belong to a body that
// goes on, and returns whether it did.
inline bool append_unread(receive_event& last, receive_event& next) {
  if (last.what != receive_event::kind::body || !last.more_body ||
      next.what != receive_event::kind::body) {
    return false;
  }
  last.body += next.body;
  last.more_body = next.more_body;
  return true;
}

// The queues and flags that both kinds of exchange share.
template <typename Inbound, typename Outbound>
class exchange_queues {
 public:
  exchange_queues(std::uint64_t send_high_water_bytes, std::uint64_t receive_high_water_bytes)
      : send_high_water_bytes_(send_high_water_bytes),
        receive_high_water_bytes_(receive_high_water_bytes) {}

  // Set once by the bridge: schedules a wake-up of this exchange on the Python thread.
  std::function<void()> wake_python;

  // Sets the callback that notifies the connection, on its own executor, that events wait or
  // that reading may resume. `notify` must be cheap and thread-safe (it posts to the executor).
  void io_set_notify(std::function<void()> notify) {
    auto shared = std::make_shared<const std::function<void()>>(std::move(notify));
    std::lock_guard lock(mutex_);
    notify_io_ = std::move(shared);
  }

  bool io_wants_more() const {
    std::lock_guard lock(mutex_);
    return inbound_bytes_ < receive_high_water_bytes_;
  }

  // The client closed or the connection failed.
  void io_client_gone() {
    std::unique_lock lock(mutex_);
    if (client_gone_) return;
    client_gone_ = true;
    wake_python_if_waiting(lock);
  }

  // Moves every event the app queued so far into `events`, which must be empty. Swapping
  // the vectors lets a connection reuse their storage from one batch to the next. Taking any
  // event takes back a lent writer, and a response that the writer owes is taken too. Returns
  // true once a lent writer has sent the response.
  bool io_take_events(std::vector<Outbound>& events) {
    std::lock_guard lock(mutex_);
    if (lent_write_due_) {
      // py_push() settles a due write before it queues anything, so the queue is empty.
      outbound_.swap(lent_events_);
      lent_write_due_ = false;
    }
    if (!outbound_.empty()) writer_ = nullptr;
    events.swap(outbound_);
    return written_by_writer_;
  }

  // Lends the Python side a writer for the response. When the app sends the last part of a
  // response that the connection has not taken any of, py_push() sets the queued events aside
  // for the writer and notifies the connection, and the next py_flush() hands the events to
  // the writer under the exchange's lock. A connection that takes its events first gets them
  // instead. The writer returns the bytes that it left for the connection to write, which
  // count as unsent output until io_written() reports them. Taking an event or io_finished()
  // takes the writer back for good.
  using lent_writer = std::function<std::uint64_t(std::vector<Outbound>&)>;
  void io_lend_writer(lent_writer writer) {
    std::lock_guard lock(mutex_);
    writer_ = std::move(writer);
  }

  // Records that `bytes` of queued output were written to the socket.
  void io_written(std::uint64_t bytes) {
    std::unique_lock lock(mutex_);
    const bool was_above = unsent_bytes_ > send_high_water_bytes_;
    unsent_bytes_ = bytes > unsent_bytes_ ? 0 : unsent_bytes_ - bytes;
    if (was_above && unsent_bytes_ <= send_high_water_bytes_) wake_python_if_waiting(lock);
  }

  // The connection is done with the exchange; a later receive() reports a disconnect. Takes
  // back a lent writer, and returns whether it sent the response.
  bool io_finished() {
    std::unique_lock lock(mutex_);
    finished_ = true;
    writer_ = nullptr;
    unsent_bytes_ = 0;
    const bool written = written_by_writer_;
    wake_python_if_waiting(lock);
    return written;
  }

  // Queues an event for the app; returns false when the app has not consumed enough and the
  // connection should stop reading until `io_wants_more()` turns true again.
  bool io_push(Inbound event, std::uint64_t bytes) {
    std::unique_lock lock(mutex_);
    inbound_bytes_ += bytes;
    // Pieces of a body that the app has not read yet join the last one, as uvicorn does, so a
    // client that sends a body in tiny chunks cannot make the queue contain an event each.
    const bool merged =
        inbound_next_ < inbound_.size() && append_unread(inbound_.back().first, event);
    if (merged) {
      inbound_.back().second += bytes;
    } else {
      inbound_.push_back({std::move(event), bytes});
    }
    const bool wants_more = inbound_bytes_ < receive_high_water_bytes_;
    wake_python_if_waiting(lock);
    return wants_more;
  }

  // Queues an event of the app for the connection; returns true when the app should wait for
  // the output to drain. Throws client_disconnected once the connection has ended. With
  // `notify_now` false, the notification that the event needs is owed until the next push or
  // py_flush(), so that a response start and the body right after it reach the connection
  // together. `last` marks the last event of a response, which a lent writer sends at the next
  // py_flush().
  bool py_push(Outbound event, std::uint64_t bytes, bool notify_now = true, bool last = false) {
    return push(std::move(event), bytes, notify_now, last, true);
  }

  // Queues an event that ends the exchange from the server's side (an abort, or the close of a
  // WebSocket whose app returned). Once the connection has ended, the event is dropped.
  void py_end(Outbound event) { push(std::move(event), 0, true, false, false); }

  // True while a lent writer owes the response that the app ended; see py_flush().
  bool py_write_due() const {
    std::lock_guard lock(mutex_);
    return lent_write_due_;
  }

  // Hands a lent writer the response that the app ended, unless the connection took it, then
  // sends the notification that a push left owed, if any. Writing here rather than in
  // py_push() lets the Python thread write the responses of a whole loop iteration together:
  // a client that sleeps between two of them costs the writing thread a wake-up each.
  void py_flush() {
    std::unique_lock lock(mutex_);
    write_lent_events(lock);
    notify_if_owed(lock);
  }

  // Sends the notification that a push with `notify_now` false left owed, if any.
  void py_flush_notify() {
    std::unique_lock lock(mutex_);
    notify_if_owed(lock);
  }

  // True while unsent output is above the high-water mark.
  bool py_must_wait_for_drain() const {
    std::lock_guard lock(mutex_);
    return !client_gone_ && !finished_ && unsent_bytes_ > send_high_water_bytes_;
  }

  // Marks that the Python side sleeps on this exchange and must be woken by `wake_python`.
  void py_set_waiting(bool waiting) {
    std::lock_guard lock(mutex_);
    python_waiting_ = waiting;
  }

  bool py_client_gone() const {
    std::lock_guard lock(mutex_);
    return client_gone_;
  }

  // True once the app requested an event that had not arrived yet. The connection sends
  // `100 Continue` only then.
  bool io_receive_requested() const {
    std::lock_guard lock(mutex_);
    return receive_requested_;
  }

 protected:
  // Returns the next queued event, or nothing. `ended` is set when no event will come.
  std::optional<Inbound> pop_inbound(bool& ended) {
    std::unique_lock lock(mutex_);
    ended = client_gone_ || finished_;
    if (inbound_next_ == inbound_.size()) {
      const bool first_request = !receive_requested_;
      receive_requested_ = true;
      auto notify = first_request ? notify_io_ : nullptr;
      lock.unlock();
      if (notify) (*notify)();
      return std::nullopt;
    }
    auto& [event, bytes] = inbound_[inbound_next_++];
    std::optional<Inbound> taken(std::move(event));
    const bool was_full = inbound_bytes_ >= receive_high_water_bytes_;
    inbound_bytes_ -= bytes;
    if (inbound_next_ == inbound_.size()) {
      // Drained: start over at the front, keeping the storage.
      inbound_.clear();
      inbound_next_ = 0;
    } else if (inbound_next_ >= min_compacted_events && inbound_next_ * 2 >= inbound_.size()) {
      // A client that stays ahead of the app never lets the queue drain. Dropping the read
      // events once they are half the vector keeps its size near twice the unread events.
      const auto read_end = inbound_.begin() + static_cast<std::ptrdiff_t>(inbound_next_);
      inbound_.erase(inbound_.begin(), read_end);
      inbound_next_ = 0;
    }
    const bool reopened = was_full && inbound_bytes_ < receive_high_water_bytes_;
    auto notify = reopened ? notify_io_ : nullptr;
    lock.unlock();
    // The connection paused reading at the high-water mark; let it read again.
    if (notify) (*notify)();
    return taken;
  }

 private:
  // A notification callback, shared so that a caller can run it after unlocking without a copy.
  using notify_function = std::shared_ptr<const std::function<void()>>;

  bool push(Outbound event, std::uint64_t bytes, bool notify_now, bool last, bool from_app) {
    std::unique_lock lock(mutex_);
    if (client_gone_ || finished_) {
      if (from_app) throw client_disconnected();
      return false;
    }

    // An event after the end of a response (an abort, when the app breaks the protocol)
    // follows the response that a lent writer owes.
    write_lent_events(lock);
    const bool was_empty = outbound_.empty();
    outbound_.push_back(std::move(event));
    unsent_bytes_ += bytes;
    const bool must_wait = unsent_bytes_ > send_high_water_bytes_;
    notify_function notify;
    if (last && writer_) {
      lent_events_.swap(outbound_);
      lent_write_due_ = true;
      notify_owed_ = false;
      notify = notify_io_;
      lock.unlock();
      if (notify) (*notify)();
      return must_wait;
    }
    if (!notify_now) {
      notify_owed_ = notify_owed_ || was_empty;
    } else if (was_empty || notify_owed_) {
      notify_owed_ = false;
      notify = notify_io_;
    }
    lock.unlock();
    // One notification per batch: the connection drains every queued event when it runs.
    if (notify) (*notify)();
    return must_wait;
  }

  // Hands the events that py_push() set aside to the lent writer, if it is still lent, and
  // keeps `lock` held.
  void write_lent_events(std::unique_lock<std::mutex>& lock) {
    if (!lent_write_due_) return;
    lent_write_due_ = false;
    if (writer_) {
      const auto writer = std::move(writer_);
      writer_ = nullptr;
      unsent_bytes_ = writer(lent_events_);
      written_by_writer_ = true;
    }
    lent_events_.clear();
    // The app's last send() may wait for the output to drain, as after io_written().
    if (unsent_bytes_ <= send_high_water_bytes_) {
      wake_python_if_waiting(lock);
      if (!lock.owns_lock()) lock.lock();
    }
  }

  void notify_if_owed(std::unique_lock<std::mutex>& lock) {
    if (!notify_owed_) return;
    notify_owed_ = false;
    auto notify = notify_io_;
    lock.unlock();
    if (notify) (*notify)();
  }

  void wake_python_if_waiting(std::unique_lock<std::mutex>& lock) {
    if (!python_waiting_ || !wake_python) return;
    python_waiting_ = false;
    lock.unlock();
    wake_python();  // set before the exchange is submitted and never changed after
  }

  const std::uint64_t send_high_water_bytes_;
  const std::uint64_t receive_high_water_bytes_;

  mutable std::mutex mutex_;
  static constexpr std::size_t min_compacted_events = 64;

  // Queued events and their sizes, read from inbound_next_ on. Most requests queue one body
  // event, so a vector that restarts when drained costs less than a deque.
  std::vector<std::pair<Inbound, std::uint64_t>> inbound_;
  std::size_t inbound_next_ = 0;
  std::uint64_t inbound_bytes_ = 0;
  std::vector<Outbound> outbound_;
  std::uint64_t unsent_bytes_ = 0;
  bool client_gone_ = false;
  bool finished_ = false;
  bool python_waiting_ = false;
  bool receive_requested_ = false;
  bool notify_owed_ = false;
  bool written_by_writer_ = false;
  bool lent_write_due_ = false;
  std::vector<Outbound> lent_events_;  // the events that py_flush() hands the lent writer
  lent_writer writer_;
  notify_function notify_io_;
};

class http_exchange : public exchange_queues<receive_event, response_event> {
 public:
  http_exchange(http_request_head head, std::uint64_t send_high_water_bytes,
                std::uint64_t receive_high_water_bytes)
      : exchange_queues(send_high_water_bytes, receive_high_water_bytes), head_(std::move(head)) {}

  const http_request_head& head() const { return head_; }

  // Appends request body bytes; see io_push().
  bool io_push_body(std::string data, bool more_body) {
    const auto size = data.size();
    return io_push(receive_event{receive_event::kind::body, std::move(data), more_body}, size);
  }
  bool io_wants_more_body() const { return io_wants_more(); }
  bool io_take_response_events(std::vector<response_event>& events) {
    return io_take_events(events);
  }
  bool io_response_finished() { return io_finished(); }

  // Returns the next receive event, or nothing when the app must wait for one.
  std::optional<receive_event> py_receive() {
    bool ended = false;
    auto event = pop_inbound(ended);
    if (event) return event;
    if (ended) return receive_event{receive_event::kind::disconnect, {}, false};
    return std::nullopt;
  }

  bool py_send(response_event event, std::uint64_t body_bytes, bool notify_now = true,
               bool last = false) {
    return py_push(std::move(event), body_bytes, notify_now, last);
  }

 private:
  http_request_head head_;
};

// --- WebSocket ------------------------------------------------------------------------------

struct websocket_inbound {
  enum class kind { connect, message, disconnect } what = kind::connect;
  bool text = false;
  std::string data;
  int code = 1005;  // for disconnect: the client's close code
  std::string reason;
};

struct websocket_accept {
  std::string subprotocol;  // empty for none
  header_list headers;
};

struct websocket_message {
  bool text = false;
  std::string data;
};

struct websocket_close {
  int code = 1000;
  std::string reason;
};

// WebSocket messages keep their boundaries, so none joins another.
inline bool append_unread(websocket_inbound&, websocket_inbound&) { return false; }

// Before accept the app may respond with an HTTP response (the denial extension), which uses
// response_start and response_body.
using websocket_outbound = std::variant<websocket_accept, websocket_message, websocket_close,
                                        response_start, response_body, response_abort>;

class websocket_exchange : public exchange_queues<websocket_inbound, websocket_outbound> {
 public:
  websocket_exchange(http_request_head head, std::uint64_t send_high_water_bytes,
                     std::uint64_t receive_high_water_bytes)
      : exchange_queues(send_high_water_bytes, receive_high_water_bytes), head_(std::move(head)) {}

  const http_request_head& head() const { return head_; }

  // Returns the next event; after the connection ended and the queue is empty, a disconnect
  // with 1006 (closed without a close frame).
  std::optional<websocket_inbound> py_receive() {
    bool ended = false;
    auto event = pop_inbound(ended);
    if (event) return event;
    if (ended) return websocket_inbound{websocket_inbound::kind::disconnect, false, {}, 1006, {}};
    return std::nullopt;
  }

 private:
  http_request_head head_;
};

}  // namespace fluxlit::asgi
