// Tests for the Streamlit supervisor against real child processes. The child is a stand-in
// `streamlit` package (tests/unit/fixtures/supervisor) whose behaviour the tests choose through
// environment variables, so no real Streamlit is needed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spdlog/sinks/base_sink.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "fluxlit/observability/log.hpp"
#include "fluxlit/supervisor/streamlit_config.hpp"
#include "fluxlit/supervisor/streamlit_supervisor.hpp"
#include "supervisor/child_process.hpp"
#include "supervisor/health_probe.hpp"
#include "supervisor/output_lines.hpp"
#include "supervisor/port_owner.hpp"
#include "supervisor/streamlit_command.hpp"

namespace fluxlit::supervisor {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using clock_type = std::chrono::steady_clock;

// Generous for a child that imports http.server and binds, yet short enough that a hang fails
// the test well within the suite's time budget.
constexpr std::chrono::milliseconds wait_deadline = 5s;

struct captured_line {
  std::string source;
  spdlog::level::level_enum level;
  std::string text;
  clock_type::time_point time;
};

// Records every message of the loggers it is attached to. Tests read it on the thread that runs
// the io_context, which is also the thread that logs.
class capture_sink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<captured_line> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

  // Returns the lines of one source that contain `fragment`.
  std::vector<captured_line> find(const std::string& source, const std::string& fragment) {
    std::vector<captured_line> found;
    for (captured_line& line : lines()) {
      if (line.source == source && line.text.find(fragment) != std::string::npos) {
        found.push_back(std::move(line));
      }
    }
    return found;
  }

  // Returns the lines of one source and level that contain `fragment`.
  std::vector<captured_line> find(const std::string& source, spdlog::level::level_enum level,
                                  const std::string& fragment) {
    std::vector<captured_line> found = find(source, fragment);
    std::erase_if(found, [level](const captured_line& line) { return line.level != level; });
    return found;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    lines_.push_back({std::string(message.logger_name.data(), message.logger_name.size()),
                      message.level, std::string(message.payload.data(), message.payload.size()),
                      clock_type::now()});
  }
  void flush_() override {}

 private:
  std::vector<captured_line> lines_;
};

class supervisor_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/fluxlit-supervisor-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr) << std::strerror(errno);
    directory_ = pattern;

    sink_ = std::make_shared<capture_sink>();
    for (const char* source : {"streamlit", "fluxlit"}) {
      observability::logger(source)->sinks().push_back(sink_);
    }
  }

  void TearDown() override {
    for (const char* source : {"streamlit", "fluxlit"}) {
      auto& sinks = observability::logger(source)->sinks();
      std::erase(sinks, sink_);
    }
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }

  streamlit_options make_options(std::vector<std::pair<std::string, std::string>> environment) {
    streamlit_options options;
    options.python = "/usr/bin/python3";
    options.entry_script = (directory_ / "app.py").string();
    options.working_directory = directory_.string();
    options.environment = {
        {"PYTHONPATH", std::string(FLUXLIT_TEST_SOURCE_DIR) + "/tests/unit/fixtures/supervisor"},
        {"PYTHONDONTWRITEBYTECODE", "1"},
        // Keeps the user's ~/.streamlit/config.toml out of the tests.
        {"HOME", (directory_ / "home").string()},
    };
    options.environment.insert(options.environment.end(), environment.begin(), environment.end());
    options.start_timeout = 5s;
    options.stop_timeout = 2s;
    return options;
  }

  // Runs the io_context until `condition` is true or `deadline` passes. Returns the condition.
  bool run_until(const std::function<bool()>& condition,
                 std::chrono::milliseconds deadline = wait_deadline) {
    const auto end = clock_type::now() + deadline;
    while (!condition()) {
      if (clock_type::now() >= end) {
        return false;
      }
      if (io_.stopped()) {
        io_.restart();
      }
      if (io_.run_for(10ms) == 0) {
        std::this_thread::sleep_for(5ms);  // no work was pending; do not spin
      }
    }
    return true;
  }

  // Runs the io_context for `duration` regardless of any condition.
  void run_for(std::chrono::milliseconds duration) {
    run_until([] { return false; }, duration);
  }

  // Calls async_stop and runs the io_context until `done` was called.
  bool stop_and_wait(streamlit_supervisor& supervisor) {
    bool done = false;
    supervisor.async_stop([&done] { done = true; });
    return run_until([&done] { return done; });
  }

  std::filesystem::path directory_;
  std::shared_ptr<capture_sink> sink_;
  boost::asio::io_context io_;
};

bool process_group_exists(pid_t group) {
  return ::kill(-group, 0) == 0 || errno != ESRCH;
}

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream input(path);
  return nlohmann::json::parse(input);
}

TEST(line_splitter, JoinsLinesAcrossReads) {
  detail::line_splitter splitter(64);
  std::vector<std::string> lines;

  splitter.feed("first ha", lines);
  EXPECT_THAT(lines, IsEmpty());
  splitter.feed("lf\nsecond\r\n\nthi", lines);
  splitter.feed("rd", lines);
  splitter.finish(lines);

  EXPECT_EQ(lines, (std::vector<std::string>{"first half", "second", "", "third"}));
}

TEST(line_splitter, CutsLongLineAndDropsItsRest) {
  detail::line_splitter splitter(8);
  std::vector<std::string> lines;

  splitter.feed("0123456789", lines);
  splitter.feed("abcdef\nshort\n", lines);

  const std::string cut = "01234567" + std::string(detail::line_splitter::truncated_line_marker);
  EXPECT_EQ(lines, (std::vector<std::string>{cut, "short"}));
}

TEST(line_splitter, CutsBeforeUtf8Sequence) {
  detail::line_splitter splitter(4);
  std::vector<std::string> lines;

  // "abc" followed by the two-byte "é": a cut at 4 bytes would split it.
  splitter.feed("abc\xC3\xA9xyz\n", lines);

  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "abc" + std::string(detail::line_splitter::truncated_line_marker));
}

TEST(detect_level, ReadsPythonLoggingMarkers) {
  struct level_case {
    const char* line;
    spdlog::level::level_enum expected;
  };
  const level_case cases[] = {
      {"2024-05-01 10:00:00.000 INFO    streamlit.web.server: started", spdlog::level::info},
      {"2024-05-01 10:00:00.000 WARNING streamlit.runtime: slow", spdlog::level::warn},
      {"2024-05-01 10:00:00.000 ERROR   streamlit.runtime: failed", spdlog::level::err},
      {"2024-05-01 10:00:00.000 DEBUG   streamlit: detail", spdlog::level::debug},
      {"CRITICAL:root:out of memory", spdlog::level::critical},
      {"WARNING:root:deprecated option", spdlog::level::warn},
      {"Traceback (most recent call last):", spdlog::level::info},
      {"  You can now view your Streamlit app in your browser.", spdlog::level::info},
      {"ERRORS are counted here", spdlog::level::info},
      {"", spdlog::level::info},
  };
  for (const level_case& test_case : cases) {
    EXPECT_EQ(detail::detect_level(test_case.line), test_case.expected) << test_case.line;
  }
}

TEST(detect_level, IgnoresMarkerLateInLine) {
  const std::string line = std::string(70, 'x') + " ERROR late";
  EXPECT_EQ(detail::detect_level(line), spdlog::level::info);
}

TEST(parse_status_line, AcceptsOnlyHttpStatusLines) {
  EXPECT_EQ(detail::parse_status_line("HTTP/1.1 200 OK\r\n"), 200u);
  EXPECT_EQ(detail::parse_status_line("HTTP/1.0 503 Service Unavailable\r\n"), 503u);
  EXPECT_EQ(detail::parse_status_line("HTTP/1.1 204\r\n"), 204u);
  EXPECT_EQ(detail::parse_status_line("HTTP/2 200\r\n"), 0u);
  EXPECT_EQ(detail::parse_status_line("HTTP/1.1 2000 OK\r\n"), 0u);
  EXPECT_EQ(detail::parse_status_line("SSH-2.0-OpenSSH\r\n"), 0u);
}

TEST(merge_environment, ReplacesSameNameAndAppendsNew) {
  const char* parent[] = {"PATH=/usr/bin", "HOME=/root", "HOMEDIR=/x", nullptr};
  const auto merged = detail::merge_environment(parent, {{"HOME", "/home/app"}, {"EXTRA", "1"}});
  EXPECT_EQ(merged,
            (std::vector<std::string>{"PATH=/usr/bin", "HOME=/home/app", "HOMEDIR=/x", "EXTRA=1"}));
}

TEST(describe_wait_status, NamesExitCodeAndSignal) {
  EXPECT_EQ(detail::describe_wait_status(3 << 8), "exit code 3");
  EXPECT_EQ(detail::describe_wait_status(SIGKILL), "signal 9 (SIGKILL)");
}

TEST(make_health_target, NormalisesBaseUrlPath) {
  EXPECT_EQ(detail::make_health_target(""), "/_stcore/health");
  EXPECT_EQ(detail::make_health_target("/"), "/_stcore/health");
  EXPECT_EQ(detail::make_health_target("app"), "/app/_stcore/health");
  EXPECT_EQ(detail::make_health_target("/tools/app/"), "/tools/app/_stcore/health");
}

TEST(make_streamlit_arguments, PassesEmptyBaseUrlPathOnlyWhenAsked) {
  streamlit_options options;
  options.python = "python3";
  options.entry_script = "entry.py";

  const auto plain = detail::make_streamlit_arguments(options, 8501);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), "--server.baseUrlPath"), 0);

  const auto cleared = detail::make_streamlit_arguments(options, 8501, true);
  ASSERT_GE(cleared.size(), 2u);
  EXPECT_EQ(cleared[cleared.size() - 2], "--server.baseUrlPath");
  EXPECT_EQ(cleared.back(), "");
}

TEST(level_classifier, MarksTracebackAsError) {
  struct level_case {
    const char* line;
    spdlog::level::level_enum expected;
  };
  const level_case cases[] = {
      {"2024-05-01 12:00:00.123 INFO    streamlit.web.server: started", spdlog::level::info},
      {"2024-05-01 12:00:00.124 Uncaught app exception", spdlog::level::info},
      {"Traceback (most recent call last):", spdlog::level::err},
      {"  File \"/app/page.py\", line 3, in <module>", spdlog::level::err},
      {"    run()", spdlog::level::err},
      {"    ^^^^^", spdlog::level::err},
      {"ValueError: bad input", spdlog::level::err},
      {"During handling of the above exception, another exception occurred:",
       spdlog::level::err},
      {"Traceback (most recent call last):", spdlog::level::err},
      {"  File \"/app/page.py\", line 5, in <module>", spdlog::level::err},
      {"RuntimeError: wrapped", spdlog::level::err},
      {"plain line after the traceback", spdlog::level::info},
      {"  indented line outside a traceback", spdlog::level::info},
      {"2024-05-01 12:00:01.000 WARNING streamlit.runtime: slow", spdlog::level::warn},
  };
  detail::level_classifier classifier;
  for (const level_case& test_case : cases) {
    EXPECT_EQ(classifier.classify(test_case.line), test_case.expected) << test_case.line;
  }
}

TEST(level_classifier, ExceptionGroupEndsAtUnindentedLine) {
  const char* group_lines[] = {
      "  + Exception Group Traceback (most recent call last):",
      "  |   File \"/app/page.py\", line 1, in <module>",
      "  | ExceptionGroup: several (2 sub-exceptions)",
      "  +-+---------------- 1 ----------------",
      "    | ValueError: one",
      "    +------------------------------------",
  };
  detail::level_classifier classifier;
  for (const char* line : group_lines) {
    EXPECT_EQ(classifier.classify(line), spdlog::level::err) << line;
  }
  EXPECT_EQ(classifier.classify("next plain line"), spdlog::level::info);
}

TEST(streamlit_environment_name, ConvertsCamelCase) {
  EXPECT_EQ(streamlit_environment_name("server.port"), "STREAMLIT_SERVER_PORT");
  EXPECT_EQ(streamlit_environment_name("server.baseUrlPath"), "STREAMLIT_SERVER_BASE_URL_PATH");
  EXPECT_EQ(streamlit_environment_name("browser.gatherUsageStats"),
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS");
}

// Returns "source key=value" for each conflict, for compact comparisons.
std::vector<std::string> summarize(const streamlit_config_report& report) {
  std::vector<std::string> lines;
  for (const streamlit_config_conflict& conflict : report.conflicts) {
    lines.push_back(conflict.source + " " + conflict.key + "=" + conflict.value);
  }
  return lines;
}

TEST(find_streamlit_config_conflicts, ReportsDifferingValues) {
  streamlit_options options;
  options.base_url_path = "/tools";
  const streamlit_config_file files[] = {
      {"/app/.streamlit/config.toml",
       "[server]\nport = 8501\naddress = \"0.0.0.0\"\nheadless = true\nbaseUrlPath = \"other\"\n"
       "[browser]\ngatherUsageStats = true\n"},
  };
  const std::map<std::string, std::string> environment{
      {"STREAMLIT_SERVER_PORT", "9000"},
      {"STREAMLIT_SERVER_ADDRESS", "127.0.0.1"},
      {"STREAMLIT_SERVER_HEADLESS", "false"},
      {"STREAMLIT_THEME_BASE", "dark"},
  };

  const streamlit_config_report report =
      find_streamlit_config_conflicts(options, files, environment);

  EXPECT_THAT(report.problems, IsEmpty());
  EXPECT_THAT(summarize(report),
              ElementsAre("/app/.streamlit/config.toml server.port=8501",
                          "/app/.streamlit/config.toml server.address=0.0.0.0",
                          "/app/.streamlit/config.toml browser.gatherUsageStats=true",
                          "/app/.streamlit/config.toml server.baseUrlPath=other",
                          "STREAMLIT_SERVER_PORT server.port=9000",
                          "STREAMLIT_SERVER_HEADLESS server.headless=false"));
  ASSERT_FALSE(report.conflicts.empty());
  EXPECT_EQ(report.conflicts[0].fluxlit_value, "a free port chosen at each start");
}

TEST(find_streamlit_config_conflicts, EquivalentValuesAreNoConflict) {
  streamlit_options options;
  options.base_url_path = "/tools/";
  const streamlit_config_file files[] = {
      {"config.toml", "server.baseUrlPath = \"tools\"\nserver.headless = true\n"},
  };
  const std::map<std::string, std::string> environment{
      {"STREAMLIT_SERVER_HEADLESS", "1"},
      {"STREAMLIT_BROWSER_GATHER_USAGE_STATS", "False"},
      {"STREAMLIT_SERVER_BASE_URL_PATH", "/tools"},
  };

  const streamlit_config_report report =
      find_streamlit_config_conflicts(options, files, environment);
  EXPECT_THAT(summarize(report), IsEmpty());
  EXPECT_THAT(report.problems, IsEmpty());
}

TEST(find_streamlit_config_conflicts, BaseUrlPathConflictsWhenFluxlitPassesNone) {
  const streamlit_config_file files[] = {{"config.toml", "[server]\nbaseUrlPath = \"ui\"\n"}};
  const streamlit_config_report report = find_streamlit_config_conflicts({}, files, {});
  ASSERT_EQ(report.conflicts.size(), 1u);
  EXPECT_EQ(report.conflicts[0].key, "server.baseUrlPath");
  EXPECT_EQ(report.conflicts[0].fluxlit_value, "\"\"");
}

TEST(find_streamlit_config_conflicts, InvalidTomlIsAProblem) {
  const streamlit_config_file files[] = {{"/home/u/.streamlit/config.toml", "[server\nport = 1\n"}};
  const streamlit_config_report report = find_streamlit_config_conflicts({}, files, {});
  EXPECT_THAT(report.conflicts, IsEmpty());
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_THAT(report.problems[0], HasSubstr("invalid TOML in /home/u/.streamlit/config.toml"));
  EXPECT_THAT(report.problems[0], HasSubstr("line 1"));
}

TEST(describe, NamesSourceKeyValueAndFlag) {
  const streamlit_config_conflict conflict{"STREAMLIT_SERVER_ADDRESS", "server.address",
                                           "0.0.0.0", "127.0.0.1"};
  EXPECT_EQ(describe(conflict),
            "Streamlit setting server.address is set to \"0.0.0.0\" in STREAMLIT_SERVER_ADDRESS, "
            "but FluxLit passes --server.address 127.0.0.1 on Streamlit's command line, which "
            "wins");
}

TEST(parse_loopback_listeners, KeepsListenersReachableOnLoopback) {
  // Addresses are printed as 32-bit words in host byte order, so this table is the one a
  // little-endian machine (x86-64, AArch64) produces.
  const std::string columns = " 00000000:00000000 00:00000000 00000000  1000        0 ";
  const std::string table =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
      "timeout inode\n"
      "   0: 0100007F:1F90 00000000:0000 0A" + columns + "111 1 0 100 0 0 10 0\n"   // 127.0.0.1
      "   1: 00000000:1F90 00000000:0000 0A" + columns + "222 1 0 100 0 0 10 0\n"   // 0.0.0.0
      "   2: 0100007F:1F91 00000000:0000 0A" + columns + "333 1 0 100 0 0 10 0\n"   // other port
      "   3: 0100007F:1F90 0100007F:D431 01" + columns + "444 1 0 100 0 0 10 0\n"   // connected
      "   4: 0101A8C0:1F90 00000000:0000 0A" + columns + "555 1 0 100 0 0 10 0\n";  // 192.168.1.1
  EXPECT_THAT(detail::parse_loopback_listeners(table, 8080), ElementsAre(111u, 222u));

  const std::string table6 =
      "  sl  local_address                         remote_address                        st\n"
      "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A" +
      columns + "666 1 0\n"  // ::
      "   1: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A" +
      columns + "777 1 0\n"  // ::ffff:127.0.0.1
      "   2: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A" +
      columns + "888 1 0\n";  // ::1, which IPv4 connections never reach
  EXPECT_THAT(detail::parse_loopback_listeners(table6, 8080), ElementsAre(666u, 777u));
}

TEST(find_listener_owner, TellsOwnListenerFromOthers) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, {boost::asio::ip::address_v4::loopback(), 0});  // listens at once
  const std::uint16_t port = acceptor.local_endpoint().port();
  EXPECT_EQ(detail::find_listener_owner(port, ::getpgrp()), detail::listener_owner::process_group);

  // A process in a group of its own does not own this process's listener.
  detail::spawn_request request;
  request.program = "sleep";
  request.arguments = {"sleep", "5"};
  request.environment = {"PATH=/usr/bin:/bin"};
  detail::spawned_child child;
  ASSERT_FALSE(detail::spawn_process(request, child));
  EXPECT_EQ(detail::find_listener_owner(port, child.pid), detail::listener_owner::other_process);
  ::kill(child.pid, SIGKILL);
  ::waitpid(child.pid, nullptr, 0);
  ::close(child.stdout_fd);
  ::close(child.stderr_fd);

  // After the listener closes, nothing listens on the port.
  acceptor.close();
  EXPECT_EQ(detail::find_listener_owner(port, ::getpgrp()), detail::listener_owner::unknown);
}

TEST(find_group_members, ListsThisProcess) {
  const std::vector<pid_t> members = detail::find_group_members(::getpgrp());
  EXPECT_NE(std::find(members.begin(), members.end(), ::getpid()), members.end());
}

TEST_F(supervisor_test, ChildReceivesExpectedArguments) {
  const auto record = directory_ / "record.json";
  ::setenv("FLUXLIT_SUPERVISOR_TEST_VARIABLE", "from parent", 1);
  streamlit_options options = make_options({{"FAKE_STREAMLIT_RECORD", record.string()},
                                            {"FLUXLIT_SUPERVISOR_TEST_VARIABLE", "from options"}});
  streamlit_supervisor supervisor(io_.get_executor(), options);

  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  ::unsetenv("FLUXLIT_SUPERVISOR_TEST_VARIABLE");

  const nlohmann::json invocation = read_json(record);
  const std::vector<std::string> expected{"run",
                                          options.entry_script,
                                          "--server.port",
                                          std::to_string(supervisor.port()),
                                          "--server.address",
                                          "127.0.0.1",
                                          "--server.headless",
                                          "true",
                                          "--browser.gatherUsageStats",
                                          "false"};
  EXPECT_EQ(invocation["argv"].get<std::vector<std::string>>(), expected);
  EXPECT_EQ(invocation["cwd"], directory_.string());
  EXPECT_EQ(invocation["development_mode"], "false");
  EXPECT_EQ(invocation["unbuffered"], "1");
  EXPECT_EQ(invocation["override"], "from options");

  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, ChildReceivesBaseUrlPathWhenSet) {
  const auto record = directory_ / "record.json";
  streamlit_options options = make_options({{"FAKE_STREAMLIT_RECORD", record.string()}});
  options.base_url_path = "/tools/app/";
  streamlit_supervisor supervisor(io_.get_executor(), options);

  // The stand-in serves health only under the base path, so `ready` also shows that the probe
  // used "/tools/app/_stcore/health".
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));

  const auto argv = read_json(record)["argv"].get<std::vector<std::string>>();
  ASSERT_GE(argv.size(), 2u);
  EXPECT_EQ(argv[argv.size() - 2], "--server.baseUrlPath");
  EXPECT_EQ(argv.back(), "/tools/app/");

  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, BecomesReadyOnlyAfterHealthAnswers200) {
  streamlit_supervisor supervisor(io_.get_executor(),
                                  make_options({{"FAKE_STREAMLIT_UNHEALTHY_COUNT", "3"}}));
  EXPECT_EQ(supervisor.state(), child_state::stopped);
  EXPECT_EQ(supervisor.port(), 0);

  const auto started = clock_type::now();
  supervisor.start();
  EXPECT_EQ(supervisor.state(), child_state::starting);
  EXPECT_GT(supervisor.pid(), 0);
  EXPECT_NE(supervisor.port(), 0);

  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  // Three 503 replies and the 200 take at least four poll intervals of 100 ms.
  EXPECT_GE(clock_type::now() - started, 400ms);
  const auto ready_lines = sink_->find("fluxlit", "Streamlit is ready");
  ASSERT_EQ(ready_lines.size(), 1u);
  EXPECT_THAT(ready_lines[0].text, HasSubstr(std::to_string(supervisor.port())));
  EXPECT_THAT(ready_lines[0].text, HasSubstr(std::to_string(supervisor.pid())));

  EXPECT_TRUE(stop_and_wait(supervisor));
  EXPECT_EQ(supervisor.state(), child_state::stopped);
}

TEST_F(supervisor_test, RestartsAfterChildIsKilled) {
  streamlit_supervisor supervisor(io_.get_executor(), make_options({}));
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  const int first_pid = supervisor.pid();

  ASSERT_EQ(::kill(first_pid, SIGKILL), 0);
  ASSERT_TRUE(run_until([&] { return supervisor.state() == child_state::restarting; }));
  EXPECT_EQ(supervisor.pid(), -1);
  EXPECT_FALSE(process_group_exists(first_pid));

  const auto exit_lines = sink_->find("fluxlit", "exited unexpectedly");
  ASSERT_EQ(exit_lines.size(), 1u);
  EXPECT_EQ(exit_lines[0].level, spdlog::level::warn);
  EXPECT_THAT(exit_lines[0].text, HasSubstr("signal 9 (SIGKILL)"));
  EXPECT_THAT(exit_lines[0].text, HasSubstr("restarting in 500 ms"));

  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  EXPECT_NE(supervisor.pid(), first_pid);

  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, RestartDelayDoublesWhileChildKeepsFailing) {
  streamlit_supervisor supervisor(io_.get_executor(),
                                  make_options({{"FAKE_STREAMLIT_EXIT_CODE", "4"}}));
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return sink_->find("fluxlit", "Started Streamlit").size() >= 3; }));

  const auto starts = sink_->find("fluxlit", "Started Streamlit");
  EXPECT_GE(starts[1].time - starts[0].time, 500ms);
  EXPECT_GE(starts[2].time - starts[1].time, 1000ms);
  const auto exits = sink_->find("fluxlit", "exited unexpectedly with exit code 4");
  ASSERT_GE(exits.size(), 2u);
  EXPECT_THAT(exits[0].text, HasSubstr("restarting in 500 ms"));
  EXPECT_THAT(exits[1].text, HasSubstr("restarting in 1000 ms"));

  // A stop between two runs has no child to signal and completes at once.
  ASSERT_TRUE(run_until([&] { return supervisor.state() == child_state::restarting; }));
  EXPECT_TRUE(stop_and_wait(supervisor));
  EXPECT_EQ(supervisor.state(), child_state::stopped);
}

TEST_F(supervisor_test, OutputLinesReachLoggerWithLevels) {
  streamlit_supervisor supervisor(io_.get_executor(),
                                  make_options({{"FAKE_STREAMLIT_LOG_LINES", "1"}}));
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  ASSERT_TRUE(run_until([&] { return sink_->find("streamlit", "sample error").size() == 1; }));

  const auto warning = sink_->find("streamlit", "sample warning");
  ASSERT_EQ(warning.size(), 1u);
  EXPECT_EQ(warning[0].level, spdlog::level::warn);
  EXPECT_EQ(sink_->find("streamlit", "sample error")[0].level, spdlog::level::err);
  const auto plain = sink_->find("streamlit", "plain line without a level");
  ASSERT_EQ(plain.size(), 1u);
  EXPECT_EQ(plain[0].level, spdlog::level::info);

  // The last line has no newline, so it is logged only when the pipe closes.
  EXPECT_THAT(sink_->find("streamlit", "unterminated last line"), IsEmpty());
  EXPECT_TRUE(stop_and_wait(supervisor));
  EXPECT_EQ(sink_->find("streamlit", "unterminated last line").size(), 1u);

  // The stand-in prints one empty line, which is not logged.
  for (const captured_line& line : sink_->lines()) {
    if (line.source == "streamlit") {
      EXPECT_FALSE(line.text.empty());
    }
  }
}

TEST_F(supervisor_test, ExitReportIncludesLastOutputLines) {
  streamlit_supervisor supervisor(
      io_.get_executor(),
      make_options({{"FAKE_STREAMLIT_LOG_LINES", "1"}, {"FAKE_STREAMLIT_EXIT_CODE", "1"}}));
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.state() == child_state::restarting; }));

  const auto exits = sink_->find("fluxlit", "exited unexpectedly with exit code 1");
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_THAT(exits[0].text, HasSubstr("sample warning"));
  EXPECT_THAT(exits[0].text, HasSubstr("plain line without a level"));
  EXPECT_THAT(exits[0].text, HasSubstr("unterminated last line"));

  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, StartTimeoutKillsChildAndRestarts) {
  streamlit_options options = make_options({{"FAKE_STREAMLIT_NEVER_HEALTHY", "1"}});
  options.start_timeout = 400ms;
  streamlit_supervisor supervisor(io_.get_executor(), options);
  supervisor.start();
  const int first_pid = supervisor.pid();

  ASSERT_TRUE(run_until([&] { return supervisor.state() == child_state::restarting; }));
  EXPECT_FALSE(process_group_exists(first_pid));
  const auto errors = sink_->find("fluxlit", "did not answer 200");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].level, spdlog::level::err);
  // Under load the stand-in may not listen yet when the deadline passes, so the last result is
  // either "HTTP 503" or "no HTTP response".
  EXPECT_THAT(errors[0].text, HasSubstr("last result: "));
  EXPECT_EQ(sink_->find("fluxlit", "was killed after the start timeout").size(), 1u);

  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, StopUsesSigkillWhenSigtermIsIgnored) {
  streamlit_options options = make_options({{"FAKE_STREAMLIT_IGNORE_TERM", "1"}});
  options.stop_timeout = 300ms;
  streamlit_supervisor supervisor(io_.get_executor(), options);
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  const int group = supervisor.pid();

  const auto stop_begin = clock_type::now();
  bool done = false;
  supervisor.async_stop([&done] { done = true; });
  EXPECT_EQ(supervisor.state(), child_state::stopping);
  ASSERT_TRUE(run_until([&done] { return done; }));
  const auto stop_duration = clock_type::now() - stop_begin;

  EXPECT_GE(stop_duration, 300ms);
  EXPECT_LT(stop_duration, 300ms + 1000ms);
  EXPECT_EQ(supervisor.state(), child_state::stopped);
  EXPECT_FALSE(process_group_exists(group));
  EXPECT_EQ(sink_->find("fluxlit", "sending SIGKILL").size(), 1u);
  EXPECT_EQ(sink_->find("fluxlit", "stopped with signal 9 (SIGKILL)").size(), 1u);

  // No restart follows a stop, even after the first restart delay has passed.
  run_for(700ms);
  EXPECT_EQ(supervisor.state(), child_state::stopped);
  EXPECT_EQ(sink_->find("fluxlit", "Started Streamlit").size(), 1u);
}

TEST_F(supervisor_test, StopLeavesNoProcessInGroup) {
  // Orphans of the child are reparented to this process, so the test can reap the killed
  // grandchild. An unreaped zombie would keep the process group in existence.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  const auto grandchild_file = directory_ / "grandchild.pid";
  streamlit_supervisor supervisor(
      io_.get_executor(),
      make_options({{"FAKE_STREAMLIT_GRANDCHILD_PID", grandchild_file.string()}}));
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  const int group = supervisor.pid();
  ASSERT_TRUE(run_until([&] { return std::filesystem::exists(grandchild_file); }));
  pid_t grandchild = 0;
  std::ifstream(grandchild_file) >> grandchild;
  ASSERT_GT(grandchild, 0);

  // The leader dies of SIGTERM, the grandchild ignores it and only the SIGKILL to the group
  // after the leader's exit ends it.
  ASSERT_TRUE(stop_and_wait(supervisor));
  int status = 0;
  ASSERT_TRUE(run_until([&] { return ::waitpid(grandchild, &status, WNOHANG) == grandchild; }));
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_FALSE(process_group_exists(group));
  EXPECT_EQ(sink_->find("fluxlit", "stopped with signal 15 (SIGTERM)").size(), 1u);
}

TEST_F(supervisor_test, KillNowReapsAtOnceAndCompletesStop) {
  streamlit_options options = make_options({{"FAKE_STREAMLIT_IGNORE_TERM", "1"}});
  streamlit_supervisor supervisor(io_.get_executor(), options);
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  const int group = supervisor.pid();

  bool done = false;
  supervisor.async_stop([&done] { done = true; });
  supervisor.kill_now();

  EXPECT_EQ(supervisor.state(), child_state::stopped);
  EXPECT_EQ(supervisor.pid(), -1);
  EXPECT_FALSE(process_group_exists(group));
  EXPECT_FALSE(done);  // posted, not called inline
  EXPECT_TRUE(run_until([&done] { return done; }));
}

TEST_F(supervisor_test, DestructorKillsChild) {
  int group = -1;
  {
    streamlit_supervisor supervisor(io_.get_executor(), make_options({}));
    supervisor.start();
    ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
    group = supervisor.pid();
  }
  EXPECT_FALSE(process_group_exists(group));

  // Handlers still pending for the destroyed supervisor complete without effect.
  run_for(200ms);
}

TEST_F(supervisor_test, StopBeforeStartCallsDone) {
  streamlit_supervisor supervisor(io_.get_executor(), make_options({}));
  bool done = false;
  supervisor.async_stop([&done] { done = true; });
  EXPECT_FALSE(done);  // posted, not called inline
  EXPECT_TRUE(run_until([&done] { return done; }));
  EXPECT_EQ(supervisor.state(), child_state::stopped);
}

TEST_F(supervisor_test, StartThrowsWhenPythonIsMissing) {
  streamlit_options options = make_options({});
  options.python = (directory_ / "no-such-python").string();
  streamlit_supervisor supervisor(io_.get_executor(), options);

  EXPECT_THROW(supervisor.start(), std::system_error);
  EXPECT_EQ(supervisor.state(), child_state::stopped);
  EXPECT_EQ(supervisor.pid(), -1);
}

TEST_F(supervisor_test, RestartDelaysComeFromOptions) {
  streamlit_options options = make_options({{"FAKE_STREAMLIT_EXIT_CODE", "4"}});
  options.restart_initial_delay = 100ms;
  options.restart_max_delay = 150ms;
  streamlit_supervisor supervisor(io_.get_executor(), options);
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return sink_->find("fluxlit", "exited unexpectedly").size() >= 3; }));

  const auto exits = sink_->find("fluxlit", "exited unexpectedly");
  EXPECT_THAT(exits[0].text, HasSubstr("restarting in 100 ms"));
  EXPECT_THAT(exits[1].text, HasSubstr("restarting in 150 ms"));
  EXPECT_THAT(exits[2].text, HasSubstr("restarting in 150 ms"));
  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, CrashLoopLogsOneErrorAndRecovers) {
  const auto healthy_file = directory_ / "healthy";
  streamlit_options options = make_options({{"FAKE_STREAMLIT_EXIT_CODE", "4"},
                                            {"FAKE_STREAMLIT_LOG_LINES", "1"},
                                            {"FAKE_STREAMLIT_HEALTHY_FILE", healthy_file.string()}});
  options.restart_initial_delay = 50ms;
  options.restart_max_delay = 300ms;
  options.crash_loop_count = 3;
  options.crash_loop_window = 10s;
  options.stable_ready_duration = 300ms;
  streamlit_supervisor supervisor(io_.get_executor(), options);
  supervisor.start();

  // The third crash starts the crash loop, with one error that carries the child's output.
  ASSERT_TRUE(run_until([&] { return supervisor.state() == child_state::crash_loop; }));
  EXPECT_EQ(to_string(supervisor.state()), std::string("crash_loop"));
  EXPECT_FALSE(supervisor.ready());
  const auto warnings = sink_->find("fluxlit", spdlog::level::warn, "exited unexpectedly");
  EXPECT_EQ(warnings.size(), 2u);
  auto errors = sink_->find("fluxlit", spdlog::level::err, "crash loop");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].text, HasSubstr("exit code 4"));
  EXPECT_THAT(errors[0].text, HasSubstr("After 3 crashes within 10000 ms"));
  EXPECT_THAT(errors[0].text, HasSubstr("every 300 ms"));
  EXPECT_THAT(errors[0].text, HasSubstr("sample warning"));

  // Later crashes restart at the maximum delay, log at info and report crash_loop throughout.
  const std::size_t starts_before = sink_->find("fluxlit", "Started Streamlit").size();
  ASSERT_TRUE(run_until(
      [&] { return sink_->find("fluxlit", "Started Streamlit").size() >= starts_before + 2; }));
  const auto starts = sink_->find("fluxlit", "Started Streamlit");
  EXPECT_GE(starts.back().time - starts[starts.size() - 2].time, 300ms);
  EXPECT_EQ(supervisor.state(), child_state::crash_loop);
  EXPECT_EQ(sink_->find("fluxlit", spdlog::level::err, "crash loop").size(), 1u);
  EXPECT_FALSE(sink_->find("fluxlit", spdlog::level::info, "in a crash loop").empty());

  // A child that passes its health check serves at once and ends the crash loop once it has
  // stayed ready for stable_ready_duration.
  std::ofstream(healthy_file).close();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  ASSERT_TRUE(run_until([&] { return !sink_->find("fluxlit", "crash loop is over").empty(); }));
  EXPECT_EQ(supervisor.state(), child_state::ready);

  // The next crash is a first crash again.
  ASSERT_EQ(::kill(supervisor.pid(), SIGKILL), 0);
  ASSERT_TRUE(run_until([&] { return supervisor.state() == child_state::restarting; }));
  const auto last_exit = sink_->find("fluxlit", "exited unexpectedly with signal 9");
  ASSERT_EQ(last_exit.size(), 1u);
  EXPECT_EQ(last_exit[0].level, spdlog::level::warn);
  EXPECT_THAT(last_exit[0].text, HasSubstr("restarting in 50 ms"));

  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, FailedSpawnsEnterCrashLoop) {
  const auto work = directory_ / "work";
  std::filesystem::create_directory(work);
  streamlit_options options = make_options({});
  options.working_directory = work.string();
  options.restart_initial_delay = 20ms;
  options.restart_max_delay = 100ms;
  options.crash_loop_count = 3;
  streamlit_supervisor supervisor(io_.get_executor(), options);
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));

  // Without its working directory, every restart fails to spawn: the crash and two failed
  // spawns make three crashes.
  std::filesystem::remove(work);
  ASSERT_EQ(::kill(supervisor.pid(), SIGKILL), 0);
  ASSERT_TRUE(run_until([&] { return supervisor.state() == child_state::crash_loop; }));
  const auto failures = sink_->find("fluxlit", spdlog::level::err, "Failed to restart Streamlit");
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_THAT(failures[1].text, HasSubstr("After 3 crashes"));
  ASSERT_TRUE(run_until([&] {
    return !sink_->find("fluxlit", spdlog::level::info, "Failed to restart Streamlit").empty();
  }));
  EXPECT_EQ(sink_->find("fluxlit", spdlog::level::err, "Failed to restart Streamlit").size(), 2u);
  EXPECT_EQ(supervisor.state(), child_state::crash_loop);

  EXPECT_TRUE(stop_and_wait(supervisor));
}

// Accepts connections on 127.0.0.1:`port` and responds to each request with 200, like the health
// endpoint of a process that is not Streamlit.
class foreign_health_server {
 public:
  foreign_health_server(boost::asio::io_context& io, std::uint16_t port)
      : acceptor_(io, {boost::asio::ip::address_v4::loopback(), port}) {
    accept();
  }

 private:
  struct session {
    explicit session(boost::asio::ip::tcp::socket s) : socket(std::move(s)) {}
    boost::asio::ip::tcp::socket socket;
    std::string request;
  };

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code error,
                                  boost::asio::ip::tcp::socket socket) {
      if (error) {
        return;
      }
      auto client = std::make_shared<session>(std::move(socket));
      boost::asio::async_read_until(
          client->socket, boost::asio::dynamic_buffer(client->request), "\r\n\r\n",
          [client](boost::system::error_code read_error, std::size_t) {
            if (read_error) {
              return;
            }
            static const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            boost::asio::async_write(client->socket, boost::asio::buffer(response),
                                     [client](boost::system::error_code, std::size_t) {});
          });
      accept();
    });
  }

  boost::asio::ip::tcp::acceptor acceptor_;
};

TEST_F(supervisor_test, ForeignListenerCausesRestartOnNewPort) {
  // The first child never listens, and this process takes its port instead.
  streamlit_options options =
      make_options({{"FAKE_STREAMLIT_NO_LISTEN_ONCE", (directory_ / "no-listen").string()}});
  options.restart_initial_delay = 50ms;
  streamlit_supervisor supervisor(io_.get_executor(), options);
  supervisor.start();
  const std::uint16_t first_port = supervisor.port();
  const int first_pid = supervisor.pid();
  // Wait until the first child has claimed its run of the fixture; on a loaded machine the
  // impostor could otherwise be noticed before the child created the file.
  ASSERT_TRUE(run_until([&] { return std::filesystem::exists(directory_ / "no-listen"); }));
  foreign_health_server impostor(io_, first_port);

  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  EXPECT_NE(supervisor.port(), first_port);
  EXPECT_NE(supervisor.pid(), first_pid);
  EXPECT_FALSE(process_group_exists(first_pid));
  const auto errors = sink_->find("fluxlit", spdlog::level::err, "belongs to a process outside");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].text, HasSubstr("127.0.0.1:" + std::to_string(first_port)));
  EXPECT_EQ(sink_->find("fluxlit", "because another process listens on its port").size(), 1u);

  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, ConfigConflictsAreLoggedOnce) {
  const auto record = directory_ / "record.json";
  std::filesystem::create_directories(directory_ / ".streamlit");
  std::ofstream(directory_ / ".streamlit" / "config.toml")
      << "[server]\nport = 8501\nbaseUrlPath = \"ui\"\n";
  std::filesystem::create_directories(directory_ / "home" / ".streamlit");
  std::ofstream(directory_ / "home" / ".streamlit" / "config.toml")
      << "[server]\naddress = \"0.0.0.0\"\n";
  streamlit_supervisor supervisor(
      io_.get_executor(), make_options({{"FAKE_STREAMLIT_RECORD", record.string()},
                                        {"STREAMLIT_SERVER_HEADLESS", "false"}}));

  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  const auto conflicts = sink_->find("fluxlit", spdlog::level::warn, "Streamlit setting");
  ASSERT_EQ(conflicts.size(), 4u);
  const std::string home_file = (directory_ / "home" / ".streamlit" / "config.toml").string();
  const std::string project_file = (directory_ / ".streamlit" / "config.toml").string();
  EXPECT_THAT(conflicts[0].text, HasSubstr("server.address is set to \"0.0.0.0\" in " + home_file));
  EXPECT_THAT(conflicts[1].text, HasSubstr("server.port is set to \"8501\" in " + project_file));
  EXPECT_THAT(conflicts[2].text, HasSubstr("server.baseUrlPath is set to \"ui\""));
  EXPECT_THAT(conflicts[3].text, HasSubstr("in STREAMLIT_SERVER_HEADLESS"));

  // The child gets an empty base path, which overrides "ui", so its health endpoint is at the
  // root.
  const auto argv = read_json(record)["argv"].get<std::vector<std::string>>();
  ASSERT_GE(argv.size(), 2u);
  EXPECT_EQ(argv[argv.size() - 2], "--server.baseUrlPath");
  EXPECT_EQ(argv.back(), "");

  // A restart does not repeat the warnings.
  ASSERT_EQ(::kill(supervisor.pid(), SIGKILL), 0);
  ASSERT_TRUE(run_until([&] { return supervisor.state() == child_state::restarting; }));
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  EXPECT_EQ(sink_->find("fluxlit", spdlog::level::warn, "Streamlit setting").size(), 4u);

  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, RestartReplacesChildWithoutBackoff) {
  streamlit_options options = make_options({});
  // A backoff of 4 s would outlast the wait below, so readiness shows there was none.
  options.restart_initial_delay = 4s;
  streamlit_supervisor supervisor(io_.get_executor(), options);
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  const int first_pid = supervisor.pid();

  supervisor.restart();
  EXPECT_EQ(supervisor.state(), child_state::stopping);
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }, 3s));
  EXPECT_NE(supervisor.pid(), first_pid);
  EXPECT_FALSE(process_group_exists(first_pid));
  EXPECT_EQ(sink_->find("fluxlit", "Restarting Streamlit (pid " + std::to_string(first_pid)).size(),
            1u);
  EXPECT_EQ(sink_->find("fluxlit", "starting it again").size(), 1u);
  EXPECT_THAT(sink_->find("fluxlit", "exited unexpectedly"), IsEmpty());

  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, RestartBetweenRunsSkipsBackoff) {
  streamlit_options options = make_options({{"FAKE_STREAMLIT_EXIT_CODE", "4"}});
  options.restart_initial_delay = 4s;
  streamlit_supervisor supervisor(io_.get_executor(), options);
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.state() == child_state::restarting; }));

  supervisor.restart();
  EXPECT_EQ(sink_->find("fluxlit", "Started Streamlit").size(), 2u);
  EXPECT_EQ(supervisor.state(), child_state::starting);
  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, RestartWhenStoppedStarts) {
  streamlit_supervisor supervisor(io_.get_executor(), make_options({}));
  supervisor.restart();
  EXPECT_EQ(supervisor.state(), child_state::starting);
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, StopDuringRestartWins) {
  streamlit_supervisor supervisor(io_.get_executor(), make_options({}));
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));

  supervisor.restart();
  EXPECT_TRUE(stop_and_wait(supervisor));
  run_for(300ms);
  EXPECT_EQ(supervisor.state(), child_state::stopped);
  EXPECT_EQ(sink_->find("fluxlit", "Started Streamlit").size(), 1u);
}

TEST_F(supervisor_test, TracebackLinesAreLoggedAsErrors) {
  streamlit_supervisor supervisor(io_.get_executor(),
                                  make_options({{"FAKE_STREAMLIT_LOG_LINES", "1"}}));
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return !sink_->find("streamlit", "after the traceback").empty(); }));

  const auto start = sink_->find("streamlit", "Traceback (most recent call last):");
  ASSERT_EQ(start.size(), 1u);
  EXPECT_EQ(start[0].level, spdlog::level::err);
  const auto frame = sink_->find("streamlit", "in fail_for_sample");
  ASSERT_EQ(frame.size(), 1u);
  EXPECT_EQ(frame[0].level, spdlog::level::err);
  const auto exception = sink_->find("streamlit", "ValueError: sample failure");
  ASSERT_EQ(exception.size(), 1u);
  EXPECT_EQ(exception[0].level, spdlog::level::err);
  EXPECT_EQ(sink_->find("streamlit", "after the traceback")[0].level, spdlog::level::info);

  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, HealthyChildStaysReadyWhilePolled) {
  streamlit_options options = make_options({});
  options.health_interval = 50ms;
  // Generous, so that a loaded machine cannot fail a check of the healthy fixture.
  options.health_timeout = 2s;
  options.health_failure_threshold = 1;
  streamlit_supervisor supervisor(io_.get_executor(), options);
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  const int pid = supervisor.pid();

  run_for(600ms);
  EXPECT_TRUE(supervisor.ready());
  EXPECT_EQ(supervisor.pid(), pid);
  EXPECT_THAT(sink_->find("fluxlit", "health checks in a row"), IsEmpty());
  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, StoppedChildIsMarkedNotReadyAndRestarted) {
  streamlit_options options = make_options({});
  options.health_interval = 100ms;
  options.health_timeout = 200ms;
  options.health_failure_threshold = 2;
  options.restart_initial_delay = 50ms;
  streamlit_supervisor supervisor(io_.get_executor(), options);
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  const int hung_pid = supervisor.pid();

  // A stopped process keeps its listening socket, so connects succeed and requests hang.
  ASSERT_EQ(::kill(hung_pid, SIGSTOP), 0);
  const auto stopped_at = clock_type::now();
  ASSERT_TRUE(run_until([&] { return !supervisor.ready(); }));
  // Two checks of at most 100 ms wait and 200 ms timeout each, with margin for a loaded machine.
  EXPECT_LT(clock_type::now() - stopped_at, 2s);
  const auto errors = sink_->find("fluxlit", spdlog::level::err, "failed 2 health checks in a row");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].text, HasSubstr("last result: no HTTP response"));
  EXPECT_THAT(errors[0].text, HasSubstr("timeout of 200 ms per check"));
  EXPECT_THAT(errors[0].text, HasSubstr("marking it not ready"));

  // SIGCONT lets the stopped child act on SIGTERM, so no SIGKILL is needed.
  ASSERT_TRUE(run_until([&] { return supervisor.ready() && supervisor.pid() != hung_pid; }));
  const auto exits = sink_->find("fluxlit", "was stopped after failing its health checks");
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].level, spdlog::level::warn);
  EXPECT_THAT(exits[0].text, HasSubstr("restarting in 50 ms"));
  EXPECT_THAT(sink_->find("fluxlit", "sending SIGKILL"), IsEmpty());
  EXPECT_FALSE(process_group_exists(hung_pid));
  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, ChildIgnoringTermIsKilledAfterHealthFailures) {
  streamlit_options options = make_options({{"FAKE_STREAMLIT_IGNORE_TERM", "1"}});
  options.health_interval = 50ms;
  options.health_timeout = 100ms;
  options.health_failure_threshold = 1;
  options.stop_timeout = 300ms;
  options.restart_initial_delay = 50ms;
  streamlit_supervisor supervisor(io_.get_executor(), options);
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  const int hung_pid = supervisor.pid();

  ASSERT_EQ(::kill(hung_pid, SIGSTOP), 0);
  ASSERT_TRUE(run_until([&] { return supervisor.ready() && supervisor.pid() != hung_pid; }));
  EXPECT_THAT(sink_->find("fluxlit", "failed 1 health checks in a row"), SizeIs(1));
  EXPECT_THAT(sink_->find("fluxlit", "sending SIGKILL"), SizeIs(1));
  EXPECT_THAT(sink_->find("fluxlit", "with signal 9"), SizeIs(1));
  EXPECT_FALSE(process_group_exists(hung_pid));
  EXPECT_TRUE(stop_and_wait(supervisor));
}

TEST_F(supervisor_test, RestartWaitsForUnresponsiveChildExit) {
  streamlit_options options = make_options({{"FAKE_STREAMLIT_IGNORE_TERM", "1"}});
  options.health_interval = 50ms;
  options.health_timeout = 100ms;
  options.health_failure_threshold = 1;
  options.stop_timeout = 500ms;
  streamlit_supervisor supervisor(io_.get_executor(), options);
  supervisor.start();
  ASSERT_TRUE(run_until([&] { return supervisor.ready(); }));
  const int hung_pid = supervisor.pid();

  ASSERT_EQ(::kill(hung_pid, SIGSTOP), 0);
  ASSERT_TRUE(run_until([&] { return !supervisor.ready(); }));
  // The child ignores SIGTERM, so it is still running until SIGKILL after stop_timeout.
  ASSERT_EQ(supervisor.pid(), hung_pid);
  supervisor.restart();
  run_for(100ms);
  EXPECT_EQ(sink_->find("fluxlit", "Started Streamlit").size(), 1u);

  ASSERT_TRUE(run_until([&] { return supervisor.ready() && supervisor.pid() != hung_pid; }));
  EXPECT_EQ(sink_->find("fluxlit", "Started Streamlit").size(), 2u);
  EXPECT_THAT(sink_->find("fluxlit", "stopped with signal 9 (SIGKILL); starting it again"),
              SizeIs(1));
  EXPECT_FALSE(process_group_exists(hung_pid));
  EXPECT_TRUE(stop_and_wait(supervisor));
}

}  // namespace
}  // namespace fluxlit::supervisor
