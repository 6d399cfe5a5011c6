// The command line, environment and addresses of one Streamlit child run.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fluxlit/supervisor/streamlit_supervisor.hpp"

namespace fluxlit::supervisor::detail {

// Returns "/<base>/_stcore/health" with slashes around the base path normalised.
std::string make_health_target(std::string_view base_url_path);

// Returns the child's argv: `<python> -m streamlit run <entry_script>` with the options of
// streamlit_flags() and `port`. --server.baseUrlPath is passed when options.base_url_path is not
// empty, or as an empty value when `pass_empty_base_url_path` is set, which overrides a base
// path from Streamlit's own configuration.
std::vector<std::string> make_streamlit_arguments(const streamlit_options& options,
                                                  std::uint16_t port,
                                                  bool pass_empty_base_url_path = false);

// Returns the parent's environment with the supervisor's defaults and options.environment applied.
std::vector<std::string> make_child_environment(const streamlit_options& options);

// Joins arguments with spaces, for log messages only (no shell quoting).
std::string join_arguments(const std::vector<std::string>& arguments);

// Binds port 0 on 127.0.0.1 to let the kernel choose a free port, then releases it for the
// child. Another process may take the port in between. The child then cannot bind, and it is
// restarted on a new port when it exits or when start_timeout kills it.
boost::system::error_code pick_free_loopback_port(const boost::asio::any_io_executor& executor,
                                                  std::uint16_t& port);

}  // namespace fluxlit::supervisor::detail
