// `fluxlit run --workers N`: the parent process that owns the port and the Streamlit child and
// keeps N worker processes serving.
#pragma once

#include "fluxlit/config/settings.hpp"

namespace fluxlit::cli {

// Binds the port, starts each worker (this binary again, with the same arguments, see
// worker_link.hpp), starts Streamlit and relays its state to the workers. A worker that exits
// is logged and replaced. One that fails while starting stops the whole server with its exit
// status when no other worker serves. SIGTERM or SIGINT drains every worker, then stops
// Streamlit. Returns the process's exit status.
int run_worker_parent(config::loaded_settings loaded);

}  // namespace fluxlit::cli
