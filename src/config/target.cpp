#include "fluxlit/config/target.hpp"

#include <algorithm>
#include <array>
#include <filesystem>
#include <system_error>

#include "config/value_text.hpp"
#include "fluxlit/config/settings.hpp"

namespace fluxlit::config {

namespace {

namespace fs = std::filesystem;

// Python 3 keywords, which are never valid names ("match", "case" and "type" are soft keywords
// and remain valid identifiers).
constexpr std::array<std::string_view, 35> python_keywords = {
    "False", "None",     "True",  "and",    "as",   "assert", "async",  "await",    "break",
    "class", "continue", "def",   "del",    "elif", "else",   "except", "finally",  "for",
    "from",  "global",   "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
    "or",    "pass",     "raise", "return", "try",  "while",  "with",   "yield",
};

struct target_parts {
  std::string_view location;   // module name or file path
  std::string_view attribute;  // after the last ":"
  bool is_file = false;
};

[[noreturn]] void reject(std::string_view text, const std::string& reason) {
  throw config_error("invalid target " + detail::quote(text) + ": " + reason);
}

bool is_identifier_start(char c) {
  // Bytes from 0x80 up belong to UTF-8 encoded characters, and Python accepts the letters among
  // them in names. Python itself reports any other character when it imports the target.
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}

bool is_identifier(std::string_view name) {
  if (name.empty() || !is_identifier_start(name.front())) {
    return false;
  }
  const bool valid_rest = std::all_of(name.begin() + 1, name.end(), [](char c) {
    return is_identifier_start(c) || (c >= '0' && c <= '9');
  });
  const bool is_keyword =
      std::find(python_keywords.begin(), python_keywords.end(), name) != python_keywords.end();
  return valid_rest && !is_keyword;
}

// True when `text` is one or more identifiers joined by single dots.
bool is_dotted_name(std::string_view text) {
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = text.find('.', start);
    const std::string_view part =
        text.substr(start, dot == std::string_view::npos ? text.npos : dot - start);
    if (!is_identifier(part)) {
      return false;
    }
    if (dot == std::string_view::npos) {
      return true;
    }
    start = dot + 1;
  }
}

target_parts split_target(std::string_view text) {
  if (text.empty()) {
    reject(text, "it is empty. Use module:attribute, for example \"app:app\"");
  }
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    const std::string example = std::string(text) + ":app";
    reject(text, "expected module:attribute with a \":\" before the app's name, for example " +
                     detail::quote(example));
  }

  target_parts parts;
  parts.location = text.substr(0, colon);
  parts.attribute = text.substr(colon + 1);
  parts.is_file =
      parts.location.ends_with(".py") || parts.location.find('/') != std::string_view::npos;

  if (parts.location.empty()) {
    reject(text, "the module before \":\" is missing, for example \"app:app\"");
  }
  if (!is_dotted_name(parts.attribute)) {
    reject(text,
           "the attribute after \":\" must be a Python name such as \"app\" or "
           "\"server.app\"");
  }
  if (parts.is_file && !parts.location.ends_with(".py")) {
    reject(text, "a file target must name a .py file, for example \"src/main.py:app\"");
  }
  if (!parts.is_file && !is_dotted_name(parts.location)) {
    reject(text,
           "the module before \":\" must be a dotted Python module name such as "
           "\"app\" or \"mypackage.main\", or a path ending in .py");
  }
  return parts;
}

}  // namespace

void check_target_syntax(std::string_view text) {
  split_target(text);
}

app_target parse_target(std::string_view text, const std::string& working_directory) {
  const target_parts parts = split_target(text);
  app_target target;
  target.attribute = parts.attribute;
  if (!parts.is_file) {
    target.module = parts.location;
    target.app_directory = working_directory;
    return target;
  }

  std::error_code error;
  fs::path file(parts.location);
  if (file.is_relative()) {
    file = fs::path(working_directory) / file;
  }
  file = fs::absolute(file, error).lexically_normal();
  if (error) {
    reject(text, "the current directory could not be read: " + error.message());
  }
  if (!fs::exists(file, error)) {
    reject(text, "the file " + detail::quote(file.string()) + " was not found");
  }
  if (!fs::is_regular_file(file, error)) {
    reject(text, detail::quote(file.string()) + " is not a regular file");
  }
  target.file = file.string();
  target.app_directory = file.parent_path().string();
  return target;
}

}  // namespace fluxlit::config
