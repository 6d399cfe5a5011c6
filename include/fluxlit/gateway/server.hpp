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

// Opens and binds host:port, close-on-exec, and listens. Throws std::system_error naming the
// address and the fix when that fails.
//
// With `share_port` it sets SO_REUSEPORT, so other such sockets of this user may bind the same
// port, and it does not listen. The kernel spreads new connections over the sockets of a port
// that listen, so the process that accepts calls listen() once it is ready, as
// server::start_accepting does.
boost::asio::ip::tcp::acceptor open_listener(boost::asio::io_context& io, const std::string& host,
                                             std::uint16_t port, bool share_port);

// Every member runs on the io_context's thread.
class server {
 public:
  server(boost::asio::io_context& io, gateway_context& context);
  ~server();

  // Binds and listens; throws std::system_error naming the address when that fails.
  // Connections wait in the backlog until start_accepting().
  boost::asio::ip::tcp::endpoint listen(const std::string& host, std::uint16_t port);

  // Takes a bound socket this process inherited, and owns it from now on. Connections wait in
  // the backlog until start_accepting(), which also listens if the socket does not yet.
  boost::asio::ip::tcp::endpoint adopt(int listener_fd);

  // Accepts connections from now on. Call it once the app is ready: Asio may accept at once, and
  // a process that fails after that would reset the connection it took.
  void start_accepting();

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
