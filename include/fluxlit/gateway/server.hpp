// The public listener: accepts connections and tracks them for a graceful shutdown.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fluxlit/gateway/context.hpp"

namespace fluxlit::gateway {

// Opens, binds and listens on host:port, close-on-exec; with `share_port`, SO_REUSEPORT lets
// other sockets of this user bind the same port, and the kernel spreads new connections over
// them. Throws std::system_error naming the address and the fix when that fails.
boost::asio::ip::tcp::acceptor open_listener(boost::asio::io_context& io, const std::string& host,
                                             std::uint16_t port, bool share_port);

// Every member runs on the io_context's thread.
class server {
 public:
  server(boost::asio::io_context& io, gateway_context& context);
  ~server();

  // Binds and listens; throws std::system_error naming the address when that fails.
  boost::asio::ip::tcp::endpoint listen(const std::string& host, std::uint16_t port);

  // Accepts on a listening socket this process inherited, and owns it from now on.
  boost::asio::ip::tcp::endpoint adopt(int listener_fd);

  void stop_accepting();

  // Closes connections that wait between requests; busy ones close after their response.
  void close_idle_connections();

  // Asks every connection to end its long-lived exchanges (WebSockets, event streams) cleanly.
  void begin_shutdown();

  // Closes every connection at once, relayed WebSockets included.
  void close_all_connections();

  std::size_t open_connections() const;
  std::size_t busy_connections() const;

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace fluxlit::gateway
