// Tests for the reload file watcher against real directories under /tmp and real inotify events.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "fluxlit/supervisor/file_watcher.hpp"

namespace fluxlit::supervisor {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using clock_type = std::chrono::steady_clock;

// Short, so the suite stays fast; the burst test uses the default of 200 ms.
constexpr std::chrono::milliseconds test_debounce = 50ms;

// Long enough for inotify events and the debounce timer even on a loaded machine.
constexpr std::chrono::milliseconds wait_deadline = 5s;

// How long a test waits to show that no (further) batch arrives.
constexpr std::chrono::milliseconds quiet_period = 400ms;

TEST(is_watched_file, MatchesNameOrRelativePath) {
  const std::vector<std::string> includes{"*.py", "templates/*", "settings.toml"};
  const std::vector<std::string> excludes{"test_*.py", "build/*"};

  EXPECT_TRUE(is_watched_file("app.py", includes, excludes));
  EXPECT_TRUE(is_watched_file("pkg/sub/module.py", includes, excludes));
  EXPECT_TRUE(is_watched_file("templates/page.html", includes, excludes));
  EXPECT_TRUE(is_watched_file("config/settings.toml", includes, excludes));
  EXPECT_FALSE(is_watched_file("README.md", includes, excludes));
  EXPECT_FALSE(is_watched_file("pkg/test_module.py", includes, excludes));
  EXPECT_FALSE(is_watched_file("build/generated.py", includes, excludes));
}

TEST(is_watched_file, StarCrossesSlashesAndDots) {
  const std::vector<std::string> includes{"*.py"};
  EXPECT_TRUE(is_watched_file("a/b/c.py", includes, {}));
  EXPECT_TRUE(is_watched_file(".hidden.py", includes, {}));
  EXPECT_FALSE(is_watched_file("module.pyc", includes, {}));
  EXPECT_FALSE(is_watched_file("module.py~", includes, {}));
}

TEST(is_watched_file, EmptyIncludesMatchNothing) {
  EXPECT_FALSE(is_watched_file("app.py", {}, {}));
}

class file_watcher_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "fluxlit-watcher-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
  }

  void TearDown() override {
    watcher_.reset();
    std::error_code ignored;
    fs::remove_all(directory_, ignored);
  }

  file_watcher_options make_options() {
    file_watcher_options options;
    options.directories = {directory_.string()};
    options.debounce = test_debounce;
    return options;
  }

  void start(file_watcher_options options) {
    watcher_ = std::make_unique<file_watcher>(
        io_.get_executor(), std::move(options), [this](std::vector<std::string> changed) {
          batches_.push_back(std::move(changed));
          batch_times_.push_back(clock_type::now());
        });
    watcher_->start();
  }

  std::string path(const std::string& relative) const { return (directory_ / relative).string(); }

  void write(const std::string& relative, const std::string& text = "x = 1\n") {
    std::ofstream(directory_ / relative) << text;
  }

  // Runs the io_context until `condition` is true or `deadline` passes. Returns the condition.
  bool run_until(const std::function<bool()>& condition,
                 std::chrono::milliseconds deadline = wait_deadline) {
    const auto end = clock_type::now() + deadline;
    while (!condition()) {
      if (clock_type::now() >= end) {
        return false;
      }
      io_.restart();
      if (io_.run_for(5ms) == 0) {
        std::this_thread::sleep_for(2ms);
      }
    }
    return true;
  }

  void run_for(std::chrono::milliseconds duration) {
    run_until([] { return false; }, duration);
  }

  // Waits for the first batch and then for quiet_period, so a second batch would show.
  bool wait_for_one_batch() {
    const bool arrived = run_until([this] { return !batches_.empty(); });
    run_for(quiet_period);
    return arrived;
  }

  fs::path directory_;
  boost::asio::io_context io_;
  std::unique_ptr<file_watcher> watcher_;
  std::vector<std::vector<std::string>> batches_;
  std::vector<clock_type::time_point> batch_times_;
};

TEST_F(file_watcher_test, CreateFiresOnceAfterDebounce) {
  start(make_options());
  const auto written = clock_type::now();
  write("app.py");

  ASSERT_TRUE(wait_for_one_batch());
  ASSERT_EQ(batches_.size(), 1u);
  EXPECT_THAT(batches_[0], ElementsAre(path("app.py")));
  EXPECT_GE(batch_times_[0] - written, test_debounce);
}

TEST_F(file_watcher_test, ModifyFiresOnce) {
  write("app.py");
  start(make_options());
  write("app.py", "x = 2\n");

  ASSERT_TRUE(wait_for_one_batch());
  ASSERT_EQ(batches_.size(), 1u);
  EXPECT_THAT(batches_[0], ElementsAre(path("app.py")));
}

TEST_F(file_watcher_test, DeleteFiresOnce) {
  write("app.py");
  start(make_options());
  fs::remove(directory_ / "app.py");

  ASSERT_TRUE(wait_for_one_batch());
  ASSERT_EQ(batches_.size(), 1u);
  EXPECT_THAT(batches_[0], ElementsAre(path("app.py")));
}

TEST_F(file_watcher_test, RenameReportsBothNames) {
  write("old.py");
  start(make_options());
  fs::rename(directory_ / "old.py", directory_ / "new.py");

  ASSERT_TRUE(wait_for_one_batch());
  ASSERT_EQ(batches_.size(), 1u);
  EXPECT_THAT(batches_[0], ElementsAre(path("new.py"), path("old.py")));
}

TEST_F(file_watcher_test, EditorSaveThroughRenameFires) {
  start(make_options());
  // Editors write a temporary file and rename it over the original.
  write("app.py.tmp-save");
  fs::rename(directory_ / "app.py.tmp-save", directory_ / "app.py");

  ASSERT_TRUE(wait_for_one_batch());
  ASSERT_EQ(batches_.size(), 1u);
  EXPECT_THAT(batches_[0], ElementsAre(path("app.py")));
}

TEST_F(file_watcher_test, ExcludedAndUnmatchedFilesDoNotFire) {
  file_watcher_options options = make_options();
  options.excludes = {"test_*.py"};
  start(options);
  write("test_app.py");
  write("notes.txt");

  run_for(quiet_period);
  EXPECT_THAT(batches_, IsEmpty());
}

TEST_F(file_watcher_test, SkippedDirectoriesDoNotFire) {
  for (const char* name : {"__pycache__", ".git", "node_modules", ".venv", "generated"}) {
    fs::create_directory(directory_ / name);
  }
  file_watcher_options options = make_options();
  options.excludes = {"generated"};
  start(options);
  EXPECT_EQ(watcher_->watch_count(), 1u);

  for (const char* name : {"__pycache__", ".git", "node_modules", ".venv", "generated"}) {
    write(std::string(name) + "/module.py");
  }
  run_for(quiet_period);
  EXPECT_THAT(batches_, IsEmpty());
}

TEST_F(file_watcher_test, NewSubdirectoryIsWatched) {
  start(make_options());
  fs::create_directories(directory_ / "pkg" / "sub");
  // Created at once, possibly before the watcher saw the directories: found by their listing.
  write("pkg/sub/early.py");
  ASSERT_TRUE(wait_for_one_batch());
  ASSERT_EQ(batches_.size(), 1u);
  EXPECT_THAT(batches_[0], ElementsAre(path("pkg/sub/early.py")));
  EXPECT_EQ(watcher_->watch_count(), 3u);

  // Created after the directories are watched: reported through their own watches.
  write("pkg/sub/late.py");
  ASSERT_TRUE(run_until([this] { return batches_.size() == 2; }));
  EXPECT_THAT(batches_[1], ElementsAre(path("pkg/sub/late.py")));
}

TEST_F(file_watcher_test, MovedDirectoryIsWatchedUnderNewName) {
  fs::create_directory(directory_ / "before");
  write("before/module.py");
  start(make_options());
  fs::rename(directory_ / "before", directory_ / "after");

  ASSERT_TRUE(wait_for_one_batch());
  ASSERT_EQ(batches_.size(), 1u);
  EXPECT_THAT(batches_[0], ElementsAre(path("after/module.py")));
  EXPECT_EQ(watcher_->watch_count(), 2u);

  write("after/module.py", "x = 3\n");
  ASSERT_TRUE(run_until([this] { return batches_.size() == 2; }));
  EXPECT_THAT(batches_[1], ElementsAre(path("after/module.py")));
}

TEST_F(file_watcher_test, DeletedSubdirectoryDropsItsWatch) {
  fs::create_directory(directory_ / "pkg");
  start(make_options());
  EXPECT_EQ(watcher_->watch_count(), 2u);

  fs::remove(directory_ / "pkg");
  ASSERT_TRUE(run_until([this] { return watcher_->watch_count() == 1u; }));
  EXPECT_THAT(batches_, IsEmpty());
}

TEST_F(file_watcher_test, BurstOfFiftyWritesFiresOnce) {
  file_watcher_options options = make_options();
  options.debounce = 200ms;
  start(options);

  // Writes 2 ms apart, with events processed in between, so the debounce timer is re-armed
  // by each of them rather than seeing them all at once.
  for (int i = 0; i < 50; ++i) {
    write("app.py", "x = " + std::to_string(i) + "\n");
    write("helper_" + std::to_string(i % 5) + ".py");
    run_for(2ms);
  }

  ASSERT_TRUE(wait_for_one_batch());
  ASSERT_EQ(batches_.size(), 1u);
  EXPECT_EQ(batches_[0].size(), 6u);
  EXPECT_EQ(batches_[0].front(), path("app.py"));
}

TEST_F(file_watcher_test, SteadyChangesStillDeliverBatches) {
  start(make_options());
  // A change every 20 ms never leaves the 50 ms debounce quiet, but ten debounce periods
  // bound the wait.
  const auto end = clock_type::now() + 1500ms;
  int i = 0;
  while (clock_type::now() < end) {
    write("app.py", "x = " + std::to_string(i++) + "\n");
    run_for(20ms);
  }
  EXPECT_GE(batches_.size(), 2u);
}

TEST_F(file_watcher_test, WatchesSeveralDirectories) {
  const fs::path second = directory_ / "second";
  const fs::path first = directory_ / "first";
  fs::create_directory(first);
  fs::create_directory(second);
  file_watcher_options options = make_options();
  options.directories = {first.string(), second.string()};
  start(options);

  write("first/a.py");
  write("second/b.py");
  write("c.py");  // in neither watched directory

  ASSERT_TRUE(wait_for_one_batch());
  ASSERT_EQ(batches_.size(), 1u);
  EXPECT_THAT(batches_[0], ElementsAre(path("first/a.py"), path("second/b.py")));
}

TEST_F(file_watcher_test, HiddenWatchedDirectoryIsWatched) {
  const fs::path hidden = directory_ / ".config";
  fs::create_directory(hidden);
  file_watcher_options options = make_options();
  options.directories = {hidden.string()};
  start(options);

  write(".config/app.py");
  ASSERT_TRUE(wait_for_one_batch());
  EXPECT_EQ(batches_.size(), 1u);
}

TEST_F(file_watcher_test, StopDropsPendingBatch) {
  start(make_options());
  write("app.py");
  run_for(10ms);
  watcher_->stop();

  run_for(quiet_period);
  EXPECT_THAT(batches_, IsEmpty());
  EXPECT_EQ(watcher_->watch_count(), 0u);
}

TEST_F(file_watcher_test, StartThrowsForMissingDirectory) {
  file_watcher_options options = make_options();
  options.directories = {(directory_ / "missing").string()};
  watcher_ = std::make_unique<file_watcher>(io_.get_executor(), options,
                                            [](std::vector<std::string>) {});
  EXPECT_THROW(watcher_->start(), std::system_error);
}

TEST_F(file_watcher_test, DestroyedWatcherLeavesNoHandlerBehind) {
  start(make_options());
  write("app.py");
  run_for(10ms);
  watcher_.reset();

  // Pending handlers hold the watcher's state and complete without calling the handler.
  run_for(quiet_period);
  EXPECT_THAT(batches_, IsEmpty());
}

}  // namespace
}  // namespace fluxlit::supervisor
