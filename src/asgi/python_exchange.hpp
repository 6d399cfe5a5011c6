// The Python-facing side of one HTTP exchange: ASGI message conversion and protocol state.
// Everything here runs on the Python thread with the GIL held.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "fluxlit/asgi/exchange.hpp"

namespace fluxlit::asgi {

class python_exchange {
 public:
  explicit python_exchange(std::shared_ptr<http_exchange> shared) : shared_(std::move(shared)) {}

  http_exchange* shared() const { return shared_.get(); }

  pybind11::dict scope() const;

  // Returns the next ASGI receive message, or None when the app has to wait.
  pybind11::object receive_nowait();

  // Validates and queues one ASGI send message; returns true when the app should wait for the
  // output to drain. Raises RuntimeError or TypeError for a message the protocol forbids.
  bool send(const pybind11::dict& message);

  bool must_wait() const { return shared_->py_must_wait_for_drain(); }
  void set_waiting(bool waiting) { shared_->py_set_waiting(waiting); }

  // Ends the exchange after the app returned or raised; `error` is empty when it returned.
  void finish(const std::string& error);

 private:
  std::shared_ptr<http_exchange> shared_;
  bool started_ = false;
  bool ended_ = false;
  std::optional<std::uint64_t> content_length_;
  std::uint64_t body_bytes_sent_ = 0;
};

void register_python_exchange(pybind11::module_& module);

}  // namespace fluxlit::asgi
