#include "gateway/response_framer.hpp"

#include <string>
#include <utility>
#include <variant>

#include "fluxlit/gateway/forwarded.hpp"
#include "fluxlit/gateway/http_text.hpp"
#include "fluxlit/observability/log.hpp"

namespace fluxlit::gateway {

void response_output::add_text(std::string text) {
  order_.push_back(static_cast<std::ptrdiff_t>(texts_.size()));
  texts_.push_back(std::move(text));
}

void response_output::add_body(asgi::response_body& body) {
  if (!body.kept) return add_text(std::move(body.data));
  order_.push_back(~static_cast<std::ptrdiff_t>(bodies_.size()));
  bodies_.push_back(std::move(body));
}

void response_output::clear() {
  texts_.clear();
  bodies_.clear();
  order_.clear();
}

std::uint64_t response_framer::add(std::vector<asgi::response_event>& events, response_output& out,
                                   std::string_view tag) {
  std::uint64_t sent = 0;
  for (auto& event : events) {
    if (finished_ || aborted_) break;
    if (auto* start = std::get_if<asgi::response_start>(&event)) {
      add_start(*start, out);
    } else if (auto* body = std::get_if<asgi::response_body>(&event)) {
      sent += body->size();
      add_body(*body, out);
    } else if (auto* abort = std::get_if<asgi::response_abort>(&event)) {
      observability::logger("fluxlit")->warn("{} rid={} response aborted: {}", tag,
                                             request_.request_id, abort->reason);
      aborted_ = true;
    }
  }
  return sent;
}

bool response_framer::complete_for_client() const {
  if (finished_) return true;
  if (!started_) return false;
  return body_framing_ == framing::none ||
         (body_framing_ == framing::content_length && body_bytes_ >= declared_length_);
}

void response_framer::add_start(asgi::response_start& start, response_output& out) {
  started_ = true;
  status_ = start.status;
  bool has_length = false;
  bool has_date = false;
  bool has_request_id = false;
  std::string head;
  head.reserve(512);
  append_status_line(head, start.status);
  const bool drop_length = status_forbids_content_length(start.status);
  for (const auto& [name, value] : start.headers) {
    if (iequals(name, "connection")) {
      if (has_token(value, "close")) keep_alive_ = false;
      continue;
    }
    if (iequals(name, "transfer-encoding") || iequals(name, "keep-alive")) continue;
    if (iequals(name, "content-length")) {
      if (drop_length) continue;
      has_length = true;
      declared_length_ = std::stoull(value);
    }
    has_date = has_date || iequals(name, "date");
    if (iequals(name, "content-type") && value.starts_with("text/event-stream")) {
      event_stream_ = true;
    }
    has_request_id = has_request_id || iequals(name, "x-request-id");
    append_header(head, name, value);
  }
  if (!has_date) append_header(head, "date", http_date());
  if (!has_request_id) append_header(head, "x-request-id", request_.request_id);

  if (request_.head_only || status_forbids_body(start.status)) {
    body_framing_ = framing::none;
  } else if (has_length) {
    body_framing_ = framing::content_length;
  } else if (request_.version >= 11) {
    body_framing_ = framing::chunked;
    append_header(head, "transfer-encoding", "chunked");
  } else {
    body_framing_ = framing::until_close;
    keep_alive_ = false;
  }
  if (!keep_alive_) {
    append_header(head, "connection", "close");
  } else if (request_.version == 10) {
    append_header(head, "connection", "keep-alive");
  }
  head += "\r\n";
  out.add_text(std::move(head));
}

void response_framer::add_body(asgi::response_body& body, response_output& out) {
  const auto size = body.size();
  const bool more_body = body.more_body;
  if (body_framing_ != framing::none) body_bytes_ += size;
  if (body_framing_ == framing::chunked && size != 0) {
    out.add_text(chunk_header(size));
    out.add_body(body);
    out.add_text("\r\n");
  } else if (body_framing_ == framing::content_length || body_framing_ == framing::until_close) {
    out.add_body(body);
  }
  if (more_body) return;
  finished_ = true;
  if (body_framing_ == framing::chunked) out.add_text("0\r\n\r\n");
  // Fewer bytes than declared: the client cannot tell where the body ends, so close.
  if (body_framing_ == framing::content_length && body_bytes_ < declared_length_) {
    keep_alive_ = false;
  }
}

}  // namespace fluxlit::gateway
