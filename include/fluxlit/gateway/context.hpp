// The state that every connection of the gateway shares. Lives as long as the server.
#pragma once

#include <atomic>
#include <string>

#include "fluxlit/config/settings.hpp"
#include "fluxlit/gateway/forwarded.hpp"
#include "fluxlit/gateway/router.hpp"

namespace fluxlit::asgi {
class bridge;
}
namespace fluxlit::supervisor {
class ui_upstream;
}
namespace fluxlit::observability {
class metrics;
}
namespace fluxlit::proxy {
class upstream_pool;
}

namespace fluxlit::gateway {

struct gateway_context {
  const config::settings& settings;
  route_table routes;
  forwarded_policy forwarding;
  asgi::bridge& bridge;
  observability::metrics& metrics;
  proxy::upstream_pool& upstreams;
  // The Streamlit server UI paths go to: the supervisor, or in a worker process the state its
  // parent relays. Null with --no-ui, or when the interpreter has no Streamlit; see
  // ui_unavailable_page.
  const supervisor::ui_upstream* streamlit = nullptr;
  // The HTML page that UI paths return while `streamlit` is null; it names the cause and fix.
  std::string ui_unavailable_page;
  int ui_unavailable_status = 503;
  // Set when shutdown begins: readiness turns false and keep-alive connections close.
  std::atomic<bool> draining{false};
  // Set before connections are accepted when the I/O thread and the Python thread share a CPU
  // (io_scheduling resolves to batch). The Python thread then writes a whole response itself
  // when the app sends its end, rather than leave it until the I/O thread next runs.
  bool python_writes_responses = false;
};

}  // namespace fluxlit::gateway
