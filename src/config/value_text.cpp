#include "config/value_text.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <stdexcept>
#include <system_error>

namespace fluxlit::config::detail {

namespace {

char to_lower_ascii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower(std::string_view text) {
  std::string lowered(text);
  std::transform(lowered.begin(), lowered.end(), lowered.begin(), to_lower_ascii);
  return lowered;
}

std::string_view unit_word(std::string_view unit) {
  if (unit == "ms") {
    return "milliseconds";
  }
  return unit;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> previous(b.size() + 1);
  std::vector<std::size_t> current(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    previous[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

}  // namespace

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) {
    return {};
  }
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

bool parse_bool(std::string_view text) {
  const std::string lowered = to_lower(trim(text));
  if (lowered == "true" || lowered == "1" || lowered == "yes" || lowered == "on") {
    return true;
  }
  if (lowered == "false" || lowered == "0" || lowered == "no" || lowered == "off") {
    return false;
  }
  throw std::invalid_argument("expected true or false (1/0, yes/no and on/off also work)");
}

std::string expected_unsigned(std::uint64_t minimum, std::uint64_t maximum, std::string_view unit) {
  std::string expected;
  if (maximum == std::numeric_limits<std::uint64_t>::max()) {
    expected = "expected an integer of at least " + std::to_string(minimum);
  } else {
    expected =
        "expected an integer from " + std::to_string(minimum) + " to " + std::to_string(maximum);
  }
  if (!unit.empty()) {
    expected += " (";
    expected += unit_word(unit);
    expected += ")";
  }
  return expected;
}

std::uint64_t parse_unsigned(std::string_view text, std::uint64_t minimum, std::uint64_t maximum,
                             std::string_view unit) {
  const std::string_view digits = trim(text);
  const bool all_digits = !digits.empty() && std::all_of(digits.begin(), digits.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
  std::uint64_t value = 0;
  if (all_digits) {
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (error == std::errc() && end == digits.data() + digits.size() && value >= minimum &&
        value <= maximum) {
      return value;
    }
  }
  throw std::invalid_argument(expected_unsigned(minimum, maximum, unit));
}

std::vector<std::string> parse_list(std::string_view text) {
  std::vector<std::string> entries;
  if (trim(text).empty()) {
    return entries;
  }
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string_view entry =
        trim(text.substr(start, comma == std::string_view::npos ? text.npos : comma - start));
    if (entry.empty()) {
      throw std::invalid_argument("expected a comma-separated list without empty entries");
    }
    entries.emplace_back(entry);
    if (comma == std::string_view::npos) {
      return entries;
    }
    start = comma + 1;
  }
}

std::string parse_choice(std::string_view text, std::span<const std::string_view> choices) {
  const std::string lowered = to_lower(trim(text));
  for (const std::string_view choice : choices) {
    if (lowered == choice) {
      return lowered;
    }
  }
  std::string expected = "expected one of ";
  for (std::size_t i = 0; i < choices.size(); ++i) {
    expected += (i == 0) ? "" : (i + 1 == choices.size() ? " or " : ", ");
    expected += choices[i];
  }
  throw std::invalid_argument(expected);
}

std::string join_list(const std::vector<std::string>& entries) {
  std::string joined;
  for (const std::string& entry : entries) {
    if (!joined.empty()) {
      joined += ", ";
    }
    joined += entry;
  }
  return joined;
}

std::string quote(std::string_view text) {
  static constexpr std::array<char, 16> hex_digits = {'0', '1', '2', '3', '4', '5', '6', '7',
                                                      '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
  std::string quoted = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (c == '\n') {
      quoted += "\\n";
    } else if (c == '\t') {
      quoted += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      quoted += "\\x";
      quoted += hex_digits[byte >> 4];
      quoted += hex_digits[byte & 0x0f];
    } else {
      quoted += c;
    }
  }
  quoted += '"';
  return quoted;
}

std::string closest_match(std::string_view name, std::span<const std::string> candidates) {
  constexpr std::size_t max_edits = 2;
  std::string best;
  std::size_t best_distance = max_edits + 1;
  for (const std::string& candidate : candidates) {
    const std::size_t distance = edit_distance(to_lower(name), to_lower(candidate));
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace fluxlit::config::detail
