// Process metrics in the Prometheus text format, served at <api_prefix>/metrics.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace fluxlit::observability {

// Counters and gauges of the gateway. Safe from any thread (prometheus-cpp uses atomics).
class metrics {
 public:
  metrics();
  ~metrics();

  // One finished request: `route` is "api", "ui", "native" or "local".
  void count_request(std::string_view route, int status);

  // A reply the gateway made on its own, by its machine-readable reason.
  void count_local_reply(std::string_view reason);

  void connection_opened();
  void connection_closed();
  void websocket_opened();
  void websocket_closed();

  std::string serialize() const;

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace fluxlit::observability
