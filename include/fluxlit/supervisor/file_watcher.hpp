// Watches directory trees for changed files, for `fluxlit dev --reload`.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fluxlit::supervisor {

struct file_watcher_options {
  // Watched with all their subdirectories, except __pycache__, node_modules, hidden directories
  // (.git, .venv) and those that match `excludes`.
  std::vector<std::string> directories;
  // Glob patterns (fnmatch(3) without flags, so `*` also matches `/`), each tried on the file
  // name and on the path relative to its watched directory. A change counts when the file
  // matches an include and no exclude.
  std::vector<std::string> includes{"*.py"};
  std::vector<std::string> excludes;
  // The handler runs once no change has come for this long.
  std::chrono::milliseconds debounce{200};
};

// Returns true when a change to the file at `relative_path` (relative to its watched directory)
// counts under `includes` and `excludes`, as file_watcher_options describes.
bool is_watched_file(std::string_view relative_path, std::span<const std::string> includes,
                     std::span<const std::string> excludes);

// Watches with inotify and reports changed files in batches. Creating, writing, changing the
// mode of, deleting or renaming a matching file is a change; a rename reports both names.
// Subdirectories created later are watched too, and matching files already in them count as
// changed.
//
// All members are called on the executor's thread, which must run handlers one at a time, and
// the handler runs there too, never inline from start(). The handler receives the absolute
// paths of the files changed since the last call, sorted and without duplicates. When the
// kernel's event queue overflows, events are lost, so the handler receives the watched
// directories instead. During a steady stream of changes the handler still runs at least every
// ten debounce periods.
class file_watcher {
 public:
  using change_handler = std::function<void(std::vector<std::string> changed)>;

  file_watcher(boost::asio::any_io_executor executor, file_watcher_options options,
               change_handler on_change);

  // Stops watching; a pending batch is dropped.
  ~file_watcher();

  file_watcher(const file_watcher&) = delete;
  file_watcher& operator=(const file_watcher&) = delete;

  // Adds the watches and starts reading events. Throws std::system_error when inotify is
  // unavailable or a directory does not exist. A subdirectory that cannot be watched (no
  // permission, the inotify watch limit reached) is logged and skipped.
  void start();

  // Removes every watch and drops a pending batch; the handler is not called again.
  void stop();

  // The number of directories watched now.
  std::size_t watch_count() const;

 private:
  class impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace fluxlit::supervisor
