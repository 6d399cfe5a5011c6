// The gateway's view of the Streamlit server it proxies to: whether it takes traffic, and on
// which loopback port.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace fluxlit::supervisor {

// `crash_loop` replaces `starting` and `restarting` while the supervisor is in a crash loop. A
// child that passes its health check in a crash loop is `ready` and takes traffic.
enum class child_state { starting, ready, restarting, crash_loop, stopping, stopped };

const char* to_string(child_state state);

// The inverse of to_string; nullopt for any other text.
std::optional<child_state> parse_child_state(std::string_view text);

// The process that runs the Streamlit child implements this with the supervisor itself; a
// worker process implements it with the state its parent sends. Both members may be called
// from any thread.
class ui_upstream {
 public:
  virtual ~ui_upstream() = default;

  virtual child_state state() const = 0;
  // 0 until a port is chosen; each restart of the child chooses a new one.
  virtual std::uint16_t port() const = 0;

  // True when no child runs or the running child has exited, as far as this process can tell.
  virtual bool child_exited() const = 0;

  bool ready() const { return state() == child_state::ready; }
};

}  // namespace fluxlit::supervisor
