#include "fluxlit/gateway/http_text.hpp"

#include <gtest/gtest.h>

namespace fluxlit::gateway {
namespace {

TEST(HttpTextTest, StatusLineUsesStandardReason) {
  std::string out;
  append_status_line(out, 431);
  EXPECT_EQ(out, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
}

TEST(HttpTextTest, StatusLineKeepsGivenReason) {
  std::string out;
  append_status_line(out, 599, "Custom");
  EXPECT_EQ(out, "HTTP/1.1 599 Custom\r\n");
}

TEST(HttpTextTest, ChunkHeaderIsHex) {
  EXPECT_EQ(chunk_header(0), "0\r\n");
  EXPECT_EQ(chunk_header(26), "1a\r\n");
  EXPECT_EQ(chunk_header(65536), "10000\r\n");
}

TEST(HttpTextTest, BodilessStatuses) {
  EXPECT_TRUE(status_forbids_body(101));
  EXPECT_TRUE(status_forbids_body(204));
  EXPECT_TRUE(status_forbids_body(304));
  EXPECT_FALSE(status_forbids_body(200));
  EXPECT_FALSE(status_forbids_body(404));
}

TEST(HttpTextTest, DateIsImfFixdate) {
  const auto& date = http_date();
  EXPECT_EQ(date.size(), 29u);
  EXPECT_EQ(date.substr(date.size() - 4), " GMT");
}

}  // namespace
}  // namespace fluxlit::gateway
