// WebSocket routes of the ASGI app: the handshake decided by the app, then messages relayed
// between a Beast WebSocket stream and the exchange. Kept apart from connection.cpp because
// Beast's WebSocket headers are heavy to compile.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket.hpp>

#include "fluxlit/asgi/bridge.hpp"
#include "fluxlit/gateway/http_text.hpp"
#include "fluxlit/observability/log.hpp"
#include "fluxlit/observability/metrics.hpp"
#include "gateway/connection.hpp"

namespace fluxlit::gateway {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

namespace {

constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

using server_stream = websocket::stream<beast::tcp_stream&>;

// Code sent when the app fails after the handshake (RFC 6455 section 7.4.1: internal error).
constexpr std::uint16_t close_code_internal_error = 1011;

std::vector<std::string> split_subprotocols(std::string_view value) {
  std::vector<std::string> items;
  while (!value.empty()) {
    const auto comma = value.find(',');
    auto item = value.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return items;
}

// Reads client messages into the exchange until the connection ends, pausing while the app
// has not consumed what it has.
asio::awaitable<void> read_client_messages(server_stream& ws,
                                           std::shared_ptr<asgi::websocket_exchange> exchange,
                                           std::function<asio::awaitable<void>()> wait_for_room,
                                           std::function<void()> on_end) {
  beast::flat_buffer buffer;
  for (;;) {
    if (!exchange->io_wants_more()) co_await wait_for_room();
    auto [error, read] = co_await ws.async_read(buffer, nothrow_awaitable);
    if (error) {
      asgi::websocket_inbound gone;
      gone.what = asgi::websocket_inbound::kind::disconnect;
      gone.code = error == websocket::error::closed ? ws.reason().code : 1006;
      gone.reason = error == websocket::error::closed
                        ? std::string(ws.reason().reason.data(), ws.reason().reason.size())
                        : "";
      exchange->io_push(std::move(gone), 0);
      exchange->io_client_gone();
      break;
    }
    asgi::websocket_inbound message;
    message.what = asgi::websocket_inbound::kind::message;
    message.text = ws.got_text();
    message.data = beast::buffers_to_string(buffer.data());
    buffer.consume(buffer.size());
    const auto size = message.data.size();
    exchange->io_push(std::move(message), size);
  }
  on_end();
}

}  // namespace

asio::awaitable<connection::request_record> connection::serve_api_websocket(
    proxy::request_parser& parser, const request_view& request) {
  auto self = shared_from_this();
  const auto& settings = context_.settings;
  auto head = make_asgi_head(parser, request);
  head.scheme = request.client.scheme == "https" ? "wss" : "ws";
  head.subprotocols = split_subprotocols(parser.get()[http::field::sec_websocket_protocol]);

  auto exchange = std::make_shared<asgi::websocket_exchange>(
      std::move(head), settings.asgi_send_high_water_bytes, settings.asgi_receive_high_water_bytes);
  connect_exchange(*exchange);
  exchange->io_push(asgi::websocket_inbound{}, 0);  // websocket.connect
  context_.bridge.submit(exchange);

  server_stream ws(stream_);
  ws.read_message_max(settings.asgi_websocket_max_message_bytes);

  request_record record;
  record.route = "api";
  record.keep_alive = false;
  bool opened = false;
  bool denial_started = false;
  bool done = false;
  pump_done_ = true;

  std::vector<asgi::websocket_outbound> events;
  while (!done) {
    co_await wait_for(response_timer_, response_pending_);
    response_pending_ = false;
    if (client_gone_) break;
    if (shutdown_requested_ && opened) {
      co_await ws.async_close(websocket::close_reason(websocket::close_code::going_away),
                              nothrow_awaitable);
      break;
    }

    events.clear();
    exchange->io_take_events(events);
    for (auto& event : events) {
      if (done) break;
      if (auto* accept = std::get_if<asgi::websocket_accept>(&event)) {
        ws.set_option(websocket::stream_base::decorator(
            [accept = *accept](websocket::response_type& response) {
              if (!accept.subprotocol.empty()) {
                response.set(http::field::sec_websocket_protocol, accept.subprotocol);
              }
              for (const auto& [name, value] : accept.headers) response.insert(name, value);
            }));
        auto [error] = co_await ws.async_accept(parser.get(), nothrow_awaitable);
        if (error) {
          exchange->io_client_gone();
          done = true;
          break;
        }
        opened = true;
        record.status = 101;
        context_.metrics.websocket_opened();
        pump_done_ = false;
        asio::co_spawn(stream_.get_executor(),
                       read_client_messages(
                           ws, exchange,
                           [this, self]() -> asio::awaitable<void> {
                             body_pending_ = false;
                             co_await wait_for(body_timer_, body_pending_);
                           },
                           [this, self] {
                             wake(pump_timer_, pump_done_);
                             client_gone_ = true;
                             wake(response_timer_, response_pending_);
                           }),
                       asio::detached);
      } else if (auto* message = std::get_if<asgi::websocket_message>(&event)) {
        ws.text(message->text);
        auto [error, written] =
            co_await ws.async_write(asio::buffer(message->data), nothrow_awaitable);
        if (error) {
          done = true;
          break;
        }
        exchange->io_written(message->data.size());
      } else if (auto* close = std::get_if<asgi::websocket_close>(&event)) {
        if (!opened) {
          // A close before the handshake is a refusal: HTTP 403 (ASGI WebSocket spec).
          record = co_await reply_locally(request, 403, "websocket_rejected",
                                          "text/plain; charset=utf-8", "Forbidden\n");
        } else {
          websocket::close_reason reason(static_cast<std::uint16_t>(close->code));
          reason.reason = close->reason;
          co_await ws.async_close(reason, nothrow_awaitable);
        }
        done = true;
      } else if (auto* start = std::get_if<asgi::response_start>(&event)) {
        // The denial extension: the app responds to the upgrade with an ordinary response.
        denial_started = true;
        record.status = start->status;
        std::string text;
        append_status_line(text, start->status);
        bool has_length = false;
        for (const auto& [name, value] : start->headers) {
          if (iequals(name, "connection") || iequals(name, "transfer-encoding")) continue;
          has_length = has_length || iequals(name, "content-length");
          append_header(text, name, value);
        }
        append_header(text, "x-request-id", request.request_id);
        append_header(text, "connection", "close");
        text += "\r\n";
        auto [error, written] =
            co_await asio::async_write(stream_, asio::buffer(text), nothrow_awaitable);
        if (error) done = true;
      } else if (auto* body = std::get_if<asgi::response_body>(&event)) {
        auto [error, written] =
            co_await asio::async_write(stream_, asio::buffer(body->data), nothrow_awaitable);
        record.body_bytes += body->data.size();
        exchange->io_written(body->data.size());
        if (error || !body->more_body) done = true;
      } else if (auto* abort = std::get_if<asgi::response_abort>(&event)) {
        observability::logger("fluxlit")->warn("{} rid={} WebSocket app failed: {}", tag_,
                                               request.request_id, abort->reason);
        if (opened) {
          co_await ws.async_close(websocket::close_reason(close_code_internal_error),
                                  nothrow_awaitable);
        } else if (!denial_started) {
          record = co_await reply_locally(request, 500, "app_exception",
                                          "text/plain; charset=utf-8", "Internal Server Error\n");
        }
        done = true;
      }
    }
  }

  exchange->io_finished();
  if (!pump_done_) {
    // The reader ends once the close handshake completes or the socket closes.
    close();
    co_await wait_for(pump_timer_, pump_done_);
  }
  if (opened) context_.metrics.websocket_closed();
  record.route = "api";
  record.keep_alive = false;
  if (record.status == 0) record.status = 499;
  co_return record;
}

}  // namespace fluxlit::gateway
