#include "cli/redaction.hpp"

#include <algorithm>
#include <array>

namespace fluxlit::cli {

namespace {

constexpr std::array<std::string_view, 10> secret_words = {
    "password",    "passwd", "secret", "token", "credential",
    "credentials", "key",    "apikey", "auth",  "private"};

std::string lower_ascii(std::string_view text) {
  std::string lowered(text);
  std::transform(lowered.begin(), lowered.end(), lowered.begin(), [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return lowered;
}

// Characters that end the authority part of a URL, or the URL itself inside a longer text.
bool ends_authority(char c) {
  return c == '/' || c == '?' || c == '#' || c == ' ' || c == ',' || c == '"' || c == '\'';
}

}  // namespace

bool is_secret_name(std::string_view name) {
  const std::string lowered = lower_ascii(name);
  std::size_t start = 0;
  while (start <= lowered.size()) {
    std::size_t end = lowered.find_first_of("_-.", start);
    if (end == std::string::npos) {
      end = lowered.size();
    }
    const std::string_view word = std::string_view(lowered).substr(start, end - start);
    if (std::find(secret_words.begin(), secret_words.end(), word) != secret_words.end()) {
      return true;
    }
    start = end + 1;
  }
  return false;
}

std::string redact_url_passwords(std::string_view value) {
  std::string result;
  std::size_t position = 0;
  while (true) {
    const std::size_t scheme_end = value.find("://", position);
    if (scheme_end == std::string_view::npos) {
      break;
    }
    const std::size_t authority = scheme_end + 3;
    std::size_t authority_end = authority;
    while (authority_end < value.size() && !ends_authority(value[authority_end])) {
      ++authority_end;
    }
    // The password sits between the first ":" and the last "@" of the user information.
    const std::string_view host_part = value.substr(authority, authority_end - authority);
    const std::size_t at = host_part.rfind('@');
    const std::size_t colon = host_part.find(':');
    result.append(value.substr(position, authority - position));
    if (at != std::string_view::npos && colon != std::string_view::npos && colon < at) {
      result.append(host_part.substr(0, colon + 1));
      result.append(redacted_text);
      result.append(host_part.substr(at));
    } else {
      result.append(host_part);
    }
    position = authority_end;
  }
  result.append(value.substr(position));
  return result;
}

std::string redact_setting(std::string_view name, std::string_view value) {
  if (is_secret_name(name) && !value.empty()) {
    return std::string(redacted_text);
  }
  return redact_url_passwords(value);
}

}  // namespace fluxlit::cli
