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

// Every member runs on the io_context's thread.
class server {
 public:
  server(boost::asio::io_context& io, gateway_context& context);
  ~server();

  // Binds and listens; throws std::system_error naming the address when that fails.
  boost::asio::ip::tcp::endpoint listen(const std::string& host, std::uint16_t port);

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
