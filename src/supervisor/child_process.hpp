// POSIX process helpers for the supervisor: spawning into a new process group, environments,
// and wait statuses. Nothing here touches Asio, so the functions are safe from any thread.
#pragma once

#include <sys/types.h>

#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace fluxlit::supervisor::detail {

struct spawn_request {
  std::string program;                   // looked up in the parent's PATH when it has no '/'
  std::vector<std::string> arguments;    // argv, including argv[0]
  std::vector<std::string> environment;  // complete "NAME=value" list for the child
  std::string working_directory;         // empty keeps the parent's
  // When set, the child gets SIGTERM if the thread that spawned it dies first (FluxLit killed
  // with SIGKILL or crashed), so no child outlives FluxLit.
  bool terminate_with_parent = false;
  // Descriptors the child keeps: each pair maps a descriptor of the parent to the number the
  // child uses for it (3 and up). The parent's numbers must not be among the child's numbers.
  std::vector<std::pair<int, int>> inherited;
  // When set, the child writes to the parent's stdout and stderr rather than into new pipes,
  // and spawned_child's descriptors stay -1.
  bool share_output = false;
};

// Process id and the parent's ends of the child's output pipes. The caller owns the
// descriptors, which are close-on-exec.
struct spawned_child {
  pid_t pid = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

// Starts the program with posix_spawn as the leader of a new process group, so its process group
// id equals its pid. The child reads stdin from /dev/null and writes stdout and stderr into new
// pipes (or the parent's, with share_output), inherits no other descriptor than `inherited`, and starts with every signal disposition reset to the
// default and an empty signal mask. Returns the
// posix_spawn error (for example ENOENT for a missing program) and leaves `child` untouched on
// failure.
// NOTE: a child outlives this process when the process dies without running the supervisor's
// destructor (SIGKILL, a crash); Linux's PR_SET_PDEATHSIG would need fork and exec instead.
std::error_code spawn_process(const spawn_request& request, spawned_child& child);

// Makes children spawned from now on start under `policy` (priority 0) instead of the policy
// of the spawning thread. The I/O thread calls it with the policy that the process started
// with when the io_scheduling setting moves the thread to another one.
void set_child_scheduling_policy(int policy);

// Returns the "NAME=value" entries of `parent` (an environ-style, null-terminated array) with each
// of `overrides` replacing the entry of the same name or appended when there is none.
std::vector<std::string> merge_environment(
    const char* const* parent, const std::vector<std::pair<std::string, std::string>>& overrides);

// Returns a pidfd for `pid` (readable once the process has exited), or -1 with errno set when
// the kernel or a seccomp filter does not allow pidfd_open.
int open_pidfd(pid_t pid);

// Sends `signal_number` to every process in the group `process_group`. Returns false only when
// the group no longer exists (ESRCH); other failures are impossible for a group this process
// created and are ignored.
bool signal_process_group(pid_t process_group, int signal_number);

// Formats a waitpid status for logs: "exit code 1" or "signal 9 (SIGKILL)".
std::string describe_wait_status(int status);

}  // namespace fluxlit::supervisor::detail
