// Decides which part of FluxLit serves a request target. Pure logic, no I/O.
#pragma once

#include <string>
#include <string_view>

namespace fluxlit::gateway {

enum class route_kind {
  api,             // the ASGI app
  native_health,   // <api_prefix>/healthz
  native_ready,    // <api_prefix>/readyz
  native_metrics,  // <api_prefix>/metrics
  ui,              // the Streamlit child
  redirect,        // a local redirect, see `location`
};

struct route {
  route_kind kind = route_kind::ui;
  // For api: the path inside the app, percent-encoded, without the query ("/users").
  // For ui: the target to send upstream, root path included, query kept.
  std::string path;
  std::string query;     // without "?"
  std::string location;  // for redirect
  int redirect_status = 0;
};

struct route_table {
  std::string api_prefix;  // "/api"
  std::string root_path;   // "" or "/tools/app"
};

// Routes a request target ("/api/users?x=1"). A target under the root path is routed by the
// part after it; a target outside it is taken as already stripped by an outer proxy.
route route_target(const route_table& table, std::string_view target);

// Decodes %XX escapes; invalid escapes stay as they are.
std::string percent_decode(std::string_view text);

}  // namespace fluxlit::gateway
