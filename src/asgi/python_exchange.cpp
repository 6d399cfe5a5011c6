#include "asgi/python_exchange.hpp"

#include <pybind11/stl.h>

#include <charconv>
#include <string>
#include <string_view>

namespace py = pybind11;

namespace fluxlit::asgi {
namespace {

// ASGI keys and message-type strings, created once. Deliberately never freed: they must not
// be released after the interpreter finalises at exit.
struct asgi_names {
  py::str type{"type"};
  py::str http{"http"};
  py::str asgi{"asgi"};
  py::str asgi_version{"version"};
  py::object asgi_info;
  py::str http_version{"http_version"};
  py::str method{"method"};
  py::str scheme{"scheme"};
  py::str path{"path"};
  py::str raw_path{"raw_path"};
  py::str query_string{"query_string"};
  py::str root_path{"root_path"};
  py::str headers{"headers"};
  py::str client{"client"};
  py::str server{"server"};
  py::str body{"body"};
  py::str more_body{"more_body"};
  py::str status{"status"};
  py::str http_request{"http.request"};
  py::str http_disconnect{"http.disconnect"};
  py::str response_start{"http.response.start"};
  py::str response_body{"http.response.body"};
  py::bytes empty_bytes{""};

  asgi_names() {
    py::dict info;
    info["version"] = "3.0";
    info["spec_version"] = "2.3";
    asgi_info = info;
  }
};

const asgi_names& names() {
  static const auto* instance = new asgi_names();
  return *instance;
}

std::string bytes_of(const py::handle& value, const char* what) {
  if (!py::isinstance<py::bytes>(value)) {
    throw py::type_error(std::string(what) + " must be bytes, not " +
                         std::string(py::str(value.get_type().attr("__name__"))));
  }
  return value.cast<std::string>();
}

bool equals_ignoring_case(std::string_view left, std::string_view right) {
  if (left.size() != right.size()) return false;
  for (std::size_t i = 0; i < left.size(); ++i) {
    const auto a = static_cast<unsigned char>(left[i]);
    const auto b = static_cast<unsigned char>(right[i]);
    if (std::tolower(a) != std::tolower(b)) return false;
  }
  return true;
}

}  // namespace

py::dict python_exchange::scope() const {
  const auto& n = names();
  const auto& head = shared_->head();
  py::dict scope;
  scope[n.type] = n.http;
  scope[n.asgi] = n.asgi_info.attr("copy")();
  scope[n.http_version] = head.http_version;
  scope[n.method] = head.method;
  scope[n.scheme] = head.scheme;
  scope[n.path] = head.path;
  scope[n.raw_path] = py::bytes(head.raw_path);
  scope[n.query_string] = py::bytes(head.query_string);
  scope[n.root_path] = head.root_path;

  py::list headers(head.headers.size());
  for (std::size_t i = 0; i < head.headers.size(); ++i) {
    headers[i] = py::make_tuple(py::bytes(head.headers[i].first),
                                py::bytes(head.headers[i].second));
  }
  scope[n.headers] = headers;
  scope[n.client] = py::make_tuple(head.client_host, head.client_port);
  scope[n.server] = py::make_tuple(head.server_host, head.server_port);
  return scope;
}

py::object python_exchange::receive_nowait() {
  auto event = shared_->py_receive();
  if (!event) return py::none();

  const auto& n = names();
  py::dict message;
  if (event->what == receive_event::kind::disconnect) {
    message[n.type] = n.http_disconnect;
    return message;
  }
  message[n.type] = n.http_request;
  message[n.body] = event->body.empty() ? n.empty_bytes : py::bytes(event->body);
  message[n.more_body] = py::bool_(event->more_body);
  return message;
}

bool python_exchange::send(const py::dict& message) {
  const auto& n = names();
  if (!message.contains(n.type)) throw py::value_error("ASGI message has no 'type' key");
  const auto type = py::str(message[n.type]).cast<std::string>();

  if (type == "http.response.start") {
    if (started_) throw std::runtime_error("http.response.start sent twice");
    if (!message.contains(n.status)) {
      throw py::value_error("http.response.start has no 'status'");
    }
    const py::object status_value = message[n.status];
    if (!py::isinstance<py::int_>(status_value) || py::isinstance<py::bool_>(status_value)) {
      throw py::type_error("http.response.start 'status' must be an int");
    }
    const auto status = status_value.cast<long long>();
    if (status < 100 || status > 599) {
      throw py::value_error("http.response.start 'status' " + std::to_string(status) +
                            " is not an HTTP status code (100-599)");
    }

    response_start start;
    start.status = static_cast<int>(status);
    if (message.contains(n.headers)) {
      for (const auto& pair : py::iter(message[n.headers])) {
        const auto items = py::reinterpret_borrow<py::sequence>(pair);
        if (items.size() != 2) throw py::value_error("each response header must be a pair");
        auto name = bytes_of(items[0], "a response header name");
        auto value = bytes_of(items[1], "a response header value");
        if (name.find_first_of("\r\n:") != std::string::npos ||
            value.find_first_of("\r\n") != std::string::npos) {
          throw py::value_error("response header " + name +
                                " contains a line break or a colon in its name");
        }
        if (equals_ignoring_case(name, "content-length")) {
          std::uint64_t length = 0;
          const auto parsed = std::from_chars(value.data(), value.data() + value.size(), length);
          if (parsed.ec != std::errc{} || parsed.ptr != value.data() + value.size()) {
            throw py::value_error("invalid Content-Length response header: " + value);
          }
          content_length_ = length;
        }
        start.headers.emplace_back(std::move(name), std::move(value));
      }
    }
    started_ = true;
    return shared_->py_send(std::move(start), 0);
  }

  if (type == "http.response.body") {
    if (!started_) throw std::runtime_error("http.response.body sent before http.response.start");
    if (ended_) throw std::runtime_error("http.response.body sent after the response ended");
    response_body body;
    if (message.contains(n.body)) body.data = bytes_of(message[n.body], "'body'");
    if (message.contains(n.more_body)) body.more_body = py::bool_(message[n.more_body]);
    body_bytes_sent_ += body.data.size();
    if (content_length_ && body_bytes_sent_ > *content_length_) {
      shared_->py_send(response_abort{"the app sent more body bytes than its Content-Length"},
                       0);
      ended_ = true;
      throw std::runtime_error("response body exceeds the Content-Length of " +
                               std::to_string(*content_length_) + " bytes");
    }
    if (!body.more_body) ended_ = true;
    const auto size = body.data.size();
    return shared_->py_send(std::move(body), size);
  }

  throw py::value_error("unexpected ASGI message type for an HTTP connection: " + type);
}

void python_exchange::finish(const std::string& error) {
  if (ended_) return;
  ended_ = true;
  if (!error.empty()) {
    shared_->py_send(response_abort{error}, 0);
  } else if (!started_) {
    shared_->py_send(response_abort{"the app returned without sending a response"}, 0);
  } else {
    shared_->py_send(response_abort{"the app returned without finishing its response body"}, 0);
  }
}

void register_python_exchange(py::module_& module) {
  py::class_<python_exchange, std::shared_ptr<python_exchange>>(module, "HttpExchange",
                                                                py::dynamic_attr())
      .def("scope", &python_exchange::scope)
      .def("receive_nowait", &python_exchange::receive_nowait)
      .def("send", &python_exchange::send)
      .def("must_wait", &python_exchange::must_wait)
      .def("set_waiting", &python_exchange::set_waiting)
      .def("finish", &python_exchange::finish);
}

}  // namespace fluxlit::asgi
