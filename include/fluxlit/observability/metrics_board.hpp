// Metrics of all `--workers` workers. Each worker publishes its Prometheus text to its own slot
// of a memory region that the parent shares with every worker, so that the worker that serves
// a scrape can return the metrics of all of them.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fluxlit::observability {

class metrics_board {
 public:
  // Room for one worker's text. Its metrics take about 5 KiB with every route and reason used.
  static constexpr std::size_t slot_bytes = 64 * 1024;

  // Creates a region of `slots` empty slots on a close-on-exec memfd. Throws std::system_error.
  static std::shared_ptr<metrics_board> create(unsigned slots);
  // Maps the region behind `fd`, which a worker inherited, and takes the descriptor. Throws
  // std::system_error when `fd` is not such a region.
  static std::shared_ptr<metrics_board> attach(int fd);

  metrics_board(const metrics_board&) = delete;
  metrics_board& operator=(const metrics_board&) = delete;
  ~metrics_board();

  int fd() const { return fd_; }
  unsigned slots() const { return slots_; }

  // Replaces the text in slot `index` (from 0). Text longer than a slot is cut after its last
  // whole line that fits. One process writes to a slot at a time: its worker, or the parent
  // after the worker exited.
  void publish(unsigned index, std::string_view text);
  void clear(unsigned index) { publish(index, {}); }

  // Returns the text of every slot that has some, with the slot's index. A slot that is being
  // written is read again once the write ends.
  std::vector<std::pair<unsigned, std::string>> read() const;

 private:
  struct slot;
  metrics_board(int fd, unsigned slots, void* memory, std::size_t size);
  slot& slot_at(unsigned index) const;

  int fd_;
  unsigned slots_;
  void* memory_;
  std::size_t size_;
};

// Joins the Prometheus texts of several workers into one. Every sample gets a `worker` label,
// the slot index plus one, as the worker's log lines name it. Each family keeps one HELP and
// one TYPE line, from the first text that has them.
std::string join_worker_metrics(const std::vector<std::pair<unsigned, std::string>>& texts);

}  // namespace fluxlit::observability
