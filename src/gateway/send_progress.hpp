// Tells a stalled client from a slow one, from what the kernel reports of its socket: the bytes
// the client acknowledged and sent so far, and whether bytes still wait for it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace fluxlit::gateway {

struct tcp_counts {
  std::uint64_t acknowledged_bytes = 0;  // by the client, since the connection opened
  std::uint64_t unsent_bytes = 0;        // written by fluxlit, not yet sent to the client
  std::uint32_t unacknowledged_segments = 0;
  std::uint64_t received_bytes = 0;  // from the client, since the connection opened
  // False once the connection is closed, for example by a reset from the client. The kernel may
  // still report unsent bytes then, but none of them can go out any more.
  bool open = true;

  bool waiting() const { return open && (unsent_bytes > 0 || unacknowledged_segments > 0); }
};

// Reads the kernel's counts for a TCP socket. Returns nothing when the kernel does not report
// them (before Linux 4.6) or the socket is not a TCP socket.
std::optional<tcp_counts> read_tcp_counts(int socket);

// The time between two checks of every connection for clients that stall: a quarter of the
// shorter limit that is on (0 is off), and at most a second.
std::chrono::milliseconds client_check_period(std::chrono::milliseconds send_limit,
                                              std::chrono::milliseconds body_limit);

// Follows one connection's send queue over periodic checks. A client stalls once bytes waited
// for it and it acknowledged none of them for a whole limit, as nginx's send_timeout counts the
// time between two writes that make progress rather than the time of the whole response.
class send_progress {
 public:
  using clock = std::chrono::steady_clock;

  // Records a check made at `now` and returns whether the client stalled for `limit`. The count
  // restarts at a check that finds the acknowledged count grown, and at one that finds bytes
  // waiting where the check before found none.
  bool stalled(const tcp_counts& queue, clock::time_point now, clock::duration limit);

  // Returns whether bytes waited at the last check and still wait, with no more of them
  // acknowledged since. Records nothing.
  bool stalled_since_last_check(const tcp_counts& queue) const {
    return waiting_ && queue.waiting() && queue.acknowledged_bytes == acknowledged_bytes_;
  }

 private:
  bool waiting_ = false;  // the last check found bytes waiting
  std::uint64_t acknowledged_bytes_ = 0;
  clock::time_point progress_at_{};  // the check where the count restarted
};

}  // namespace fluxlit::gateway
