// The pid file of a serving process, and the process checks that `fluxlit shutdown` shares.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <system_error>

namespace fluxlit::cli {

// Holds a pid file for the life of a serving process. Not thread-safe; create and destroy it on
// the thread that starts and stops serving.
class pid_file {
 public:
  // Writes this process's id and a newline to `path`. The text goes to a temporary file in the
  // same directory first, which is then linked (or, over a stale file, renamed) into place, so
  // a reader never sees a partial file. A file that names a process that is gone or is not
  // fluxlit is replaced, with a warning in the log. Throws std::system_error: EEXIST when the
  // file names another running fluxlit process, or the error of a failed write.
  explicit pid_file(std::filesystem::path path);

  // Removes the file when it still contains this process's id.
  ~pid_file();

  pid_file(const pid_file&) = delete;
  pid_file& operator=(const pid_file&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Reads the process id from a pid file. On failure returns nothing and sets `error`:
// no_such_file_or_directory for a missing file, invalid_argument when the contents are not one
// positive decimal number (surrounding white space is allowed), or the read error.
std::optional<pid_t> read_pid_file(const std::filesystem::path& path, std::error_code& error);

// Returns true when `pid` is a process that has not exited (a zombie has) and whose program
// name, the last path component of its first argument, contains "fluxlit".
bool is_running_fluxlit(pid_t pid);

}  // namespace fluxlit::cli
