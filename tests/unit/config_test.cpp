// Tests for configuration loading, precedence, validation, the generated CLI options and the
// trusted-proxy address ranges. Files are written to a fresh temporary directory per test.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/setting_flags.hpp"
#include "fluxlit/config/address_range.hpp"
#include "fluxlit/config/settings.hpp"

namespace fluxlit::config {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using environment_map = std::map<std::string, std::string>;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "fluxlit-config-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
  }

  void TearDown() override {
    std::error_code ignored;  // a leftover temporary directory must not fail the test
    fs::remove_all(directory_, ignored);
  }

  void write_file(const std::string& name, const std::string& content) {
    std::ofstream out(directory_ / name);
    out << content;
  }

  loaded_settings load_with(const cli_values& cli = {}, const environment_map& environment = {}) {
    return load(cli, environment, directory_.string());
  }

  // Returns the message of the config_error that load_with throws, or "" when none is thrown.
  std::string load_error(const cli_values& cli = {}, const environment_map& environment = {}) {
    try {
      load_with(cli, environment);
    } catch (const config_error& error) {
      return error.what();
    }
    return "";
  }

  fs::path directory_;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string validate_error(const settings& values) {
  try {
    validate(values);
  } catch (const config_error& error) {
    return error.what();
  }
  return "";
}

std::string to_upper(std::string_view text) {
  std::string upper(text);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return upper;
}

std::string to_kebab(std::string_view text) {
  std::string kebab(text);
  std::replace(kebab.begin(), kebab.end(), '_', '-');
  return kebab;
}

// ---- the key table ----

TEST(ConfigKeys, NamesAreUniqueAndDerived) {
  std::set<std::string_view> names;
  for (const key_info& key : keys()) {
    EXPECT_TRUE(names.insert(key.name).second) << key.name;
    EXPECT_EQ(key.env, "FLUXLIT_" + to_upper(key.name)) << key.name;
    if (key.name == "target") {
      EXPECT_TRUE(key.cli_flag.empty());
    } else {
      EXPECT_EQ(key.cli_flag, "--" + to_kebab(key.name)) << key.name;
    }
    EXPECT_FALSE(key.description.empty()) << key.name;
    EXPECT_TRUE(key.assign) << key.name;
    EXPECT_TRUE(key.format) << key.name;
  }
}

TEST(ConfigKeys, CoverEverySettingsField) {
  for (const std::string_view name : {"target",
                                      "host",
                                      "port",
                                      "api_prefix",
                                      "root_path",
                                      "log_level",
                                      "log_format",
                                      "python",
                                      "no_ui",
                                      "workers",
                                      "io_scheduling",
                                      "proxy_headers",
                                      "forwarded_allow_ips",
                                      "max_request_body_bytes",
                                      "max_header_bytes",
                                      "header_read_timeout_ms",
                                      "body_read_timeout_ms",
                                      "keep_alive_timeout_ms",
                                      "send_timeout_ms",
                                      "upstream_connect_timeout_ms",
                                      "upstream_response_timeout_ms",
                                      "upstream_max_idle_connections",
                                      "websocket_idle_timeout_ms",
                                      "websocket_max_lifetime_ms",
                                      "asgi_send_high_water_bytes",
                                      "asgi_receive_high_water_bytes",
                                      "readiness_max_loop_lag_ms",
                                      "streamlit_start_timeout_ms",
                                      "streamlit_stop_timeout_ms",
                                      "streamlit_restart_initial_delay_ms",
                                      "streamlit_restart_max_delay_ms",
                                      "streamlit_crash_loop_count",
                                      "streamlit_crash_loop_window_ms",
                                      "streamlit_health_interval_ms",
                                      "streamlit_health_timeout_ms",
                                      "streamlit_health_failure_threshold",
                                      "shutdown_grace_ms",
                                      "pidfile",
                                      "reload",
                                      "reload_dirs",
                                      "reload_includes",
                                      "reload_excludes",
                                      "reload_debounce_ms"}) {
    EXPECT_NE(find_key(name), nullptr) << name;
  }
  EXPECT_EQ(keys().size(), 44u);
  EXPECT_EQ(find_key("no_such_key"), nullptr);
}

TEST(ConfigKeys, UnitsMatchNameSuffix) {
  for (const key_info& key : keys()) {
    if (key.name.ends_with("_ms")) {
      EXPECT_EQ(key.unit, "ms") << key.name;
    } else if (key.name.ends_with("_bytes")) {
      EXPECT_EQ(key.unit, "bytes") << key.name;
    } else {
      EXPECT_EQ(key.unit, "") << key.name;
    }
  }
}

TEST(ConfigKeys, DefaultsRoundTripThroughText) {
  const settings defaults;
  for (const key_info& key : keys()) {
    settings parsed;
    parsed.host = "changed";
    key.assign(parsed, key.format(defaults));
    EXPECT_EQ(key.format(parsed), key.format(defaults)) << key.name;
  }
}

TEST(ConfigKeys, IntegerDefaultsLieInTheirRange) {
  const settings defaults;
  for (const key_info& key : keys()) {
    if (key.type != "integer") {
      continue;
    }
    const std::uint64_t value = std::stoull(key.format(defaults));
    EXPECT_GE(value, key.minimum) << key.name;
    EXPECT_LE(value, key.maximum) << key.name;
    // The WebSocket caps are off (0) unless an operator sets them.
    if (key.name == "websocket_idle_timeout_ms" || key.name == "websocket_max_lifetime_ms") {
      EXPECT_EQ(value, 0u) << key.name;
      continue;
    }
    EXPECT_GT(value, 0u) << key.name;
  }
}

TEST(ConfigKeys, DocumentedDefaults) {
  const settings defaults;
  EXPECT_EQ(defaults.max_request_body_bytes, 256u * 1024 * 1024);
  EXPECT_EQ(defaults.max_header_bytes, 64u * 1024);
  EXPECT_EQ(defaults.header_read_timeout_ms, 10'000u);
  EXPECT_EQ(defaults.body_read_timeout_ms, 60'000u);
  EXPECT_EQ(defaults.keep_alive_timeout_ms, 5'000u);
  EXPECT_EQ(defaults.send_timeout_ms, 60'000u);
  EXPECT_EQ(defaults.upstream_connect_timeout_ms, 5'000u);
  EXPECT_EQ(defaults.upstream_response_timeout_ms, 60'000u);
  EXPECT_EQ(defaults.upstream_max_idle_connections, 32u);
  EXPECT_EQ(defaults.websocket_idle_timeout_ms, 0u);
  EXPECT_EQ(defaults.websocket_max_lifetime_ms, 0u);
  EXPECT_EQ(defaults.asgi_send_high_water_bytes, 1024u * 1024);
  EXPECT_EQ(defaults.asgi_receive_high_water_bytes, 1024u * 1024);
  EXPECT_EQ(defaults.readiness_max_loop_lag_ms, 1'000u);
  EXPECT_EQ(defaults.streamlit_start_timeout_ms, 60'000u);
  EXPECT_EQ(defaults.streamlit_health_interval_ms, 1'000u);
  EXPECT_EQ(defaults.streamlit_health_timeout_ms, 2'000u);
  EXPECT_EQ(defaults.streamlit_health_failure_threshold, 3u);
  EXPECT_EQ(defaults.streamlit_stop_timeout_ms, 5'000u);
  EXPECT_EQ(defaults.shutdown_grace_ms, 20'000u);
}

// ---- assign: text forms ----

TEST(ConfigAssign, BoolAcceptsEveryDocumentedSpelling) {
  const key_info& key = *find_key("no_ui");
  for (const char* text : {"true", "TRUE", "1", "yes", "Yes", "on", "ON", " true "}) {
    settings values;
    key.assign(values, text);
    EXPECT_TRUE(values.no_ui) << text;
  }
  for (const char* text : {"false", "False", "0", "no", "NO", "off", "Off"}) {
    settings values;
    values.no_ui = true;
    key.assign(values, text);
    EXPECT_FALSE(values.no_ui) << text;
  }
}

TEST(ConfigAssign, BoolRejectsOtherText) {
  const key_info& key = *find_key("proxy_headers");
  for (const char* text : {"", "2", "maybe", "truee", "y"}) {
    settings values;
    EXPECT_THROW(key.assign(values, text), std::invalid_argument) << text;
  }
}

TEST(ConfigAssign, IntegerRejectsNegativeGarbageAndOverflow) {
  const key_info& key = *find_key("max_request_body_bytes");
  for (const char* text :
       {"-1", "abc", "", "12abc", "1.5", "+5", "0x10", "1 000", "18446744073709551616", "0"}) {
    settings values;
    EXPECT_THROW(key.assign(values, text), std::invalid_argument) << text;
  }
  settings values;
  key.assign(values, "18446744073709551615");
  EXPECT_EQ(values.max_request_body_bytes, 18446744073709551615u);
}

TEST(ConfigAssign, DurationRangeIsEnforced) {
  settings values;
  const key_info& timeout = *find_key("header_read_timeout_ms");
  EXPECT_THROW(timeout.assign(values, "0"), std::invalid_argument);
  EXPECT_THROW(timeout.assign(values, "86400001"), std::invalid_argument);
  timeout.assign(values, "86400000");
  EXPECT_EQ(values.header_read_timeout_ms, 86'400'000u);

  const key_info& grace = *find_key("shutdown_grace_ms");
  grace.assign(values, "0");
  EXPECT_EQ(values.shutdown_grace_ms, 0u);
}

TEST(ConfigAssign, PortAcceptsZeroTo65535) {
  const key_info& key = *find_key("port");
  settings values;
  key.assign(values, "0");
  EXPECT_EQ(values.port, 0);
  key.assign(values, "65535");
  EXPECT_EQ(values.port, 65535);
  try {
    key.assign(values, "65536");
    FAIL() << "65536 was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_STREQ(error.what(), "expected an integer from 0 to 65535");
  }
}

TEST(ConfigAssign, ListSplitsAndTrims) {
  const key_info& key = *find_key("forwarded_allow_ips");
  settings values;
  key.assign(values, " 10.0.0.0/8 ,::1,  * ");
  EXPECT_THAT(values.forwarded_allow_ips, ElementsAre("10.0.0.0/8", "::1", "*"));
  key.assign(values, "");
  EXPECT_TRUE(values.forwarded_allow_ips.empty());
  EXPECT_THROW(key.assign(values, "a,,b"), std::invalid_argument);
  EXPECT_THROW(key.assign(values, "a,"), std::invalid_argument);
}

TEST(ConfigAssign, LogLevelIgnoresCase) {
  const key_info& key = *find_key("log_level");
  settings values;
  key.assign(values, "DEBUG");
  EXPECT_EQ(values.log_level, "debug");
  for (const char* level : {"trace", "info", "warning", "error", "critical"}) {
    key.assign(values, level);
    EXPECT_EQ(values.log_level, level);
  }
}

TEST(ConfigAssign, LogLevelWarnIsStoredAsWarning) {
  const key_info& key = *find_key("log_level");
  settings values;
  key.assign(values, "warn");
  EXPECT_EQ(values.log_level, "warning");
}

TEST(ConfigAssign, LogLevelRejectsUnknownName) {
  const key_info& key = *find_key("log_level");
  settings values;
  try {
    key.assign(values, "verbose");
    FAIL() << "verbose was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_THAT(error.what(), HasSubstr("trace, debug, info, warning, warn, error or critical"));
  }
}

TEST(ConfigAssign, LogFormatIsJsonOrText) {
  const key_info& key = *find_key("log_format");
  settings values;
  key.assign(values, "text");
  EXPECT_EQ(values.log_format, "text");
  key.assign(values, "JSON");
  EXPECT_EQ(values.log_format, "json");
  EXPECT_THROW(key.assign(values, "xml"), std::invalid_argument);
}

// ---- load: precedence and sources ----

TEST_F(ConfigTest, NothingGivenUsesDefaults) {
  const loaded_settings loaded = load_with();
  const settings defaults;
  for (const key_info& key : keys()) {
    EXPECT_EQ(key.format(loaded.values), key.format(defaults)) << key.name;
    ASSERT_TRUE(loaded.sources.contains(key.name)) << key.name;
    EXPECT_EQ(loaded.sources.at(std::string(key.name)).kind, source_kind::default_value);
    EXPECT_EQ(loaded.sources.at(std::string(key.name)).where, "default");
  }
  EXPECT_TRUE(loaded.warnings.empty());
  EXPECT_TRUE(loaded.file.empty());
}

TEST_F(ConfigTest, FileOverridesDefault) {
  write_file("fluxlit.toml",
             "# FluxLit settings\n"
             "port = 9000\n"
             "\n"
             "api_prefix = \"/v1\"\n"
             "no_ui = true\n");
  const loaded_settings loaded = load_with();
  EXPECT_EQ(loaded.values.port, 9000);
  EXPECT_EQ(loaded.values.api_prefix, "/v1");
  EXPECT_TRUE(loaded.values.no_ui);
  EXPECT_EQ(loaded.sources.at("port").kind, source_kind::file);
  EXPECT_EQ(loaded.sources.at("port").where, "fluxlit.toml:2");
  EXPECT_EQ(loaded.sources.at("api_prefix").where, "fluxlit.toml:4");
  EXPECT_EQ(loaded.sources.at("no_ui").where, "fluxlit.toml:5");
  EXPECT_EQ(loaded.sources.at("host").where, "default");
  EXPECT_EQ(loaded.file, (directory_ / "fluxlit.toml").string());
}

TEST_F(ConfigTest, EnvironmentOverridesFile) {
  write_file("fluxlit.toml", "port = 9000\napi_prefix = \"/v1\"\nlog_level = \"debug\"\n");
  const loaded_settings loaded =
      load_with({}, {{"FLUXLIT_PORT", "9100"}, {"FLUXLIT_LOG_LEVEL", "error"}});
  EXPECT_EQ(loaded.values.port, 9100);
  EXPECT_EQ(loaded.values.log_level, "error");
  EXPECT_EQ(loaded.values.api_prefix, "/v1");
  EXPECT_EQ(loaded.sources.at("port").kind, source_kind::environment);
  EXPECT_EQ(loaded.sources.at("port").where, "FLUXLIT_PORT");
  EXPECT_EQ(loaded.sources.at("log_level").where, "FLUXLIT_LOG_LEVEL");
  EXPECT_EQ(loaded.sources.at("api_prefix").where, "fluxlit.toml:2");
}

TEST_F(ConfigTest, CliOverridesEnvironment) {
  write_file("fluxlit.toml", "port = 9000\nhost = \"0.0.0.0\"\n");
  const loaded_settings loaded =
      load_with({{"port", "9200"}, {"no_ui", "yes"}},
                {{"FLUXLIT_PORT", "9100"}, {"FLUXLIT_NO_UI", "false"}, {"FLUXLIT_HOST", "::"}});
  EXPECT_EQ(loaded.values.port, 9200);
  EXPECT_TRUE(loaded.values.no_ui);
  EXPECT_EQ(loaded.values.host, "::");
  EXPECT_EQ(loaded.sources.at("port").kind, source_kind::cli);
  EXPECT_EQ(loaded.sources.at("port").where, "--port");
  EXPECT_EQ(loaded.sources.at("no_ui").where, "--no-ui");
  EXPECT_EQ(loaded.sources.at("host").where, "FLUXLIT_HOST");
}

TEST_F(ConfigTest, CliTargetHasNoFlag) {
  const loaded_settings loaded =
      load_with({{"target", "service.main:api"}}, {{"FLUXLIT_TARGET", "other:app"}});
  EXPECT_EQ(loaded.values.target, "service.main:api");
  EXPECT_EQ(loaded.sources.at("target").where, "command line");
}

TEST_F(ConfigTest, EnvironmentTargetIsASetting) {
  const loaded_settings loaded = load_with({}, {{"FLUXLIT_TARGET", "other:app"}});
  EXPECT_EQ(loaded.values.target, "other:app");
  EXPECT_EQ(loaded.sources.at("target").where, "FLUXLIT_TARGET");
  EXPECT_TRUE(loaded.warnings.empty());
}

TEST_F(ConfigTest, EmptyEnvironmentValueCountsAsSet) {
  write_file("fluxlit.toml", "root_path = \"/proxy\"\n");
  const loaded_settings loaded = load_with({}, {{"FLUXLIT_ROOT_PATH", ""}});
  EXPECT_EQ(loaded.values.root_path, "");
  EXPECT_EQ(loaded.sources.at("root_path").where, "FLUXLIT_ROOT_PATH");
}

TEST_F(ConfigTest, UnknownCliKeyIsAProgrammingError) {
  EXPECT_THROW(load_with({{"prot", "1"}}), std::logic_error);
}

TEST_F(ConfigTest, PyprojectToolTableIsRead) {
  write_file("pyproject.toml",
             "[project]\n"
             "name = \"demo\"\n"
             "\n"
             "[tool.fluxlit]\n"
             "target = \"demo.main:app\"\n"
             "port = 8123\n");
  const loaded_settings loaded = load_with();
  EXPECT_EQ(loaded.values.target, "demo.main:app");
  EXPECT_EQ(loaded.values.port, 8123);
  EXPECT_EQ(loaded.sources.at("target").where, "pyproject.toml:[tool.fluxlit]:5");
  EXPECT_EQ(loaded.sources.at("port").where, "pyproject.toml:[tool.fluxlit]:6");
  EXPECT_EQ(loaded.file, (directory_ / "pyproject.toml").string());
  EXPECT_TRUE(loaded.warnings.empty());
}

TEST_F(ConfigTest, PyprojectWithoutToolTableIsNoConfigFile) {
  write_file("pyproject.toml", "[project]\nname = \"demo\"\n[tool.ruff]\nline-length = 100\n");
  const loaded_settings loaded = load_with();
  EXPECT_TRUE(loaded.file.empty());
  EXPECT_TRUE(loaded.warnings.empty());
  EXPECT_EQ(loaded.sources.at("port").where, "default");
}

TEST_F(ConfigTest, FluxlitTomlWinsOverPyprojectAndWarns) {
  write_file("fluxlit.toml", "port = 9000\n");
  write_file("pyproject.toml", "[tool.fluxlit]\nport = 8123\nhost = \"0.0.0.0\"\n");
  const loaded_settings loaded = load_with();
  EXPECT_EQ(loaded.values.port, 9000);
  EXPECT_EQ(loaded.values.host, "127.0.0.1");
  ASSERT_EQ(loaded.warnings.size(), 1u);
  EXPECT_THAT(loaded.warnings[0], HasSubstr("[tool.fluxlit]"));
  EXPECT_THAT(loaded.warnings[0], HasSubstr("pyproject.toml"));
  EXPECT_THAT(loaded.warnings[0], HasSubstr("is ignored"));
  EXPECT_THAT(loaded.warnings[0], HasSubstr("fluxlit.toml"));
}

TEST_F(ConfigTest, PlainPyprojectCausesNoWarning) {
  write_file("fluxlit.toml", "port = 9000\n");
  write_file("pyproject.toml", "[project]\nname = \"demo\"\n");
  EXPECT_TRUE(load_with().warnings.empty());
}

TEST_F(ConfigTest, BrokenPyprojectNextToFluxlitTomlOnlyWarns) {
  write_file("fluxlit.toml", "port = 9000\n");
  write_file("pyproject.toml", "[project\n");
  const loaded_settings loaded = load_with();
  EXPECT_EQ(loaded.values.port, 9000);
  ASSERT_EQ(loaded.warnings.size(), 1u);
  EXPECT_THAT(loaded.warnings[0], HasSubstr("pyproject.toml"));
}

TEST_F(ConfigTest, NativeTomlTypesAreAccepted) {
  write_file("fluxlit.toml",
             "max_header_bytes = 131072\n"
             "proxy_headers = false\n"
             "forwarded_allow_ips = [\"10.0.0.0/8\", \"::1\"]\n"
             "log_format = \"text\"\n");
  const loaded_settings loaded = load_with();
  EXPECT_EQ(loaded.values.max_header_bytes, 131072u);
  EXPECT_FALSE(loaded.values.proxy_headers);
  EXPECT_THAT(loaded.values.forwarded_allow_ips, ElementsAre("10.0.0.0/8", "::1"));
  EXPECT_EQ(loaded.values.log_format, "text");
}

TEST_F(ConfigTest, StringTomlValuesAreParsedAsText) {
  write_file("fluxlit.toml",
             "port = \"8080\"\n"
             "no_ui = \"yes\"\n"
             "forwarded_allow_ips = \"10.0.0.0/8, 192.168.0.0/16\"\n");
  const loaded_settings loaded = load_with();
  EXPECT_EQ(loaded.values.port, 8080);
  EXPECT_TRUE(loaded.values.no_ui);
  EXPECT_THAT(loaded.values.forwarded_allow_ips, ElementsAre("10.0.0.0/8", "192.168.0.0/16"));
}

TEST_F(ConfigTest, EmptyTomlArrayTrustsNoProxy) {
  write_file("fluxlit.toml", "forwarded_allow_ips = []\n");
  EXPECT_TRUE(load_with().values.forwarded_allow_ips.empty());
}

// ---- load: errors ----

TEST_F(ConfigTest, InvalidEnvironmentValueNamesKeySourceAndForm) {
  EXPECT_EQ(load_error({}, {{"FLUXLIT_PORT", "abc"}}),
            "invalid value \"abc\" for port from FLUXLIT_PORT: expected an integer from 0 to "
            "65535");
}

TEST_F(ConfigTest, InvalidCliValueNamesFlag) {
  const std::string message = load_error({{"no_ui", "maybe"}});
  EXPECT_THAT(message, HasSubstr("\"maybe\""));
  EXPECT_THAT(message, HasSubstr("no_ui"));
  EXPECT_THAT(message, HasSubstr("from --no-ui"));
  EXPECT_THAT(message, HasSubstr("expected true or false"));
}

TEST_F(ConfigTest, ClientLimitRejectsUnderOneSecond) {
  for (const char* key : {"send_timeout_ms", "body_read_timeout_ms"}) {
    for (const char* value : {"500", "-1", "abc"}) {
      const std::string message = load_error({{key, value}});
      EXPECT_THAT(message, HasSubstr("\"" + std::string(value) + "\""));
      EXPECT_THAT(message, HasSubstr(key));
      EXPECT_THAT(message, HasSubstr("expected 0 (no limit) or an integer from 1000 to 86400000"));
    }
  }
  const loaded_settings loaded =
      load_with({{"send_timeout_ms", "0"}, {"body_read_timeout_ms", "1000"}});
  EXPECT_EQ(loaded.values.send_timeout_ms, 0u);
  EXPECT_EQ(loaded.values.body_read_timeout_ms, 1000u);
}

TEST_F(ConfigTest, InvalidDurationNamesUnit) {
  const std::string message = load_error({{"keep_alive_timeout_ms", "-5"}});
  EXPECT_THAT(message, HasSubstr("\"-5\""));
  EXPECT_THAT(message, HasSubstr("keep_alive_timeout_ms from --keep-alive-timeout-ms"));
  EXPECT_THAT(message, HasSubstr("from 1 to 86400000 (milliseconds)"));
}

TEST_F(ConfigTest, OverflowingSizeIsRejected) {
  const std::string message =
      load_error({}, {{"FLUXLIT_MAX_REQUEST_BODY_BYTES", "99999999999999999999999"}});
  EXPECT_THAT(message, HasSubstr("\"99999999999999999999999\""));
  EXPECT_THAT(message, HasSubstr("FLUXLIT_MAX_REQUEST_BODY_BYTES"));
  EXPECT_THAT(message, HasSubstr("at least 1 (bytes)"));
}

TEST_F(ConfigTest, InvalidLogLevelListsChoices) {
  const std::string message = load_error({}, {{"FLUXLIT_LOG_LEVEL", "loud"}});
  EXPECT_THAT(message, HasSubstr("\"loud\" for log_level from FLUXLIT_LOG_LEVEL"));
  EXPECT_THAT(message, HasSubstr("expected one of trace"));
}

TEST_F(ConfigTest, ControlCharactersInValuesAreEscaped) {
  const std::string message = load_error({}, {{"FLUXLIT_PORT", "80\n\"x"}});
  EXPECT_THAT(message, HasSubstr("\"80\\n\\\"x\""));
}

TEST_F(ConfigTest, InvalidFileValueNamesLine) {
  write_file("fluxlit.toml", "host = \"0.0.0.0\"\nport = -1\n");
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr("invalid value -1 for port from fluxlit.toml:2"));
  EXPECT_THAT(message, HasSubstr("expected an integer from 0 to 65535"));
}

TEST_F(ConfigTest, WrongTomlTypeIsRejected) {
  struct type_case {
    std::string line;
    std::string expected;
  };
  const std::vector<type_case> cases = {
      {"port = 1.5", "invalid value 1.5 for port from fluxlit.toml:1: expected an integer"},
      {"host = 5", "invalid value 5 for host from fluxlit.toml:1: expected a string"},
      {"no_ui = 2", "for no_ui from fluxlit.toml:1: expected true or false"},
      {"forwarded_allow_ips = [1, 2]",
       "for forwarded_allow_ips from fluxlit.toml:1: expected "
       "an array of strings"},
      {"api_prefix = [\"/a\"]", "for api_prefix from fluxlit.toml:1: expected a string"},
      {"max_header_bytes = true", "for max_header_bytes from fluxlit.toml:1: expected an integer"},
      {"send_timeout_ms = 1.5",
       "for send_timeout_ms from fluxlit.toml:1: expected 0 (no limit) or an integer from 1000 "
       "to 86400000 (milliseconds)"},
  };
  for (const type_case& test : cases) {
    write_file("fluxlit.toml", test.line + "\n");
    EXPECT_THAT(load_error(), HasSubstr(test.expected)) << test.line;
  }
}

TEST_F(ConfigTest, MalformedTomlNamesFileLineAndColumn) {
  write_file("fluxlit.toml", "port = 8000\nhost = \"unterminated\n");
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr("invalid TOML in " + (directory_ / "fluxlit.toml").string()));
  EXPECT_THAT(message, HasSubstr("at line 2, column"));
}

TEST_F(ConfigTest, MalformedPyprojectIsAnError) {
  write_file("pyproject.toml", "[tool.fluxlit]\nport = = 1\n");
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr("invalid TOML in " + (directory_ / "pyproject.toml").string()));
  EXPECT_THAT(message, HasSubstr("at line 2"));
}

TEST_F(ConfigTest, ToolFluxlitMustBeATable) {
  write_file("pyproject.toml", "[tool]\nfluxlit = 3\n");
  const std::string message = load_error();
  EXPECT_THAT(message, HasSubstr("[tool.fluxlit]"));
  EXPECT_THAT(message, HasSubstr("must be a table"));
}

TEST_F(ConfigTest, LowerPrecedenceValuesAreNotParsed) {
  write_file("fluxlit.toml", "port = \"not a port\"\n");
  EXPECT_EQ(load_with({{"port", "8001"}}).values.port, 8001);
}

// ---- load: warnings ----

TEST_F(ConfigTest, UnknownFileKeyWarnsWithLocationAndHint) {
  write_file("fluxlit.toml", "port = 9000\nprot = 9001\n[server]\nworkers = 2\n");
  const loaded_settings loaded = load_with();
  ASSERT_EQ(loaded.warnings.size(), 2u);
  EXPECT_THAT(loaded.warnings,
              ::testing::Contains(HasSubstr("unknown key \"prot\" at fluxlit.toml:2 is ignored")));
  EXPECT_THAT(loaded.warnings, ::testing::Contains(HasSubstr("Did you mean port?")));
  EXPECT_THAT(loaded.warnings, ::testing::Contains(HasSubstr("unknown key \"server\"")));
}

TEST_F(ConfigTest, UnknownPyprojectKeyWarnsWithLocation) {
  write_file("pyproject.toml", "[tool.fluxlit]\napi-prefix = \"/v1\"\n");
  const loaded_settings loaded = load_with();
  ASSERT_EQ(loaded.warnings.size(), 1u);
  EXPECT_THAT(loaded.warnings[0], HasSubstr("\"api-prefix\" at pyproject.toml:[tool.fluxlit]:2"));
  EXPECT_THAT(loaded.warnings[0], HasSubstr("Did you mean api_prefix?"));
}

TEST_F(ConfigTest, UnknownEnvironmentVariableWarns) {
  const loaded_settings loaded = load_with(
      {}, {{"FLUXLIT_PROT", "1"}, {"FLUXLIT_COLOUR", "blue"}, {"HOME", "/root"}, {"PORT", "1"}});
  ASSERT_EQ(loaded.warnings.size(), 2u);
  EXPECT_THAT(loaded.warnings,
              ::testing::Contains(HasSubstr("unknown environment variable FLUXLIT_PROT")));
  EXPECT_THAT(loaded.warnings, ::testing::Contains(HasSubstr("Did you mean FLUXLIT_PORT?")));
  EXPECT_THAT(loaded.warnings,
              ::testing::Contains(HasSubstr("unknown environment variable FLUXLIT_COLOUR")));
}

TEST_F(ConfigTest, ChildProcessVariablesDoNotWarn) {
  const loaded_settings loaded = load_with({}, {{"FLUXLIT_API_BASE_URL", "http://127.0.0.1:1/api"},
                                                {"FLUXLIT_APP_DIR", "/srv/app"},
                                                {"FLUXLIT_STRICT", "1"}});
  EXPECT_TRUE(loaded.warnings.empty());
}

// ---- validate ----

TEST(ConfigValidate, DefaultsAreValid) {
  EXPECT_NO_THROW(validate(settings{}));
}

TEST(ConfigValidate, ApiPrefixShapes) {
  struct prefix_case {
    std::string prefix;
    std::string expected;  // empty: valid
  };
  const std::vector<prefix_case> cases = {
      {"/api", ""},
      {"/v1/api", ""},
      {"/a%20b", ""},
      {"/api-v1_x.y~z", ""},
      {"api", "api_prefix \"api\" must start with \"/\", for example \"/api\""},
      {"/api/", "api_prefix \"/api/\" must not end with \"/\". Use \"/api\""},
      {"/", "api_prefix \"/\" would send every path to the app"},
      {"", "api_prefix must not be empty"},
      {"//api", "empty segment"},
      {"/a/../b", "\".\" or \"..\" segments"},
      {"/./b", "\".\" or \"..\" segments"},
      {"/a b", "contains \" \", which is not allowed in a URL path"},
      {"/a?b", "contains \"?\""},
      {"/a#b", "contains \"#\""},
      {"/a%zz", "contains \"%\""},
      {"/a%2", "contains \"%\""},
  };
  for (const prefix_case& test : cases) {
    settings values;
    values.api_prefix = test.prefix;
    if (test.expected.empty()) {
      EXPECT_EQ(validate_error(values), "") << test.prefix;
    } else {
      EXPECT_THAT(validate_error(values), HasSubstr(test.expected)) << test.prefix;
    }
  }
}

TEST(ConfigValidate, RootPathShapes) {
  settings values;
  values.root_path = "/proxy/app";
  EXPECT_EQ(validate_error(values), "");
  values.root_path = "proxy";
  EXPECT_THAT(validate_error(values), HasSubstr("root_path \"proxy\" must start with \"/\", for "
                                                "example \"/proxy\""));
  values.root_path = "/proxy/";
  EXPECT_THAT(validate_error(values), HasSubstr("must not end with \"/\". Use \"/proxy\""));
  values.root_path = "/";
  EXPECT_THAT(validate_error(values), HasSubstr("root_path \"/\" must be left empty"));
}

TEST(ConfigValidate, HostShapes) {
  settings values;
  for (const char* host : {"0.0.0.0", "::", "127.0.0.1", "fe80::1", "fe80::1%lo", "::1%1"}) {
    values.host = host;
    EXPECT_EQ(validate_error(values), "") << host;
  }
  // The listener does no name lookup, so a host name is rejected before start-up.
  values.host = "localhost";
  EXPECT_THAT(validate_error(values), HasSubstr("\"localhost\" is not an IP address. Use "
                                                "127.0.0.1 (or ::1) for local access"));
  values.host = "127.0.0.1%lo";
  EXPECT_THAT(validate_error(values), HasSubstr("which only an IPv6 address may"));
  for (const char* host : {"fe80::1%", "fe80::1%no-such-interface", "fe80::1%999999"}) {
    values.host = host;
    EXPECT_THAT(validate_error(values), HasSubstr("no network interface of this machine")) << host;
  }
  values.host = std::string("127.0.0.1\0junk", 14);
  EXPECT_THAT(validate_error(values), HasSubstr("control characters"));
  values.host = "";
  EXPECT_THAT(validate_error(values), HasSubstr("host must not be empty"));
  values.host = "[::1]";
  EXPECT_THAT(validate_error(values), HasSubstr("without brackets, for example \"::1\""));
  values.host = "local host";
  EXPECT_THAT(validate_error(values), HasSubstr("white space"));
}

TEST(ConfigValidate, ForwardedAllowIpsEntriesMustParse) {
  settings values;
  values.forwarded_allow_ips = {"10.0.0.0/8", "*", "::1", "fd00::/8"};
  EXPECT_EQ(validate_error(values), "");
  values.forwarded_allow_ips = {"10.0.0.0/8", "proxy.local"};
  const std::string message = validate_error(values);
  EXPECT_THAT(message, HasSubstr("forwarded_allow_ips"));
  EXPECT_THAT(message, HasSubstr("\"proxy.local\""));
}

TEST(ConfigValidate, TargetSyntaxIsChecked) {
  settings values;
  values.target = "app";
  EXPECT_THAT(validate_error(values), HasSubstr("invalid target \"app\""));
}

TEST_F(ConfigTest, ValidateNamesTheSource) {
  const loaded_settings loaded = load_with({}, {{"FLUXLIT_API_PREFIX", "api"}});
  try {
    validate(loaded);
    FAIL() << "api_prefix \"api\" was accepted";
  } catch (const config_error& error) {
    EXPECT_THAT(error.what(), HasSubstr("api_prefix \"api\" must start with \"/\""));
    EXPECT_THAT(error.what(), HasSubstr("(set by FLUXLIT_API_PREFIX)"));
  }
}

TEST_F(ConfigTest, ValidateNamesTheFileLine) {
  write_file("fluxlit.toml", "\nforwarded_allow_ips = [\"10.0.0.1/8\"]\n");
  const loaded_settings loaded = load_with();
  try {
    validate(loaded);
    FAIL() << "10.0.0.1/8 was accepted";
  } catch (const config_error& error) {
    EXPECT_THAT(error.what(), HasSubstr("\"10.0.0.0/8\""));
    EXPECT_THAT(error.what(), HasSubstr("(set by fluxlit.toml:2)"));
  }
}

// ---- generated command-line options ----

class SettingFlagsTest : public ::testing::Test {
 protected:
  SettingFlagsTest() {
    cli::add_setting_flags(command_, given_);
    cli::add_target_argument(command_, given_);
  }

  void parse(std::vector<std::string> arguments) {
    // CLI11 takes the arguments in reverse order when given a vector.
    std::reverse(arguments.begin(), arguments.end());
    command_.parse(arguments);
  }

  CLI::App command_{"test"};
  cli_values given_;
};

TEST_F(SettingFlagsTest, OnlyPassedOptionsAreCollected) {
  parse({"--port", "9000", "--api-prefix=/v1", "pkg.main:app"});
  EXPECT_EQ(given_.size(), 3u);
  EXPECT_EQ(given_.at("port"), "9000");
  EXPECT_EQ(given_.at("api_prefix"), "/v1");
  EXPECT_EQ(given_.at("target"), "pkg.main:app");
}

TEST_F(SettingFlagsTest, NothingPassedCollectsNothing) {
  parse({});
  EXPECT_TRUE(given_.empty());
}

TEST_F(SettingFlagsTest, EveryFlaggedKeyHasAnOption) {
  for (const key_info& key : keys()) {
    if (key.cli_flag.empty()) {
      continue;
    }
    EXPECT_NO_THROW(command_.get_option(std::string(key.cli_flag))) << key.name;
  }
}

TEST_F(SettingFlagsTest, BoolFlagsAndNegations) {
  parse({"--no-ui", "--no-proxy-headers"});
  EXPECT_EQ(given_.at("no_ui"), "true");
  EXPECT_EQ(given_.at("proxy_headers"), "false");
}

TEST_F(SettingFlagsTest, BoolFlagTakesExplicitValue) {
  parse({"--no-ui=false", "--proxy-headers=off"});
  EXPECT_EQ(given_.at("no_ui"), "false");
  EXPECT_EQ(given_.at("proxy_headers"), "off");
}

TEST_F(SettingFlagsTest, LastOccurrenceWins) {
  parse({"--port", "1", "--port", "2", "--proxy-headers", "--no-proxy-headers"});
  EXPECT_EQ(given_.at("port"), "2");
  EXPECT_EQ(given_.at("proxy_headers"), "false");
}

TEST_F(SettingFlagsTest, RepeatedListOptionIsJoined) {
  parse({"--forwarded-allow-ips", "10.0.0.1", "--forwarded-allow-ips", "::1,fd00::/8", "app:app"});
  EXPECT_EQ(given_.at("forwarded_allow_ips"), "10.0.0.1,::1,fd00::/8");
  EXPECT_EQ(given_.at("target"), "app:app");
}

TEST_F(SettingFlagsTest, EmptyValueIsPassedThrough) {
  parse({"--root-path", ""});
  EXPECT_EQ(given_.at("root_path"), "");
}

TEST_F(SettingFlagsTest, HelpNamesUnitDefaultAndVariable) {
  const std::string help = command_.help();
  EXPECT_THAT(help, HasSubstr("--max-header-bytes"));
  EXPECT_THAT(help, HasSubstr("Unit: bytes. Default: 65536. Env: FLUXLIT_MAX_HEADER_BYTES."));
  EXPECT_THAT(help, HasSubstr("Unit: milliseconds. Default: 10000."));
  EXPECT_THAT(help, HasSubstr("--no-proxy-headers"));
}

TEST_F(SettingFlagsTest, ParsedFlagsFeedLoad) {
  parse({"--port", "9300", "--log-level", "debug"});
  const loaded_settings loaded = load(given_, {{"FLUXLIT_PORT", "9100"}}, "/nonexistent-dir");
  EXPECT_EQ(loaded.values.port, 9300);
  EXPECT_EQ(loaded.values.log_level, "debug");
  EXPECT_EQ(loaded.sources.at("port").where, "--port");
}

// ---- docs and example file ----

TEST(ConfigDocs, EveryKeyIsInTheReference) {
  const std::string docs = read_text(fs::path(FLUXLIT_TEST_SOURCE_DIR) / "docs/configuration.md");
  ASSERT_FALSE(docs.empty());
  for (const key_info& key : keys()) {
    EXPECT_THAT(docs, HasSubstr("`" + std::string(key.name) + "`"));
    EXPECT_THAT(docs, HasSubstr("`" + std::string(key.env) + "`"));
    if (!key.cli_flag.empty()) {
      EXPECT_THAT(docs, HasSubstr("`" + std::string(key.cli_flag) + "`"));
    }
  }
}

TEST(ConfigDocs, ReferenceRowGivesStability) {
  const std::string docs = read_text(fs::path(FLUXLIT_TEST_SOURCE_DIR) / "docs/configuration.md");
  ASSERT_FALSE(docs.empty());
  for (const key_info& key : keys()) {
    const std::string row_start = "| `" + std::string(key.name) + "` |";
    const auto row = docs.find(row_start);
    ASSERT_NE(row, std::string::npos) << key.name;
    const std::string line = docs.substr(row, docs.find('\n', row) - row);
    EXPECT_THAT(line, HasSubstr("| " + std::string(key.stability) + " |")) << key.name;
  }
}

TEST(ConfigKeys, StabilityIsKnown) {
  for (const key_info& key : keys()) {
    EXPECT_TRUE(key.stability == "stable" || key.stability == "experimental") << key.name;
  }
  EXPECT_EQ(find_key("port")->stability, "stable");
  EXPECT_EQ(find_key("reload_debounce_ms")->stability, "experimental");
}

TEST_F(ConfigTest, ExampleFileListsEveryKeyWithItsDefault) {
  const std::string example = read_text(fs::path(FLUXLIT_TEST_SOURCE_DIR) / "fluxlit.toml.example");
  ASSERT_FALSE(example.empty());

  // Uncommenting every "# key = value" line must give a file that loads to the defaults.
  std::istringstream lines(example);
  std::string uncommented;
  std::set<std::string> seen;
  for (std::string line; std::getline(lines, line);) {
    const std::size_t equals = line.find(" = ");
    if (!line.starts_with("# ") || equals == std::string::npos) {
      continue;
    }
    const std::string name = line.substr(2, equals - 2);
    if (std::all_of(name.begin(), name.end(), [](char c) { return std::islower(c) || c == '_'; })) {
      uncommented += line.substr(2) + "\n";
      seen.insert(name);
    }
  }
  for (const key_info& key : keys()) {
    EXPECT_TRUE(seen.contains(std::string(key.name))) << key.name << " is missing";
  }

  write_file("fluxlit.toml", uncommented);
  const loaded_settings loaded = load_with();
  EXPECT_TRUE(loaded.warnings.empty());
  const settings defaults;
  for (const key_info& key : keys()) {
    EXPECT_EQ(key.format(loaded.values), key.format(defaults)) << key.name;
    EXPECT_EQ(loaded.sources.at(std::string(key.name)).kind, source_kind::file) << key.name;
  }
}

// ---- address_range ----

boost::asio::ip::address address(const char* text) {
  return boost::asio::ip::make_address(text);
}

TEST(AddressRange, SingleIpv4Address) {
  const address_range range = address_range::parse("10.1.2.3");
  EXPECT_TRUE(range.contains(address("10.1.2.3")));
  EXPECT_FALSE(range.contains(address("10.1.2.4")));
  EXPECT_EQ(range.text(), "10.1.2.3");
}

TEST(AddressRange, Ipv4Cidr) {
  const address_range range = address_range::parse("192.168.0.0/16");
  EXPECT_TRUE(range.contains(address("192.168.0.0")));
  EXPECT_TRUE(range.contains(address("192.168.255.255")));
  EXPECT_FALSE(range.contains(address("192.169.0.1")));
  EXPECT_FALSE(range.contains(address("::1")));
}

TEST(AddressRange, OddPrefixLengths) {
  const address_range range = address_range::parse("10.0.0.128/25");
  EXPECT_TRUE(range.contains(address("10.0.0.200")));
  EXPECT_FALSE(range.contains(address("10.0.0.127")));
  const address_range everything_v4 = address_range::parse("0.0.0.0/0");
  EXPECT_TRUE(everything_v4.contains(address("203.0.113.9")));
  EXPECT_FALSE(everything_v4.contains(address("2001:db8::1")));
}

TEST(AddressRange, Ipv6AddressAndCidr) {
  EXPECT_TRUE(address_range::parse("::1").contains(address("::1")));
  EXPECT_FALSE(address_range::parse("::1").contains(address("127.0.0.1")));
  const address_range range = address_range::parse("fd00::/8");
  EXPECT_TRUE(range.contains(address("fd12:3456::1")));
  EXPECT_FALSE(range.contains(address("fe80::1")));
  EXPECT_FALSE(range.contains(address("10.0.0.1")));
  const address_range narrow = address_range::parse("2001:db8:0:1::/65");
  EXPECT_TRUE(narrow.contains(address("2001:db8:0:1:7fff::1")));
  EXPECT_FALSE(narrow.contains(address("2001:db8:0:1:8000::1")));
}

TEST(AddressRange, MappedPeerMatchesIpv4Range) {
  const address_range range = address_range::parse("127.0.0.1");
  EXPECT_TRUE(range.contains(address("::ffff:127.0.0.1")));
  EXPECT_FALSE(range.contains(address("::ffff:127.0.0.2")));
  EXPECT_TRUE(address_range::parse("10.0.0.0/8").contains(address("::ffff:10.9.8.7")));
}

TEST(AddressRange, MappedRangeMatchesIpv4Peer) {
  const address_range range = address_range::parse("::ffff:10.0.0.0/104");
  EXPECT_TRUE(range.contains(address("10.200.0.1")));
  EXPECT_TRUE(range.contains(address("::ffff:10.200.0.1")));
  EXPECT_FALSE(range.contains(address("11.0.0.1")));
  EXPECT_TRUE(address_range::parse("::ffff:192.0.2.1").contains(address("192.0.2.1")));
}

TEST(AddressRange, StarMatchesEverything) {
  const address_range range = address_range::parse("*");
  EXPECT_TRUE(range.contains(address("10.0.0.1")));
  EXPECT_TRUE(range.contains(address("2001:db8::1")));
  EXPECT_TRUE(range.contains(address("::ffff:1.2.3.4")));
}

TEST(AddressRange, InvalidInputIsRejected) {
  struct bad_case {
    std::string text;
    std::string expected;
  };
  const std::vector<bad_case> cases = {
      {"", "expected an IP address"},
      {"proxy.local", "expected an IP address"},
      {" 10.0.0.1", "expected an IP address"},
      {"10.0.0", "expected an IP address"},
      {"256.0.0.1", "expected an IP address"},
      {"**", "expected an IP address"},
      {"10.0.0.0/33", "from 0 to 32 for an IPv4 address"},
      {"::/129", "from 0 to 128 for an IPv6 address"},
      {"10.0.0.0/", "prefix length"},
      {"10.0.0.0/x", "prefix length"},
      {"10.0.0.0/-1", "prefix length"},
      {"10.0.0.0/0008", "prefix length"},
      {"10.0.0.1/8", "must be zero, for example \"10.0.0.0/8\""},
      {"fd00::1/8", "for example \"fd00::/8\""},
      {"fe80::1%eth0", "zone indexes"},
  };
  for (const bad_case& test : cases) {
    try {
      address_range::parse(test.text);
      ADD_FAILURE() << test.text << " was accepted";
    } catch (const config_error& error) {
      EXPECT_THAT(error.what(), HasSubstr("invalid address range \"" + test.text + "\""));
      EXPECT_THAT(error.what(), HasSubstr(test.expected)) << test.text;
    }
  }
}

}  // namespace
}  // namespace fluxlit::config
