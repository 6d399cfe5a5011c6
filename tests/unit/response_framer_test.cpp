#include "gateway/response_framer.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fluxlit::gateway {
namespace {

using asgi::response_abort;
using asgi::response_body;
using asgi::response_event;
using asgi::response_start;

response_event start(int status, asgi::header_list headers) {
  return response_start{status, std::move(headers)};
}

response_event body(std::string data, bool more_body = false) {
  response_body out;
  out.data = std::move(data);
  out.more_body = more_body;
  return out;
}

// Frames `events` as one batch and returns the bytes of the output.
std::string frame(response_framer& framer, std::vector<response_event> events) {
  response_output output;
  framer.add(events, output, "[test]");
  std::string text;
  output.for_each([&](std::string_view piece) { text += piece; });
  return text;
}

std::string head_of(const std::string& text) {
  return text.substr(0, text.find("\r\n\r\n") + 4);
}

framed_request request(unsigned version = 11, bool head_only = false) {
  return framed_request{"rid-1", head_only, true, version};
}

TEST(ResponseFramerTest, LengthResponseAddsDateAndId) {
  response_framer framer(request());
  const auto text = frame(framer, {start(201, {{"content-length", "2"}}), body("ok")});
  EXPECT_TRUE(text.starts_with("HTTP/1.1 201 Created\r\ncontent-length: 2\r\n"));
  EXPECT_NE(text.find("\r\ndate: "), std::string::npos);
  EXPECT_NE(text.find("\r\nx-request-id: rid-1\r\n"), std::string::npos);
  EXPECT_TRUE(text.ends_with("\r\n\r\nok"));
  EXPECT_TRUE(framer.finished());
  EXPECT_TRUE(framer.keep_alive());
  EXPECT_EQ(framer.status(), 201);
  EXPECT_EQ(framer.body_bytes(), 2u);
}

TEST(ResponseFramerTest, AppRequestIdAndDateAreKept) {
  response_framer framer(request());
  const auto text = frame(framer, {start(200, {{"content-length", "0"},
                                               {"X-Request-ID", "mine"},
                                               {"Date", "Thu, 01 Jan 1970 00:00:00 GMT"}}),
                                   body("")});
  EXPECT_EQ(text.find("x-request-id: rid-1"), std::string::npos);
  EXPECT_EQ(text.find("\r\ndate: "), std::string::npos);
  EXPECT_NE(text.find("X-Request-ID: mine"), std::string::npos);
}

TEST(ResponseFramerTest, UnsizedBodyIsChunked) {
  response_framer framer(request());
  const auto first =
      frame(framer, {start(200, {{"content-type", "text/plain"}}), body("abc", true)});
  EXPECT_NE(head_of(first).find("transfer-encoding: chunked\r\n"), std::string::npos);
  EXPECT_TRUE(first.ends_with("\r\n\r\n3\r\nabc\r\n"));
  EXPECT_FALSE(framer.finished());
  EXPECT_EQ(frame(framer, {body("", true), body("0123456789abcdef"), body("late")}),
            "10\r\n0123456789abcdef\r\n0\r\n\r\n");
  EXPECT_TRUE(framer.finished());
  EXPECT_EQ(framer.body_bytes(), 19u);
}

TEST(ResponseFramerTest, Http10BodyEndsWithConnection) {
  response_framer framer(request(10));
  const auto text = frame(framer, {start(200, {}), body("abc")});
  EXPECT_NE(head_of(text).find("connection: close\r\n"), std::string::npos);
  EXPECT_EQ(head_of(text).find("chunked"), std::string::npos);
  EXPECT_TRUE(text.ends_with("\r\n\r\nabc"));
  EXPECT_FALSE(framer.keep_alive());
}

TEST(ResponseFramerTest, Http10KeepAliveIsAnnounced) {
  response_framer framer(request(10));
  const auto text = frame(framer, {start(200, {{"content-length", "1"}}), body("x")});
  EXPECT_NE(head_of(text).find("connection: keep-alive\r\n"), std::string::npos);
  EXPECT_TRUE(framer.keep_alive());
}

TEST(ResponseFramerTest, HeadAndBodilessStatusesSendNoBody) {
  response_framer head(request(11, true));
  EXPECT_TRUE(
      frame(head, {start(200, {{"content-length", "5"}}), body("hello")}).ends_with("\r\n\r\n"));
  EXPECT_EQ(head.body_bytes(), 0u);
  EXPECT_TRUE(head.keep_alive());

  response_framer empty(request());
  const auto text = frame(empty, {start(204, {}), body("ignored")});
  EXPECT_TRUE(text.ends_with("\r\n\r\n"));
  EXPECT_EQ(text.find("chunked"), std::string::npos);
  EXPECT_TRUE(empty.finished());
}

TEST(ResponseFramerTest, NoContentDropsContentLength) {
  response_framer no_content(request());
  const auto text = frame(no_content, {start(204, {{"Content-Length", "0"}}), body("")});
  EXPECT_EQ(text.find("Content-Length"), std::string::npos);
  EXPECT_TRUE(no_content.keep_alive());

  // A 304 may state the length of the representation it validates.
  response_framer not_modified(request());
  const auto not_modified_text =
      frame(not_modified, {start(304, {{"Content-Length", "120"}}), body("")});
  EXPECT_NE(not_modified_text.find("Content-Length: 120\r\n"), std::string::npos);
  EXPECT_TRUE(not_modified_text.ends_with("\r\n\r\n"));
}

TEST(ResponseFramerTest, AppConnectionHeadersAreReplaced) {
  response_framer framer(request());
  const auto text = frame(framer, {start(200, {{"Connection", "close"},
                                               {"Transfer-Encoding", "chunked"},
                                               {"Keep-Alive", "timeout=5"},
                                               {"content-length", "1"}}),
                                   body("x")});
  EXPECT_EQ(text.find("Connection:"), std::string::npos);
  EXPECT_EQ(text.find("Transfer-Encoding"), std::string::npos);
  EXPECT_EQ(text.find("Keep-Alive"), std::string::npos);
  EXPECT_NE(head_of(text).find("connection: close\r\n"), std::string::npos);
  EXPECT_FALSE(framer.keep_alive());
}

TEST(ResponseFramerTest, ShortBodyEndsKeepAlive) {
  response_framer framer(request());
  frame(framer, {start(200, {{"content-length", "10"}}), body("short")});
  EXPECT_TRUE(framer.finished());
  EXPECT_FALSE(framer.keep_alive());
}

TEST(ResponseFramerTest, DeclaredBodyCompletesForClient) {
  response_framer sized(request());
  frame(sized, {start(200, {{"content-length", "3"}}), body("ab", true)});
  EXPECT_FALSE(sized.complete_for_client());
  frame(sized, {body("c", true)});
  EXPECT_FALSE(sized.finished());
  EXPECT_TRUE(sized.complete_for_client());

  response_framer head(request(11, true));
  frame(head, {start(200, {{"content-length", "3"}})});
  EXPECT_TRUE(head.complete_for_client());

  response_framer chunked(request());
  frame(chunked, {start(200, {}), body("abc", true)});
  EXPECT_FALSE(chunked.complete_for_client());
}

TEST(ResponseFramerTest, AbortStopsTheResponse) {
  response_framer framer(request());
  const auto text = frame(framer, {start(200, {{"content-type", "text/event-stream"}}),
                                   response_abort{"the app raised"}, body("after")});
  EXPECT_TRUE(framer.started());
  EXPECT_TRUE(framer.aborted());
  EXPECT_FALSE(framer.finished());
  EXPECT_TRUE(framer.endless_stream());
  EXPECT_EQ(text.find("after"), std::string::npos);
}

}  // namespace
}  // namespace fluxlit::gateway
