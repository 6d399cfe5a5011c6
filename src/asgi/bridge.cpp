// The Python thread: interpreter start-up, the hand-off queue, and the native module that the
// event-loop side (python/fluxlit/_asgi_runtime.py) calls into.
#include "fluxlit/asgi/bridge.hpp"

#include <pybind11/embed.h>
#include <pybind11/stl.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>
#include <variant>

#include "asgi/python_callables.hpp"
#include "asgi/python_exchange.hpp"
#include "fluxlit/observability/log.hpp"

namespace py = pybind11;

namespace fluxlit::asgi {

// Kinds of hand-off events; the numbers are shared with _asgi_runtime.py. drain() reports a new
// HTTP request as new_http_request, with its scope and callables, and a new WebSocket as
// new_request.
enum class handoff_kind : int {
  new_request = 0,
  wake = 1,
  stop = 2,
  reload = 3,
  new_http_request = 4
};

using exchange_handle = std::variant<std::monostate, std::shared_ptr<python_exchange>,
                                     std::shared_ptr<python_websocket_exchange>>;

struct handoff_event {
  handoff_kind kind;
  exchange_handle exchange;
};

// How often the Python thread calls control.heartbeat(); _asgi_runtime.py reads it from the
// control object.
constexpr std::chrono::milliseconds heartbeat_interval{250};

class bridge::impl {
 public:
  impl() {
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw startup_error(std::string("eventfd failed: ") + std::strerror(errno));
    beat();
  }

  ~impl() { close(wake_fd_); }

  // Safe from any thread. Wakes the Python thread only when the queue was empty, so a burst of
  // requests costs it one wake-up. With deferred wake-ups, an event queued on the I/O thread
  // wakes it once the I/O thread has run its ready handlers. Only the first event after a
  // drain posts the wake-up, so a run of handlers usually posts one.
  void push(handoff_event event) {
    bool was_empty = false;
    {
      std::lock_guard lock(mutex_);
      was_empty = pending_.empty();
      pending_.push_back(std::move(event));
    }
    if (!was_empty) return;
    if (post_on_io_thread_ && post_on_io_thread_([this] { wake_python(); })) return;
    wake_python();
  }

  void wake_python() {
    const std::uint64_t increment = 1;
    // A full eventfd counter still wakes the reader, so a failed write loses nothing.
    [[maybe_unused]] const auto written = write(wake_fd_, &increment, sizeof increment);
  }

  // Set before the I/O thread runs (see bridge::defer_wakeups).
  std::function<bool(std::function<void()>)> post_on_io_thread_;

  // Called on the Python thread with the GIL held. Returns (kind, exchange) pairs, and for a new
  // HTTP request (kind, exchange, scope, receive, send), where the scope's "state" is a copy of
  // `state`.
  py::list drain(const py::dict& state) {
    release_deferred_objects();
    std::uint64_t counter = 0;
    [[maybe_unused]] const auto read_bytes = read(wake_fd_, &counter, sizeof counter);
    std::vector<handoff_event> batch;
    {
      std::lock_guard lock(mutex_);
      batch.swap(pending_);
    }
    py::list events(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto& each = batch[i];
      const auto kind = static_cast<int>(each.kind);
      py::object entry;
      if (auto* http = std::get_if<std::shared_ptr<python_exchange>>(&each.exchange)) {
        auto& exchange = **http;
        py::object wrapped = py::cast(std::move(*http));
        if (each.kind == handoff_kind::new_request) {
          entry = py::make_tuple(static_cast<int>(handoff_kind::new_http_request), wrapped,
                                 exchange.scope(state), make_receive_callable(wrapped, exchange),
                                 make_send_callable(wrapped, exchange));
        } else {
          entry = py::make_tuple(kind, std::move(wrapped));
        }
      } else if (auto* websocket =
                     std::get_if<std::shared_ptr<python_websocket_exchange>>(&each.exchange)) {
        entry = py::make_tuple(kind, py::cast(std::move(*websocket)));
      } else {
        entry = py::make_tuple(kind, py::none());
      }
      PyList_SET_ITEM(events.ptr(), static_cast<Py_ssize_t>(i), entry.release().ptr());
    }
    return events;
  }

  void beat() {
    last_beat_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                        std::memory_order_relaxed);
  }

  // How much later than due the Python thread's next beat is: zero for a loop that keeps up,
  // however long ago the last beat was within one interval.
  std::chrono::milliseconds lag() const {
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    const auto elapsed = std::chrono::nanoseconds(now - last_beat_ns_.load());
    const auto late = elapsed - heartbeat_interval;
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::max(late, std::chrono::nanoseconds::zero()));
  }

  void complete_startup(bool ok, std::string message) {
    std::lock_guard lock(mutex_);
    if (startup_reported_) return;
    startup_reported_ = true;
    if (ok) {
      startup_.set_value();
    } else {
      startup_.set_exception(std::make_exception_ptr(startup_error(message)));
    }
  }

  int wake_fd_ = -1;
  std::mutex mutex_;
  std::vector<handoff_event> pending_;
  std::atomic<std::int64_t> last_beat_ns_{0};
  std::promise<void> startup_;
  bool startup_reported_ = false;
  std::thread thread_;
  std::atomic<bool> running_{false};
  PyThreadState* main_thread_state_ = nullptr;
};

}  // namespace fluxlit::asgi

namespace {

using fluxlit::asgi::bridge;

// The object that _asgi_runtime.py receives as `control`.
struct control_handle {
  bridge::impl* owner;
};

spdlog::level::level_enum level_from_python(int levelno) {
  if (levelno >= 50) return spdlog::level::critical;
  if (levelno >= 40) return spdlog::level::err;
  if (levelno >= 30) return spdlog::level::warn;
  if (levelno >= 20) return spdlog::level::info;
  return spdlog::level::debug;
}

}  // namespace

PYBIND11_EMBEDDED_MODULE(_fluxlit_native, module) {
  fluxlit::asgi::register_python_exchanges(module);
  fluxlit::asgi::register_python_callables(module);

  py::class_<control_handle>(module, "Control")
      .def("fileno", [](const control_handle& self) { return self.owner->wake_fd_; })
      .def("drain",
           [](control_handle& self, const py::dict& state) { return self.owner->drain(state); })
      .def_property_readonly("heartbeat_interval",
                             [](const control_handle&) {
                               return std::chrono::duration<double>(
                                          fluxlit::asgi::heartbeat_interval)
                                   .count();
                             })
      .def("heartbeat",
           [](control_handle& self) {
             self.owner->beat();
             fluxlit::asgi::release_deferred_objects();
           })
      .def("startup_complete",
           [](control_handle& self, bool ok, std::string message) {
             self.owner->complete_startup(ok, std::move(message));
           })
      .def("log", [](const control_handle&, int levelno, const std::string& name,
                     const std::string& message) {
        fluxlit::observability::logger("app")->log(level_from_python(levelno), "[{}] {}", name,
                                                   message);
      });
}

namespace fluxlit::asgi {
namespace {

std::wstring widen(const std::string& text) {
  std::wstring out;
  wchar_t* decoded = Py_DecodeLocale(text.c_str(), nullptr);
  if (decoded != nullptr) {
    out = decoded;
    PyMem_RawFree(decoded);
  }
  return out;
}

void check_status(PyStatus status, const char* step) {
  if (PyStatus_Exception(status)) {
    throw startup_error(std::string("cannot initialise the embedded Python (") + step +
                        "): " + (status.err_msg ? status.err_msg : "unknown error"));
  }
}

// Initialises the interpreter so that sys.path, sys.prefix and site-packages are those of the
// chosen interpreter (a virtual environment included), with the app directory and the FluxLit
// package first. Signal handlers stay with the gateway.
void initialise_interpreter(const bridge_options& options) {
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;
  config.parse_argv = 0;
  config.module_search_paths_set = 1;

  const auto& info = options.interpreter;
  try {
    check_status(PyConfig_SetString(&config, &config.program_name, widen(info.executable).c_str()),
                 "program name");
    check_status(PyConfig_SetString(&config, &config.executable, widen(info.executable).c_str()),
                 "executable");
    check_status(PyConfig_SetString(&config, &config.prefix, widen(info.prefix).c_str()), "prefix");
    check_status(PyConfig_SetString(&config, &config.exec_prefix, widen(info.exec_prefix).c_str()),
                 "exec_prefix");
    check_status(PyConfig_SetString(&config, &config.base_prefix, widen(info.base_prefix).c_str()),
                 "base_prefix");
    check_status(
        PyConfig_SetString(&config, &config.base_exec_prefix, widen(info.base_exec_prefix).c_str()),
        "base_exec_prefix");

    std::vector<std::string> search_path{options.app_directory, python_package_directory()};
    search_path.insert(search_path.end(), info.path.begin(), info.path.end());
    for (const auto& entry : search_path) {
      check_status(PyWideStringList_Append(&config.module_search_paths, widen(entry).c_str()),
                   "sys.path");
    }
    const wchar_t* argv[] = {L"fluxlit"};
    check_status(PyConfig_SetArgv(&config, 1, const_cast<wchar_t* const*>(argv)), "argv");
    check_status(Py_InitializeFromConfig(&config), "initialise");
  } catch (...) {
    PyConfig_Clear(&config);
    throw;
  }
  PyConfig_Clear(&config);
}

}  // namespace

bridge::bridge() : impl_(std::make_unique<impl>()) {}

bridge::~bridge() {
  if (impl_->thread_.joinable()) impl_->thread_.detach();
}

void bridge::start(const bridge_options& options) {
  initialise_interpreter(options);

  auto startup = impl_->startup_.get_future();
  // pybind11 keeps per-interpreter state that must be created while this thread holds the GIL.
  py::detail::get_internals();
  // `threading` records the importing thread as the main thread. Importing it here keeps that
  // true, so event loops on the Python thread do not try to install signal handlers there.
  py::module_::import("threading");
  // The main thread gives up the GIL for good; only the Python thread takes it from now on.
  impl_->main_thread_state_ = PyEval_SaveThread();
  impl_->running_ = true;

  impl_->thread_ = std::thread([this, options] {
    // Tells the Python thread from the I/O thread in ps -L, top -H and perf.
    pthread_setname_np(pthread_self(), "fluxlit-python");
    // PyGILState_Ensure registers this thread with the interpreter's GIL-state bookkeeping,
    // which pybind11's checks consult.
    const PyGILState_STATE gil = PyGILState_Ensure();
    try {
      control_handle control{impl_.get()};
      // Importing the native module registers its types, which the cast below needs.
      py::module_::import("_fluxlit_native");
      auto runtime = py::module_::import("fluxlit._asgi_runtime");
      runtime.attr("serve")(py::cast(control), options.target, options.app_directory,
                            options.log_level);
    } catch (py::error_already_set& error) {
      // The fluxlit package itself imports FastAPI, so an environment without it fails here,
      // before the app's own import could report it.
      std::string message = error.what();
      if (error.matches(PyExc_ModuleNotFoundError)) {
        const auto name = py::str(error.value().attr("name")).cast<std::string>();
        message = "the interpreter " + options.interpreter.executable + " has no module '" + name +
                  "', which FluxLit's Python package needs. Install it into that environment (" +
                  options.interpreter.executable + " -m pip install " + name +
                  "), create the virtual environment with --system-site-packages to use Debian's "
                  "python3-" + name + ", or pass --python with an interpreter that has it";
      }
      impl_->complete_startup(false, message);
      observability::logger("fluxlit")->debug("the Python thread stopped on an error: {}",
                                              error.what());
    } catch (const std::exception& error) {
      impl_->complete_startup(false, error.what());
      observability::logger("fluxlit")->error("the Python thread stopped on an error: {}",
                                              error.what());
    }
    impl_->complete_startup(false, "the Python thread ended before the app started");
    impl_->running_ = false;
    PyGILState_Release(gil);
  });

  try {
    startup.get();
  } catch (...) {
    impl_->thread_.join();
    throw;
  }
}

namespace {

// Wraps an exchange for Python and lets the I/O side wake it through the hand-off queue.
template <typename Wrapper, typename Exchange>
handoff_event make_request_event(bridge::impl* owner, std::shared_ptr<Exchange> exchange) {
  auto wrapped = std::make_shared<Wrapper>(std::move(exchange));
  std::weak_ptr<Wrapper> weak = wrapped;
  wrapped->shared()->wake_python = [owner, weak] {
    if (auto strong = weak.lock()) owner->push({handoff_kind::wake, std::move(strong)});
  };
  return {handoff_kind::new_request, std::move(wrapped)};
}

}  // namespace

void bridge::defer_wakeups(std::function<bool(std::function<void()>)> post) {
  impl_->post_on_io_thread_ = std::move(post);
}

void bridge::submit(std::shared_ptr<http_exchange> exchange) {
  impl_->push(make_request_event<python_exchange>(impl_.get(), std::move(exchange)));
}

void bridge::submit(std::shared_ptr<websocket_exchange> exchange) {
  impl_->push(make_request_event<python_websocket_exchange>(impl_.get(), std::move(exchange)));
}

void bridge::stop(std::chrono::milliseconds timeout) {
  if (!impl_->thread_.joinable()) return;
  impl_->push({handoff_kind::stop, std::monostate{}});

  // std::thread cannot be joined with a timeout; wait for the running flag instead.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (impl_->running_ && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (impl_->running_) {
    observability::logger("fluxlit")->warn(
        "the app's lifespan shutdown did not finish within {} ms (shutdown_grace_ms); exiting "
        "without waiting for it",
        timeout.count());
    impl_->thread_.detach();
    return;
  }
  impl_->thread_.join();
}

void bridge::reload() {
  impl_->push({handoff_kind::reload, std::monostate{}});
}

std::chrono::milliseconds bridge::loop_lag() const {
  return impl_->lag();
}

bool bridge::running() const {
  return impl_->running_;
}

}  // namespace fluxlit::asgi
