// Splits the child's output pipes into log lines and guesses each line's level.
#pragma once

#include <spdlog/common.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace fluxlit::supervisor::detail {

// Turns a byte stream into lines. A line ends at '\n', and a trailing '\r' is dropped. A line
// longer than max_line_bytes is cut at that length (never inside a UTF-8 sequence), marked with
// truncated_line_marker, and the rest of it up to the next '\n' is discarded, so one endless
// line cannot grow memory without bound.
class line_splitter {
 public:
  static constexpr std::string_view truncated_line_marker = " [line truncated]";

  explicit line_splitter(std::size_t max_line_bytes);

  // Appends every line completed by `chunk` to `lines`.
  void feed(std::string_view chunk, std::vector<std::string>& lines);

  // Appends the unterminated last line, if any, to `lines`. Call it at end of stream.
  void finish(std::vector<std::string>& lines);

 private:
  void append_to_partial(std::string_view piece, std::vector<std::string>& lines);

  std::size_t max_line_bytes_;
  std::string partial_;
  bool discarding_ = false;  // true after a cut until the next '\n'
};

// Returns the level named by a marker near the start of the line ("DEBUG", "INFO", "WARNING",
// "WARN", "ERROR", "CRITICAL" as a whole word, as Python's logging prints them), else info.
spdlog::level::level_enum detect_level(std::string_view line);

// Assigns levels to the lines of one output stream, in order. A Python traceback is logged at
// error: the "Traceback (most recent call last):" line, the indented lines after it, the first
// unindented line (the exception) that ends it, and the lines that join chained exceptions.
// Every other line gets detect_level(). Blank lines should not be passed, because a traceback
// contains none.
class level_classifier {
 public:
  spdlog::level::level_enum classify(std::string_view line);

 private:
  enum class traceback_block { none, plain, exception_group };

  traceback_block block_ = traceback_block::none;
};

}  // namespace fluxlit::supervisor::detail
