#include "cli/doctor_checks.hpp"

#include <toml++/toml.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/serve_support.hpp"
#include "cli/text_table.hpp"
#include "config/value_text.hpp"
#include "fluxlit/config/warnings.hpp"

namespace fluxlit::cli {

namespace {

constexpr std::uint64_t mebibyte = 1024 * 1024;
constexpr std::string_view upload_limit_key = "server.maxUploadSize";

// Splits "1.36.0rc1" into {1, 36, 0}: the leading digits of each dot-separated part, up to the
// first part that does not start with a digit.
std::vector<unsigned> version_numbers(std::string_view text) {
  std::vector<unsigned> numbers;
  while (!text.empty()) {
    unsigned number = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (error != std::errc()) {
      break;
    }
    numbers.push_back(number);
    const std::size_t dot = text.find('.');
    const std::size_t digits_end = static_cast<std::size_t>(end - text.data());
    if (dot == std::string_view::npos || dot != digits_end) {
      break;
    }
    text.remove_prefix(dot + 1);
  }
  return numbers;
}

std::string format_bytes(std::uint64_t bytes) {
  std::string text = std::to_string(bytes) + " bytes";
  if (bytes >= mebibyte && bytes % mebibyte == 0) {
    text += " (" + std::to_string(bytes / mebibyte) + " MiB)";
  }
  return text;
}

std::optional<std::uint64_t> parse_megabytes(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
    return std::nullopt;
  }
  return value;
}

check_result pass(std::string name, std::string detail) {
  return {std::move(name), check_status::pass, std::move(detail)};
}

check_result warn(std::string name, std::string detail) {
  return {std::move(name), check_status::warn, std::move(detail)};
}

check_result fail(std::string name, std::string detail) {
  return {std::move(name), check_status::fail, std::move(detail)};
}

}  // namespace

std::string_view status_text(check_status status) {
  switch (status) {
    case check_status::pass:
      return "PASS";
    case check_status::warn:
      return "WARN";
    case check_status::fail:
      return "FAIL";
  }
  return "FAIL";
}

std::string format_check_rows(const std::vector<check_result>& results) {
  std::vector<table_row> rows;
  for (const check_result& result : results) {
    rows.push_back({std::string(status_text(result.status)), result.name, result.detail});
  }
  return format_table(rows);
}

std::optional<bool> version_at_least(std::string_view text, std::string_view minimum) {
  std::vector<unsigned> found = version_numbers(text);
  std::vector<unsigned> wanted = version_numbers(minimum);
  if (found.empty()) {
    return std::nullopt;
  }
  const std::size_t length = std::max(found.size(), wanted.size());
  found.resize(length, 0);
  wanted.resize(length, 0);
  return found >= wanted;
}

check_result check_package(const package_requirement& requirement, const package_version& found,
                           const std::string& python) {
  const std::string install =
      pip_install_hint(python, requirement.pip_name + ">=" + requirement.minimum);
  if (!found) {
    const std::string missing =
        requirement.display_name + " is not installed for " + python + ". ";
    if (!requirement.fallback.empty()) {
      return warn(requirement.check_name,
                  missing + requirement.fallback + ". Install it with: " + install);
    }
    return fail(requirement.check_name, missing + "Install it with: " + install);
  }
  const std::optional<bool> recent = version_at_least(*found, requirement.minimum);
  if (!recent) {
    return warn(requirement.check_name,
                requirement.display_name + " is installed, but its version (" +
                    (found->empty() ? std::string("none") : *found) +
                    ") cannot be compared with the minimum " + requirement.minimum);
  }
  if (!*recent) {
    return fail(requirement.check_name, requirement.display_name + " " + *found +
                                            " is older than " + requirement.minimum + ", " +
                                            requirement.reason + ". Upgrade it with: " + install);
  }
  return pass(requirement.check_name, requirement.display_name + " " + *found + " (" +
                                          requirement.minimum + " or newer is supported)");
}

upload_limit find_upload_limit(std::span<const supervisor::streamlit_config_file> files,
                               const std::map<std::string, std::string>& environment) {
  upload_limit limit;
  for (const supervisor::streamlit_config_file& file : files) {
    toml::table document;
    try {
      document = toml::parse(file.text, file.path);
    } catch (const toml::parse_error&) {
      continue;  // the streamlit_config check reports the invalid file
    }
    const toml::node* node = document.at_path(upload_limit_key).node();
    const auto* number = node != nullptr ? node->as_integer() : nullptr;
    if (number != nullptr && number->get() >= 0) {
      limit = {static_cast<std::uint64_t>(number->get()), file.path};
    }
  }
  const std::string variable = supervisor::streamlit_environment_name(upload_limit_key);
  if (const auto found = environment.find(variable); found != environment.end()) {
    if (const auto megabytes = parse_megabytes(found->second)) {
      limit = {*megabytes, variable};
    }
  }
  return limit;
}

check_result check_body_limit(std::uint64_t max_request_body_bytes, const upload_limit& limit) {
  const std::uint64_t upload_bytes = limit.megabytes * mebibyte;
  const std::string upload_text = "Streamlit's upload limit of " + std::to_string(limit.megabytes) +
                                  " MB (" + std::string(upload_limit_key) + ", from " +
                                  limit.source + ")";
  if (max_request_body_bytes < upload_bytes) {
    return warn("body_limit", "max_request_body_bytes " + format_bytes(max_request_body_bytes) +
                                  " is below " + upload_text +
                                  ", so larger uploads get FluxLit's 413 instead of Streamlit's "
                                  "message. Set max_request_body_bytes above " +
                                  std::to_string(upload_bytes) +
                                  " to leave room for multipart framing");
  }
  return pass("body_limit", "max_request_body_bytes " + format_bytes(max_request_body_bytes) +
                                " covers " + upload_text);
}

check_result check_port(const std::string& host, std::uint16_t port) {
  namespace asio = boost::asio;
  const std::string endpoint_text = host + ":" + std::to_string(port);
  if (port == 0) {
    return pass("port", "port 0: the system picks a free port at start");
  }
  boost::system::error_code error;
  const auto address = asio::ip::make_address(host, error);
  if (error) {
    return fail("port", "host \"" + host + "\" is not an IP address such as 127.0.0.1 or 0.0.0.0");
  }
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io);
  const asio::ip::tcp::endpoint wanted(address, port);
  acceptor.open(wanted.protocol(), error);
  if (!error) {
    // The same option as the listener, so a port in TIME_WAIT counts as free, as it is for run.
    acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), error);
  }
  if (!error) {
    acceptor.bind(wanted, error);
  }
  if (error) {
    return fail("port", "cannot bind " + endpoint_text + ": " + error.message() +
                            ". Stop the process that uses it, or choose another --port");
  }
  return pass("port", endpoint_text + " can be bound");
}

std::vector<check_result> check_streamlit_config(const config::settings& values,
                                                 const std::string& app_directory) {
  if (values.no_ui) {
    return {pass("streamlit_config", "not checked: no_ui is on, so Streamlit is not started")};
  }
  supervisor::streamlit_options options;
  options.base_url_path = values.root_path;
  options.working_directory = app_directory;
  const supervisor::streamlit_config_report report = supervisor::check_streamlit_config(options);
  std::vector<check_result> results;
  for (const std::string& problem : report.problems) {
    results.push_back(warn("streamlit_config", problem));
  }
  for (const supervisor::streamlit_config_conflict& conflict : report.conflicts) {
    results.push_back(warn("streamlit_config", supervisor::describe(conflict)));
  }
  if (results.empty()) {
    results.push_back(
        pass("streamlit_config", "no Streamlit setting conflicts with the flags FluxLit passes"));
  }
  return results;
}

std::vector<check_result> check_proxy_trust(const config::settings& values) {
  std::vector<check_result> results;
  const std::string trusted =
      "forwarded_allow_ips is " + config::detail::join_list(values.forwarded_allow_ips);
  if (const auto warning = config::check_forwarded_trust(values)) {
    results.push_back(warn("forwarded_trust", warning->code + " " + warning->message));
  } else if (values.proxy_headers) {
    results.push_back(pass("forwarded_trust", trusted));
  } else {
    results.push_back(pass("forwarded_trust", "proxy_headers is off"));
  }
  if (const auto warning = config::check_root_path_trust(values)) {
    results.push_back(warn("root_path_trust", warning->code + " " + warning->message));
  } else if (values.root_path.empty()) {
    results.push_back(pass("root_path_trust", "no root_path is set"));
  } else {
    results.push_back(
        pass("root_path_trust", "root_path \"" + values.root_path + "\" is set and " + trusted));
  }
  return results;
}

std::vector<supervisor::streamlit_config_file> read_streamlit_config_files(
    const std::string& app_directory) {
  std::vector<std::string> paths;
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    paths.push_back(std::string(home) + "/.streamlit/config.toml");
  }
  paths.push_back(app_directory + "/.streamlit/config.toml");
  std::vector<supervisor::streamlit_config_file> files;
  for (const std::string& path : paths) {
    std::ifstream input(path, std::ios::binary);
    if (!input) {
      continue;
    }
    std::ostringstream text;
    text << input.rdbuf();
    files.push_back({path, text.str()});
  }
  return files;
}

}  // namespace fluxlit::cli
