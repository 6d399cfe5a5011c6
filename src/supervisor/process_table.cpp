#include "supervisor/process_table.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

namespace fluxlit::supervisor::detail {

namespace {

namespace fs = std::filesystem;

// Parses a process or group id; 0 appears as the parent of the first process.
bool parse_id(std::string_view text, pid_t& id) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
  return error == std::errc() && end == text.data() + text.size() && id >= 0;
}

// Returns the next field separated by spaces and removes it from `text`.
std::string_view take_field(std::string_view& text) {
  const std::size_t start = text.find_first_not_of(' ');
  if (start == std::string_view::npos) {
    text = {};
    return {};
  }
  text.remove_prefix(start);
  const std::size_t end = std::min(text.find(' '), text.size());
  const std::string_view field = text.substr(0, end);
  text.remove_prefix(end);
  return field;
}

// Reads a /proc file with plain system calls. A process can exit while its files are read,
// and libstdc++'s filebuf throws on such a read error whatever the stream's exception mask.
std::string read_file(const fs::path& path) {
  std::string contents;
  const int descriptor = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (descriptor < 0) return contents;
  char chunk[4096];
  for (;;) {
    const ssize_t count = ::read(descriptor, chunk, sizeof chunk);
    if (count > 0) {
      contents.append(chunk, static_cast<std::size_t>(count));
    } else if (count == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(descriptor);
  return contents;
}

}  // namespace

std::optional<process_status> parse_process_status(std::string_view stat) {
  // The command name is in brackets and may contain spaces and ')', so the fields are counted
  // from the last ')': state, parent, process group.
  const std::size_t name_end = stat.rfind(')');
  if (name_end == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view rest = stat.substr(name_end + 1);
  const std::string_view state = take_field(rest);
  const std::string_view parent = take_field(rest);
  const std::string_view group = take_field(rest);

  process_status status;
  if (state.size() != 1 || !parse_id(parent, status.parent) ||
      !parse_id(group, status.process_group)) {
    return std::nullopt;
  }
  status.state = state.front();
  return status;
}

std::optional<process_status> read_process_status(pid_t pid, const std::string& proc_root) {
  const std::string stat = read_file(fs::path(proc_root) / std::to_string(pid) / "stat");
  if (stat.empty()) {
    return std::nullopt;
  }
  return parse_process_status(stat);
}

std::vector<pid_t> list_processes(const std::string& proc_root) {
  std::vector<pid_t> pids;
  std::error_code error;
  for (fs::directory_iterator it(proc_root, error), end; !error && it != end;
       it.increment(error)) {
    pid_t pid = 0;
    if (parse_id(it->path().filename().string(), pid) && pid > 0) {
      pids.push_back(pid);
    }
  }
  return pids;
}

std::vector<std::string> read_command_line(pid_t pid, const std::string& proc_root) {
  const std::string text = read_file(fs::path(proc_root) / std::to_string(pid) / "cmdline");
  std::vector<std::string> arguments;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\0', start);
    if (end == std::string::npos) {
      end = text.size();
    }
    arguments.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return arguments;
}

}  // namespace fluxlit::supervisor::detail
