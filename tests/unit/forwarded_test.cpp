#include "fluxlit/gateway/forwarded.hpp"

#include <gtest/gtest.h>

namespace fluxlit::gateway {
namespace {

namespace ip = boost::asio::ip;

forwarded_policy trusting(std::initializer_list<const char*> ranges) {
  forwarded_policy policy;
  for (const auto* each : ranges) policy.trusted.push_back(config::address_range::parse(each));
  return policy;
}

TEST(ForwardedTest, TrustedPeerGivesRightmostUntrustedClient) {
  const auto policy = trusting({"127.0.0.1", "10.0.0.0/8"});
  const auto identity = resolve_client(policy, ip::make_address("127.0.0.1"), 5000,
                                       {"203.0.113.7, 10.0.0.2", "https, http", "", "app"});
  EXPECT_EQ(identity.client_host, "203.0.113.7");
  EXPECT_EQ(identity.scheme, "https");
  EXPECT_TRUE(identity.via_trusted_proxy);
  EXPECT_EQ(identity.forwarded_for, "203.0.113.7, 10.0.0.2, 127.0.0.1");
}

TEST(ForwardedTest, UntrustedPeerHeadersIgnored) {
  const auto policy = trusting({"127.0.0.1"});
  const auto identity = resolve_client(policy, ip::make_address("198.51.100.4"), 6000,
                                       {"203.0.113.7", "https", "evil.example", "app"});
  EXPECT_EQ(identity.client_host, "198.51.100.4");
  EXPECT_EQ(identity.client_port, 6000);
  EXPECT_EQ(identity.scheme, "http");
  EXPECT_EQ(identity.host, "app");
  EXPECT_EQ(identity.forwarded_for, "198.51.100.4");
  EXPECT_FALSE(identity.via_trusted_proxy);
}

TEST(ForwardedTest, ProxyHeadersOffIgnoresEverything) {
  auto policy = trusting({"*"});
  policy.proxy_headers = false;
  const auto identity = resolve_client(policy, ip::make_address("127.0.0.1"), 1,
                                       {"203.0.113.7", "https", "", "app"});
  EXPECT_EQ(identity.client_host, "127.0.0.1");
  EXPECT_EQ(identity.scheme, "http");
}

TEST(ForwardedTest, AllHopsTrustedGivesFarthest) {
  const auto policy = trusting({"127.0.0.1", "10.0.0.0/8"});
  const auto identity = resolve_client(policy, ip::make_address("127.0.0.1"), 1,
                                       {"10.1.1.1, 10.0.0.2", "", "", "app"});
  EXPECT_EQ(identity.client_host, "10.1.1.1");
}

TEST(ForwardedTest, ForwardedHostReplacesHost) {
  const auto policy = trusting({"127.0.0.1"});
  const auto identity = resolve_client(policy, ip::make_address("127.0.0.1"), 1,
                                       {"", "", "app.example.com, inner", "127.0.0.1:8000"});
  EXPECT_EQ(identity.host, "app.example.com");
}

TEST(ForwardedTest, MappedPeerShownAsIpv4) {
  const auto policy = trusting({"127.0.0.1"});
  const auto identity =
      resolve_client(policy, ip::make_address("::ffff:198.51.100.9"), 1, {"", "", "", ""});
  EXPECT_EQ(identity.client_host, "198.51.100.9");
}

TEST(HopByHopTest, StandardAndNamedHeaders) {
  EXPECT_TRUE(is_hop_by_hop("Connection", ""));
  EXPECT_TRUE(is_hop_by_hop("transfer-encoding", ""));
  EXPECT_TRUE(is_hop_by_hop("Keep-Alive", ""));
  EXPECT_TRUE(is_hop_by_hop("X-Custom-Hop", "keep-alive, X-Custom-Hop"));
  EXPECT_FALSE(is_hop_by_hop("Set-Cookie", "keep-alive"));
  EXPECT_FALSE(is_hop_by_hop("Content-Length", ""));
}

TEST(HasTokenTest, CaseInsensitiveList) {
  EXPECT_TRUE(has_token("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(has_token("close", "CLOSE"));
  EXPECT_FALSE(has_token("keep-alive", "close"));
}

TEST(RequestIdTest, SafeIdKept) {
  EXPECT_EQ(choose_request_id("abc-123_x.y"), "abc-123_x.y");
}

TEST(RequestIdTest, UnsafeIdReplaced) {
  const auto replaced = choose_request_id("bad id\r\n");
  EXPECT_EQ(replaced.size(), 32u);
  EXPECT_NE(replaced, "bad id\r\n");
  EXPECT_EQ(choose_request_id(std::string(129, 'a')).size(), 32u);
}

TEST(RequestIdTest, GeneratedIdsDiffer) {
  EXPECT_NE(choose_request_id({}), choose_request_id({}));
}

}  // namespace
}  // namespace fluxlit::gateway
