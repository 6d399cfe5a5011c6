#include "gateway/send_progress.hpp"

// The kernel's struct tcp_info has the counts used here. glibc's copy of it stops before them.
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>

namespace fluxlit::gateway {

std::optional<tcp_counts> read_tcp_counts(int socket) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (::getsockopt(socket, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return std::nullopt;
  // An older kernel fills only the fields it has, and returns a shorter length.
  if (length < offsetof(tcp_info, tcpi_notsent_bytes) + sizeof info.tcpi_notsent_bytes) {
    return std::nullopt;
  }
  // TCP_CLOSE of the kernel's include/net/tcp_states.h, which user space does not get.
  constexpr std::uint8_t closed_state = 7;
  return tcp_counts{info.tcpi_bytes_acked, info.tcpi_notsent_bytes, info.tcpi_unacked,
                    info.tcpi_bytes_received, info.tcpi_state != closed_state};
}

std::chrono::milliseconds client_check_period(std::chrono::milliseconds send_limit,
                                              std::chrono::milliseconds body_limit) {
  std::chrono::milliseconds period = std::chrono::seconds(1);
  for (const auto limit : {send_limit, body_limit}) {
    if (limit.count() != 0) period = std::min(period, limit / 4);
  }
  return period;
}

bool send_progress::stalled(const tcp_counts& queue, clock::time_point now, clock::duration limit) {
  // Bytes that a check finds waiting for the first time may have started to wait just before.
  const bool restart =
      !waiting_ || !queue.waiting() || queue.acknowledged_bytes != acknowledged_bytes_;
  waiting_ = queue.waiting();
  if (restart) {
    acknowledged_bytes_ = queue.acknowledged_bytes;
    progress_at_ = now;
    return false;
  }
  return now - progress_at_ >= limit;
}

}  // namespace fluxlit::gateway
