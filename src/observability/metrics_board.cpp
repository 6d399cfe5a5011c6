#include "fluxlit/observability/metrics_board.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>
#include <unordered_map>

namespace fluxlit::observability {

// A slot is a sequence lock and the text. The writer makes the sequence odd, writes, and makes
// it even again. A reader copies the text and retries if the sequence was odd or moved
// meanwhile. Lock-free atomics work across processes that map the same memory.
struct metrics_board::slot {
  std::atomic<std::uint64_t> sequence;
  std::atomic<std::uint32_t> length;
  char text[slot_bytes];
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

namespace {

std::system_error system_failure(const char* action) {
  return std::system_error(errno, std::system_category(), action);
}

void* map_region(int fd, std::size_t size) {
  void* memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (memory == MAP_FAILED) throw system_failure("cannot map the workers' metrics region");
  return memory;
}

}  // namespace

std::shared_ptr<metrics_board> metrics_board::create(unsigned slots) {
  const int fd = ::memfd_create("fluxlit-metrics", MFD_CLOEXEC);
  if (fd < 0) throw system_failure("cannot create the workers' metrics region (memfd_create)");
  const auto size = sizeof(slot) * slots;
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    const auto error = system_failure("cannot size the workers' metrics region");
    ::close(fd);
    throw error;
  }
  try {
    // A new memfd reads as zeros: every slot starts empty, with an even sequence.
    return std::shared_ptr<metrics_board>(new metrics_board(fd, slots, map_region(fd, size), size));
  } catch (...) {
    ::close(fd);
    throw;
  }
}

std::shared_ptr<metrics_board> metrics_board::attach(int fd) {
  struct stat status {};
  if (::fstat(fd, &status) != 0) throw system_failure("inherited metrics descriptor");
  const auto size = static_cast<std::size_t>(status.st_size);
  if (size == 0 || size % sizeof(slot) != 0) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "inherited metrics descriptor " + std::to_string(fd) +
                                " is not a metrics region of " + std::to_string(size) + " bytes");
  }
  const auto slots = static_cast<unsigned>(size / sizeof(slot));
  return std::shared_ptr<metrics_board>(new metrics_board(fd, slots, map_region(fd, size), size));
}

metrics_board::metrics_board(int fd, unsigned slots, void* memory, std::size_t size)
    : fd_(fd), slots_(slots), memory_(memory), size_(size) {}

metrics_board::~metrics_board() {
  ::munmap(memory_, size_);
  ::close(fd_);
}

metrics_board::slot& metrics_board::slot_at(unsigned index) const {
  return static_cast<slot*>(memory_)[index];
}

void metrics_board::publish(unsigned index, std::string_view text) {
  if (index >= slots_) return;
  if (text.size() > slot_bytes) {
    const auto last_line = text.substr(0, slot_bytes).rfind('\n');
    text = text.substr(0, last_line == std::string_view::npos ? 0 : last_line + 1);
  }
  auto& target = slot_at(index);
  // Odd while this write lasts. A worker that died mid-write left the sequence odd, and the
  // parent's clear() then starts from there.
  const auto before = target.sequence.load(std::memory_order_relaxed);
  const auto writing = before % 2 == 0 ? before + 1 : before + 2;
  target.sequence.store(writing, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  std::memcpy(target.text, text.data(), text.size());
  target.length.store(static_cast<std::uint32_t>(text.size()), std::memory_order_relaxed);
  target.sequence.store(writing + 1, std::memory_order_release);
}

std::vector<std::pair<unsigned, std::string>> metrics_board::read() const {
  std::vector<std::pair<unsigned, std::string>> texts;
  std::string copy;
  for (unsigned index = 0; index < slots_; ++index) {
    const auto& source = slot_at(index);
    // A writer keeps a slot busy for one memcpy of a few KiB, so a few tries normally suffice.
    // A slot whose writer died mid-copy stays odd and is skipped after the last try.
    for (int attempt = 0; attempt < 1000; ++attempt) {
      const auto before = source.sequence.load(std::memory_order_acquire);
      if (before % 2 != 0) continue;
      const auto length =
          std::min<std::size_t>(source.length.load(std::memory_order_relaxed), slot_bytes);
      copy.assign(source.text, length);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (source.sequence.load(std::memory_order_relaxed) != before) continue;
      if (!copy.empty()) texts.emplace_back(index, copy);
      break;
    }
  }
  return texts;
}

namespace {

// The family a HELP or TYPE line describes, or an empty view for any other line.
std::string_view described_family(std::string_view line) {
  for (const std::string_view prefix : {"# HELP ", "# TYPE "}) {
    if (line.starts_with(prefix)) {
      line.remove_prefix(prefix.size());
      return line.substr(0, line.find(' '));
    }
  }
  return {};
}

// Returns a sample line with `label` first among its labels.
std::string with_label(std::string_view sample, std::string_view label) {
  const auto name_end = sample.find_first_of("{ ");
  if (name_end == std::string_view::npos) return std::string(sample);
  std::string out(sample.substr(0, name_end));
  out += '{';
  out += label;
  if (sample[name_end] == '{') {
    const auto rest = sample.substr(name_end + 1);
    if (!rest.starts_with('}')) out += ',';
    out += rest;
  } else {
    out += '}';
    out += sample.substr(name_end);
  }
  return out;
}

}  // namespace

std::string join_worker_metrics(const std::vector<std::pair<unsigned, std::string>>& texts) {
  struct family {
    std::string description;  // HELP and TYPE lines
    std::string samples;
    bool described = false;
  };
  std::vector<std::string> order;
  std::unordered_map<std::string, family> families;
  const auto find_family = [&](std::string_view name) -> family& {
    auto [entry, added] = families.try_emplace(std::string(name));
    if (added) order.emplace_back(name);
    return entry->second;
  };

  for (const auto& [index, text] : texts) {
    const auto label = "worker=\"" + std::to_string(index + 1) + "\"";
    std::string current;  // the family that the last HELP or TYPE line named
    bool describing = false;
    std::string_view rest = text;
    while (!rest.empty()) {
      const auto end = rest.find('\n');
      const auto line = rest.substr(0, end);
      rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
      if (line.empty()) continue;
      if (const auto name = described_family(line); !name.empty()) {
        if (name != current) {
          current = name;
          describing = !find_family(name).described;
        }
        auto& target = find_family(name);
        if (describing) {
          target.description.append(line).push_back('\n');
          target.described = true;
        }
        continue;
      }
      if (line.starts_with('#')) continue;
      const auto sample_name = line.substr(0, line.find_first_of("{ "));
      auto& target = find_family(current.empty() ? sample_name : std::string_view(current));
      target.samples.append(with_label(line, label)).push_back('\n');
    }
  }

  std::string joined;
  for (const auto& name : order) {
    const auto& entry = families.at(name);
    joined += entry.description;
    joined += entry.samples;
  }
  return joined;
}

}  // namespace fluxlit::observability
