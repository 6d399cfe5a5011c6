#include "supervisor/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <string_view>

namespace fluxlit::supervisor::detail {

namespace {

// The policy that children start under, or -1 to let them inherit the spawning thread's.
std::atomic<int> child_scheduling_policy{-1};

// Owns the attributes and file actions that posix_spawn needs, so every return path frees them.
class spawn_setup {
 public:
  spawn_setup() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attributes_);
  }
  ~spawn_setup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attributes_);
  }
  spawn_setup(const spawn_setup&) = delete;
  spawn_setup& operator=(const spawn_setup&) = delete;

  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attributes_;
};

void close_pipe(int (&fds)[2]) {
  ::close(fds[0]);
  ::close(fds[1]);
}

std::vector<char*> to_null_terminated(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (const std::string& text : strings) {
    pointers.push_back(const_cast<char*>(text.c_str()));
  }
  pointers.push_back(nullptr);
  return pointers;
}

constexpr const char* setpriv_path = "/usr/bin/setpriv";

// Returns true when `program` names an executable the way posix_spawnp would find it: as a
// path (relative ones from `working_directory`), or by a search of the parent's PATH.
bool program_is_executable(const std::string& program, const std::string& working_directory) {
  if (program.find('/') != std::string::npos) {
    const bool relative = program.front() != '/' && !working_directory.empty();
    const std::string path = relative ? working_directory + "/" + program : program;
    return ::access(path.c_str(), X_OK) == 0;
  }
  const char* search = std::getenv("PATH");
  std::string_view directories = search != nullptr ? search : "/usr/bin:/bin";
  while (true) {
    const auto colon = directories.find(':');
    std::string directory(directories.substr(0, colon));
    // push_back rather than `= "."`, which GCC 12 flags with a false -Wrestrict warning at -O2.
    if (directory.empty()) directory.push_back('.');
    if (::access((directory + "/" + program).c_str(), X_OK) == 0) return true;
    if (colon == std::string_view::npos) return false;
    directories.remove_prefix(colon + 1);
  }
}

// Prepares the child's standard streams, working directory, process group and signal state.
// Returns 0 or an errno value.
int configure_spawn(spawn_setup& setup, const spawn_request& request, int stdout_write,
                    int stderr_write) {
  posix_spawn_file_actions_t* actions = &setup.actions_;
  if (int rc = posix_spawn_file_actions_addopen(actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)) {
    return rc;
  }
  if (!request.share_output) {
    if (int rc = posix_spawn_file_actions_adddup2(actions, stdout_write, STDOUT_FILENO)) {
      return rc;
    }
    if (int rc = posix_spawn_file_actions_adddup2(actions, stderr_write, STDERR_FILENO)) {
      return rc;
    }
  }
  // dup2 clears close-on-exec on the new descriptor.
  int first_closed = STDERR_FILENO + 1;
  for (const auto& [parent_fd, child_fd] : request.inherited) {
    if (int rc = posix_spawn_file_actions_adddup2(actions, parent_fd, child_fd)) {
      return rc;
    }
    first_closed = std::max(first_closed, child_fd + 1);
  }
  // Asio opens sockets without close-on-exec, so without this the child would inherit the
  // gateway's listener and client connections, keep them open after FluxLit exits, and pass
  // for their owner in /proc.
  if (int rc = posix_spawn_file_actions_addclosefrom_np(actions, first_closed)) {
    return rc;
  }
  if (!request.working_directory.empty()) {
    const char* directory = request.working_directory.c_str();
    if (int rc = posix_spawn_file_actions_addchdir_np(actions, directory)) {
      return rc;
    }
  }

  // A server process often ignores SIGPIPE or blocks signals in some threads, and exec keeps
  // both, which would leave the child deaf to SIGTERM or dying quietly on a closed pipe.
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t all_signals;
  sigfillset(&all_signals);
  posix_spawnattr_t* attributes = &setup.attributes_;
  if (int rc = posix_spawnattr_setsigmask(attributes, &empty_mask)) {
    return rc;
  }
  if (int rc = posix_spawnattr_setsigdefault(attributes, &all_signals)) {
    return rc;
  }
  if (int rc = posix_spawnattr_setpgroup(attributes, 0)) {
    return rc;
  }
  short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  // The io_scheduling setting may have moved the spawning thread to SCHED_BATCH, which a child
  // would inherit. Streamlit is a server of its own and starts as the process did.
  if (const int policy = child_scheduling_policy.load(); policy >= 0) {
    const sched_param priority{};
    if (int rc = posix_spawnattr_setschedpolicy(attributes, policy)) {
      return rc;
    }
    if (int rc = posix_spawnattr_setschedparam(attributes, &priority)) {
      return rc;
    }
    flags |= POSIX_SPAWN_SETSCHEDULER;
  }
  return posix_spawnattr_setflags(attributes, flags);
}

}  // namespace

void set_child_scheduling_policy(int policy) {
  child_scheduling_policy.store(policy);
}

std::error_code spawn_process(const spawn_request& request, spawned_child& child) {
  // With shared output there are no pipes, and every descriptor of them below stays -1.
  int stdout_pipe[2] = {-1, -1};
  int stderr_pipe[2] = {-1, -1};
  if (!request.share_output) {
    if (::pipe2(stdout_pipe, O_CLOEXEC) != 0) {
      return {errno, std::system_category()};
    }
    if (::pipe2(stderr_pipe, O_CLOEXEC) != 0) {
      const int error = errno;
      close_pipe(stdout_pipe);
      return {error, std::system_category()};
    }
  }

  spawn_setup setup;
  int rc = configure_spawn(setup, request, stdout_pipe[1], stderr_pipe[1]);
  pid_t pid = -1;
  if (rc == 0) {
    // posix_spawn cannot set a parent-death signal; util-linux's setpriv sets it and then
    // execs the program with the argv given, in the same process.
    std::string program = request.program;
    std::vector<std::string> arguments = request.arguments;
    if (!program_is_executable(program, request.working_directory)) {
      rc = ENOENT;  // what posix_spawnp reports, and setpriv could only report by exiting
    } else if (request.terminate_with_parent && ::access(setpriv_path, X_OK) == 0) {
      arguments = {"setpriv", "--pdeathsig", "TERM", "--", request.program};
      arguments.insert(arguments.end(), request.arguments.begin() + 1, request.arguments.end());
      program = setpriv_path;
    }
    if (rc == 0) {
      std::vector<char*> argv = to_null_terminated(arguments);
      std::vector<char*> envp = to_null_terminated(request.environment);
      // NOTE: with a working directory set, glibc changes directory before the PATH search and
      // exec, so a relative program path is resolved from the new directory.
      rc = ::posix_spawnp(&pid, program.c_str(), &setup.actions_, &setup.attributes_, argv.data(),
                          envp.data());
    }
  }

  // The child has its own copies of the write ends, and the parent must not keep them open or
  // it would never see end of file on the pipes.
  if (!request.share_output) {
    ::close(stdout_pipe[1]);
    ::close(stderr_pipe[1]);
  }
  if (rc != 0) {
    if (!request.share_output) {
      ::close(stdout_pipe[0]);
      ::close(stderr_pipe[0]);
    }
    return {rc, std::system_category()};
  }

  child.pid = pid;
  child.stdout_fd = stdout_pipe[0];
  child.stderr_fd = stderr_pipe[0];
  return {};
}

std::vector<std::string> merge_environment(
    const char* const* parent, const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::vector<std::string> merged;
  for (const char* const* entry = parent; entry != nullptr && *entry != nullptr; ++entry) {
    merged.emplace_back(*entry);
  }

  for (const auto& [name, value] : overrides) {
    std::string assignment = name + "=" + value;
    bool replaced = false;
    for (std::string& existing : merged) {
      if (std::string_view(existing).starts_with(name + "=")) {
        existing = assignment;
        replaced = true;
      }
    }
    if (!replaced) {
      merged.push_back(std::move(assignment));
    }
  }
  return merged;
}

int open_pidfd(pid_t pid) {
  // The raw system call works with any glibc; glibc 2.36's <sys/pidfd.h> also lacks extern "C".
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

bool signal_process_group(pid_t process_group, int signal_number) {
  if (process_group <= 0) {
    return false;
  }
  return ::kill(-process_group, signal_number) == 0 || errno != ESRCH;
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) {
    return "exit code " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    const int signal_number = WTERMSIG(status);
    const char* abbreviation = ::sigabbrev_np(signal_number);
    std::string text = "signal " + std::to_string(signal_number);
    if (abbreviation != nullptr) {
      text += std::string(" (SIG") + abbreviation + ")";
    }
    return text;
  }
  return "wait status " + std::to_string(status);
}

}  // namespace fluxlit::supervisor::detail
