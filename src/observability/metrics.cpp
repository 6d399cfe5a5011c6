#include "fluxlit/observability/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <string>

#include "fluxlit/observability/metrics_board.hpp"

namespace fluxlit::observability {

class metrics::impl {
 public:
  prometheus::Registry registry;
  std::shared_ptr<metrics_board> board;  // set in a `--workers` worker
  unsigned slot = 0;

  std::string own_text() const {
    return prometheus::TextSerializer().Serialize(registry.Collect());
  }
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("fluxlit_requests_total")
          .Help("Finished requests by route and status class")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& local_replies =
      prometheus::BuildCounter()
          .Name("fluxlit_local_replies_total")
          .Help("Replies the gateway made on its own, and connections it cut, by reason")
          .Register(registry);
  prometheus::Gauge& open_connections = prometheus::BuildGauge()
                                            .Name("fluxlit_open_connections")
                                            .Help("Client connections currently open")
                                            .Register(registry)
                                            .Add({});
  prometheus::Gauge& open_websockets = prometheus::BuildGauge()
                                           .Name("fluxlit_open_websockets")
                                           .Help("Relayed WebSocket connections currently open")
                                           .Register(registry)
                                           .Add({});

  // Returns the counter of a route and status class. Family::Add hashes the labels under a lock,
  // so the counters of the known routes are kept after first use. Two threads may both add one,
  // and Add returns the same counter to both.
  prometheus::Counter& request_counter(std::string_view route, int status) {
    const auto status_class = static_cast<std::size_t>(std::clamp(status / 100, 0, 9));
    const auto known = std::find(known_routes.begin(), known_routes.end(), route);
    if (known == known_routes.end()) return add_request_counter(route, status_class);
    auto& slot = request_counters[static_cast<std::size_t>(known - known_routes.begin())]
                                 [status_class];
    auto* counter = slot.load(std::memory_order_acquire);
    if (counter == nullptr) {
      counter = &add_request_counter(route, status_class);
      slot.store(counter, std::memory_order_release);
    }
    return *counter;
  }

 private:
  static constexpr std::array<std::string_view, 4> known_routes = {"api", "ui", "native",
                                                                    "local"};

  prometheus::Counter& add_request_counter(std::string_view route, std::size_t status_class) {
    return requests.Add(
        {{"route", std::string(route)}, {"status", std::to_string(status_class) + "xx"}});
  }

  std::array<std::array<std::atomic<prometheus::Counter*>, 10>, known_routes.size()>
      request_counters{};
};

metrics::metrics() : impl_(std::make_unique<impl>()) {}
metrics::~metrics() = default;

void metrics::count_request(std::string_view route, int status) {
  impl_->request_counter(route, status).Increment();
}

void metrics::count_local_reply(std::string_view reason) {
  impl_->local_replies.Add({{"reason", std::string(reason)}}).Increment();
}

void metrics::connection_opened() {
  impl_->open_connections.Increment();
}
void metrics::connection_closed() {
  impl_->open_connections.Decrement();
}
void metrics::websocket_opened() {
  impl_->open_websockets.Increment();
}
void metrics::websocket_closed() {
  impl_->open_websockets.Decrement();
}

void metrics::share(std::shared_ptr<metrics_board> board, unsigned index) {
  impl_->board = std::move(board);
  impl_->slot = index;
  publish();
}

void metrics::publish() const {
  if (impl_->board) impl_->board->publish(impl_->slot, impl_->own_text());
}

std::string metrics::serialize() const {
  if (!impl_->board) return impl_->own_text();
  publish();
  return join_worker_metrics(impl_->board->read());
}

}  // namespace fluxlit::observability
