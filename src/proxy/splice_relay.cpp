#include "proxy/splice_relay.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <utility>
#include <vector>

#include "proxy/upstream_detail.hpp"

namespace fluxlit::proxy::detail {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// A pipe holds up to this much of a body between the two splices. Four times Linux's default
// of 64 KiB, so a 300 KiB file takes two rounds; the memory is only held while bytes are in it.
constexpr int pipe_capacity_bytes = 256 * 1024;
// Empty pipes kept per I/O thread for the next large body, instead of two system calls to open
// and two to close one per response.
constexpr std::size_t max_idle_pipes = 16;

class pipe_pair {
 public:
  pipe_pair() = default;
  pipe_pair(const pipe_pair&) = delete;
  pipe_pair& operator=(const pipe_pair&) = delete;
  pipe_pair(pipe_pair&& other) noexcept : ends_(std::exchange(other.ends_, {-1, -1})) {}
  pipe_pair& operator=(pipe_pair&& other) noexcept {
    std::swap(ends_, other.ends_);
    return *this;
  }
  ~pipe_pair() {
    for (const int end : ends_) {
      if (end >= 0) ::close(end);
    }
  }

  bool open() {
    if (::pipe2(ends_.data(), O_NONBLOCK | O_CLOEXEC) != 0) return false;
    // A smaller pipe still works, only with more rounds, so a refused size is no error.
    ::fcntl(ends_[1], F_SETPIPE_SZ, pipe_capacity_bytes);
    return true;
  }

  int read_end() const { return ends_[0]; }
  int write_end() const { return ends_[1]; }

 private:
  std::array<int, 2> ends_{-1, -1};
};

thread_local std::vector<pipe_pair> idle_pipes;

bool take_pipe(pipe_pair& pipe) {
  if (idle_pipes.empty()) return pipe.open();
  pipe = std::move(idle_pipes.back());
  idle_pipes.pop_back();
  return true;
}

// Keeps an empty pipe for the next body. A pipe that still contains bytes is closed instead.
void give_back_pipe(pipe_pair pipe) {
  if (idle_pipes.size() < max_idle_pipes) idle_pipes.push_back(std::move(pipe));
}

boost::system::error_code last_error() {
  return {errno, boost::system::system_category()};
}

}  // namespace

namespace {

// Writes the pipe's contents to `to`. Returns the write error, if any.
asio::awaitable<boost::system::error_code> drain_pipe(const pipe_pair& pipe, tcp::socket& to,
                                                      std::uint64_t& in_pipe, splice_result& result,
                                                      bool more_follows) {
  while (in_pipe > 0) {
    const unsigned more = more_follows ? SPLICE_F_MORE : 0;
    const ssize_t sent =
        ::splice(pipe.read_end(), nullptr, to.native_handle(), nullptr,
                 static_cast<std::size_t>(in_pipe), SPLICE_F_MOVE | SPLICE_F_NONBLOCK | more);
    if (sent > 0) {
      in_pipe -= static_cast<std::uint64_t>(sent);
      result.moved += static_cast<std::uint64_t>(sent);
    } else if (sent < 0 && (errno == EAGAIN || errno == EINTR)) {
      auto [error] = co_await to.async_wait(tcp::socket::wait_write, nothrow_awaitable);
      if (error) co_return error;
    } else {
      co_return sent == 0 ? boost::system::error_code(asio::error::broken_pipe) : last_error();
    }
  }
  co_return boost::system::error_code{};
}

}  // namespace

asio::awaitable<splice_result> splice_bytes(tcp::socket& from, tcp::socket& to,
                                            std::uint64_t length) {
  splice_result result;
  pipe_pair pipe;
  boost::system::error_code ignored;
  // Asio puts a socket into non-blocking mode at its first asynchronous operation, which both
  // have had. This makes sure of it, because a blocking splice would stall the I/O thread.
  from.native_non_blocking(true, ignored);
  to.native_non_blocking(true, ignored);
  if (!take_pipe(pipe)) {
    result.unsupported = true;
    co_return result;
  }
  std::uint64_t in_pipe = 0;
  while (result.moved + in_pipe < length) {
    const auto remaining = static_cast<std::size_t>(length - result.moved - in_pipe);
    const ssize_t got = ::splice(from.native_handle(), nullptr, pipe.write_end(), nullptr,
                                 remaining, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (got > 0) {
      in_pipe += static_cast<std::uint64_t>(got);
    } else if (got < 0 && errno == EINVAL && result.moved == 0 && in_pipe == 0) {
      result.unsupported = true;
      co_return result;
    } else if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (in_pipe == 0) {
        auto [error] = co_await from.async_wait(tcp::socket::wait_read, nothrow_awaitable);
        if (error) {
          result.read_error = error;
          break;
        }
        continue;
      }
    } else {
      result.read_error = got == 0 ? boost::system::error_code(asio::error::eof) : last_error();
      break;
    }
    const bool more_follows = result.moved + in_pipe < length;
    if (auto error = co_await drain_pipe(pipe, to, in_pipe, result, more_follows)) {
      result.write_error = error;
      co_return result;  // the pipe still contains bytes, so it is closed, not kept
    }
  }
  // After a failed read, what the child sent before it still goes to the client.
  if (in_pipe > 0) {
    if (auto error = co_await drain_pipe(pipe, to, in_pipe, result, false)) {
      result.write_error = error;
      co_return result;
    }
  }
  give_back_pipe(std::move(pipe));
  co_return result;
}

}  // namespace fluxlit::proxy::detail
