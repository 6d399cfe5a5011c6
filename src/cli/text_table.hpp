// Aligned plain-text tables for command output meant for people, such as `fluxlit doctor`.
#pragma once

#include <string>
#include <vector>

namespace fluxlit::cli {

using table_row = std::vector<std::string>;

// Formats `rows` as lines that start with `indent` spaces, with each column but the last padded
// to its widest cell (at most `max_column_width` characters) and two spaces between columns. A
// newline inside the last cell continues that cell on the next line, aligned under its start.
// Rows may have fewer cells than others. Widths count bytes, so cells with multi-byte UTF-8
// characters line up less exactly.
std::string format_table(const std::vector<table_row>& rows, std::size_t indent = 0,
                         std::size_t max_column_width = 48);

}  // namespace fluxlit::cli
