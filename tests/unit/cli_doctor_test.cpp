// Tests for the checks of `fluxlit doctor` that need no interpreter: version comparison,
// package rows, Streamlit's upload limit, the body limit, the port and proxy trust.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <map>
#include <string>
#include <vector>

#include "cli/doctor_checks.hpp"

namespace fluxlit::cli {
namespace {

using ::testing::HasSubstr;

const package_requirement streamlit_requirement{"streamlit", "Streamlit", "streamlit", "1.36",
                                                "st.navigation needs it"};

TEST(VersionAtLeast, ComparesNumericParts) {
  EXPECT_EQ(version_at_least("1.39.0", "1.36"), true);
  EXPECT_EQ(version_at_least("1.36", "1.36"), true);
  EXPECT_EQ(version_at_least("1.36.0", "1.36"), true);
  EXPECT_EQ(version_at_least("1.35.9", "1.36"), false);
  EXPECT_EQ(version_at_least("0.92.0", "0.90"), true);
  EXPECT_EQ(version_at_least("0.89.1", "0.90"), false);
  EXPECT_EQ(version_at_least("2.0", "1.36"), true);
  EXPECT_EQ(version_at_least("1.100.0", "1.36"), true);
}

TEST(VersionAtLeast, IgnoresSuffixesAfterNumbers) {
  EXPECT_EQ(version_at_least("1.36.0rc1", "1.36"), true);
  EXPECT_EQ(version_at_least("1.35rc1", "1.36"), false);
}

TEST(VersionAtLeast, NonNumericVersionIsUnknown) {
  EXPECT_EQ(version_at_least("", "1.36"), std::nullopt);
  EXPECT_EQ(version_at_least("dev", "1.36"), std::nullopt);
}

TEST(CheckPackage, MissingPackageFailsWithInstallCommand) {
  const check_result result = check_package(streamlit_requirement, std::nullopt, "/venv/python");
  EXPECT_EQ(result.status, check_status::fail);
  EXPECT_EQ(result.name, "streamlit");
  EXPECT_THAT(result.detail, HasSubstr("Streamlit is not installed for /venv/python"));
  EXPECT_THAT(result.detail, HasSubstr("/venv/python -m pip install 'streamlit>=1.36'"));
}

TEST(CheckPackage, MissingPackageWithFallbackWarns) {
  package_requirement optional = streamlit_requirement;
  optional.fallback = "the API is served alone";
  const check_result result = check_package(optional, std::nullopt, "/usr/bin/python3");
  EXPECT_EQ(result.status, check_status::warn);
  EXPECT_THAT(result.detail, HasSubstr("the API is served alone"));
  // Debian's interpreter refuses a plain pip install, so the command makes a virtualenv.
  EXPECT_THAT(result.detail, HasSubstr("/usr/bin/python3 -m venv --system-site-packages .venv && "
                                       ".venv/bin/pip install 'streamlit>=1.36'"));
}

TEST(CheckPackage, OldPackageFailsWithReason) {
  const check_result result = check_package(streamlit_requirement, "1.30.0", "python3");
  EXPECT_EQ(result.status, check_status::fail);
  EXPECT_THAT(result.detail, HasSubstr("Streamlit 1.30.0 is older than 1.36"));
  EXPECT_THAT(result.detail, HasSubstr("st.navigation needs it"));
}

TEST(CheckPackage, UnknownVersionWarns) {
  const check_result result = check_package(streamlit_requirement, "", "python3");
  EXPECT_EQ(result.status, check_status::warn);
  EXPECT_THAT(result.detail, HasSubstr("cannot be compared"));
}

TEST(CheckPackage, RecentPackagePasses) {
  const check_result result = check_package(streamlit_requirement, "1.39.0", "python3");
  EXPECT_EQ(result.status, check_status::pass);
  EXPECT_THAT(result.detail, HasSubstr("Streamlit 1.39.0"));
}

TEST(UploadLimit, DefaultIs200Megabytes) {
  const upload_limit limit = find_upload_limit({}, {});
  EXPECT_EQ(limit.megabytes, 200u);
  EXPECT_EQ(limit.source, "Streamlit's default");
}

TEST(UploadLimit, ProjectFileOverridesGlobalFile) {
  const std::vector<supervisor::streamlit_config_file> files{
      {"/home/u/.streamlit/config.toml", "[server]\nmaxUploadSize = 50\n"},
      {"/app/.streamlit/config.toml", "[server]\nmaxUploadSize = 400\n"},
  };
  const upload_limit limit = find_upload_limit(files, {});
  EXPECT_EQ(limit.megabytes, 400u);
  EXPECT_EQ(limit.source, "/app/.streamlit/config.toml");
}

TEST(UploadLimit, FileWithoutTheOptionKeepsEarlierValue) {
  const std::vector<supervisor::streamlit_config_file> files{
      {"/home/u/.streamlit/config.toml", "[server]\nmaxUploadSize = 50\n"},
      {"/app/.streamlit/config.toml", "[server]\nheadless = true\n"},
  };
  EXPECT_EQ(find_upload_limit(files, {}).megabytes, 50u);
}

TEST(UploadLimit, EnvironmentOverridesFiles) {
  const std::vector<supervisor::streamlit_config_file> files{
      {"/app/.streamlit/config.toml", "[server]\nmaxUploadSize = 400\n"},
  };
  const upload_limit limit =
      find_upload_limit(files, {{"STREAMLIT_SERVER_MAX_UPLOAD_SIZE", "1000"}});
  EXPECT_EQ(limit.megabytes, 1000u);
  EXPECT_EQ(limit.source, "STREAMLIT_SERVER_MAX_UPLOAD_SIZE");
}

TEST(UploadLimit, InvalidValuesAreSkipped) {
  const std::vector<supervisor::streamlit_config_file> files{
      {"/a.toml", "[server]\nmaxUploadSize = \"big\"\n"},
      {"/b.toml", "not toml ["},
  };
  const upload_limit limit =
      find_upload_limit(files, {{"STREAMLIT_SERVER_MAX_UPLOAD_SIZE", "12MB"}});
  EXPECT_EQ(limit.megabytes, 200u);
}

TEST(BodyLimit, BelowUploadLimitWarns) {
  const check_result result = check_body_limit(100 * 1024 * 1024, upload_limit{});
  EXPECT_EQ(result.status, check_status::warn);
  EXPECT_THAT(result.detail, HasSubstr("104857600 bytes (100 MiB) is below"));
  EXPECT_THAT(result.detail, HasSubstr("200 MB"));
}

TEST(BodyLimit, EqualToUploadLimitPasses) {
  EXPECT_EQ(check_body_limit(200ull * 1024 * 1024, upload_limit{}).status, check_status::pass);
}

TEST(BodyLimit, NamesTheSourceOfTheLimit) {
  const check_result result = check_body_limit(1, upload_limit{5, "/app/.streamlit/config.toml"});
  EXPECT_THAT(result.detail, HasSubstr("from /app/.streamlit/config.toml"));
}

TEST(PortCheck, PortInUseFails) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor taken(
      io, {boost::asio::ip::make_address("127.0.0.1"), 0});  // listens on a free port
  const std::uint16_t port = taken.local_endpoint().port();
  const check_result result = check_port("127.0.0.1", port);
  EXPECT_EQ(result.status, check_status::fail);
  EXPECT_THAT(result.detail, HasSubstr("cannot bind 127.0.0.1:" + std::to_string(port)));
}

TEST(PortCheck, FreePortPasses) {
  std::uint16_t port = 0;
  {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    port = probe.local_endpoint().port();
  }
  EXPECT_EQ(check_port("127.0.0.1", port).status, check_status::pass);
}

TEST(PortCheck, PortZeroPasses) {
  EXPECT_EQ(check_port("127.0.0.1", 0).status, check_status::pass);
}

TEST(PortCheck, HostNameFails) {
  const check_result result = check_port("localhost", 8000);
  EXPECT_EQ(result.status, check_status::fail);
  EXPECT_THAT(result.detail, HasSubstr("is not an IP address"));
}

TEST(ProxyTrust, WildcardWithProxyHeadersWarns) {
  config::settings values;
  values.forwarded_allow_ips = {"*"};
  const std::vector<check_result> results = check_proxy_trust(values);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].name, "forwarded_trust");
  EXPECT_EQ(results[0].status, check_status::warn);
  EXPECT_THAT(results[0].detail, HasSubstr("W005"));
  EXPECT_EQ(results[1].status, check_status::pass);
}

TEST(ProxyTrust, RootPathWithLoopbackOnlyWarns) {
  config::settings values;
  values.root_path = "/app";
  const std::vector<check_result> results = check_proxy_trust(values);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].status, check_status::pass);
  EXPECT_EQ(results[1].name, "root_path_trust");
  EXPECT_EQ(results[1].status, check_status::warn);
  EXPECT_THAT(results[1].detail, HasSubstr("W006"));
}

TEST(ProxyTrust, DefaultsPass) {
  for (const check_result& result : check_proxy_trust(config::settings{})) {
    EXPECT_EQ(result.status, check_status::pass) << result.name;
  }
}

}  // namespace
}  // namespace fluxlit::cli
