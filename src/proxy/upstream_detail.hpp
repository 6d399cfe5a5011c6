// Helpers that HTTP forwarding (upstream.cpp) and the WebSocket tunnel (tunnel.cpp) share.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fluxlit/proxy/byte_chunk.hpp"
#include "fluxlit/proxy/upstream.hpp"

namespace fluxlit::proxy::detail {

constexpr auto nothrow_awaitable = boost::asio::as_tuple(boost::asio::use_awaitable);

// Bytes moved per read while a body streams through. Large enough that a 300 KiB file takes a
// handful of reads, small enough that a thousand concurrent transfers stay within ~64 MiB.
constexpr std::size_t body_chunk_bytes = byte_chunk::recycled_size;

// Upper bound on the child's response head. Streamlit's heads are well under 4 KiB.
constexpr std::uint32_t max_upstream_header_bytes = 256 * 1024;

// Upper bound on a request head that Streamlit accepts, counting the request line, the headers
// and the blank line after them. Tornado's HTTP/1 server, which Streamlit runs on, closes the
// connection without any response above it. The value is Tornado 6.2's default max_header_size,
// which Streamlit does not change when it creates its HTTPServer. The forwarding headers can
// push a head that fits max_header_bytes past it, so the proxy checks each head it sends.
constexpr std::size_t streamlit_max_header_bytes = 64 * 1024;

enum class client_framing { none, content_length, chunked, until_close };

// Builds the head sent to the child: the client's headers minus hop-by-hop and forwarding
// headers, plus the gateway's own forwarding headers. For an upgrade, Upgrade and Connection
// stay.
std::string upstream_request_head(
    const boost::beast::http::request<boost::beast::http::buffer_body>& request,
    const forward_request& forward, bool upgrade);

// Builds the head sent to the client: the child's status and headers minus hop-by-hop ones.
std::string client_response_head(
    const boost::beast::http::response<boost::beast::http::buffer_body>& response,
    const forward_request& forward, client_framing framing, bool keep_alive, bool upgrade);

boost::asio::awaitable<boost::system::error_code> write_text(boost::beast::tcp_stream& stream,
                                                             const std::string& text);

// Writes `head` (empty when already sent), then `size` body bytes, inside chunk framing when
// `chunked`, then the final chunk when `chunked` and `last_chunk`, all in one gathered write.
boost::asio::awaitable<boost::system::error_code> write_body_piece(boost::beast::tcp_stream& stream,
                                                                   const char* data,
                                                                   std::size_t size, bool chunked,
                                                                   std::string_view head = {},
                                                                   bool last_chunk = false);

// Connects to the child on 127.0.0.1:`port` and turns Nagle's algorithm off.
boost::asio::awaitable<boost::system::error_code> connect_stream(boost::beast::tcp_stream& stream,
                                                                 std::uint16_t port,
                                                                 std::chrono::milliseconds timeout);

forward_outcome local_failure(int status, std::string reason);

// Returns a local 431 (`streamlit_request_header_too_large`) and logs a warning when `head`, the
// request head as it would go to the child, is larger than streamlit_max_header_bytes. Returns
// nothing when the head fits.
std::optional<forward_outcome> check_streamlit_header_limit(std::string_view head,
                                                            const forward_request& request);

// A 502 with `upstream_unreachable` set: nothing of a response came from the child.
forward_outcome unreachable_failure(std::string reason);

// True for the errors of a connection that the child closed or reset before the first byte of
// its response head, as a killed child or a stale keep-alive connection does.
bool closed_before_response(const boost::system::error_code& error);

}  // namespace fluxlit::proxy::detail
