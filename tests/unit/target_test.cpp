// Tests for parsing the app target in its module form and its file form.
#include "fluxlit/config/target.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fluxlit/config/settings.hpp"

namespace fluxlit::config {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class TargetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "fluxlit-target-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
  }

  void TearDown() override {
    std::error_code ignored;  // a leftover temporary directory must not fail the test
    fs::remove_all(directory_, ignored);
  }

  void write_file(const fs::path& relative) {
    fs::create_directories((directory_ / relative).parent_path());
    std::ofstream(directory_ / relative) << "app = object()\n";
  }

  // Returns the message of the config_error that parse_target throws, or "" when none is thrown.
  std::string parse_error(std::string_view text) {
    try {
      parse_target(text, directory_.string());
    } catch (const config_error& error) {
      return error.what();
    }
    return "";
  }

  fs::path directory_;
};

TEST_F(TargetTest, ModuleForm) {
  const app_target target = parse_target("app:app", directory_.string());
  EXPECT_EQ(target.module, "app");
  EXPECT_EQ(target.attribute, "app");
  EXPECT_EQ(target.file, "");
  EXPECT_EQ(target.app_directory, directory_.string());
}

TEST_F(TargetTest, DottedModuleAndNestedAttribute) {
  const app_target target = parse_target("my_pkg.web.main:server.api", directory_.string());
  EXPECT_EQ(target.module, "my_pkg.web.main");
  EXPECT_EQ(target.attribute, "server.api");
}

TEST_F(TargetTest, ModuleFormDoesNotNeedAFile) {
  EXPECT_NO_THROW(parse_target("not_written_anywhere:app", directory_.string()));
}

TEST_F(TargetTest, SoftKeywordsAreValidNames) {
  EXPECT_NO_THROW(parse_target("match.case:type", directory_.string()));
}

TEST_F(TargetTest, NonAsciiNamesArePassedToPython) {
  EXPECT_NO_THROW(parse_target("appli_caf\xc3\xa9:app", directory_.string()));
}

TEST_F(TargetTest, RelativeFileFormIsMadeAbsolute) {
  write_file("src/service/main.py");
  const app_target target = parse_target("src/service/main.py:app", directory_.string());
  EXPECT_EQ(target.file, (directory_ / "src/service/main.py").string());
  EXPECT_EQ(target.app_directory, (directory_ / "src/service").string());
  EXPECT_EQ(target.module, "");
  EXPECT_EQ(target.attribute, "app");
  EXPECT_TRUE(fs::path(target.file).is_absolute());
}

TEST_F(TargetTest, FileInWorkingDirectory) {
  write_file("main.py");
  const app_target target = parse_target("main.py:api", directory_.string());
  EXPECT_EQ(target.file, (directory_ / "main.py").string());
  EXPECT_EQ(target.app_directory, directory_.string());
}

TEST_F(TargetTest, FilePathIsNormalised) {
  write_file("src/main.py");
  const app_target target = parse_target("./src/../src/main.py:app", directory_.string());
  EXPECT_EQ(target.file, (directory_ / "src/main.py").string());
}

TEST_F(TargetTest, AbsoluteFileForm) {
  write_file("main.py");
  const std::string absolute = (directory_ / "main.py").string();
  const app_target target = parse_target(absolute + ":app", "/somewhere/else");
  EXPECT_EQ(target.file, absolute);
  EXPECT_EQ(target.app_directory, directory_.string());
}

TEST_F(TargetTest, MissingFileIsNamed) {
  const std::string message = parse_error("src/missing.py:app");
  EXPECT_THAT(message, HasSubstr("invalid target \"src/missing.py:app\""));
  EXPECT_THAT(message, HasSubstr((directory_ / "src/missing.py").string()));
  EXPECT_THAT(message, HasSubstr("not found"));
}

TEST_F(TargetTest, DirectoryIsNotAFile) {
  fs::create_directories(directory_ / "odd.py");
  EXPECT_THAT(parse_error("odd.py:app"), HasSubstr("is not a regular file"));
}

TEST_F(TargetTest, MissingColonSuggestsModuleAttribute) {
  const std::string message = parse_error("app");
  EXPECT_THAT(message, HasSubstr("invalid target \"app\""));
  EXPECT_THAT(message, HasSubstr("module:attribute"));
  EXPECT_THAT(message, HasSubstr("\"app:app\""));
}

TEST_F(TargetTest, EmptyTargetIsRejected) {
  EXPECT_THAT(parse_error(""), HasSubstr("it is empty"));
}

TEST_F(TargetTest, InvalidAttributeIsRejected) {
  for (const char* text :
       {"app:", "app:1app", "app:class", "app:a..b", "app:a.", "app:.a", "app:my-app", "app:a b"}) {
    EXPECT_THAT(parse_error(text), HasSubstr("the attribute after \":\" must be a Python name"))
        << text;
  }
}

TEST_F(TargetTest, InvalidModuleIsRejected) {
  for (const char* text :
       {"my-app:app", "1app:app", ".app:app", "app.:app", "import:app", "a b:app", "app:app:app"}) {
    EXPECT_THAT(parse_error(text), HasSubstr("dotted Python module name")) << text;
  }
}

TEST_F(TargetTest, MissingModuleIsRejected) {
  EXPECT_THAT(parse_error(":app"), HasSubstr("the module before \":\" is missing"));
}

TEST_F(TargetTest, PathWithoutPyIsRejected) {
  write_file("src/app");
  EXPECT_THAT(parse_error("src/app:app"), HasSubstr("must name a .py file"));
}

TEST_F(TargetTest, SyntaxCheckDoesNotTouchFiles) {
  EXPECT_NO_THROW(check_target_syntax("does/not/exist.py:app"));
  EXPECT_THROW(check_target_syntax("does/not/exist.py"), config_error);
  EXPECT_THROW(check_target_syntax("app:1"), config_error);
}

}  // namespace
}  // namespace fluxlit::config
