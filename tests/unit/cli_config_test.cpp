// Tests for the coded configuration warnings that `fluxlit config` and `fluxlit doctor` report.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "fluxlit/config/warnings.hpp"

namespace fluxlit::config {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST(ForwardedTrust, WildcardWithProxyHeadersIsW005) {
  settings values;
  values.forwarded_allow_ips = {"10.0.0.0/8", "*"};
  const auto warning = check_forwarded_trust(values);
  ASSERT_TRUE(warning.has_value());
  EXPECT_EQ(warning->code, "W005");
  EXPECT_THAT(warning->message, HasSubstr("forwarded_allow_ips contains \"*\""));
}

TEST(ForwardedTrust, WildcardWithProxyHeadersOffIsFine) {
  settings values;
  values.forwarded_allow_ips = {"*"};
  values.proxy_headers = false;
  EXPECT_FALSE(check_forwarded_trust(values).has_value());
}

TEST(ForwardedTrust, ListedProxiesAreFine) {
  settings values;
  values.forwarded_allow_ips = {"10.0.0.1", "fd00::/8"};
  EXPECT_FALSE(check_forwarded_trust(values).has_value());
}

TEST(RootPathTrust, NoRootPathIsFine) {
  EXPECT_FALSE(check_root_path_trust(settings{}).has_value());
}

TEST(RootPathTrust, LoopbackOnlyIsW006) {
  settings values;
  values.root_path = "/app";
  values.forwarded_allow_ips = {"127.0.0.1", "::1", "127.0.0.0/8"};
  const auto warning = check_root_path_trust(values);
  ASSERT_TRUE(warning.has_value());
  EXPECT_EQ(warning->code, "W006");
  EXPECT_THAT(warning->message, HasSubstr("trusts only loopback peers"));
}

TEST(RootPathTrust, ProxyHeadersOffIsW006) {
  settings values;
  values.root_path = "/app";
  values.proxy_headers = false;
  values.forwarded_allow_ips = {"10.0.0.1"};
  const auto warning = check_root_path_trust(values);
  ASSERT_TRUE(warning.has_value());
  EXPECT_THAT(warning->message, HasSubstr("proxy_headers is off"));
}

TEST(RootPathTrust, EmptyTrustListIsW006) {
  settings values;
  values.root_path = "/app";
  values.forwarded_allow_ips = {};
  const auto warning = check_root_path_trust(values);
  ASSERT_TRUE(warning.has_value());
  EXPECT_THAT(warning->message, HasSubstr("forwarded_allow_ips is empty"));
}

TEST(RootPathTrust, ProxyBeyondLoopbackIsFine) {
  settings values;
  values.root_path = "/app";
  for (const char* entry : {"10.0.0.1", "*", "127.0.0.0/4", "::/0"}) {
    values.forwarded_allow_ips = {"127.0.0.1", entry};
    EXPECT_FALSE(check_root_path_trust(values).has_value()) << entry;
  }
}

class CollectWarningsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "fluxlit-warnings-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
  }

  void TearDown() override {
    std::error_code ignored;  // a leftover temporary directory must not fail the test
    fs::remove_all(directory_, ignored);
  }

  fs::path directory_;
};

TEST_F(CollectWarningsTest, LoadWarningsKeepTheirCodes) {
  std::ofstream(directory_ / "fluxlit.toml") << "prot = 1\n";
  std::ofstream(directory_ / "pyproject.toml") << "[tool.fluxlit]\nport = 1\n";
  const loaded_settings loaded = load({}, {{"FLUXLIT_PROT", "1"}}, directory_.string());
  ASSERT_EQ(loaded.warning_codes.size(), loaded.warnings.size());
  const auto warnings = collect_warnings(loaded, directory_.string());
  std::vector<std::string> codes;
  for (const auto& warning : warnings) {
    codes.push_back(warning.code);
  }
  EXPECT_THAT(codes, ::testing::UnorderedElementsAre("W001", "W002", "W003"));
}

TEST_F(CollectWarningsTest, MissingTargetFileIsW007) {
  loaded_settings loaded = load({{"target", "missing.py:app"}}, {}, directory_.string());
  const auto warnings = collect_warnings(loaded, directory_.string());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].code, "W007");
  EXPECT_THAT(warnings[0].message, HasSubstr("was not found"));
}

TEST_F(CollectWarningsTest, CleanSettingsHaveNoWarnings) {
  const loaded_settings loaded = load({}, {}, directory_.string());
  EXPECT_TRUE(collect_warnings(loaded, directory_.string()).empty());
}

}  // namespace
}  // namespace fluxlit::config
