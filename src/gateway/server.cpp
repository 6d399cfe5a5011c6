#include "fluxlit/gateway/server.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <map>
#include <system_error>

#include "fluxlit/observability/log.hpp"
#include "gateway/connection.hpp"
#include "gateway/send_progress.hpp"

namespace fluxlit::gateway {
namespace asio = boost::asio;
using asio::ip::tcp;

class server::impl {
 public:
  impl(asio::io_context& io, gateway_context& context)
      : io_(io),
        context_(context),
        acceptor_(io),
        wakeups_(std::make_shared<connection_wakeups>(io.get_executor())),
        client_watch_(io) {}

  // Checks every connection once per client_check_period. A stalled client is then cut off
  // within two check periods after its limit, never before it. One pass over the connections
  // costs the I/O thread less than a timer armed for every read and write would.
  void watch_clients() {
    const auto send_limit = std::chrono::milliseconds(context_.settings.send_timeout_ms);
    const auto body_limit = std::chrono::milliseconds(context_.settings.body_read_timeout_ms);
    if (send_limit.count() == 0 && body_limit.count() == 0) return;
    client_watch_.expires_after(client_check_period(send_limit, body_limit));
    client_watch_.async_wait([this, send_limit, body_limit](boost::system::error_code error) {
      if (error) return;
      const auto now = std::chrono::steady_clock::now();
      // close() and cancel() end a connection's operations later, on handlers of their own, so
      // the map stays as it is.
      for (auto& [id, weak] : connections_) {
        auto client = weak.lock();
        if (!client) continue;
        if (body_limit.count() != 0) client->check_body_progress(now, body_limit);
        if (send_limit.count() != 0) client->check_send_progress(now, send_limit);
      }
      watch_clients();
    });
  }

  void accept_next() {
    acceptor_.async_accept([this](boost::system::error_code error, tcp::socket socket) {
      on_accept(error, std::move(socket));
    });
  }

  void on_accept(boost::system::error_code error, tcp::socket socket) {
    if (error == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (error) {
      // EMFILE and friends: log, keep accepting; the next attempt may succeed.
      observability::logger("fluxlit")->warn("accept failed: {}", error.message());
    } else {
      const auto id = ++next_id_;
      auto created = std::make_shared<connection>(
          std::move(socket), context_, wakeups_, id,
          [this](std::uint64_t closed) { connections_.erase(closed); });
      connections_.emplace(id, created);
      created->start();
    }
    accept_next();
  }

  asio::io_context& io_;
  gateway_context& context_;
  tcp::acceptor acceptor_;
  std::shared_ptr<connection_wakeups> wakeups_;
  std::uint64_t next_id_ = 0;
  std::map<std::uint64_t, std::weak_ptr<connection>> connections_;
  asio::steady_timer client_watch_;
};

server::server(asio::io_context& io, gateway_context& context)
    : impl_(std::make_unique<impl>(io, context)) {}

server::~server() = default;

tcp::acceptor open_listener(asio::io_context& io, const std::string& host, std::uint16_t port,
                            bool share_port) {
  boost::system::error_code error;
  const auto address = asio::ip::make_address(host, error);
  if (error) {
    throw std::system_error(error, "invalid --host \"" + host +
                                       "\": expected an IP address such as 127.0.0.1 or 0.0.0.0");
  }
  const tcp::endpoint wanted(address, port);
  tcp::acceptor acceptor(io);
  acceptor.open(wanted.protocol());
  // Processes the app starts must not inherit the listener and keep the port bound.
  ::fcntl(acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  if (share_port) {
    acceptor.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
  }
  acceptor.bind(wanted, error);
  if (error == boost::system::errc::address_not_available ||
      error == boost::system::errc::invalid_argument) {
    // system_error appends the cause ("Cannot assign requested address") to this text.
    throw std::system_error(error, "cannot listen on " + host + ":" + std::to_string(port) +
                                       "; no network interface of this machine has that "
                                       "address. Choose another --host, such as 127.0.0.1");
  }
  if (error) {
    // system_error appends the cause ("Address already in use") to this text.
    throw std::system_error(error, "cannot listen on " + host + ":" + std::to_string(port) +
                                       "; choose another --port, or stop the other server");
  }
  if (!share_port) acceptor.listen(asio::socket_base::max_listen_connections);
  return acceptor;
}

tcp::endpoint server::listen(const std::string& host, std::uint16_t port) {
  impl_->acceptor_ = open_listener(impl_->io_, host, port, false);
  return impl_->acceptor_.local_endpoint();
}

tcp::endpoint server::adopt(int listener_fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(listener_fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::system_error(errno, std::system_category(),
                            "inherited listener " + std::to_string(listener_fd));
  }
  ::fcntl(listener_fd, F_SETFD, FD_CLOEXEC);
  impl_->acceptor_.assign(address.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), listener_fd);
  return impl_->acceptor_.local_endpoint();
}

void server::start_accepting() {
  auto& acceptor = impl_->acceptor_;
  int listening = 0;
  socklen_t length = sizeof listening;
  ::getsockopt(acceptor.native_handle(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &length);
  if (listening == 0) acceptor.listen(asio::socket_base::max_listen_connections);
  impl_->accept_next();
  impl_->watch_clients();
}

void server::stop_accepting() {
  boost::system::error_code ignored;
  impl_->acceptor_.close(ignored);
}

void server::close_idle_connections() {
  for (auto& [id, weak] : impl_->connections_) {
    if (auto each = weak.lock(); each && !each->busy()) each->close_for_shutdown();
  }
}

void server::begin_shutdown() {
  auto snapshot = impl_->connections_;
  for (auto& [id, weak] : snapshot) {
    if (auto each = weak.lock()) each->begin_shutdown();
  }
}

void server::close_all_connections() {
  // close() may end a connection at once and erase it from the map; iterate over a copy.
  auto snapshot = impl_->connections_;
  for (auto& [id, weak] : snapshot) {
    if (auto each = weak.lock()) each->close_for_shutdown();
  }
}

std::size_t server::open_connections() const {
  return impl_->connections_.size();
}

std::size_t server::busy_connections() const {
  std::size_t busy = 0;
  for (const auto& [id, weak] : impl_->connections_) {
    if (auto each = weak.lock(); each && each->busy()) ++busy;
  }
  return busy;
}

}  // namespace fluxlit::gateway
