#include "fluxlit/observability/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <map>
#include <mutex>

namespace fluxlit::observability {

class metrics::impl {
 public:
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("fluxlit_requests_total")
          .Help("Finished requests by route and status class")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& local_replies =
      prometheus::BuildCounter()
          .Name("fluxlit_local_replies_total")
          .Help("Replies the gateway made on its own, by reason")
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
};

metrics::metrics() : impl_(std::make_unique<impl>()) {}
metrics::~metrics() = default;

void metrics::count_request(std::string_view route, int status) {
  const std::string status_class = std::to_string(status / 100) + "xx";
  impl_->requests.Add({{"route", std::string(route)}, {"status", status_class}}).Increment();
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

std::string metrics::serialize() const {
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

}  // namespace fluxlit::observability
