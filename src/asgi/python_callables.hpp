// The `receive` and `send` callables that an HTTP request's ASGI app gets, written against the
// CPython C API so that a call that can complete at once costs no coroutine, future or task.
// Everything here runs on the Python thread with the GIL held.
#pragma once

#include <pybind11/pybind11.h>

namespace fluxlit::asgi {

class python_exchange;

// Registers the callable and awaitable types. Call once while the native module initialises.
void register_python_callables(pybind11::module_& module);

// Builds the `receive` and `send` callables for one request. `owner` is the Python object that
// wraps `exchange` and keeps it alive. The slow paths (set with set_runtime_objects) get it as
// their only argument.
pybind11::object make_receive_callable(pybind11::handle owner, python_exchange& exchange);
pybind11::object make_send_callable(pybind11::handle owner, python_exchange& exchange);

}  // namespace fluxlit::asgi
