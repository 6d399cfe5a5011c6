#include <gtest/gtest.h>

#include <boost/beast/http/write.hpp>
#include <sstream>
#include <string>

#include "proxy/upstream_detail.hpp"

namespace fluxlit::proxy::detail {
namespace {

namespace http = boost::beast::http;

forward_request make_forward() {
  forward_request forward;
  forward.port = 8501;
  forward.target = "/";
  forward.request_id = "0123456789abcdef0123456789abcdef";
  forward.client.forwarded_for = "127.0.0.1";
  forward.client.host = "127.0.0.1:8000";
  forward.connection_tag = "[C1]";
  return forward;
}

http::request<http::buffer_body> request_with_cookie(std::size_t cookie_bytes) {
  http::request<http::buffer_body> request{http::verb::get, "/", 11};
  request.set(http::field::host, "127.0.0.1:8000");
  request.set(http::field::cookie, "pad=" + std::string(cookie_bytes, 'c'));
  return request;
}

// The head as the client sent it: request line, fields and the blank line.
std::size_t client_head_bytes(const http::request<http::buffer_body>& request) {
  std::ostringstream text;
  text << request.base();
  return text.str().size();
}

TEST(StreamlitHeaderLimitTest, HeadAtLimitPasses) {
  const std::string head(streamlit_max_header_bytes, 'h');
  EXPECT_FALSE(check_streamlit_header_limit(head, make_forward()).has_value());
}

TEST(StreamlitHeaderLimitTest, HeadOneByteOverGets431) {
  const std::string head(streamlit_max_header_bytes + 1, 'h');
  const auto rejected = check_streamlit_header_limit(head, make_forward());
  ASSERT_TRUE(rejected.has_value());
  EXPECT_EQ(rejected->status, 431);
  EXPECT_EQ(rejected->local_reason, "streamlit_request_header_too_large");
  EXPECT_FALSE(rejected->upstream_unreachable);
  EXPECT_NE(rejected->local_detail.find("come to 65537 bytes"), std::string::npos);
  EXPECT_NE(rejected->local_detail.find("at most 65536 bytes"), std::string::npos);
  EXPECT_NE(rejected->local_detail.find("fewer or smaller cookies"), std::string::npos);
}

TEST(StreamlitHeaderLimitTest, ForwardingHeadersCountTowardLimit) {
  const auto forward = make_forward();
  auto request = request_with_cookie(0);
  const auto padding = streamlit_max_header_bytes - client_head_bytes(request);
  request = request_with_cookie(padding);
  ASSERT_EQ(client_head_bytes(request), streamlit_max_header_bytes);

  const auto head = upstream_request_head(request, forward, false);
  EXPECT_GT(head.size(), streamlit_max_header_bytes);
  EXPECT_TRUE(check_streamlit_header_limit(head, forward).has_value());
  const auto upgrade_head = upstream_request_head(request, forward, true);
  EXPECT_TRUE(check_streamlit_header_limit(upgrade_head, forward).has_value());
}

TEST(StreamlitHeaderLimitTest, ReplacedClientHeadersDoNotCount) {
  // The gateway drops the client's own forwarding headers, so they cannot push a head over.
  const auto forward = make_forward();
  auto request = request_with_cookie(1000);
  request.set("X-Forwarded-For", std::string(streamlit_max_header_bytes / 2, '1'));
  request.set("Forwarded", std::string(streamlit_max_header_bytes / 2, 'f'));
  ASSERT_GT(client_head_bytes(request), streamlit_max_header_bytes);

  const auto head = upstream_request_head(request, forward, false);
  EXPECT_LT(head.size(), streamlit_max_header_bytes);
  EXPECT_FALSE(check_streamlit_header_limit(head, forward).has_value());
}

}  // namespace
}  // namespace fluxlit::proxy::detail

namespace fluxlit::proxy {
namespace {

TEST(MalformedBody, TellsBadFramingFromClientLeaving) {
  namespace http = boost::beast::http;
  EXPECT_TRUE(is_malformed_body(http::error::bad_chunk));
  EXPECT_TRUE(is_malformed_body(http::error::bad_chunk_extension));
  EXPECT_FALSE(is_malformed_body(http::error::partial_message));
  EXPECT_FALSE(is_malformed_body(http::error::end_of_stream));
  EXPECT_FALSE(is_malformed_body(boost::asio::error::connection_reset));
  EXPECT_FALSE(is_malformed_body({}));
}

}  // namespace
}  // namespace fluxlit::proxy
