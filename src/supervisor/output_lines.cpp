#include "supervisor/output_lines.hpp"

#include <array>
#include <utility>

namespace fluxlit::supervisor::detail {

namespace {

// Log formats put the level after a timestamp and perhaps a logger name, so the marker is
// searched only in this many leading bytes. Words later in a line are message text.
constexpr std::size_t level_search_bytes = 64;

struct level_marker {
  std::string_view word;
  spdlog::level::level_enum level;
};

constexpr std::array<level_marker, 6> level_markers{{
    {"DEBUG", spdlog::level::debug},
    {"INFO", spdlog::level::info},
    {"WARNING", spdlog::level::warn},
    {"WARN", spdlog::level::warn},
    {"ERROR", spdlog::level::err},
    {"CRITICAL", spdlog::level::critical},
}};

constexpr std::string_view traceback_start = "Traceback (most recent call last):";

// Lines that Python prints between the tracebacks of chained exceptions.
constexpr std::array<std::string_view, 2> chained_exception_lines{{
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
}};

bool is_word_separator(char c) {
  return c == ' ' || c == '\t' || c == ':' || c == '[' || c == ']';
}

// Returns the length of `text` cut to at most `limit` bytes without splitting a UTF-8 sequence.
std::size_t utf8_safe_cut(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) {
    return text.size();
  }
  std::size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return cut;
}

}  // namespace

line_splitter::line_splitter(std::size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

void line_splitter::feed(std::string_view chunk, std::vector<std::string>& lines) {
  while (!chunk.empty()) {
    const std::size_t newline = chunk.find('\n');
    const std::string_view piece = chunk.substr(0, newline);

    if (!discarding_) {
      append_to_partial(piece, lines);
    }
    if (newline == std::string_view::npos) {
      return;
    }

    if (!discarding_) {
      if (!partial_.empty() && partial_.back() == '\r') {
        partial_.pop_back();
      }
      lines.push_back(std::move(partial_));
    }
    partial_.clear();
    discarding_ = false;
    chunk.remove_prefix(newline + 1);
  }
}

void line_splitter::append_to_partial(std::string_view piece, std::vector<std::string>& lines) {
  const std::size_t room = max_line_bytes_ - partial_.size();
  if (piece.size() <= room) {
    partial_.append(piece);
    return;
  }

  // The line exceeds the limit: emit what fits and drop the rest of it. The one extra byte
  // appended shows whether the cut would split a UTF-8 sequence.
  partial_.append(piece.substr(0, room + 1));
  partial_.resize(utf8_safe_cut(partial_, max_line_bytes_));
  partial_.append(truncated_line_marker);
  lines.push_back(std::move(partial_));
  partial_.clear();
  discarding_ = true;
}

void line_splitter::finish(std::vector<std::string>& lines) {
  if (!discarding_ && !partial_.empty()) {
    if (partial_.back() == '\r') {
      partial_.pop_back();
    }
    lines.push_back(std::move(partial_));
  }
  partial_.clear();
  discarding_ = false;
}

spdlog::level::level_enum detect_level(std::string_view line) {
  const std::string_view head = line.substr(0, level_search_bytes);
  std::size_t position = 0;
  while (position < head.size()) {
    while (position < head.size() && is_word_separator(head[position])) {
      ++position;
    }
    std::size_t end = position;
    while (end < head.size() && !is_word_separator(head[end])) {
      ++end;
    }

    // A word cut off by the search window may continue past it, so it is not a whole word.
    const bool whole_word = end < head.size() || head.size() == line.size();
    const std::string_view word = head.substr(position, end - position);
    for (const level_marker& marker : level_markers) {
      if (whole_word && word == marker.word) {
        return marker.level;
      }
    }
    position = end;
  }
  return spdlog::level::info;
}

spdlog::level::level_enum level_classifier::classify(std::string_view line) {
  const bool indented = !line.empty() && (line.front() == ' ' || line.front() == '\t');
  if (line.ends_with(traceback_start)) {
    // Python 3.11 prints an exception group as "  + Exception Group Traceback (most recent call
    // last):" with every line after it indented, its exception lines included.
    block_ = indented ? traceback_block::exception_group : traceback_block::plain;
    return spdlog::level::err;
  }
  for (const std::string_view chained : chained_exception_lines) {
    if (line.starts_with(chained)) {
      return spdlog::level::err;
    }
  }
  if (indented && block_ != traceback_block::none) {
    return spdlog::level::err;
  }
  if (block_ == traceback_block::plain) {
    // The exception line, such as "ValueError: bad input", is the first unindented one.
    block_ = traceback_block::none;
    return spdlog::level::err;
  }
  block_ = traceback_block::none;
  return detect_level(line);
}

}  // namespace fluxlit::supervisor::detail
