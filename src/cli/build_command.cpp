// `fluxlit build`: writes a Dockerfile and .dockerignore for the project in the working
// directory. Docker itself is not run.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/command_support.hpp"
#include "cli/commands.hpp"
#include "cli/docker_files.hpp"
#include "cli/setting_flags.hpp"

namespace fluxlit::cli {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view build_footer =
    "The Dockerfile is a multi-stage build: FluxLit (copied, or compiled from --fluxlit-dir),\n"
    "the project's files, and a debian:bookworm-slim runtime with a virtual environment that\n"
    "holds FastAPI and Streamlit, running `fluxlit run --host 0.0.0.0` as an unprivileged user.\n"
    "Without --fluxlit-dir, this binary and its Python package are copied into .fluxlit/.\n"
    "Docker itself is not run.\n\n"
    "Exit status: 0 when the files were written, 1 when Dockerfile or .dockerignore exists\n"
    "without --force or a file cannot be written, 2 for a usage error, an invalid setting or an\n"
    "invalid --fluxlit-dir.";

struct build_options {
  config::cli_values given;
  std::string fluxlit_directory;
  bool force = false;
};

// Returns the target for the image's CMD: a file target relative to the project, which is
// /app in the image. Throws config::config_error for a file outside the project.
std::string image_target(const std::string& text, const fs::path& project) {
  const config::app_target target = config::parse_target(text, project.string());
  if (target.file.empty()) {
    return text;
  }
  const fs::path relative = fs::path(target.file).lexically_relative(project);
  if (relative.empty() || *relative.begin() == "..") {
    throw config::config_error("the target file " + target.file +
                               " is outside the project directory " + project.string() +
                               ", so it would not be in the image");
  }
  return relative.generic_string() + ":" + target.attribute;
}

docker_options make_docker_options(const build_options& options) {
  const fs::path project = fs::current_path();
  const config::loaded_settings loaded = load_checked_settings(options.given);
  docker_options docker;
  docker.project_directory = project.string();
  docker.image_name = image_name_for(docker.project_directory);
  docker.port = loaded.values.port;
  docker.has_requirements = fs::is_regular_file(project / "requirements.txt");
  if (options.given.contains("target")) {
    docker.target = image_target(loaded.values.target, project);
  }
  if (!options.fluxlit_directory.empty()) {
    const fs::path checkout = fs::absolute(options.fluxlit_directory).lexically_normal();
    docker.fluxlit_checkout = checkout.string();
    if (docker.fluxlit_checkout.size() > 1 && docker.fluxlit_checkout.back() == '/') {
      docker.fluxlit_checkout.pop_back();
    }
    check_fluxlit_checkout(docker.fluxlit_checkout);
  }
  return docker;
}

int run_build(const build_options& options) {
  const docker_options docker = make_docker_options(options);
  try {
    for (const std::string& line : write_docker_files(docker, options.force)) {
      std::printf("%s\n", line.c_str());
    }
  } catch (const file_exists_error& error) {
    std::fprintf(stderr, "fluxlit: build: %s\n", error.what());
    return exit_check_failed;
  } catch (const fs::filesystem_error& error) {
    std::fprintf(stderr, "fluxlit: build: %s\n", error.what());
    return exit_check_failed;
  }
  std::printf("Build the image with: docker build -t %s .\n", docker.image_name.c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace

void add_build_command(CLI::App& app, int& exit_status) {
  auto* command = app.add_subcommand(
      "build", "Write a Dockerfile and .dockerignore for the project in the working directory.");
  command->footer(std::string(build_footer));
  auto options = std::make_shared<build_options>();
  add_target_argument(*command, options->given);
  command
      ->add_option("--fluxlit-dir", options->fluxlit_directory,
                   "A FluxLit source checkout to compile in the image's build stage instead "
                   "of copying this binary. Inside the project it is part of the build "
                   "context; elsewhere the Dockerfile names it as the build context "
                   "fluxlit-source.")
      ->type_name("PATH");
  command->add_flag("--force", options->force,
                    "Overwrite an existing Dockerfile and .dockerignore.");
  command->callback([options, &exit_status] { exit_status = run_build(*options); });
}

}  // namespace fluxlit::cli
