#include "fluxlit/supervisor/streamlit_supervisor.hpp"

#include <sys/wait.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include "supervisor/supervisor_core.hpp"

namespace fluxlit::supervisor {

namespace asio = boost::asio;

const char* to_string(child_state state) {
  switch (state) {
    case child_state::starting:
      return "starting";
    case child_state::ready:
      return "ready";
    case child_state::restarting:
      return "restarting";
    case child_state::crash_loop:
      return "crash_loop";
    case child_state::stopping:
      return "stopping";
    case child_state::stopped:
      return "stopped";
  }
  return "unknown";
}

std::optional<child_state> parse_child_state(std::string_view text) {
  for (const auto each : {child_state::starting, child_state::ready, child_state::restarting,
                          child_state::crash_loop, child_state::stopping, child_state::stopped}) {
    if (text == to_string(each)) return each;
  }
  return std::nullopt;
}

// The public object owns the core only through this handle; the core's own lifetime is shared
// with its pending handlers.
class streamlit_supervisor::impl {
 public:
  impl(asio::any_io_executor executor, streamlit_options options)
      : core(std::make_shared<supervisor_core>(std::move(executor), std::move(options))) {}

  std::shared_ptr<supervisor_core> core;
};

streamlit_supervisor::streamlit_supervisor(asio::any_io_executor executor,
                                           streamlit_options options)
    : impl_(std::make_unique<impl>(std::move(executor), std::move(options))) {}

streamlit_supervisor::~streamlit_supervisor() {
  impl_->core->kill_now(false);
}

void streamlit_supervisor::start() {
  impl_->core->start();
}

void streamlit_supervisor::restart() {
  impl_->core->restart();
}

void streamlit_supervisor::async_stop(std::function<void()> done) {
  impl_->core->async_stop(std::move(done));
}

void streamlit_supervisor::kill_now() {
  impl_->core->kill_now(true);
}

void streamlit_supervisor::hold_restarts() {
  impl_->core->hold_restarts();
}

child_state streamlit_supervisor::state() const {
  return impl_->core->state();
}

std::uint16_t streamlit_supervisor::port() const {
  return impl_->core->port();
}

int streamlit_supervisor::pid() const {
  return impl_->core->pid();
}

bool streamlit_supervisor::child_exited() const {
  const int child = impl_->core->pid();
  if (child <= 0) return true;
  siginfo_t info{};
  // WNOWAIT leaves the child a zombie, so the supervisor still reaps it and reads its status.
  if (::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return errno == ECHILD;  // reaped already
  }
  return info.si_pid == child;
}

}  // namespace fluxlit::supervisor
