#include <Python.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fluxlit/asgi/bridge.hpp"

extern char** environ;

namespace fluxlit::asgi {
namespace {

// Printed as one JSON object by the interpreter being queried.
constexpr const char* query_script = R"(import importlib.util, json, sys
spec = importlib.util.find_spec("streamlit")
version = ""
if spec is not None:
    try:
        from importlib.metadata import version as _v
        version = _v("streamlit")
    except Exception:
        version = ""
print(json.dumps({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "prefix": sys.prefix, "exec_prefix": sys.exec_prefix,
    "base_prefix": sys.base_prefix, "base_exec_prefix": sys.base_exec_prefix,
    "path": [p for p in sys.path if p],
    "has_streamlit": spec is not None, "streamlit_version": version,
}))
)";

struct command_output {
  int exit_status = -1;
  std::string out;
};

command_output run_capturing(const std::vector<std::string>& argv) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    throw startup_error(std::string("cannot create a pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);

  std::vector<char*> args;
  for (const auto& each : argv) args.push_back(const_cast<char*>(each.c_str()));
  args.push_back(nullptr);

  pid_t pid = 0;
  const int spawn_error = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (spawn_error != 0) {
    close(pipe_fds[0]);
    throw startup_error("cannot run the Python interpreter " + argv[0] + ": " +
                        std::strerror(spawn_error) +
                        ". Pass --python (or set FLUXLIT_PYTHON) to an existing python3.");
  }

  command_output result;
  std::array<char, 4096> chunk;
  for (;;) {
    const auto count = read(pipe_fds[0], chunk.data(), chunk.size());
    if (count > 0) {
      result.out.append(chunk.data(), static_cast<std::size_t>(count));
    } else if (count == 0 || errno != EINTR) {
      break;
    }
  }
  close(pipe_fds[0]);

  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

bool is_executable(const std::filesystem::path& candidate) {
  return access(candidate.c_str(), X_OK) == 0;
}

}  // namespace

std::string choose_interpreter(const std::string& explicit_python) {
  if (!explicit_python.empty()) return explicit_python;
  if (const char* venv = std::getenv("VIRTUAL_ENV"); venv != nullptr && *venv != '\0') {
    const auto candidate = std::filesystem::path(venv) / "bin" / "python";
    if (is_executable(candidate)) return candidate.string();
    throw startup_error("VIRTUAL_ENV is set to " + std::string(venv) + ", but " +
                        candidate.string() +
                        " is not an executable; activate a valid virtual environment or pass "
                        "--python.");
  }
  return "/usr/bin/python3";
}

interpreter_info query_interpreter(const std::string& python) {
  // Not -I: PYTHONPATH and the user site belong to the sys.path the user expects.
  const auto full = run_capturing({python, "-c", query_script});
  if (full.exit_status != 0) {
    throw startup_error("the Python interpreter " + python + " failed to start (exit status " +
                        std::to_string(full.exit_status) +
                        "); check that it runs, or pass --python with another interpreter.");
  }

  interpreter_info info;
  try {
    const auto parsed = nlohmann::json::parse(full.out);
    info.executable = python;
    info.version = parsed.at("version").get<std::string>();
    info.prefix = parsed.at("prefix").get<std::string>();
    info.exec_prefix = parsed.at("exec_prefix").get<std::string>();
    info.base_prefix = parsed.at("base_prefix").get<std::string>();
    info.base_exec_prefix = parsed.at("base_exec_prefix").get<std::string>();
    info.path = parsed.at("path").get<std::vector<std::string>>();
    info.has_streamlit = parsed.at("has_streamlit").get<bool>();
    info.streamlit_version = parsed.at("streamlit_version").get<std::string>();
  } catch (const nlohmann::json::exception& error) {
    throw startup_error("cannot read what the Python interpreter " + python +
                        " reported about itself: " + error.what());
  }

  const std::string linked =
      std::to_string(PY_MAJOR_VERSION) + "." + std::to_string(PY_MINOR_VERSION);
  if (info.version.rfind(linked + ".", 0) != 0) {
    throw startup_error("the Python interpreter " + python + " is version " + info.version +
                        ", but this fluxlit binary embeds Python " + linked +
                        "; pass --python with a Python " + linked +
                        " interpreter (or a virtual environment made from one).");
  }
  return info;
}

std::string python_package_directory() {
  namespace fs = std::filesystem;
  const auto has_package = [](const fs::path& directory) {
    return fs::exists(directory / "fluxlit" / "__init__.py");
  };
  if (const char* configured = std::getenv("FLUXLIT_PACKAGE_DIR"); configured && *configured) {
    return configured;
  }
  std::error_code ignored;
  const auto executable = fs::read_symlink("/proc/self/exe", ignored);
  if (!executable.empty()) {
    const auto bin_directory = executable.parent_path();
    for (const auto& candidate : {bin_directory / ".." / "share" / "fluxlit" / "python",
                                  bin_directory / ".." / ".." / "python"}) {
      if (has_package(candidate)) return fs::weakly_canonical(candidate).string();
    }
  }
  if (has_package(FLUXLIT_SOURCE_PYTHON_DIR)) return FLUXLIT_SOURCE_PYTHON_DIR;
  throw startup_error(
      "cannot find the fluxlit Python package next to the binary; set FLUXLIT_PACKAGE_DIR to the "
      "directory that contains fluxlit/__init__.py.");
}

std::string child_python_path() {
  std::string path = python_package_directory();
  if (const char* existing = std::getenv("PYTHONPATH"); existing != nullptr && *existing != '\0') {
    // Two appends rather than `":" + std::string(existing)`, which GCC 12 flags with a false
    // -Wrestrict warning at -O2.
    path += ':';
    path += existing;
  }
  return path;
}

}  // namespace fluxlit::asgi
