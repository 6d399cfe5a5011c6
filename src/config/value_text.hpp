// Parsing and quoting of setting values in their text form, shared by the key table, the loader
// and validation. Parsers throw std::invalid_argument whose message is the expected form only
// ("expected ..."), so the caller can prefix the key, the source and the value.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fluxlit::config::detail {

// Strips ASCII spaces and tabs from both ends.
std::string_view trim(std::string_view text);

// Accepts true/false, 1/0, yes/no and on/off in any letter case.
bool parse_bool(std::string_view text);

// Accepts decimal digits only (no sign, no spaces inside) and a value from `minimum` to `maximum`.
// `unit` ("ms", "bytes" or empty) is named in the error message.
std::uint64_t parse_unsigned(std::string_view text, std::uint64_t minimum, std::uint64_t maximum,
                             std::string_view unit);

// The "expected ..." phrase that parse_unsigned uses, for docs and type-mismatch messages.
std::string expected_unsigned(std::uint64_t minimum, std::uint64_t maximum, std::string_view unit);

// Splits a comma-separated list and trims each entry. An empty or all-blank text is an empty
// list.
// Empty entries ("a,,b") are rejected.
std::vector<std::string> parse_list(std::string_view text);

// Returns the lower-cased `text` when it is one of `choices` (compared without letter case).
std::string parse_choice(std::string_view text, std::span<const std::string_view> choices);

// Joins entries with ", ", the inverse of parse_list.
std::string join_list(const std::vector<std::string>& entries);

// Wraps `text` in double quotes and escapes quotes, backslashes and control characters, so a
// value shown in a message cannot hide or break the line.
std::string quote(std::string_view text);

// Returns the candidate closest to `name` by edit distance when it is at most 2 edits away, for
// "did you mean" hints, or an empty string when none is that close.
std::string closest_match(std::string_view name, std::span<const std::string> candidates);

}  // namespace fluxlit::config::detail
