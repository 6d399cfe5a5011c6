// Moving a body from one TCP socket to another through a pipe with splice(2), so that its bytes
// are never copied into the gateway's memory.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>

namespace fluxlit::proxy::detail {

struct splice_result {
  std::uint64_t moved = 0;                // bytes written to `to`
  boost::system::error_code read_error;   // reading `from` failed, or it closed early
  boost::system::error_code write_error;  // writing `to` failed
  bool unsupported = false;  // the kernel cannot splice these sockets; nothing was moved
};

// Bodies shorter than this gain nothing from a pipe over a read and a write.
constexpr std::uint64_t min_splice_bytes = 32 * 1024;

// Moves exactly `length` bytes from `from` to `to`, waiting on either socket as needed. Bytes
// read before a failed read still reach `to`.
boost::asio::awaitable<splice_result> splice_bytes(boost::asio::ip::tcp::socket& from,
                                                   boost::asio::ip::tcp::socket& to,
                                                   std::uint64_t length);

}  // namespace fluxlit::proxy::detail
