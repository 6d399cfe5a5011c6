// Tests for the pure helpers behind command output: secret redaction, aligned tables, doctor
// rows and the names suggested for a mistyped option.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli/command_support.hpp"
#include "cli/doctor_checks.hpp"
#include "cli/redaction.hpp"
#include "cli/text_table.hpp"

namespace fluxlit::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(Redaction, SecretNamesAreRecognisedByWord) {
  EXPECT_TRUE(is_secret_name("password"));
  EXPECT_TRUE(is_secret_name("api_key"));
  EXPECT_TRUE(is_secret_name("SECRET_TOKEN"));
  EXPECT_TRUE(is_secret_name("db-credentials"));
  EXPECT_TRUE(is_secret_name("auth"));
  EXPECT_TRUE(is_secret_name("private.key"));
}

TEST(Redaction, OrdinaryNamesAreNotSecret) {
  EXPECT_FALSE(is_secret_name("keep_alive_timeout_ms"));
  EXPECT_FALSE(is_secret_name("max_header_bytes"));
  EXPECT_FALSE(is_secret_name("forwarded_allow_ips"));
  EXPECT_FALSE(is_secret_name("keyboard"));
  EXPECT_FALSE(is_secret_name("author"));
  EXPECT_FALSE(is_secret_name(""));
}

TEST(Redaction, UrlPasswordIsHidden) {
  EXPECT_EQ(redact_url_passwords("postgres://app:s3cret@db:5432/main"),
            "postgres://app:***@db:5432/main");
}

TEST(Redaction, UrlWithoutPasswordIsUnchanged) {
  EXPECT_EQ(redact_url_passwords("https://user@example.test/x"), "https://user@example.test/x");
  EXPECT_EQ(redact_url_passwords("http://127.0.0.1:8000/api"), "http://127.0.0.1:8000/api");
  EXPECT_EQ(redact_url_passwords("no url here"), "no url here");
}

TEST(Redaction, PasswordWithAtSignIsHiddenWhole) {
  EXPECT_EQ(redact_url_passwords("redis://u:p@ss@cache/0"), "redis://u:***@cache/0");
}

TEST(Redaction, EveryUrlInTextIsRedacted) {
  EXPECT_EQ(redact_url_passwords("a://x:1@h, b://y:2@k"), "a://x:***@h, b://y:***@k");
}

TEST(Redaction, SecretSettingValueIsReplaced) {
  EXPECT_EQ(redact_setting("api_token", "abc"), "***");
  EXPECT_EQ(redact_setting("api_token", ""), "");
  EXPECT_EQ(redact_setting("database_url", "mysql://r:pw@h/d"), "mysql://r:***@h/d");
  EXPECT_EQ(redact_setting("host", "127.0.0.1"), "127.0.0.1");
}

TEST(TextTable, ColumnsArePaddedToWidestCell) {
  const std::string text = format_table({{"a", "long value", "x"}, {"longer", "v", "y"}});
  EXPECT_EQ(text,
            "a       long value  x\n"
            "longer  v           y\n");
}

TEST(TextTable, IndentPrefixesEveryLine) {
  EXPECT_EQ(format_table({{"k", "v"}}, 2), "  k  v\n");
}

TEST(TextTable, NewlineInLastCellAlignsUnderIt) {
  EXPECT_EQ(format_table({{"FAIL", "target", "first\nsecond"}}),
            "FAIL  target  first\n"
            "              second\n");
}

TEST(TextTable, EmptyLastCellLeavesNoTrailingSpace) {
  EXPECT_EQ(format_table({{"root_path", ""}, {"host", "x"}}),
            "root_path\n"
            "host       x\n");
}

TEST(TextTable, LongCellDoesNotWidenColumnBeyondLimit) {
  const std::string wide(60, 'w');
  const std::string text = format_table({{wide, "a"}, {"b", "c"}}, 0, 10);
  EXPECT_THAT(text, HasSubstr(wide + "  a\n"));
  EXPECT_THAT(text, HasSubstr("b           c\n"));
}

TEST(DoctorRows, StatusNameAndDetailAreAligned) {
  const std::vector<check_result> results{
      {"interpreter", check_status::pass, "Python 3.11"},
      {"port", check_status::fail, "in use"},
      {"body_limit", check_status::warn, "low"},
  };
  EXPECT_EQ(format_check_rows(results),
            "PASS  interpreter  Python 3.11\n"
            "FAIL  port         in use\n"
            "WARN  body_limit   low\n");
}

TEST(DoctorRows, StatusTextIsUpperCase) {
  EXPECT_EQ(status_text(check_status::pass), "PASS");
  EXPECT_EQ(status_text(check_status::warn), "WARN");
  EXPECT_EQ(status_text(check_status::fail), "FAIL");
}

TEST(ClosestName, SwappedLettersAreOneEdit) {
  const std::vector<std::string> names = {"--host", "--port", "--reload"};
  EXPECT_EQ(closest_name("--prot", names), "--port");
  EXPECT_EQ(closest_name("--hots", names), "--host");
}

TEST(ClosestName, CaseDoesNotCount) {
  const std::vector<std::string> names = {"--port", "run"};
  EXPECT_EQ(closest_name("--PROT", names), "--port");
  EXPECT_EQ(closest_name("RN", names), "run");  // one edit in two letters is close enough
}

TEST(ClosestName, ValueAfterEqualsIsIgnored) {
  const std::vector<std::string> names = {"--api-prefix", "--no-ui"};
  EXPECT_EQ(closest_name("--api-prefx=/v1", names), "--api-prefix");
}

TEST(ClosestName, PicksTheNearestOfSeveral) {
  const std::vector<std::string> names = {"--workers", "--worker-timeout", "--no-ui"};
  EXPECT_EQ(closest_name("--worker", names), "--workers");
  EXPECT_EQ(closest_name("--no-iu", names), "--no-ui");
}

TEST(ClosestName, FarOrShortNamesGetNothing) {
  const std::vector<std::string> names = {"--port", "--host", "run", "dev"};
  EXPECT_EQ(closest_name("--zzzzzz", names), std::nullopt);
  EXPECT_EQ(closest_name("--pt", names), std::nullopt);  // two of its two letters differ
  EXPECT_EQ(closest_name("xyz", names), std::nullopt);
  EXPECT_EQ(closest_name("rnu", names), "run");
  EXPECT_EQ(closest_name("", names), std::nullopt);
}

}  // namespace
}  // namespace fluxlit::cli
