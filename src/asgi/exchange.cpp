#include "fluxlit/asgi/exchange.hpp"

namespace fluxlit::asgi {

http_exchange::http_exchange(http_request_head head, std::uint64_t send_high_water_bytes,
                             std::uint64_t receive_high_water_bytes)
    : head_(std::move(head)),
      send_high_water_bytes_(send_high_water_bytes),
      receive_high_water_bytes_(receive_high_water_bytes) {}

void http_exchange::io_set_notify(std::function<void()> notify) {
  std::lock_guard lock(mutex_);
  notify_io_ = std::move(notify);
}

bool http_exchange::io_push_body(std::string data, bool more_body) {
  std::unique_lock lock(mutex_);
  inbound_bytes_ += data.size();
  inbound_.push_back(receive_event{receive_event::kind::body, std::move(data), more_body});
  if (!more_body) body_complete_ = true;
  const bool wants_more = inbound_bytes_ < receive_high_water_bytes_;
  wake_python_if_waiting_locked(lock);
  return wants_more;
}

bool http_exchange::io_wants_more_body() const {
  std::lock_guard lock(mutex_);
  return inbound_bytes_ < receive_high_water_bytes_;
}

void http_exchange::io_client_gone() {
  std::unique_lock lock(mutex_);
  if (client_gone_) return;
  client_gone_ = true;
  wake_python_if_waiting_locked(lock);
}

std::deque<response_event> http_exchange::io_take_response_events() {
  std::lock_guard lock(mutex_);
  return std::exchange(outbound_, {});
}

void http_exchange::io_written(std::uint64_t bytes) {
  std::unique_lock lock(mutex_);
  const bool was_above = unsent_bytes_ > send_high_water_bytes_;
  unsent_bytes_ = bytes > unsent_bytes_ ? 0 : unsent_bytes_ - bytes;
  if (was_above && unsent_bytes_ <= send_high_water_bytes_) wake_python_if_waiting_locked(lock);
}

void http_exchange::io_response_finished() {
  std::unique_lock lock(mutex_);
  response_finished_ = true;
  unsent_bytes_ = 0;
  wake_python_if_waiting_locked(lock);
}

std::optional<receive_event> http_exchange::py_receive() {
  std::unique_lock lock(mutex_);
  if (!inbound_.empty()) {
    auto event = std::move(inbound_.front());
    inbound_.pop_front();
    const bool was_full = inbound_bytes_ >= receive_high_water_bytes_;
    inbound_bytes_ -= event.body.size();
    const bool reopened = was_full && inbound_bytes_ < receive_high_water_bytes_;
    auto notify = reopened ? notify_io_ : nullptr;
    lock.unlock();
    // The connection paused reading at the high-water mark; let it read again.
    if (notify) notify();
    return event;
  }
  if (client_gone_ || response_finished_) {
    return receive_event{receive_event::kind::disconnect, {}, false};
  }
  return std::nullopt;
}

bool http_exchange::py_send(response_event event, std::uint64_t body_bytes) {
  std::unique_lock lock(mutex_);
  if (client_gone_) return false;
  const bool was_empty = outbound_.empty();
  outbound_.push_back(std::move(event));
  unsent_bytes_ += body_bytes;
  const bool must_wait = unsent_bytes_ > send_high_water_bytes_;
  auto notify = was_empty ? notify_io_ : nullptr;
  lock.unlock();
  // One notification per batch: the connection drains every queued event when it runs.
  if (notify) notify();
  return must_wait;
}

bool http_exchange::py_must_wait_for_drain() const {
  std::lock_guard lock(mutex_);
  return !client_gone_ && !response_finished_ && unsent_bytes_ > send_high_water_bytes_;
}

void http_exchange::py_set_waiting(bool waiting) {
  std::lock_guard lock(mutex_);
  python_waiting_ = waiting;
}

bool http_exchange::py_client_gone() const {
  std::lock_guard lock(mutex_);
  return client_gone_;
}

void http_exchange::wake_python_if_waiting_locked(std::unique_lock<std::mutex>& lock) {
  if (!python_waiting_ || !wake_python) return;
  python_waiting_ = false;
  auto wake = wake_python;
  lock.unlock();
  wake();
}

}  // namespace fluxlit::asgi
