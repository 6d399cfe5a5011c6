#include "cli/pidfile.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>
#include <string_view>
#include <vector>

#include "fluxlit/observability/log.hpp"
#include "supervisor/process_table.hpp"

namespace fluxlit::cli {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void throw_errno(int error, const std::string& what) {
  throw std::system_error(error, std::system_category(), what);
}

// Writes "<pid>\n" to a new file next to `path` and returns its path.
fs::path write_temporary(const fs::path& path, pid_t pid) {
  fs::path temporary = path;
  temporary += ".tmp." + std::to_string(pid);
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw_errno(errno, "cannot write the pid file " + temporary.string());
  }
  const std::string text = std::to_string(pid) + "\n";
  const ssize_t written = ::write(fd, text.data(), text.size());
  const int write_error = errno;
  ::close(fd);
  if (written != static_cast<ssize_t>(text.size())) {
    ::unlink(temporary.c_str());
    throw_errno(written < 0 ? write_error : EIO, "cannot write the pid file " + temporary.string());
  }
  return temporary;
}

}  // namespace

pid_file::pid_file(fs::path path) : path_(std::move(path)) {
  const pid_t self = ::getpid();
  const fs::path temporary = write_temporary(path_, self);

  // link() fails when the file exists, so two servers started at once cannot both take it.
  if (::link(temporary.c_str(), path_.c_str()) == 0) {
    ::unlink(temporary.c_str());
    return;
  }
  const int link_error = errno;
  if (link_error != EEXIST) {
    ::unlink(temporary.c_str());
    throw_errno(link_error, "cannot create the pid file " + path_.string());
  }

  std::error_code read_error;
  const std::optional<pid_t> existing = read_pid_file(path_, read_error);
  // The process's own id means a file left by an earlier process that had the same id, as
  // happens to pid 1 in a restarted container.
  if (existing && *existing != self && is_running_fluxlit(*existing)) {
    ::unlink(temporary.c_str());
    throw_errno(EEXIST, "the pid file " + path_.string() + " names fluxlit process " +
                            std::to_string(*existing) +
                            ", which is running. Stop it with `fluxlit shutdown --pidfile " +
                            path_.string() + "`, or pass another --pidfile");
  }
  if (::rename(temporary.c_str(), path_.c_str()) != 0) {
    const int rename_error = errno;
    ::unlink(temporary.c_str());
    throw_errno(rename_error, "cannot replace the pid file " + path_.string());
  }
  const std::string previous =
      existing ? "process " + std::to_string(*existing) + ", which is not a running fluxlit"
               : "no valid process id (" + read_error.message() + ")";
  observability::logger("fluxlit")->warn("Replaced the stale pid file {}, which named {}",
                                         path_.string(), previous);
}

pid_file::~pid_file() {
  std::error_code error;
  const std::optional<pid_t> named = read_pid_file(path_, error);
  // Another server may have replaced the file after this one's was found stale, for example
  // when it was deleted by hand; that server's file stays.
  if (named && *named == ::getpid()) {
    ::unlink(path_.c_str());
  }
}

std::optional<pid_t> read_pid_file(const fs::path& path, std::error_code& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = std::error_code(errno, std::system_category());
    return std::nullopt;
  }
  // A pid and a newline take at most a few dozen bytes; anything longer is not a pid file.
  char buffer[64];
  const ssize_t bytes = ::read(fd, buffer, sizeof(buffer));
  const int read_error = errno;
  ::close(fd);
  if (bytes < 0) {
    error = std::error_code(read_error, std::system_category());
    return std::nullopt;
  }

  const std::string_view text(buffer, static_cast<std::size_t>(bytes));
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  const std::size_t last = text.find_last_not_of(" \t\r\n");
  pid_t pid = 0;
  if (first != std::string_view::npos && bytes < static_cast<ssize_t>(sizeof(buffer))) {
    const char* begin = text.data() + first;
    const char* end = text.data() + last + 1;
    const auto [parsed_end, parse_error] = std::from_chars(begin, end, pid);
    if (parse_error == std::errc() && parsed_end == end && pid > 0) {
      error.clear();
      return pid;
    }
  }
  error = std::make_error_code(std::errc::invalid_argument);
  return std::nullopt;
}

bool is_running_fluxlit(pid_t pid) {
  const auto status = supervisor::detail::read_process_status(pid);
  if (!status || status->state == 'Z') {
    return false;
  }
  const std::vector<std::string> arguments = supervisor::detail::read_command_line(pid);
  if (arguments.empty()) {
    return false;
  }
  const std::string program = fs::path(arguments.front()).filename().string();
  return program.find("fluxlit") != std::string::npos;
}

}  // namespace fluxlit::cli
