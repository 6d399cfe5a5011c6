#include "asgi/python_exchange.hpp"

#include <pybind11/stl.h>

#include <algorithm>
#include <charconv>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
  py::str websocket{"websocket"};
  py::str subprotocols{"subprotocols"};
  py::str extensions{"extensions"};
  py::str code{"code"};
  py::str reason{"reason"};
  py::str text{"text"};
  py::str bytes_key{"bytes"};
  py::str websocket_connect{"websocket.connect"};
  py::str websocket_receive{"websocket.receive"};
  py::str websocket_disconnect{"websocket.disconnect"};
  py::str state{"state"};
  py::object websocket_extensions;
  py::bytes empty_bytes{""};
  py::str version_1_1{"1.1"};
  py::str version_1_0{"1.0"};
  py::str scheme_http{"http"};
  py::str scheme_https{"https"};
  py::str method_get{"GET"};
  py::str method_post{"POST"};

  asgi_names() {
    py::dict info;
    info["version"] = "3.0";
    info["spec_version"] = "2.5";
    asgi_info = info;
    py::dict extensions_value;
    extensions_value["websocket.http.response"] = py::dict();
    websocket_extensions = extensions_value;
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

// Decodes a percent-decoded path; bytes that are not UTF-8 become U+FFFD instead of an error.
py::str decode_path(const std::string& path) {
  PyObject* decoded =
      PyUnicode_DecodeUTF8(path.data(), static_cast<Py_ssize_t>(path.size()), "replace");
  if (decoded == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(decoded);
}

// Returns a str for `text`, sharing the object for values that most requests carry.
py::object common_str(const std::string& text, const py::str& first, const py::str& second) {
  if (text == std::string_view(PyUnicode_AsUTF8(first.ptr()))) return first;
  if (text == std::string_view(PyUnicode_AsUTF8(second.ptr()))) return second;
  return py::str(text);
}

py::bytes make_bytes(const std::string& text) {
  PyObject* bytes = PyBytes_FromStringAndSize(text.data(), static_cast<Py_ssize_t>(text.size()));
  if (bytes == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::bytes>(bytes);
}

void set_item(py::dict& scope, const py::str& key, const py::handle& value) {
  if (PyDict_SetItem(scope.ptr(), key.ptr(), value.ptr()) != 0) throw py::error_already_set();
}

// A dict with room for `keys` entries, so that filling a scope never resizes it.
py::dict presized_dict(Py_ssize_t keys) {
  PyObject* dict = _PyDict_NewPresized(keys);
  if (dict == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::dict>(dict);
}

// Rejects a send() that starts on a connection while another send() of the same connection
// is still reading its message. Reading a message can run the app's Python code, such as a
// key's __eq__ or a header list's iterator. A send() from there would pass the state checks
// that the outer call has not yet recorded, and send a second response start or accept.
class send_guard {
 public:
  explicit send_guard(bool& sending) : sending_(sending) {
    if (sending_) {
      throw std::runtime_error(
          "send() was called from Python code that ran while another send() of the same "
          "connection read its message; await each send() before the next");
    }
    sending_ = true;
  }
  ~send_guard() { sending_ = false; }
  send_guard(const send_guard&) = delete;
  send_guard& operator=(const send_guard&) = delete;

 private:
  bool& sending_;
};

// Names a message type in an error: its repr, shortened, so that a NUL, a control character
// or a huge string shows as what it is.
std::string type_for_error(const py::object& type) {
  constexpr std::size_t max_length = 80;
  auto text = py::repr(type).cast<std::string>();
  if (text.size() > max_length) text = text.substr(0, max_length) + "...";
  return text;
}

// A message's "type": the str, referenced so that the app cannot free it while the message is
// parsed, and a view of its UTF-8 text. For the ASCII names of ASGI that text is the string's
// own data, so reading it copies and allocates nothing.
struct message_type {
  py::object object;
  std::string_view text;
};

message_type read_message_type(const py::dict& message) {
  PyObject* type = PyDict_GetItemWithError(message.ptr(), names().type.ptr());
  if (type == nullptr) {
    if (PyErr_Occurred() != nullptr) throw py::error_already_set();
    throw py::value_error("ASGI message has no 'type' key");
  }
  if (!PyUnicode_Check(type)) {
    throw py::type_error(std::string("an ASGI message's 'type' must be a str, not ") +
                         Py_TYPE(type)->tp_name);
  }
  Py_ssize_t size = 0;
  const char* text = PyUnicode_AsUTF8AndSize(type, &size);
  if (text == nullptr) {
    PyErr_Clear();
    throw py::value_error("an ASGI message's 'type' is not valid UTF-8: " +
                          type_for_error(py::reinterpret_borrow<py::object>(type)));
  }
  return {py::reinterpret_borrow<py::object>(type), {text, static_cast<std::size_t>(size)}};
}

// Fills the keys that HTTP and WebSocket scopes share.
void fill_common_scope(py::dict& scope, const http_request_head& head) {
  const auto& n = names();
  set_item(scope, n.asgi, py::reinterpret_steal<py::object>(PyDict_Copy(n.asgi_info.ptr())));
  set_item(scope, n.http_version, common_str(head.http_version, n.version_1_1, n.version_1_0));
  set_item(scope, n.scheme, common_str(head.scheme, n.scheme_http, n.scheme_https));
  set_item(scope, n.path, decode_path(head.path));
  set_item(scope, n.raw_path, make_bytes(head.raw_path));
  set_item(scope, n.query_string,
           head.query_string.empty() ? n.empty_bytes : make_bytes(head.query_string));
  set_item(scope, n.root_path, py::str(head.root_path));

  PyObject* headers = PyList_New(static_cast<Py_ssize_t>(head.headers.size()));
  if (headers == nullptr) throw py::error_already_set();
  auto header_list_object = py::reinterpret_steal<py::list>(headers);
  for (std::size_t i = 0; i < head.headers.size(); ++i) {
    auto name = make_bytes(head.headers[i].first);
    auto value = make_bytes(head.headers[i].second);
    PyObject* pair = PyTuple_Pack(2, name.ptr(), value.ptr());
    if (pair == nullptr) throw py::error_already_set();
    PyList_SET_ITEM(headers, static_cast<Py_ssize_t>(i), pair);
  }
  set_item(scope, n.headers, header_list_object);
  set_item(scope, n.client, py::make_tuple(head.client_host, head.client_port));
  set_item(scope, n.server, py::make_tuple(head.server_host, head.server_port));
}

// Python objects whose last C++ owner let go of them on a thread that may not hold the GIL.
// The Python thread releases them in release_deferred_objects().
std::mutex deferred_mutex;
std::vector<PyObject*> deferred_objects;

void defer_release(const void* object) {
  std::lock_guard lock(deferred_mutex);
  deferred_objects.push_back(static_cast<PyObject*>(const_cast<void*>(object)));
}

// Bodies from this size up stay in the app's bytes object instead of being copied. Below it a
// copy is estimated to cost less than the shared ownership and the deferred release.
constexpr std::size_t kept_body_min_bytes = 16 * 1024;

header_list parse_headers(const py::handle& value, std::optional<std::uint64_t>* content_length) {
  header_list headers;
  for (const auto& pair : py::iter(value)) {
    const auto items = py::reinterpret_borrow<py::sequence>(pair);
    if (items.size() != 2) throw py::value_error("each response header must be a pair");
    auto name = bytes_of(items[0], "a response header name");
    auto header_value = bytes_of(items[1], "a response header value");
    // A token has no separators or control bytes; a value has no control bytes but tab.
    const auto control = [](unsigned char c) { return c < 0x20 || c == 0x7f; };
    const bool bad_name = name.empty() ||
                          name.find_first_of(":\"(),/;<=>?@[\\]{} ") != std::string::npos ||
                          std::any_of(name.begin(), name.end(), control);
    const bool bad_value = std::any_of(header_value.begin(), header_value.end(),
                                       [&](unsigned char c) { return c != '\t' && control(c); });
    if (bad_name || bad_value) {
      throw py::value_error("invalid response header " + name +
                            ": names must be tokens and values must not contain control "
                            "characters other than tab");
    }
    if (content_length != nullptr && equals_ignoring_case(name, "content-length")) {
      std::uint64_t length = 0;
      const auto end = header_value.data() + header_value.size();
      const auto parsed = std::from_chars(header_value.data(), end, length);
      if (parsed.ec != std::errc{} || parsed.ptr != end) {
        throw py::value_error("invalid Content-Length response header: " + header_value);
      }
      // Two lengths would let a client or a proxy in front frame the body by the other one.
      if (*content_length && **content_length != length) {
        throw py::value_error("conflicting Content-Length response headers: " +
                              std::to_string(**content_length) + " and " + header_value);
      }
      *content_length = length;
    }
    headers.emplace_back(std::move(name), std::move(header_value));
  }
  return headers;
}

}  // namespace

response_start response_sequence::parse_start(const py::dict& message, const char* type) {
  const auto& n = names();
  if (started_) throw std::runtime_error(std::string(type) + " sent twice");
  if (!message.contains(n.status)) throw py::value_error(std::string(type) + " has no 'status'");
  const py::object status_value = message[n.status];
  if (!py::isinstance<py::int_>(status_value) || py::isinstance<py::bool_>(status_value)) {
    throw py::type_error(std::string(type) + " 'status' must be an int");
  }
  const auto status = status_value.cast<long long>();
  // A 1xx status is informational. Sent as the response, it would leave the client waiting
  // for the final one.
  if (status < 200 || status > 599) {
    throw py::value_error(std::string(type) + " 'status' " + std::to_string(status) +
                          " is not a final HTTP status code (200-599)");
  }
  response_start start;
  start.status = static_cast<int>(status);
  if (message.contains(n.headers))
    start.headers = parse_headers(message[n.headers], &content_length_);
  started_ = true;
  return start;
}

response_body response_sequence::parse_body(const py::dict& message, const char* type,
                                            bool keep_large_bodies) {
  const auto& n = names();
  if (!started_) throw std::runtime_error(std::string(type) + " sent before the response start");
  if (ended_) throw std::runtime_error(std::string(type) + " sent after the response ended");
  response_body body;
  PyObject* data = PyDict_GetItemWithError(message.ptr(), n.body.ptr());
  if (data == nullptr && PyErr_Occurred()) throw py::error_already_set();
  if (data != nullptr) {
    if (keep_large_bodies && PyBytes_CheckExact(data) &&
        static_cast<std::size_t>(PyBytes_GET_SIZE(data)) >= kept_body_min_bytes) {
      Py_INCREF(data);
      body.kept = std::shared_ptr<const void>(data, defer_release);
      body.kept_view = std::string_view(PyBytes_AS_STRING(data),
                                        static_cast<std::size_t>(PyBytes_GET_SIZE(data)));
    } else {
      body.data = bytes_of(data, "'body'");
    }
  }
  PyObject* more_body = PyDict_GetItemWithError(message.ptr(), n.more_body.ptr());
  if (more_body == nullptr && PyErr_Occurred()) throw py::error_already_set();
  if (more_body != nullptr) {
    const int truth = PyObject_IsTrue(more_body);
    if (truth < 0) throw py::error_already_set();
    body.more_body = truth != 0;
  }
  body_bytes_sent_ += body.size();
  if (content_length_ && body_bytes_sent_ > *content_length_) {
    ended_ = true;
    throw std::runtime_error("response body exceeds the Content-Length of " +
                             std::to_string(*content_length_) + " bytes");
  }
  if (!body.more_body) ended_ = true;
  return body;
}

py::dict python_exchange::scope() const {
  const auto& n = names();
  // type, method, the eleven common keys and state.
  auto scope = presized_dict(14);
  set_item(scope, n.type, n.http);
  set_item(scope, n.method, common_str(shared_->head().method, n.method_get, n.method_post));
  fill_common_scope(scope, shared_->head());
  return scope;
}

py::dict python_exchange::scope(const py::dict& state) const {
  auto scope = this->scope();
  set_item(scope, names().state, py::reinterpret_steal<py::object>(PyDict_Copy(state.ptr())));
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
  const send_guard guard(sending_);
  const auto message_type = read_message_type(message);
  const auto type = message_type.text;

  if (type == "http.response.start") {
    // The body usually follows at once, so the connection is notified of both together. See
    // take_flush_owed() for the case where it does not follow.
    auto start = response_.parse_start(message, "http.response.start");
    flush_owed_ = true;
    return shared_->py_send(std::move(start), 0, false);
  }
  if (type == "http.response.body") {
    response_body body;
    try {
      body = response_.parse_body(message, "http.response.body", true);
    } catch (const std::runtime_error&) {
      if (response_.ended()) {
        shared_->py_end(response_abort{"the app broke the response body sequence"});
      }
      throw;
    }
    const auto size = body.size();
    const bool last = !body.more_body;
    const bool must_wait = shared_->py_send(std::move(body), size, true, last);
    // A lent writer sends the response at the flush after the loop's current callbacks.
    if (last && shared_->py_write_due()) flush_owed_ = true;
    return must_wait;
  }
  throw py::value_error("unexpected ASGI message type for an HTTP connection: " +
                        type_for_error(message_type.object));
}

bool python_exchange::take_flush_owed() {
  return std::exchange(flush_owed_, false);
}

void python_exchange::flush() {
  shared_->py_flush();
}

void python_exchange::finish(const std::string& error) {
  shared_->py_flush_notify();
  if (response_.ended() && error.empty()) return;
  const bool started = response_.started();
  response_.end();
  if (!error.empty()) {
    shared_->py_end(response_abort{error});
  } else if (!started) {
    shared_->py_end(response_abort{"the app returned without sending a response"});
  } else {
    shared_->py_end(response_abort{"the app returned without finishing its response body"});
  }
}

py::dict python_websocket_exchange::scope() const {
  const auto& n = names();
  py::dict scope;
  scope[n.type] = n.websocket;
  fill_common_scope(scope, shared_->head());
  py::list subprotocols;
  for (const auto& each : shared_->head().subprotocols) subprotocols.append(each);
  scope[n.subprotocols] = subprotocols;
  scope[n.extensions] = n.websocket_extensions.attr("copy")();
  return scope;
}

py::object python_websocket_exchange::receive_nowait() {
  auto event = shared_->py_receive();
  if (!event) return py::none();
  const auto& n = names();
  py::dict message;
  switch (event->what) {
    case websocket_inbound::kind::connect:
      message[n.type] = n.websocket_connect;
      break;
    case websocket_inbound::kind::message:
      message[n.type] = n.websocket_receive;
      if (event->text) {
        message[n.text] = decode_path(event->data);
      } else {
        message[n.bytes_key] = py::bytes(event->data);
      }
      break;
    case websocket_inbound::kind::disconnect:
      message[n.type] = n.websocket_disconnect;
      message[n.code] = event->code;
      message[n.reason] = event->reason;
      phase_ = phase::closed;
      break;
  }
  return message;
}

bool python_websocket_exchange::send(const py::dict& message) {
  const send_guard guard(sending_);
  const auto& n = names();
  const auto message_type = read_message_type(message);
  const auto type = message_type.text;
  const auto reject = [type](const char* state) {
    throw std::runtime_error(std::string(type) + " is not allowed " + state);
  };

  if (type == "websocket.accept") {
    if (phase_ != phase::handshake) reject("after the handshake");
    websocket_accept accept;
    if (message.contains("subprotocol") && !message["subprotocol"].is_none()) {
      accept.subprotocol = py::str(message["subprotocol"]).cast<std::string>();
    }
    if (message.contains(n.headers)) accept.headers = parse_headers(message[n.headers], nullptr);
    phase_ = phase::open;
    return shared_->py_push(std::move(accept), 0);
  }
  if (type == "websocket.send") {
    // After the app received the client's disconnect, the connection is closed, not misused.
    if (phase_ == phase::closed && !closed_by_app_) throw client_disconnected();
    if (phase_ != phase::open) reject("unless the connection is open");
    const bool has_bytes = message.contains(n.bytes_key) && !message[n.bytes_key].is_none();
    const bool has_text = message.contains(n.text) && !message[n.text].is_none();
    if (has_bytes == has_text) {
      throw py::value_error("websocket.send needs exactly one of 'bytes' and 'text'");
    }
    websocket_message out;
    out.text = has_text;
    out.data = has_text ? py::str(message[n.text]).cast<std::string>()
                        : bytes_of(message[n.bytes_key], "'bytes'");
    const auto size = out.data.size();
    return shared_->py_push(std::move(out), size);
  }
  if (type == "websocket.close") {
    // Closing a connection that the client closed already is allowed once, and does nothing.
    const bool closed_by_client = phase_ == phase::closed || shared_->py_client_gone();
    if (!closed_by_app_ && phase_ != phase::denial && closed_by_client) {
      phase_ = phase::closed;
      closed_by_app_ = true;
      return false;
    }
    if (phase_ == phase::closed || phase_ == phase::denial) reject("after the close");
    closed_by_app_ = true;
    websocket_close close;
    if (message.contains(n.code)) close.code = message[n.code].cast<int>();
    if (message.contains(n.reason) && !message[n.reason].is_none()) {
      close.reason = py::str(message[n.reason]).cast<std::string>();
    }
    phase_ = phase::closed;
    shared_->py_end(std::move(close));  // a client that leaves meanwhile needs no close frame
    return false;
  }
  if (type == "websocket.http.response.start") {
    if (phase_ != phase::handshake) reject("after the handshake");
    phase_ = phase::denial;
    return shared_->py_push(denial_.parse_start(message, "websocket.http.response.start"), 0);
  }
  if (type == "websocket.http.response.body") {
    if (phase_ != phase::denial) reject("before websocket.http.response.start");
    auto body = denial_.parse_body(message, "websocket.http.response.body", false);
    const auto size = body.data.size();
    return shared_->py_push(std::move(body), size);
  }
  throw py::value_error("unexpected ASGI message type for a WebSocket connection: " +
                        type_for_error(message_type.object));
}

void python_websocket_exchange::finish(const std::string& error) {
  if (!error.empty()) {
    shared_->py_end(response_abort{error});
  } else if (phase_ == phase::handshake) {
    shared_->py_end(response_abort{"the app returned without accepting or closing"});
  } else if (phase_ == phase::open) {
    // An app that returns with the socket open ends it normally.
    shared_->py_end(websocket_close{1000, {}});
  } else if (phase_ == phase::denial && !denial_.ended()) {
    shared_->py_end(response_abort{"the app returned without finishing its denial response"});
  }
  phase_ = phase::closed;
}

void release_deferred_objects() {
  std::vector<PyObject*> batch;
  {
    std::lock_guard lock(deferred_mutex);
    batch.swap(deferred_objects);
  }
  for (auto* object : batch) Py_DECREF(object);
}

void register_python_exchanges(py::module_& module) {
  py::class_<python_exchange, std::shared_ptr<python_exchange>>(module, "HttpExchange",
                                                                py::dynamic_attr())
      .def("scope", py::overload_cast<>(&python_exchange::scope, py::const_))
      .def("receive_nowait", &python_exchange::receive_nowait)
      .def("send",
           [](python_exchange& self, const py::dict& message) {
             const bool must_wait = self.send(message);
             if (self.take_flush_owed()) self.flush();
             return must_wait;
           })
      .def("must_wait", &python_exchange::must_wait)
      .def("set_waiting", &python_exchange::set_waiting)
      .def("client_gone", &python_exchange::client_gone)
      .def("finish", &python_exchange::finish);

  py::class_<python_websocket_exchange, std::shared_ptr<python_websocket_exchange>>(
      module, "WebSocketExchange", py::dynamic_attr())
      .def("scope", &python_websocket_exchange::scope)
      .def("receive_nowait", &python_websocket_exchange::receive_nowait)
      .def("send", &python_websocket_exchange::send)
      .def("must_wait", &python_websocket_exchange::must_wait)
      .def("set_waiting", &python_websocket_exchange::set_waiting)
      .def("client_gone", &python_websocket_exchange::client_gone)
      .def("finish", &python_websocket_exchange::finish);
}

}  // namespace fluxlit::asgi
