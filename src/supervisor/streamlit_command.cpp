#include "supervisor/streamlit_command.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <utility>

#include "fluxlit/supervisor/streamlit_config.hpp"
#include "supervisor/child_process.hpp"

extern char** environ;

namespace fluxlit::supervisor::detail {

namespace asio = boost::asio;
using boost::system::error_code;

std::string make_health_target(std::string_view base_url_path) {
  while (!base_url_path.empty() && base_url_path.front() == '/') {
    base_url_path.remove_prefix(1);
  }
  while (!base_url_path.empty() && base_url_path.back() == '/') {
    base_url_path.remove_suffix(1);
  }
  std::string target = "/";
  if (!base_url_path.empty()) {
    target.append(base_url_path);
    target.push_back('/');
  }
  target.append("_stcore/health");
  return target;
}

std::vector<std::string> make_streamlit_arguments(const streamlit_options& options,
                                                  std::uint16_t port,
                                                  bool pass_empty_base_url_path) {
  std::vector<std::string> arguments{options.python, "-m", "streamlit", "run",
                                     options.entry_script};
  for (const streamlit_flag& flag : streamlit_flags(options)) {
    const bool is_port = flag.key == "server.port";
    if (flag.key == "server.baseUrlPath" && flag.value.empty() && !pass_empty_base_url_path) {
      continue;
    }
    arguments.push_back("--" + flag.key);
    arguments.push_back(is_port ? std::to_string(port) : flag.value);
  }
  return arguments;
}

std::vector<std::string> make_child_environment(const streamlit_options& options) {
  // Streamlit turns on its development mode when its package is not under site-packages, and in
  // that mode it rejects --server.port. PYTHONUNBUFFERED makes print() output reach the log as it
  // happens instead of in 8 KiB blocks. Entries in options.environment win over both.
  std::vector<std::pair<std::string, std::string>> overrides{
      {"STREAMLIT_GLOBAL_DEVELOPMENT_MODE", "false"},
      {"PYTHONUNBUFFERED", "1"},
  };
  overrides.insert(overrides.end(), options.environment.begin(), options.environment.end());
  return merge_environment(environ, overrides);
}

std::string join_arguments(const std::vector<std::string>& arguments) {
  std::string text;
  for (const std::string& argument : arguments) {
    if (!text.empty()) {
      text.push_back(' ');
    }
    text.append(argument);
  }
  return text;
}

error_code pick_free_loopback_port(const asio::any_io_executor& executor, std::uint16_t& port) {
  asio::ip::tcp::socket socket(executor);
  error_code error;
  socket.open(asio::ip::tcp::v4(), error);
  if (!error) {
    socket.bind({asio::ip::address_v4::loopback(), 0}, error);
  }
  asio::ip::tcp::endpoint endpoint;
  if (!error) {
    endpoint = socket.local_endpoint(error);
  }
  if (!error) {
    port = endpoint.port();
  }
  return error;
}

}  // namespace fluxlit::supervisor::detail
