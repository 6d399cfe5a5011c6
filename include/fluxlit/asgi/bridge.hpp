// The embedded interpreter, its dedicated thread and the hand-off of requests to the ASGI app.
//
// No header of the data plane includes pybind11: the interpreter lives behind this pimpl, so
// an I/O thread cannot take the GIL by accident.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fluxlit/asgi/exchange.hpp"

namespace fluxlit::asgi {

// The facts the chosen interpreter reported about itself, before it is embedded.
struct interpreter_info {
  std::string executable;  // the python that was asked, as given
  std::string version;     // "3.11.2"
  std::string prefix;
  std::string exec_prefix;
  std::string base_prefix;
  std::string base_exec_prefix;
  std::vector<std::string> path;  // its sys.path, without the script directory entry
  bool has_streamlit = false;
  std::string streamlit_version;
};

// Picks the interpreter: `explicit_python`, then $VIRTUAL_ENV/bin/python, then /usr/bin/python3.
std::string choose_interpreter(const std::string& explicit_python);

// Runs the interpreter once to learn its version and sys.path. Throws startup_error when it
// cannot run or is not the Python version this binary links.
interpreter_info query_interpreter(const std::string& python);

// Returns the directory that contains the `fluxlit` Python package.
std::string python_package_directory();

// Returns the PYTHONPATH for a Python child process: the package directory, then this
// process's own PYTHONPATH, if any.
std::string child_python_path();

class startup_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct bridge_options {
  interpreter_info interpreter;
  std::string app_directory;  // prepended to sys.path
  std::string target;         // "module:attr" or "/absolute/file.py:attr"
  std::string log_level;      // for the Python logging bridge
};

class bridge {
 public:
  bridge();
  ~bridge();

  bridge(const bridge&) = delete;
  bridge& operator=(const bridge&) = delete;

  // Initialises the interpreter, starts the Python thread, imports the target and runs the
  // lifespan startup. Blocks until that is done; throws startup_error with the app's message
  // or traceback. Call once, from the main thread, before any I/O thread runs.
  void start(const bridge_options& options);

  // Makes the I/O thread wake the Python thread once per run of its ready handlers rather than
  // at the first event of the run. `post` runs its argument later on the I/O thread and returns
  // true, or returns false when called on another thread, which then wakes the Python thread at
  // once. Meant for a Python thread that shares one CPU with the I/O thread: there the first
  // wake-up of a run preempts the I/O thread and the Python thread gets one request at a time.
  // Call before any I/O thread runs.
  void defer_wakeups(std::function<bool(std::function<void()>)> post);

  // Hands a request to the app. Safe from any thread; never calls back inline.
  void submit(std::shared_ptr<http_exchange> exchange);
  void submit(std::shared_ptr<websocket_exchange> exchange);

  // Re-imports the target after a code change: in-flight requests finish with the old app (up
  // to 5 s), new ones wait for the new app. Safe from any thread; returns at once.
  void reload();

  // Runs the lifespan shutdown and stops the Python thread; blocks up to `timeout`.
  // Called from the main thread after the I/O threads stopped submitting.
  void stop(std::chrono::milliseconds timeout);

  // Time since the Python loop last ran its heartbeat. Safe from any thread, no GIL.
  std::chrono::milliseconds loop_lag() const;

  bool running() const;

  // Public only so that the native module in bridge.cpp can name it.
  class impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace fluxlit::asgi
