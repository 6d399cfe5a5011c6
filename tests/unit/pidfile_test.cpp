// Tests for the pid file: writing, stale and live files, removal, and reading it back.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spdlog/sinks/ostream_sink.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <system_error>

#include "cli/pidfile.hpp"
#include "fluxlit/observability/log.hpp"
#include "supervisor/child_process.hpp"
#include "supervisor/process_table.hpp"

namespace fluxlit::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string read_text(const fs::path& path) {
  std::ifstream input(path);
  return {std::istreambuf_iterator<char>(input), std::istreambuf_iterator<char>()};
}

class pidfile_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "fluxlit-pidfile-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
    path_ = directory_ / "fluxlit.pid";

    sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_);
    observability::logger("fluxlit")->sinks().push_back(sink_);
  }

  void TearDown() override {
    std::erase(observability::logger("fluxlit")->sinks(), sink_);
    for (const pid_t pid : children_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    std::error_code ignored;
    fs::remove_all(directory_, ignored);
  }

  // Starts `sleep 30` under the program name `name`, which becomes its /proc/<pid>/cmdline.
  pid_t start_sleeper(const std::string& name) {
    supervisor::detail::spawn_request request;
    request.program = "sleep";
    request.arguments = {name, "30"};
    request.environment = {"PATH=/usr/bin:/bin"};
    supervisor::detail::spawned_child child;
    EXPECT_FALSE(supervisor::detail::spawn_process(request, child));
    ::close(child.stdout_fd);
    ::close(child.stderr_fd);
    children_.push_back(child.pid);
    // posix_spawn returns while the kernel may still be setting up the new program's arguments,
    // and /proc/<pid>/cmdline is empty until it has.
    for (int i = 0; i < 200 && supervisor::detail::read_command_line(child.pid).empty(); ++i) {
      ::usleep(5'000);
    }
    return child.pid;
  }

  // Returns the id of a process that has exited and been reaped.
  pid_t exited_pid() {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::_exit(0);
    }
    ::waitpid(pid, nullptr, 0);
    return pid;
  }

  void write_pid(const std::string& text) { std::ofstream(path_) << text; }

  fs::path directory_;
  fs::path path_;
  std::ostringstream log_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  std::vector<pid_t> children_;
};

TEST_F(pidfile_test, WritesPidAndRemovesItAtDestruction) {
  {
    pid_file file(path_);
    EXPECT_EQ(file.path(), path_);
    EXPECT_EQ(read_text(path_), std::to_string(::getpid()) + "\n");
    // The temporary file is gone once the pid file is in place.
    EXPECT_EQ(std::distance(fs::directory_iterator(directory_), fs::directory_iterator()), 1);
  }
  EXPECT_FALSE(fs::exists(path_));
  EXPECT_EQ(log_.str(), "");
}

TEST_F(pidfile_test, ReplacesFileOfExitedProcess) {
  const pid_t gone = exited_pid();
  write_pid(std::to_string(gone) + "\n");

  pid_file file(path_);
  EXPECT_EQ(read_text(path_), std::to_string(::getpid()) + "\n");
  EXPECT_THAT(log_.str(), HasSubstr("Replaced the stale pid file " + path_.string()));
  EXPECT_THAT(log_.str(), HasSubstr("process " + std::to_string(gone)));
}

TEST_F(pidfile_test, ReplacesFileOfOtherProgram) {
  const pid_t other = start_sleeper("sleep");
  write_pid(std::to_string(other));

  pid_file file(path_);
  EXPECT_EQ(read_text(path_), std::to_string(::getpid()) + "\n");
  EXPECT_THAT(log_.str(), HasSubstr("which is not a running fluxlit"));
}

TEST_F(pidfile_test, ReplacesFileWithGarbage) {
  write_pid("not a pid\n");
  pid_file file(path_);
  EXPECT_EQ(read_text(path_), std::to_string(::getpid()) + "\n");
  EXPECT_THAT(log_.str(), HasSubstr("no valid process id"));
}

TEST_F(pidfile_test, ReplacesFileNamingThisProcess) {
  // An earlier process with the same id left it, as pid 1 in a restarted container does.
  write_pid(std::to_string(::getpid()));
  pid_file file(path_);
  EXPECT_EQ(read_text(path_), std::to_string(::getpid()) + "\n");
}

TEST_F(pidfile_test, RejectsFileOfRunningFluxlit) {
  const pid_t running = start_sleeper("/opt/bin/fluxlit");
  write_pid(std::to_string(running) + "\n");

  try {
    pid_file file(path_);
    FAIL() << "pid_file accepted a file that names a running fluxlit";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code(), std::errc::file_exists);
    EXPECT_THAT(error.what(), HasSubstr("names fluxlit process " + std::to_string(running)));
    EXPECT_THAT(error.what(), HasSubstr("fluxlit shutdown --pidfile " + path_.string()));
  }
  EXPECT_EQ(read_text(path_), std::to_string(running) + "\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(directory_), fs::directory_iterator()), 1);
}

TEST_F(pidfile_test, KeepsFileThatNamesAnotherProcess) {
  const pid_t other = start_sleeper("/opt/bin/fluxlit");
  {
    pid_file file(path_);
    write_pid(std::to_string(other));  // another server took the file over
  }
  EXPECT_EQ(read_text(path_), std::to_string(other));
}

TEST_F(pidfile_test, ThrowsWhenDirectoryIsMissing) {
  EXPECT_THROW(pid_file(directory_ / "missing" / "fluxlit.pid"), std::system_error);
}

TEST_F(pidfile_test, ReadAcceptsWhiteSpace) {
  write_pid("  4242 \n");
  std::error_code error;
  EXPECT_EQ(read_pid_file(path_, error), 4242);
  EXPECT_FALSE(error);
}

TEST_F(pidfile_test, ReadRejectsBadContents) {
  for (const char* text : {"", "\n", "0", "-5", "12ab", "1 2", "99999999999999999999"}) {
    write_pid(text);
    std::error_code error;
    EXPECT_EQ(read_pid_file(path_, error), std::nullopt) << text;
    EXPECT_EQ(error, std::errc::invalid_argument) << text;
  }
}

TEST_F(pidfile_test, ReadReportsMissingFile) {
  std::error_code error;
  EXPECT_EQ(read_pid_file(directory_ / "none.pid", error), std::nullopt);
  EXPECT_EQ(error, std::errc::no_such_file_or_directory);
}

TEST_F(pidfile_test, RunningFluxlitIsRecognizedByProgramName) {
  EXPECT_TRUE(is_running_fluxlit(start_sleeper("/usr/local/bin/fluxlit")));
  EXPECT_TRUE(is_running_fluxlit(start_sleeper("fluxlit-dev")));
  EXPECT_FALSE(is_running_fluxlit(start_sleeper("sleep")));
  // A directory name does not count, only the program's own name.
  EXPECT_FALSE(is_running_fluxlit(start_sleeper("/srv/fluxlit/bin/sleep")));
  EXPECT_FALSE(is_running_fluxlit(exited_pid()));
}

TEST_F(pidfile_test, ZombieIsNotRunning) {
  const pid_t zombie = start_sleeper("fluxlit");
  ::kill(zombie, SIGKILL);
  // Not reaped yet: the process has exited but /proc still lists it, in state Z.
  for (int i = 0; i < 100 && is_running_fluxlit(zombie); ++i) {
    ::usleep(10'000);
  }
  EXPECT_FALSE(is_running_fluxlit(zombie));
}

}  // namespace
}  // namespace fluxlit::cli
