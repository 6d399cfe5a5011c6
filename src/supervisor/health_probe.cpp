#include "supervisor/health_probe.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <string_view>
#include <utility>

namespace fluxlit::supervisor::detail {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// A status line is short, so a peer that sends more than this without a CRLF is not HTTP.
constexpr std::size_t max_status_line_bytes = 1024;

// Streamlit's health response is the body "ok" and a few headers. Past this many bytes the probe
// closes the connection without reading to the end.
constexpr std::size_t max_response_bytes = 64 * 1024;

}  // namespace

health_probe::health_probe(asio::any_io_executor executor, std::uint16_t port, std::string target,
                           std::chrono::milliseconds timeout)
    : socket_(executor), timer_(executor), port_(port), timeout_(timeout) {
  request_ = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
             "\r\nConnection: close\r\n\r\n";
}

void health_probe::start(result_handler handler) {
  handler_ = std::move(handler);

  timer_.expires_after(timeout_);
  timer_.async_wait(
      [self = shared_from_this()](const error_code& error) { self->on_timeout(error); });

  const asio::ip::tcp::endpoint endpoint(asio::ip::address_v4::loopback(), port_);
  socket_.async_connect(
      endpoint, [self = shared_from_this()](const error_code& error) { self->on_connect(error); });
}

void health_probe::cancel() {
  handler_ = nullptr;
  finish(0);
}

void health_probe::on_connect(const error_code& error) {
  if (finished_) {
    return;
  }
  if (error) {
    finish(0);
    return;
  }
  asio::async_write(socket_, asio::buffer(request_),
                    [self = shared_from_this()](const error_code& write_error, std::size_t bytes) {
                      self->on_write(write_error, bytes);
                    });
}

void health_probe::on_write(const error_code& error, std::size_t) {
  if (finished_) {
    return;
  }
  if (error) {
    finish(0);
    return;
  }
  asio::async_read_until(
      socket_, asio::dynamic_buffer(response_, max_status_line_bytes), "\r\n",
      [self = shared_from_this()](const error_code& read_error, std::size_t bytes) {
        self->on_read(read_error, bytes);
      });
}

void health_probe::on_read(const error_code& error, std::size_t bytes) {
  if (finished_) {
    return;
  }
  if (error) {
    finish(0);
    return;
  }
  status_ = parse_status_line(std::string_view(response_).substr(0, bytes));
  if (status_ == 0) {
    finish(0);
    return;
  }
  rest_bytes_ = response_.size();
  read_rest();
}

void health_probe::read_rest() {
  socket_.async_read_some(asio::buffer(rest_buffer_),
                          [self = shared_from_this()](const error_code& error, std::size_t bytes) {
                            self->on_read_rest(error, bytes);
                          });
}

void health_probe::on_read_rest(const error_code& error, std::size_t bytes) {
  if (finished_) {
    return;
  }
  rest_bytes_ += bytes;
  // End of file is the expected ending, because the request asked for Connection: close. Any
  // other error after the status line does not change the result.
  if (error || rest_bytes_ > max_response_bytes) {
    finish(status_);
    return;
  }
  read_rest();
}

void health_probe::on_timeout(const error_code& error) {
  // operation_aborted means finish() cancelled the timer after a result. A status line that
  // arrived before the timeout counts, even when the rest of the response did not.
  if (error != asio::error::operation_aborted) {
    finish(status_);
  }
}

void health_probe::finish(unsigned status) {
  if (finished_) {
    return;
  }
  finished_ = true;

  // Errors from cancel and close are ignored: the socket is discarded either way.
  error_code ignored;
  timer_.cancel();
  socket_.close(ignored);

  if (handler_) {
    result_handler handler = std::move(handler_);
    handler_ = nullptr;
    handler(status);
  }
}

unsigned parse_status_line(std::string_view line) {
  constexpr std::string_view version_prefix = "HTTP/1.";
  // "HTTP/1.x NNN" is 12 bytes: prefix, minor version digit, space, three digits.
  if (line.size() < 12 || !line.starts_with(version_prefix) || line[8] != ' ') {
    return 0;
  }
  unsigned status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') {
      return 0;
    }
    status = status * 10 + static_cast<unsigned>(line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ' && line[12] != '\r') {
    return 0;
  }
  return status;
}

}  // namespace fluxlit::supervisor::detail
