// The link between a `--workers` parent, which owns the port and the Streamlit child, and each
// worker process it starts to serve connections on that port.
//
// A worker inherits two descriptors: its own listening socket, one of an SO_REUSEPORT group on
// the port that the parent bound, and one end of a Unix stream socket. On that socket each side
// writes one line per message:
//   parent to worker: "ui <state> <port>", whenever Streamlit's state or port changes;
//   worker to parent: "ready", once the app has started and the worker accepts connections.
// End of file means the other side has exited.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fluxlit/supervisor/ui_upstream.hpp"

namespace fluxlit::cli {

// The variable that makes `fluxlit run` a worker, set by the parent only.
inline constexpr const char* worker_variable = "FLUXLIT_WORKER";

// The descriptors and ids a worker inherits, written to worker_variable as
// "index:listener:control:parent:metrics".
struct worker_handoff {
  unsigned index = 0;  // 1 for the first worker
  int listener_fd = -1;
  int control_fd = -1;
  pid_t parent = -1;
  int metrics_fd = -1;  // the workers' metrics region (observability::metrics_board)
};

std::string format_handoff(const worker_handoff& handoff);

// Returns nullopt unless `text` is five numbers in format_handoff's form.
std::optional<worker_handoff> parse_handoff(std::string_view text);

inline constexpr std::string_view ready_message = "ready";

struct ui_update {
  supervisor::child_state state = supervisor::child_state::stopped;
  std::uint16_t port = 0;
};

// One line with its newline.
std::string format_ui_update(const ui_update& update);

// Takes a line without its newline; nullopt unless it is a well-formed "ui" message.
std::optional<ui_update> parse_ui_update(std::string_view line);

// A worker's view of Streamlit: the last state its parent sent.
class relayed_ui_state final : public supervisor::ui_upstream {
 public:
  supervisor::child_state state() const override { return state_.load(); }
  std::uint16_t port() const override { return port_.load(); }
  // The child belongs to the parent, so a worker relies on the parent's next update.
  bool child_exited() const override { return !ready(); }

  void apply(const ui_update& update) {
    port_ = update.port;
    state_ = update.state;
  }

 private:
  std::atomic<supervisor::child_state> state_{supervisor::child_state::starting};
  std::atomic<std::uint16_t> port_{0};
};

}  // namespace fluxlit::cli
