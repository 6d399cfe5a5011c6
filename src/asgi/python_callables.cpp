#include "asgi/python_callables.hpp"

#include <exception>
#include <new>
#include <string>
#include <vector>

#include "asgi/python_exchange.hpp"

namespace py = pybind11;

namespace fluxlit::asgi {
namespace {

// An awaitable whose result is already known: `await` on it returns `value` (None when null)
// without suspending, because its iterator stops on the first step.
struct ready_object {
  PyObject ob_base;  // what PyObject_HEAD expands to
  PyObject* value;
};

// The `receive` or `send` callable of one request.
struct channel_object {
  PyObject ob_base;  // what PyObject_HEAD expands to
  PyObject* owner;   // the Python wrapper of `exchange`, which keeps it alive
  python_exchange* exchange;
};

// Created once by register_python_callables and never freed, like the ASGI names: they must not
// be released after the interpreter finalises at exit.
PyTypeObject* ready_type = nullptr;
PyTypeObject* receive_type = nullptr;
PyTypeObject* send_type = nullptr;
PyObject* ready_none = nullptr;  // the result of every send that needs no wait
PyObject* receive_later = nullptr;
PyObject* drain_later = nullptr;
PyObject* call_soon = nullptr;       // the loop's call_soon
PyObject* disconnected_error = nullptr;  // fluxlit.ClientDisconnected
PyObject* drop_send = nullptr;           // _drop_send_after_disconnect(exchange) -> bool
PyObject* flush_function = nullptr;  // flush_owed_sends(), scheduled through call_soon
// The send callables whose exchange owes a flush (see python_exchange::take_flush_owed), with a
// reference each. One scheduled flush_owed_sends() serves every request of a loop iteration.
std::vector<PyObject*> owed_sends;

PyObject* ready_await(PyObject* self) {
  Py_INCREF(self);
  return self;
}

PyObject* ready_next(PyObject* self) {
  auto* ready = reinterpret_cast<ready_object*>(self);
  // Returning null with no exception set ends the iteration with None.
  if (ready->value != nullptr) _PyGen_SetStopIterationValue(ready->value);
  return nullptr;
}

void ready_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  Py_XDECREF(reinterpret_cast<ready_object*>(self)->value);
  PyObject_Free(self);
  Py_DECREF(type);
}

// Steals `value`.
PyObject* make_ready(PyObject* value) {
  auto* ready = PyObject_New(ready_object, ready_type);
  if (ready == nullptr) {
    Py_DECREF(value);
    return nullptr;
  }
  ready->value = value;
  return reinterpret_cast<PyObject*>(ready);
}

int channel_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(reinterpret_cast<channel_object*>(self)->owner);
  return 0;
}

int channel_clear(PyObject* self) {
  auto* channel = reinterpret_cast<channel_object*>(self);
  channel->exchange = nullptr;
  Py_CLEAR(channel->owner);
  return 0;
}

void channel_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  channel_clear(self);
  PyObject_GC_Del(self);
  Py_DECREF(type);
}

void set_disconnected_error(const client_disconnected& error) {
  PyErr_SetString(disconnected_error != nullptr ? disconnected_error : PyExc_ConnectionError,
                  error.what());
}

// Sets the Python exception for the C++ exception in flight, as a pybind11 binding would.
void set_python_error() {
  try {
    py::detail::translate_exception(std::current_exception());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception in the ASGI bridge");
  }
}

python_exchange* exchange_of(PyObject* self) {
  auto* exchange = reinterpret_cast<channel_object*>(self)->exchange;
  if (exchange == nullptr) PyErr_SetString(PyExc_RuntimeError, "the ASGI exchange is gone");
  return exchange;
}

// Calls the slow-path coroutine function `function` (receive_later or drain_later) for the
// exchange of `self`.
PyObject* call_wait_function(PyObject* function, PyObject* self) {
  if (function == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "set_runtime_objects() was not called");
    return nullptr;
  }
  return PyObject_CallOneArg(function, reinterpret_cast<channel_object*>(self)->owner);
}

PyObject* receive_call(PyObject* self, PyObject* args, PyObject* kwargs) {
  if (PyTuple_GET_SIZE(args) != 0 || (kwargs != nullptr && PyDict_GET_SIZE(kwargs) != 0)) {
    PyErr_SetString(PyExc_TypeError, "ASGI receive() takes no arguments");
    return nullptr;
  }
  auto* exchange = exchange_of(self);
  if (exchange == nullptr) return nullptr;
  try {
    py::object message = exchange->receive_nowait();
    if (!message.is_none()) return make_ready(message.release().ptr());
  } catch (...) {
    set_python_error();
    return nullptr;
  }
  // Nothing queued yet: a coroutine that waits for the I/O side's wake-up.
  return call_wait_function(receive_later, self);
}

// Handles a send() after the connection ended. It raises ClientDisconnected, unless the runtime's
// _drop_send_after_disconnect lets the first such send() through while another task of the
// request waits in receive(), so that the disconnect reaches that task first.
PyObject* send_after_disconnect(PyObject* self, const client_disconnected& error) {
  if (drop_send != nullptr) {
    PyObject* dropped =
        PyObject_CallOneArg(drop_send, reinterpret_cast<channel_object*>(self)->owner);
    if (dropped == nullptr) return nullptr;
    const int truth = PyObject_IsTrue(dropped);
    Py_DECREF(dropped);
    if (truth < 0) return nullptr;
    if (truth != 0) return Py_NewRef(ready_none);
  }
  set_disconnected_error(error);
  return nullptr;
}

PyObject* send_call(PyObject* self, PyObject* args, PyObject* kwargs) {
  if (PyTuple_GET_SIZE(args) != 1 || (kwargs != nullptr && PyDict_GET_SIZE(kwargs) != 0)) {
    PyErr_SetString(PyExc_TypeError, "ASGI send() takes exactly one argument, the message");
    return nullptr;
  }
  PyObject* message = PyTuple_GET_ITEM(args, 0);
  if (!PyDict_Check(message)) {
    PyErr_Format(PyExc_TypeError, "an ASGI message must be a dict, not %.100s",
                 Py_TYPE(message)->tp_name);
    return nullptr;
  }
  auto* exchange = exchange_of(self);
  if (exchange == nullptr) return nullptr;
  bool must_wait = false;
  try {
    must_wait = exchange->send(py::reinterpret_borrow<py::dict>(message));
  } catch (const client_disconnected& error) {
    return send_after_disconnect(self, error);
  } catch (...) {
    set_python_error();
    return nullptr;
  }
  // A response start waits in the queue for its body, or a whole response for a lent writer.
  // Both go after the loop's current callbacks: by then the body has usually joined the start,
  // unless the app suspended, and other requests have ended their responses too.
  if (exchange->take_flush_owed() && (owed_sends.empty() || owed_sends.back() != self)) {
    PyObject* handle = nullptr;
    if (!owed_sends.empty()) {
      handle = Py_NewRef(Py_None);  // a flush is already scheduled
    } else if (call_soon != nullptr) {
      handle = PyObject_CallOneArg(call_soon, flush_function);
    }
    if (handle == nullptr) {
      exchange->flush();
      if (PyErr_Occurred() != nullptr) return nullptr;
    } else {
      Py_DECREF(handle);
      try {
        owed_sends.push_back(self);
        Py_INCREF(self);
      } catch (const std::bad_alloc&) {
        exchange->flush();
      }
    }
  }
  if (!must_wait) {
    Py_INCREF(ready_none);
    return ready_none;
  }
  // Unsent output passed the high-water mark: a coroutine that waits until it drains.
  return call_wait_function(drain_later, self);
}

// send.finish(error): ends the exchange after the app returned (`error` empty) or raised, as
// python_exchange::finish does, without the cost of a pybind11 call on every request.
PyObject* send_finish(PyObject* self, PyObject* error) {
  if (!PyUnicode_Check(error)) {
    PyErr_SetString(PyExc_TypeError, "finish() takes a str");
    return nullptr;
  }
  auto* exchange = exchange_of(self);
  if (exchange == nullptr) return nullptr;
  Py_ssize_t size = 0;
  const char* text = PyUnicode_AsUTF8AndSize(error, &size);
  if (text == nullptr) return nullptr;
  try {
    exchange->finish(std::string(text, static_cast<std::size_t>(size)));
  } catch (...) {
    set_python_error();
    return nullptr;
  }
  Py_RETURN_NONE;
}

// flush_owed_sends(): writes the responses that lent writers owe and sends the connection
// notifications that response starts left owed.
PyObject* flush_owed_sends(PyObject*, PyObject*) {
  std::vector<PyObject*> sends;
  sends.swap(owed_sends);
  for (PyObject* send : sends) {
    auto* exchange = reinterpret_cast<channel_object*>(send)->exchange;
    if (exchange != nullptr) exchange->flush();
    Py_DECREF(send);
  }
  // Keep the storage for the next iteration, unless a burst grew it.
  if (owed_sends.empty() && sends.capacity() <= 1024) {
    sends.clear();
    owed_sends.swap(sends);
  }
  Py_RETURN_NONE;
}

PyTypeObject* make_type(const char* name, PyType_Slot* slots, std::size_t size,
                        unsigned long flags) {
  PyType_Spec spec{name, static_cast<int>(size), 0, static_cast<unsigned int>(flags), slots};
  auto* type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
  if (type == nullptr) throw py::error_already_set();
  return type;
}

PyObject* make_channel(PyTypeObject* type, py::handle owner, python_exchange& exchange) {
  auto* channel = PyObject_GC_New(channel_object, type);
  if (channel == nullptr) throw py::error_already_set();
  channel->owner = owner.inc_ref().ptr();
  channel->exchange = &exchange;
  PyObject_GC_Track(channel);
  return reinterpret_cast<PyObject*>(channel);
}

}  // namespace

void register_python_callables(py::module_& module) {
  static PyType_Slot ready_slots[] = {
      {Py_am_await, reinterpret_cast<void*>(ready_await)},
      {Py_tp_iter, reinterpret_cast<void*>(PyObject_SelfIter)},
      {Py_tp_iternext, reinterpret_cast<void*>(ready_next)},
      {Py_tp_dealloc, reinterpret_cast<void*>(ready_dealloc)},
      {Py_tp_doc, const_cast<char*>("An ASGI result that is already known.")},
      {0, nullptr},
  };
  static PyType_Slot receive_slots[] = {
      {Py_tp_call, reinterpret_cast<void*>(receive_call)},
      {Py_tp_traverse, reinterpret_cast<void*>(channel_traverse)},
      {Py_tp_clear, reinterpret_cast<void*>(channel_clear)},
      {Py_tp_dealloc, reinterpret_cast<void*>(channel_dealloc)},
      {Py_tp_doc, const_cast<char*>("The ASGI receive() callable of one HTTP request.")},
      {0, nullptr},
  };
  static PyMethodDef send_methods[] = {
      {"finish", send_finish, METH_O, "End the exchange after the app returned or raised."},
      {nullptr, nullptr, 0, nullptr},
  };
  static PyType_Slot send_slots[] = {
      {Py_tp_call, reinterpret_cast<void*>(send_call)},
      {Py_tp_methods, send_methods},
      {Py_tp_traverse, reinterpret_cast<void*>(channel_traverse)},
      {Py_tp_clear, reinterpret_cast<void*>(channel_clear)},
      {Py_tp_dealloc, reinterpret_cast<void*>(channel_dealloc)},
      {Py_tp_doc, const_cast<char*>("The ASGI send() callable of one HTTP request.")},
      {0, nullptr},
  };
  ready_type =
      make_type("_fluxlit_native.Ready", ready_slots, sizeof(ready_object), Py_TPFLAGS_DEFAULT);
  receive_type = make_type("_fluxlit_native.Receive", receive_slots, sizeof(channel_object),
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC);
  send_type = make_type("_fluxlit_native.Send", send_slots, sizeof(channel_object),
                        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC);
  ready_none = reinterpret_cast<PyObject*>(PyObject_New(ready_object, ready_type));
  if (ready_none == nullptr) throw py::error_already_set();
  reinterpret_cast<ready_object*>(ready_none)->value = nullptr;

  static PyMethodDef flush_definition = {"flush_owed_sends", flush_owed_sends, METH_NOARGS,
                                         "Write owed responses and notify their connections."};
  flush_function = PyCFunction_New(&flush_definition, nullptr);
  if (flush_function == nullptr) throw py::error_already_set();

  module.attr("Ready") = py::handle(reinterpret_cast<PyObject*>(ready_type));
  // Called once by _asgi_runtime.py with the coroutine functions that wait for a wake-up:
  // receive_later(exchange) returns the next receive message, drain_later(exchange) returns
  // once the unsent output is below the high-water mark. `soon` is the loop's call_soon,
  // `disconnected` the exception class that send() raises once the client has gone, and
  // `drop(exchange)` returns whether a send() after the disconnect is dropped instead.
  module.def("set_runtime_objects", [](py::object receive, py::object drain, py::object soon,
                                       py::object disconnected, py::object drop) {
    Py_XSETREF(receive_later, receive.release().ptr());
    Py_XSETREF(drain_later, drain.release().ptr());
    Py_XSETREF(call_soon, soon.release().ptr());
    Py_XSETREF(disconnected_error, disconnected.release().ptr());
    Py_XSETREF(drop_send, drop.release().ptr());
  });
  // The WebSocket exchange's send() is a pybind11 binding.
  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const client_disconnected& disconnected) {
      set_disconnected_error(disconnected);
    }
  });
}

py::object make_receive_callable(py::handle owner, python_exchange& exchange) {
  return py::reinterpret_steal<py::object>(make_channel(receive_type, owner, exchange));
}

py::object make_send_callable(py::handle owner, python_exchange& exchange) {
  return py::reinterpret_steal<py::object>(make_channel(send_type, owner, exchange));
}

}  // namespace fluxlit::asgi
