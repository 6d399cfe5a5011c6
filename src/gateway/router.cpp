#include "fluxlit/gateway/router.hpp"

namespace fluxlit::gateway {
namespace {

bool starts_with_segment(std::string_view path, std::string_view prefix) {
  if (prefix.empty()) return true;
  if (path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string with_query(std::string path, std::string_view query) {
  if (!query.empty()) {
    path += '?';
    path += query;
  }
  return path;
}

}  // namespace

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const int high = hex_value(text[i + 1]);
      const int low = hex_value(text[i + 2]);
      if (high >= 0 && low >= 0) {
        out += static_cast<char>(high * 16 + low);
        i += 2;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

route route_target(const route_table& table, std::string_view target) {
  std::string_view path = target;
  std::string_view query;
  if (const auto mark = target.find('?'); mark != std::string_view::npos) {
    path = target.substr(0, mark);
    query = target.substr(mark + 1);
  }

  route result;
  result.query = std::string(query);

  // The root path without its trailing slash is the app's entry page: send browsers to the
  // slash form, which Streamlit's relative asset URLs need.
  if (!table.root_path.empty() && path == table.root_path) {
    result.kind = route_kind::redirect;
    result.redirect_status = 308;
    result.location = with_query(table.root_path + "/", query);
    return result;
  }

  std::string_view inner = path;
  if (!table.root_path.empty() && starts_with_segment(path, table.root_path)) {
    inner = path.substr(table.root_path.size());
  }

  if (starts_with_segment(inner, table.api_prefix)) {
    std::string_view app_path = inner.substr(table.api_prefix.size());
    if (app_path == "/healthz") {
      result.kind = route_kind::native_health;
    } else if (app_path == "/readyz") {
      result.kind = route_kind::native_ready;
    } else if (app_path == "/metrics") {
      result.kind = route_kind::native_metrics;
    } else {
      result.kind = route_kind::api;
    }
    result.path = app_path.empty() ? "/" : std::string(app_path);
    return result;
  }

  // FastAPI's documentation pages live under the API prefix; send the usual paths there.
  if (inner == "/docs" || inner == "/redoc" || inner == "/openapi.json") {
    result.kind = route_kind::redirect;
    result.redirect_status = 307;
    result.location = with_query(table.root_path + table.api_prefix + std::string(inner), query);
    return result;
  }

  result.kind = route_kind::ui;
  result.path = with_query(table.root_path + std::string(inner), query);
  return result;
}

}  // namespace fluxlit::gateway
