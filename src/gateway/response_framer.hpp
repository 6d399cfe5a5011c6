// Turns an ASGI app's response events into the bytes of an HTTP/1.1 response: the head with
// the headers the gateway adds, and the body with its framing. The I/O thread frames every
// response that it writes. On a shared CPU the Python thread frames a whole response that it
// writes itself (see connection::serve_api). Either way one thread at a time uses a framer.
#pragma once

#include <boost/container/small_vector.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fluxlit/asgi/exchange.hpp"

namespace fluxlit::gateway {

// The output of one batch of events, in order: pieces of framing text and bodies. A body stays
// in the app's bytes object (see asgi::response_body) until the output is cleared.
class response_output {
 public:
  void add_text(std::string text);
  void add_body(asgi::response_body& body);
  void clear();
  bool empty() const { return order_.empty(); }

  // Calls `visit(std::string_view)` for every piece in order.
  template <typename Visitor>
  void for_each(Visitor&& visit) const {
    for (const auto index : order_) {
      if (index >= 0) {
        visit(std::string_view(texts_[static_cast<std::size_t>(index)]));
      } else {
        visit(bodies_[static_cast<std::size_t>(~index)].bytes());
      }
    }
  }

 private:
  // A batch usually contains a response start and one body: a head, a body and at most two
  // framing pieces.
  boost::container::small_vector<std::string, 4> texts_;
  boost::container::small_vector<asgi::response_body, 2> bodies_;
  // Per piece, an index into texts_, or ~index into bodies_.
  boost::container::small_vector<std::ptrdiff_t, 6> order_;
};

// The request's properties that decide the response's framing.
struct framed_request {
  std::string_view request_id;
  bool head_only = false;
  bool keep_alive = true;
  unsigned version = 11;
};

class response_framer {
 public:
  explicit response_framer(const framed_request& request)
      : request_(request), keep_alive_(request.keep_alive) {}

  // Appends the bytes of `events` to `out` and returns the body bytes that the app sent in
  // them. Events after the end of the response or after an abort are ignored. `tag` names the
  // connection in the log line of an abort.
  std::uint64_t add(std::vector<asgi::response_event>& events, response_output& out,
                    std::string_view tag);

  bool started() const { return started_; }
  bool finished() const { return finished_; }
  // The client has all that the response sends: it finished, its head went and it has no
  // body, or its body reached the declared Content-Length before the app's last event.
  bool complete_for_client() const;
  bool aborted() const { return aborted_; }
  // True for an event stream sent in chunks, which a shutdown may end early.
  bool endless_stream() const { return event_stream_ && body_framing_ == framing::chunked; }
  int status() const { return status_; }
  // Body bytes that reach the client (none for HEAD or a status without a body).
  std::uint64_t body_bytes() const { return body_bytes_; }
  // False once the app requested Connection: close, the response ends with the connection, or
  // a Content-Length was not met.
  bool keep_alive() const { return keep_alive_; }

 private:
  enum class framing { none, content_length, chunked, until_close };

  void add_start(asgi::response_start& start, response_output& out);
  void add_body(asgi::response_body& body, response_output& out);

  framed_request request_;
  framing body_framing_ = framing::none;
  bool started_ = false;
  bool finished_ = false;
  bool aborted_ = false;
  bool event_stream_ = false;
  bool keep_alive_ = true;
  int status_ = 0;
  std::uint64_t declared_length_ = 0;
  std::uint64_t body_bytes_ = 0;
};

}  // namespace fluxlit::gateway
