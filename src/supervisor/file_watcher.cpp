#include "fluxlit/supervisor/file_watcher.hpp"

#include <fnmatch.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

#include "fluxlit/observability/log.hpp"

namespace fluxlit::supervisor {

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using boost::system::error_code;

// Events that change a file's contents or presence in a watched directory, and the removal of
// the directory itself. IN_DONT_FOLLOW keeps a symbolic link from adding a directory outside
// the tree (or a loop), and IN_EXCL_UNLINK ignores files that were deleted but are still open.
constexpr std::uint32_t watch_mask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE |
                                     IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF |
                                     IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK;

// One read takes many events at once. An event takes at most sizeof(inotify_event) + NAME_MAX + 1
// bytes, so the buffer fits at least 16 of the longest.
constexpr std::size_t event_buffer_bytes = 64 * 1024;

// A steady stream of changes (a build writing files for minutes) must not hold back the batch
// for ever, so a batch is delivered at most this many debounce periods after its first change.
constexpr int max_debounce_periods = 10;

// Directories whose contents are generated or installed, never edited by hand.
constexpr std::array<std::string_view, 2> skipped_directory_names = {"__pycache__",
                                                                     "node_modules"};

bool matches_any(std::span<const std::string> patterns, const std::string& name,
                 const std::string& relative_path) {
  for (const std::string& pattern : patterns) {
    if (::fnmatch(pattern.c_str(), name.c_str(), 0) == 0 ||
        ::fnmatch(pattern.c_str(), relative_path.c_str(), 0) == 0) {
      return true;
    }
  }
  return false;
}

std::string file_name(std::string_view path) {
  const std::size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::shared_ptr<spdlog::logger> watcher_log() {
  return observability::logger("fluxlit");
}

}  // namespace

bool is_watched_file(std::string_view relative_path, std::span<const std::string> includes,
                     std::span<const std::string> excludes) {
  const std::string path(relative_path);
  const std::string name = file_name(relative_path);
  return matches_any(includes, name, path) && !matches_any(excludes, name, path);
}

// The state behind file_watcher. Pending handlers hold a shared_ptr to it, so it outlives the
// public object until they have run.
class file_watcher::impl : public std::enable_shared_from_this<file_watcher::impl> {
 public:
  impl(asio::any_io_executor executor, file_watcher_options options, change_handler on_change)
      : options_(std::move(options)),
        on_change_(std::move(on_change)),
        descriptor_(executor),
        debounce_timer_(executor) {}

  void start();
  void stop();
  std::size_t watch_count() const { return watches_.size(); }

 private:
  struct watch {
    std::size_t root = 0;  // index into roots_
    std::string path;      // absolute
  };

  bool is_skipped_directory(std::size_t root, const std::string& path) const;
  std::string relative_to_root(std::size_t root, const std::string& path) const;
  void add_tree(std::size_t root, const std::string& directory, bool report_files);
  void add_watch(std::size_t root, const std::string& directory);
  void remove_watches_below(const std::string& directory);
  void read_events();
  void on_readable(const error_code& error);
  void handle_event(const inotify_event& event, std::string_view name);
  void note_change(std::size_t root, const std::string& path);
  void add_pending(const std::string& path);
  void on_debounce_timer(const error_code& error);

  file_watcher_options options_;
  change_handler on_change_;
  std::vector<std::string> roots_;  // canonical absolute paths of options_.directories
  std::map<int, watch> watches_;    // by watch descriptor
  std::set<std::string> pending_;
  std::optional<std::chrono::steady_clock::time_point> batch_started_;
  bool watch_limit_logged_ = false;
  bool stopped_ = false;
  asio::posix::stream_descriptor descriptor_;
  asio::steady_timer debounce_timer_;
  std::vector<char> buffer_ = std::vector<char>(event_buffer_bytes);
};

void file_watcher::impl::start() {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    throw std::system_error(errno, std::system_category(), "cannot start the file watcher");
  }
  error_code assign_error;
  descriptor_.assign(fd, assign_error);
  if (assign_error) {
    ::close(fd);
    throw std::system_error(assign_error.value(), std::system_category(),
                            "cannot start the file watcher");
  }

  for (const std::string& directory : options_.directories) {
    std::error_code error;
    const fs::path canonical = fs::canonical(directory, error);
    if (error || !fs::is_directory(canonical, error)) {
      const int code = error ? error.value() : ENOTDIR;
      throw std::system_error(code, std::system_category(),
                              "cannot watch the reload directory \"" + directory + "\"");
    }
    roots_.push_back(canonical.string());
  }
  for (std::size_t root = 0; root < roots_.size(); ++root) {
    add_tree(root, roots_[root], false);
  }
  std::string listed;
  for (const std::string& root : roots_) {
    listed += listed.empty() ? root : ", " + root;
  }
  const auto count = watches_.size();
  watcher_log()->debug("inotify watches {} {} below {}", count,
                       count == 1 ? "directory" : "directories", listed);
  read_events();
}

void file_watcher::impl::stop() {
  stopped_ = true;
  pending_.clear();
  debounce_timer_.cancel();
  // Closing the inotify descriptor removes every watch with it.
  error_code ignored;
  descriptor_.close(ignored);
  watches_.clear();
}

bool file_watcher::impl::is_skipped_directory(std::size_t root, const std::string& path) const {
  if (path == roots_[root]) {
    return false;  // a watched directory is watched even when it is hidden or excluded
  }
  const std::string name = file_name(path);
  if (name.starts_with('.') || std::find(skipped_directory_names.begin(),
                                         skipped_directory_names.end(),
                                         name) != skipped_directory_names.end()) {
    return true;
  }
  return matches_any(options_.excludes, name, relative_to_root(root, path));
}

std::string file_watcher::impl::relative_to_root(std::size_t root, const std::string& path) const {
  const std::string& base = roots_[root];
  if (path.size() > base.size() && path.starts_with(base) && path[base.size()] == '/') {
    return path.substr(base.size() + 1);
  }
  return file_name(path);
}

void file_watcher::impl::add_tree(std::size_t root, const std::string& directory,
                                  bool report_files) {
  // Recursion by hand instead of recursive_directory_iterator, so skipped directories are
  // never entered at all.
  std::vector<std::string> pending_directories{directory};
  while (!pending_directories.empty()) {
    const std::string current = std::move(pending_directories.back());
    pending_directories.pop_back();
    if (is_skipped_directory(root, current)) {
      continue;
    }
    // The watch comes before the listing, so a file created in between is not missed.
    add_watch(root, current);

    std::error_code error;
    for (fs::directory_iterator it(current, error), end; !error && it != end;
         it.increment(error)) {
      std::error_code type_error;
      const fs::file_status status = it->symlink_status(type_error);
      if (type_error) {
        continue;
      }
      const std::string path = it->path().string();
      if (fs::is_directory(status)) {
        pending_directories.push_back(path);
      } else if (report_files) {
        // Files created before the new directory's watch existed produced no event.
        note_change(root, path);
      }
    }
  }
}

void file_watcher::impl::add_watch(std::size_t root, const std::string& directory) {
  const int wd = ::inotify_add_watch(descriptor_.native_handle(), directory.c_str(), watch_mask);
  if (wd < 0) {
    const int error = errno;
    if (error == ENOSPC && !watch_limit_logged_) {
      watch_limit_logged_ = true;
      watcher_log()->warn(
          "Cannot watch {} for reloads: the inotify watch limit is reached. Raise "
          "fs.inotify.max_user_watches or narrow --reload-dirs and --reload-excludes",
          directory);
    } else if (error != ENOSPC) {
      watcher_log()->warn("Cannot watch {} for reloads: {}", directory, std::strerror(error));
    }
    return;
  }
  // The same directory reached twice (overlapping reload directories) keeps its first entry.
  watches_.emplace(wd, watch{root, directory});
}

void file_watcher::impl::remove_watches_below(const std::string& directory) {
  const std::string prefix = directory + "/";
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (it->second.path == directory || it->second.path.starts_with(prefix)) {
      ::inotify_rm_watch(descriptor_.native_handle(), it->first);
      it = watches_.erase(it);
    } else {
      ++it;
    }
  }
}

void file_watcher::impl::read_events() {
  descriptor_.async_wait(asio::posix::stream_descriptor::wait_read,
                         [self = shared_from_this()](const error_code& error) {
                           self->on_readable(error);
                         });
}

void file_watcher::impl::on_readable(const error_code& error) {
  if (error || stopped_) {
    return;  // operation_aborted after stop(); no other error is expected on inotify
  }
  while (!stopped_) {
    const ssize_t bytes = ::read(descriptor_.native_handle(), buffer_.data(), buffer_.size());
    if (bytes <= 0) {
      // EAGAIN: drained. Other errors cannot occur with a buffer that fits any event.
      break;
    }
    std::size_t offset = 0;
    while (offset + sizeof(inotify_event) <= static_cast<std::size_t>(bytes)) {
      inotify_event event;
      std::memcpy(&event, buffer_.data() + offset, sizeof(event));
      // The name follows the fixed part, padded with NULs to `len` bytes.
      const char* name = buffer_.data() + offset + sizeof(inotify_event);
      handle_event(event, std::string_view(name, ::strnlen(name, event.len)));
      offset += sizeof(inotify_event) + event.len;
    }
  }
  if (!stopped_) {
    read_events();
  }
}

void file_watcher::impl::handle_event(const inotify_event& event, std::string_view name) {
  if ((event.mask & IN_Q_OVERFLOW) != 0) {
    watcher_log()->warn(
        "The file watcher's event queue overflowed, so changes may be lost; reloading");
    for (const std::string& root : roots_) {
      add_pending(root);
    }
    return;
  }
  const auto found = watches_.find(event.wd);
  if (found == watches_.end()) {
    return;  // a watch removed after the kernel queued this event
  }
  if ((event.mask & IN_IGNORED) != 0) {
    watches_.erase(found);  // the directory is gone
    return;
  }
  if (name.empty()) {
    return;  // about the watched directory itself; IN_IGNORED follows its removal
  }

  const std::size_t root = found->second.root;
  const std::string path = found->second.path + "/" + std::string(name);
  if ((event.mask & IN_ISDIR) == 0) {
    note_change(root, path);
    return;
  }
  if ((event.mask & (IN_CREATE | IN_MOVED_TO)) != 0) {
    add_tree(root, path, true);
  } else if ((event.mask & IN_MOVED_FROM) != 0) {
    // NOTE: files inside a directory moved out of the tree are not reported as changed.
    remove_watches_below(path);
  }
}

void file_watcher::impl::note_change(std::size_t root, const std::string& path) {
  if (is_watched_file(relative_to_root(root, path), options_.includes, options_.excludes)) {
    add_pending(path);
  }
}

void file_watcher::impl::add_pending(const std::string& path) {
  pending_.insert(path);
  const auto now = std::chrono::steady_clock::now();
  if (!batch_started_) {
    batch_started_ = now;
  }
  const auto latest = *batch_started_ + max_debounce_periods * options_.debounce;
  debounce_timer_.expires_at(std::min(now + options_.debounce, latest));
  debounce_timer_.async_wait([self = shared_from_this()](const error_code& error) {
    self->on_debounce_timer(error);
  });
}

void file_watcher::impl::on_debounce_timer(const error_code& error) {
  if (error || stopped_ || pending_.empty()) {
    return;  // operation_aborted: a later change moved the timer
  }
  std::vector<std::string> changed(pending_.begin(), pending_.end());
  pending_.clear();
  batch_started_.reset();
  on_change_(std::move(changed));
}

file_watcher::file_watcher(asio::any_io_executor executor, file_watcher_options options,
                           change_handler on_change)
    : impl_(std::make_shared<impl>(std::move(executor), std::move(options),
                                   std::move(on_change))) {}

file_watcher::~file_watcher() {
  impl_->stop();
}

void file_watcher::start() {
  impl_->start();
}

void file_watcher::stop() {
  impl_->stop();
}

std::size_t file_watcher::watch_count() const {
  return impl_->watch_count();
}

}  // namespace fluxlit::supervisor
