// The Python-facing side of HTTP and WebSocket exchanges: ASGI message conversion and protocol
// state. Everything here runs on the Python thread with the GIL held.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "fluxlit/asgi/exchange.hpp"

namespace fluxlit::asgi {

// Validates the http.response.start/body sequence, for HTTP responses and WebSocket denials.
class response_sequence {
 public:
  // Each raises TypeError, ValueError or RuntimeError for a message the protocol forbids.
  response_start parse_start(const pybind11::dict& message, const char* type);
  // With `keep_large_bodies`, a large bytes body stays in its object instead of being copied.
  response_body parse_body(const pybind11::dict& message, const char* type, bool keep_large_bodies);

  bool started() const { return started_; }
  bool ended() const { return ended_; }
  void end() { ended_ = true; }

 private:
  bool started_ = false;
  bool ended_ = false;
  std::optional<std::uint64_t> content_length_;
  std::uint64_t body_bytes_sent_ = 0;
};

class python_exchange {
 public:
  explicit python_exchange(std::shared_ptr<http_exchange> shared) : shared_(std::move(shared)) {}

  http_exchange* shared() const { return shared_.get(); }

  pybind11::dict scope() const;
  // The scope with a shallow copy of the app's lifespan `state` under "state".
  pybind11::dict scope(const pybind11::dict& state) const;

  // Returns the next ASGI receive message, or None when the app has to wait.
  pybind11::object receive_nowait();

  // Validates and queues one ASGI send message; returns true when the app should wait for the
  // output to drain. Raises for a message the protocol forbids.
  bool send(const pybind11::dict& message);

  bool must_wait() const { return shared_->py_must_wait_for_drain(); }
  void set_waiting(bool waiting) { shared_->py_set_waiting(waiting); }
  bool client_gone() const { return shared_->py_client_gone(); }

  // True, once, after send() queued a response start without notifying the connection, or
  // ended a response that a lent writer owes. The caller must then make sure flush() runs
  // before the app can suspend for long.
  bool take_flush_owed();
  void flush();

  // Ends the exchange after the app returned or raised; `error` is empty when it returned.
  void finish(const std::string& error);

 private:
  std::shared_ptr<http_exchange> shared_;
  response_sequence response_;
  bool flush_owed_ = false;
  bool sending_ = false;  // see send_guard in python_exchange.cpp
};

class python_websocket_exchange {
 public:
  explicit python_websocket_exchange(std::shared_ptr<websocket_exchange> shared)
      : shared_(std::move(shared)) {}

  websocket_exchange* shared() const { return shared_.get(); }

  pybind11::dict scope() const;
  pybind11::object receive_nowait();
  bool send(const pybind11::dict& message);
  bool must_wait() const { return shared_->py_must_wait_for_drain(); }
  void set_waiting(bool waiting) { shared_->py_set_waiting(waiting); }
  bool client_gone() const { return shared_->py_client_gone(); }
  void finish(const std::string& error);

 private:
  enum class phase { handshake, open, denial, closed };

  std::shared_ptr<websocket_exchange> shared_;
  phase phase_ = phase::handshake;
  bool closed_by_app_ = false;  // the app sent websocket.close, even one that did nothing
  response_sequence denial_;
  bool sending_ = false;  // see send_guard in python_exchange.cpp
};

// Releases the Python objects whose last C++ owner let go of them on another thread, such as the
// bytes of a response body that was written out. Called on the Python thread, GIL held.
void release_deferred_objects();

void register_python_exchanges(pybind11::module_& module);

}  // namespace fluxlit::asgi
