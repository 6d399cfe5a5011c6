#include "cli/text_table.hpp"

#include <algorithm>

namespace fluxlit::cli {

namespace {

constexpr std::string_view column_gap = "  ";

// Returns the width of each column but the last.
std::vector<std::size_t> column_widths(const std::vector<table_row>& rows,
                                       std::size_t max_column_width) {
  std::size_t columns = 0;
  for (const table_row& row : rows) {
    columns = std::max(columns, row.size());
  }
  std::vector<std::size_t> widths(columns > 0 ? columns - 1 : 0, 0);
  for (const table_row& row : rows) {
    // A row's own last cell takes no part in the alignment of the columns after it.
    for (std::size_t i = 0; i + 1 < row.size(); ++i) {
      widths[i] = std::max(widths[i], std::min(row[i].size(), max_column_width));
    }
  }
  return widths;
}

void append_last_cell(std::string& out, const std::string& cell, std::size_t start_column) {
  std::size_t begin = 0;
  while (true) {
    const std::size_t end = cell.find('\n', begin);
    out.append(cell, begin, end == std::string::npos ? std::string::npos : end - begin);
    if (end == std::string::npos) {
      return;
    }
    out += '\n';
    out.append(start_column, ' ');
    begin = end + 1;
  }
}

}  // namespace

std::string format_table(const std::vector<table_row>& rows, std::size_t indent,
                         std::size_t max_column_width) {
  const std::vector<std::size_t> widths = column_widths(rows, max_column_width);
  std::string out;
  for (const table_row& row : rows) {
    std::string line(indent, ' ');
    for (std::size_t i = 0; i + 1 < row.size(); ++i) {
      line += row[i];
      line.append(widths[i] - std::min(widths[i], row[i].size()), ' ');
      line += column_gap;
    }
    if (!row.empty()) {
      append_last_cell(line, row.back(), line.size());
    }
    // Trailing spaces of padded empty cells would only clutter copied output.
    line.erase(line.find_last_not_of(' ') + 1);
    out += line;
    out += '\n';
  }
  return out;
}

}  // namespace fluxlit::cli
