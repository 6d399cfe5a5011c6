// One HTTP/1.1 GET against the child's health endpoint on 127.0.0.1.
#pragma once

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace fluxlit::supervisor::detail {

// Connects, sends `GET target`, parses the status line, and reads the rest of the response until
// the server closes the connection, so that a server that responds in time does not get EPIPE or a
// reset for its last write. Create it with make_shared and call start() once. All members run on
// the executor's thread. The probe keeps itself alive while an operation is pending.
class health_probe : public std::enable_shared_from_this<health_probe> {
 public:
  // Receives the HTTP status code, or 0 when the connection failed, the status line did not
  // arrive within the timeout, or the reply was not HTTP. Called once, from a completion handler,
  // never inline from start().
  using result_handler = std::function<void(unsigned status)>;

  health_probe(boost::asio::any_io_executor executor, std::uint16_t port, std::string target,
               std::chrono::milliseconds timeout);

  void start(result_handler handler);

  // Abandons the probe: the result handler is dropped without being called.
  void cancel();

 private:
  void on_connect(const boost::system::error_code& error);
  void on_write(const boost::system::error_code& error, std::size_t bytes);
  void on_read(const boost::system::error_code& error, std::size_t bytes);
  void read_rest();
  void on_read_rest(const boost::system::error_code& error, std::size_t bytes);
  void on_timeout(const boost::system::error_code& error);
  void finish(unsigned status);

  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;
  std::uint16_t port_;
  std::string request_;
  std::string response_;
  std::array<char, 1024> rest_buffer_{};
  std::size_t rest_bytes_ = 0;
  unsigned status_ = 0;  // parsed from the status line; 0 until then
  std::chrono::milliseconds timeout_;
  result_handler handler_;
  bool finished_ = false;
};

// Returns the status code of an HTTP/1.x status line such as "HTTP/1.1 200 OK", or 0.
unsigned parse_status_line(std::string_view line);

}  // namespace fluxlit::supervisor::detail
