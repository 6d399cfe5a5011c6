// Reads Linux's process table from /proc: the processes, their parents, groups and states. The
// supervisor, the pid file and `fluxlit shutdown` use it to find processes by relation.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fluxlit::supervisor::detail {

// The fields of /proc/<pid>/stat that FluxLit uses.
struct process_status {
  char state = '?';  // 'R', 'S', 'D', 'T', 'Z' (zombie) and so on
  pid_t parent = -1;
  pid_t process_group = -1;
};

// Parses the text of a /proc/<pid>/stat file, or returns nothing when it is malformed.
std::optional<process_status> parse_process_status(std::string_view stat);

// Returns the status of process `pid`, or nothing when it does not exist (any more).
std::optional<process_status> read_process_status(pid_t pid,
                                                  const std::string& proc_root = "/proc");

// Returns the ids of every process, in no particular order. A process may exit meanwhile, so
// later reads about one of them can fail.
std::vector<pid_t> list_processes(const std::string& proc_root = "/proc");

// Returns the command-line arguments of process `pid`, from /proc/<pid>/cmdline. A zombie or a
// kernel thread has none, and neither has a process that does not exist.
std::vector<std::string> read_command_line(pid_t pid, const std::string& proc_root = "/proc");

}  // namespace fluxlit::supervisor::detail
