// Process metrics in the Prometheus text format, served at <api_prefix>/metrics.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace fluxlit::observability {

class metrics_board;

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

  // Makes this process a `--workers` worker that owns slot `index` of `board`. serialize() then
  // returns the metrics of every worker, each sample labelled with its worker.
  void share(std::shared_ptr<metrics_board> board, unsigned index);

  // Writes this process's metrics to its slot, if it has one. I/O thread only.
  void publish() const;

  // Returns the Prometheus text of this process, or of every worker after share().
  std::string serialize() const;

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace fluxlit::observability
