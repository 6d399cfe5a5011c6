// Tests for what `fluxlit new` and `fluxlit build` write: project names, titles, the files of
// each profile, and the Dockerfile and .dockerignore of each way of getting FluxLit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "cli/docker_files.hpp"
#include "cli/project_templates.hpp"

namespace fluxlit::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::set<std::string> paths_of(const std::vector<project_file>& files) {
  std::set<std::string> paths;
  for (const project_file& file : files) {
    paths.insert(file.path);
  }
  return paths;
}

const project_file& file_named(const std::vector<project_file>& files, const std::string& path) {
  const auto found = std::find_if(files.begin(), files.end(),
                                  [&path](const project_file& file) { return file.path == path; });
  if (found == files.end()) {
    throw std::runtime_error("no file " + path);
  }
  return *found;
}

TEST(ProjectName, TitleCapitalisesWords) {
  EXPECT_EQ(title_from_name("my-app"), "My App");
  EXPECT_EQ(title_from_name("sales_dashboard.v2"), "Sales Dashboard V2");
  EXPECT_EQ(title_from_name("demo"), "Demo");
  EXPECT_EQ(title_from_name("a--b"), "A B");
  EXPECT_EQ(title_from_name("2024report"), "2024report");
}

TEST(ProjectName, ValidNamesPass) {
  for (const char* name : {"demo", "my-app", "App_2", "v1.2", "9lives"}) {
    EXPECT_EQ(check_project_name(name), "") << name;
  }
}

TEST(ProjectName, InvalidNamesAreRejectedWithReason) {
  EXPECT_THAT(check_project_name(""), HasSubstr("1 to 64 characters"));
  EXPECT_THAT(check_project_name(std::string(65, 'a')), HasSubstr("1 to 64 characters"));
  EXPECT_THAT(check_project_name("a/b"), HasSubstr("only letters, digits"));
  EXPECT_THAT(check_project_name("my app"), HasSubstr("only letters, digits"));
  EXPECT_THAT(check_project_name("-x"), HasSubstr("start with a letter or a digit"));
  EXPECT_THAT(check_project_name(".."), HasSubstr("start with a letter or a digit"));
  EXPECT_THAT(check_project_name(".hidden"), HasSubstr("start with a letter or a digit"));
}

TEST(ProjectFiles, MinimalProfileHasAppConfigAndTest) {
  const auto files = project_files("my-app", project_profile::minimal);
  EXPECT_EQ(paths_of(files),
            (std::set<std::string>{"app.py", "fluxlit.toml", "requirements.txt", "conftest.py",
                                   "README.md", ".gitignore", "tests/test_app.py"}));
  const std::string& app = file_named(files, "app.py").content;
  EXPECT_THAT(app, HasSubstr("app = FluxLit(\"My App\")"));
  EXPECT_THAT(app, HasSubstr("@app.api.get(\"/hello\")"));
  EXPECT_THAT(app, HasSubstr("@app.page(\"/\""));
  EXPECT_THAT(app, Not(HasSubstr("routers")));
  EXPECT_THAT(app, Not(HasSubstr("{{")));
  EXPECT_THAT(file_named(files, "tests/test_app.py").content,
              HasSubstr("from fluxlit.testing import TestClient, run_page"));
  EXPECT_THAT(file_named(files, "fluxlit.toml").content, HasSubstr("target = \"app:app\""));
}

TEST(ProjectFiles, ApiHeavyProfileAddsRouterAndModels) {
  const auto files = project_files("shop", project_profile::api_heavy);
  const auto paths = paths_of(files);
  EXPECT_TRUE(paths.contains("models.py"));
  EXPECT_TRUE(paths.contains("routers/__init__.py"));
  EXPECT_TRUE(paths.contains("routers/items.py"));
  const std::string& app = file_named(files, "app.py").content;
  EXPECT_THAT(app, HasSubstr("app.api.include_router(items.router)"));
  EXPECT_THAT(app, HasSubstr("@app.page(\"/items\""));
  EXPECT_THAT(file_named(files, "tests/test_app.py").content,
              HasSubstr("def test_created_item_can_be_read"));
}

TEST(ProjectFiles, DeployProfileAddsKubernetesManifest) {
  const auto files = project_files("My_App", project_profile::deploy);
  const std::string& manifest = file_named(files, "k8s/deployment.yaml").content;
  EXPECT_THAT(manifest, HasSubstr("name: my-app\n"));
  EXPECT_THAT(manifest, HasSubstr("image: my-app:latest"));
  EXPECT_THAT(manifest, HasSubstr("path: /api/readyz"));
  EXPECT_FALSE(paths_of(files).contains("models.py"));
}

docker_options copy_mode() {
  docker_options options;
  options.project_directory = "/work/shop";
  options.image_name = "shop";
  return options;
}

TEST(Dockerfile, CopyModeTakesFluxlitFromContext) {
  const std::string text = render_dockerfile(copy_mode());
  EXPECT_THAT(text,
              HasSubstr("FROM debian:bookworm-slim AS fluxlit\nCOPY .fluxlit/ /opt/fluxlit/\n"));
  EXPECT_THAT(text, HasSubstr("COPY --from=fluxlit /opt/fluxlit/ /usr/local/\n"));
  EXPECT_THAT(text, Not(HasSubstr("cmake")));
}

TEST(Dockerfile, RuntimeStageRunsAsUnprivilegedUser) {
  const std::string text = render_dockerfile(copy_mode());
  const std::size_t runtime = text.rfind("\nFROM debian:bookworm-slim\n");
  ASSERT_NE(runtime, std::string::npos);
  const std::string stage = text.substr(runtime);
  EXPECT_THAT(stage, HasSubstr("RUN python3 -m venv /opt/venv\n"));
  EXPECT_THAT(stage, HasSubstr("\"streamlit>=1.36\""));
  EXPECT_THAT(stage, HasSubstr("ENV VIRTUAL_ENV=/opt/venv"));
  EXPECT_THAT(stage, HasSubstr("USER fluxlit\n"));
  EXPECT_THAT(stage, HasSubstr("EXPOSE 8000\n"));
  EXPECT_THAT(
      stage,
      HasSubstr("ENTRYPOINT [\"/usr/local/bin/fluxlit\", \"run\", \"--host\", \"0.0.0.0\"]\n"));
  EXPECT_THAT(stage, Not(HasSubstr("CMD")));
}

TEST(Dockerfile, TargetAndRequirementsAppearWhenGiven) {
  docker_options options = copy_mode();
  options.target = "src/main.py:app";
  options.has_requirements = true;
  options.port = 9000;
  const std::string text = render_dockerfile(options);
  EXPECT_THAT(text, HasSubstr("CMD [\"src/main.py:app\"]\n"));
  EXPECT_THAT(text, HasSubstr("RUN pip install --no-cache-dir -r /tmp/requirements.txt\n"));
  EXPECT_THAT(text, HasSubstr("EXPOSE 9000\n"));
  EXPECT_THAT(text, HasSubstr("docker run --init -p 9000:9000 shop"));
}

TEST(Dockerfile, CheckoutInsideContextIsCompiled) {
  docker_options options = copy_mode();
  options.fluxlit_checkout = "/work/shop/vendor/fluxlit";
  EXPECT_EQ(checkout_in_context(options), "vendor/fluxlit");
  const std::string text = render_dockerfile(options);
  EXPECT_THAT(text, HasSubstr("FROM debian:bookworm AS fluxlit\n"));
  EXPECT_THAT(text, HasSubstr("COPY vendor/fluxlit/scripts/install-deps.sh scripts/\n"));
  EXPECT_THAT(text, HasSubstr("COPY vendor/fluxlit/ ./\n"));
  EXPECT_THAT(text, HasSubstr("cmake --install build/release --prefix /opt/fluxlit"));
  EXPECT_THAT(render_dockerignore(options), HasSubstr("vendor/fluxlit/build\n"));
  EXPECT_THAT(render_dockerignore(options), HasSubstr("\n.fluxlit\n"));
}

TEST(Dockerfile, CheckoutOutsideContextUsesNamedContext) {
  docker_options options = copy_mode();
  options.fluxlit_checkout = "/src/fluxlit";
  EXPECT_EQ(checkout_in_context(options), "");
  const std::string text = render_dockerfile(options);
  EXPECT_THAT(text,
              HasSubstr("docker build --build-context fluxlit-source=/src/fluxlit -t shop ."));
  EXPECT_THAT(text, HasSubstr("COPY --from=fluxlit-source scripts/install-deps.sh scripts/\n"));
  EXPECT_THAT(text, HasSubstr("COPY --from=fluxlit-source . ./\n"));
}

TEST(Dockerignore, KeepsSecretsAndCachesOut) {
  const std::string text = render_dockerignore(copy_mode());
  for (const char* entry :
       {".git\n", ".venv\n", "**/__pycache__\n", ".env\n", ".streamlit/secrets.toml\n"}) {
    EXPECT_THAT(text, HasSubstr(entry));
  }
  EXPECT_THAT(text, Not(HasSubstr("\n.fluxlit\n")));
}

TEST(ImageName, IsLowerCaseWithSafeCharacters) {
  EXPECT_EQ(image_name_for("/home/u/My App"), "my-app");
  EXPECT_EQ(image_name_for("/srv/shop/"), "shop");
  EXPECT_EQ(image_name_for("/"), "fluxlit-app");
}

}  // namespace
}  // namespace fluxlit::cli
