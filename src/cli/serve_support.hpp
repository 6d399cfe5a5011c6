// Pieces that `run` and `dev` share between a single serving process and a `--workers`
// parent: Streamlit's start options and the pages UI paths show when it cannot run.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "fluxlit/asgi/bridge.hpp"
#include "fluxlit/config/settings.hpp"
#include "fluxlit/config/target.hpp"
#include "fluxlit/supervisor/streamlit_supervisor.hpp"

namespace fluxlit::cli {

std::string html_escape(std::string_view text);

// The host part of a URL for `host` as a client would reach it: a wildcard address becomes
// loopback, and an IPv6 address gets brackets.
std::string display_host(const std::string& host);

// The oldest Streamlit with st.navigation, which FluxLit's entry script builds pages with.
inline constexpr std::string_view streamlit_minimum_version = "1.36";

// The shell command that installs a pip requirement, and the option that FluxLit then needs to
// use it (such as the virtual environment's interpreter), empty when none.
struct install_steps {
  std::string command;
  std::string start_option;
};

// Returns the steps that install `requirement` (a pip requirement such as "streamlit>=1.36")
// for `python`.
install_steps pip_install_steps(const std::string& python, const std::string& requirement);

// Returns the same steps as one line of text, for logs and doctor.
std::string pip_install_hint(const std::string& python, const std::string& requirement);

// Returns the commands that install a Streamlit that FluxLit supports for `python`.
std::string streamlit_install_hint(const std::string& python);

// The HTML page UI paths return when the interpreter has no Streamlit.
std::string streamlit_missing_page(const asgi::interpreter_info& info);

// The HTML page UI paths return with --no-ui.
std::string no_ui_page(const config::settings& settings);

// Logs once why UI paths get no Streamlit: --no-ui, or an interpreter without Streamlit.
// Returns false when Streamlit can run.
bool log_ui_unavailable(const config::settings& settings,
                        const asgi::interpreter_info& interpreter);

// Runs `io` until it stops. An exception that escapes a handler is a bug: it is logged and the
// loop goes on, because stopping would drop every connection and the Streamlit child with it.
void run_io_loop(boost::asio::io_context& io);

// The scheduling policy that apply_io_scheduling left the I/O thread with. `inherited` means
// that the process started under a policy other than the normal one, which it keeps.
enum class io_policy { normal, batch, inherited };

// Applies the io_scheduling setting to the calling thread, the I/O thread, once the Python
// thread exists.
//
// When both threads share one CPU, every wake-up of the I/O thread (a request arrived, a
// response is ready) preempts the Python thread mid-request under the normal policy, which
// costs two context switches per message. Under SCHED_BATCH the I/O thread's wake-ups wait
// for the Python thread to sleep or use up its time slice, so one switch serves a whole batch.
// With more than one CPU the kernel puts a woken thread on an idle CPU instead, and "auto"
// keeps the normal policy there.
io_policy apply_io_scheduling(const std::string& mode);

// The options of the Streamlit child for an app served on `public_port`.
supervisor::streamlit_options streamlit_start_options(const config::settings& settings,
                                                      const config::app_target& target,
                                                      const asgi::interpreter_info& interpreter,
                                                      std::uint16_t public_port);

}  // namespace fluxlit::cli
