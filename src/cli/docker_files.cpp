#include "cli/docker_files.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "fluxlit/asgi/bridge.hpp"
#include "fluxlit/config/settings.hpp"

namespace fluxlit::cli {

namespace {

namespace fs = std::filesystem;

// The name of the build context that contains a checkout outside the project directory.
constexpr std::string_view source_context = "fluxlit-source";

// Paths of the copied binary and package, in the layout that `cmake --install` produces, so
// that the binary finds the package at ../share/fluxlit/python.
constexpr std::string_view copied_binary = ".fluxlit/bin/fluxlit";
constexpr std::string_view copied_package = ".fluxlit/share/fluxlit/python/fluxlit";

// The runtime libraries of a fluxlit binary built on Debian bookworm, by Debian package.
constexpr std::string_view runtime_packages =
    "python3 python3-venv libpython3.11 \\\n"
    "      libspdlog1.10 libfmt9 libtomlplusplus3 libprometheus-cpp-core1.0";

std::string header(const docker_options& options) {
  std::string build = "docker build";
  if (!options.fluxlit_checkout.empty() && checkout_in_context(options).empty()) {
    build += " --build-context " + std::string(source_context) + "=" + options.fluxlit_checkout;
  }
  const std::string port = std::to_string(options.port == 0 ? 8000 : options.port);
  return "# syntax=docker/dockerfile:1\n"
         "# Written by `fluxlit build`. Build and run the image from this directory:\n"
         "#   " +
         build + " -t " + options.image_name +
         " .\n"
         "#   docker run --init -p " +
         port + ":" + port + " " + options.image_name +
         "\n"
         "# --init gives the container an init process that reaps orphaned processes, because\n"
         "# FluxLit reaps only its Streamlit child.\n";
}

std::string copied_fluxlit_stage() {
  return "\n# Stage 1: the fluxlit binary and its Python package, which `fluxlit build` copied "
         "into\n"
         "# .fluxlit/. The binary links the shared libraries of Debian bookworm, so it must be a\n"
         "# bookworm build, like the runtime stage below. Run `fluxlit build --force` again after\n"
         "# upgrading FluxLit.\n"
         "FROM debian:bookworm-slim AS fluxlit\n"
         "COPY .fluxlit/ /opt/fluxlit/\n";
}

// A COPY line that takes `from` out of the checkout, inside the context or a named context.
std::string copy_from_checkout(const docker_options& options, const std::string& from,
                               const std::string& to) {
  const std::string relative = checkout_in_context(options);
  if (relative.empty()) {
    return "COPY --from=" + std::string(source_context) + " " + from + " " + to + "\n";
  }
  return "COPY " + (from == "." ? relative + "/" : relative + "/" + from) + " " + to + "\n";
}

std::string compiled_fluxlit_stage(const docker_options& options) {
  const std::string relative = checkout_in_context(options);
  const std::string origin = relative.empty() ? "the build context " + std::string(source_context) +
                                                    " (" + options.fluxlit_checkout + ")"
                                              : relative + "/";
  return "\n# Stage 1: compile FluxLit from the checkout in " + origin + ".\n" +
         "FROM debian:bookworm AS fluxlit\n"
         "WORKDIR /src\n" +
         copy_from_checkout(options, "scripts/install-deps.sh", "scripts/") +
         "RUN bash scripts/install-deps.sh\n" + copy_from_checkout(options, ".", "./") +
         "RUN cmake --preset release -DFLUXLIT_BUILD_TESTS=OFF \\\n"
         " && cmake --build --preset release \\\n"
         " && cmake --install build/release --prefix /opt/fluxlit\n";
}

std::string app_stage() {
  return "\n# Stage 2: the project's files without the build files, which the image does not "
         "need.\n"
         "FROM debian:bookworm-slim AS app\n"
         "COPY . /app\n"
         "RUN rm -rf /app/.fluxlit /app/Dockerfile /app/.dockerignore\n";
}

std::string runtime_stage(const docker_options& options) {
  std::string text =
      "\n# Stage 3: the image that runs the app as an unprivileged user.\n"
      "FROM debian:bookworm-slim\n"
      "RUN apt-get update \\\n"
      " && apt-get install -y --no-install-recommends " +
      std::string(runtime_packages) +
      " \\\n"
      " && rm -rf /var/lib/apt/lists/*\n"
      "# FastAPI and Streamlit come from the Python package index into a virtual environment.\n"
      "# FluxLit finds it through VIRTUAL_ENV and embeds its Python 3.11, the version it links.\n"
      "RUN python3 -m venv /opt/venv\n"
      "ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH\n"
      "RUN pip install --no-cache-dir \"fastapi>=0.90\" \"streamlit>=1.36\" httpx\n";
  if (options.has_requirements) {
    text +=
        "COPY requirements.txt /tmp/requirements.txt\n"
        "RUN pip install --no-cache-dir -r /tmp/requirements.txt\n";
  }
  text +=
      "COPY --from=fluxlit /opt/fluxlit/ /usr/local/\n"
      "COPY --from=app /app /app\n"
      "RUN useradd --system --create-home --home-dir /home/fluxlit fluxlit\n"
      "USER fluxlit\n"
      "WORKDIR /app\n";
  if (options.port != 0) {
    text += "EXPOSE " + std::to_string(options.port) + "\n";
  }
  text += "ENTRYPOINT [\"/usr/local/bin/fluxlit\", \"run\", \"--host\", \"0.0.0.0\"]\n";
  if (!options.target.empty()) {
    text += "CMD [" + nlohmann::json(options.target).dump() + "]\n";
  }
  return text;
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    throw fs::filesystem_error("cannot write the file", path,
                               std::make_error_code(std::errc::io_error));
  }
}

// Copies the package directory, without __pycache__ folders, in place of an older copy.
void copy_package(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::create_directories(to);
  for (auto entry = fs::recursive_directory_iterator(from);
       entry != fs::recursive_directory_iterator(); ++entry) {
    const fs::path relative = fs::relative(entry->path(), from);
    if (entry->is_directory() && entry->path().filename() == "__pycache__") {
      entry.disable_recursion_pending();
    } else if (entry->is_directory()) {
      fs::create_directories(to / relative);
    } else if (entry->is_regular_file()) {
      fs::copy_file(entry->path(), to / relative, fs::copy_options::overwrite_existing);
    }
  }
}

std::vector<std::string> copy_fluxlit(const fs::path& project) {
  const fs::path binary = fs::read_symlink("/proc/self/exe");
  const fs::path package = fs::path(asgi::python_package_directory()) / "fluxlit";
  fs::create_directories((project / copied_binary).parent_path());
  fs::copy_file(binary, project / copied_binary, fs::copy_options::overwrite_existing);
  copy_package(package, project / copied_package);
  return {"copied " + binary.string() + " to " + std::string(copied_binary),
          "copied " + package.string() + " to " + std::string(copied_package)};
}

}  // namespace

std::string checkout_in_context(const docker_options& options) {
  if (options.fluxlit_checkout.empty()) {
    return "";
  }
  const fs::path relative =
      fs::path(options.fluxlit_checkout).lexically_relative(options.project_directory);
  if (relative.empty() || *relative.begin() == "..") {
    return "";
  }
  return relative == "." ? "." : relative.generic_string();
}

std::string render_dockerfile(const docker_options& options) {
  const std::string fluxlit_stage =
      options.fluxlit_checkout.empty() ? copied_fluxlit_stage() : compiled_fluxlit_stage(options);
  return header(options) + fluxlit_stage + app_stage() + runtime_stage(options);
}

std::string render_dockerignore(const docker_options& options) {
  std::string text =
      "# Written by `fluxlit build`: files that the image does not need. Secrets in .env and\n"
      "# .streamlit/secrets.toml stay out of the image, so pass them at run time instead.\n"
      ".git\n.venv\nvenv\n**/__pycache__\n**/*.pyc\n.pytest_cache\n.mypy_cache\n.ruff_cache\n"
      ".env\n.streamlit/secrets.toml\n";
  const std::string relative = checkout_in_context(options);
  if (!options.fluxlit_checkout.empty()) {
    text += ".fluxlit\n";
  }
  if (!relative.empty()) {
    // The checkout's own build trees are large and of no use to the build stage.
    const std::string prefix = relative == "." ? "" : relative + "/";
    text += prefix + "build\n";
    if (!prefix.empty()) {
      text += prefix + ".git\n";
    }
  }
  return text;
}

std::string image_name_for(const std::string& directory) {
  fs::path path = fs::path(directory).lexically_normal();
  if (!path.has_filename()) {
    path = path.parent_path();  // "/srv/shop/" names the directory "shop"
  }
  std::string name;
  for (const char c : path.filename().string()) {
    const bool allowed =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (c >= 'A' && c <= 'Z') {
      name += static_cast<char>(c - 'A' + 'a');
    } else {
      name += allowed ? c : '-';
    }
  }
  return name.empty() ? "fluxlit-app" : name;
}

void check_fluxlit_checkout(const std::string& directory) {
  const fs::path root(directory);
  for (const char* required :
       {"CMakeLists.txt", "python/fluxlit/__init__.py", "scripts/install-deps.sh"}) {
    if (!fs::is_regular_file(root / required)) {
      throw config::config_error("--fluxlit-dir " + directory +
                                 " is not a FluxLit checkout: " + required +
                                 " is missing. Point it at a clone of the FluxLit repository");
    }
  }
}

std::vector<std::string> write_docker_files(const docker_options& options, bool overwrite) {
  const fs::path project(options.project_directory);
  for (const char* name : {"Dockerfile", ".dockerignore"}) {
    if (!overwrite && fs::exists(project / name)) {
      throw file_exists_error((project / name).string() +
                              " already exists. Pass --force to overwrite it");
    }
  }
  std::vector<std::string> written;
  if (options.fluxlit_checkout.empty()) {
    written = copy_fluxlit(project);
  }
  write_text(project / "Dockerfile", render_dockerfile(options));
  written.push_back("wrote Dockerfile");
  write_text(project / ".dockerignore", render_dockerignore(options));
  written.push_back("wrote .dockerignore");
  return written;
}

}  // namespace fluxlit::cli
