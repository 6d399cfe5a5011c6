// Logging set-up: named spdlog loggers that share one sink and one format.
#pragma once

#include <memory>
#include <string_view>

#include <spdlog/spdlog.h>

namespace fluxlit::observability {

enum class log_format { text, json };

// Configures the shared sink (stderr) and level; call once at start-up before any logger is used.
// JSON lines carry "ts", "level", "source" (the logger's name) and "msg". A worker process of
// `--workers` passes its number as `worker`; JSON lines then carry "worker" too, and text lines
// show it after the source, as in "[fluxlit w2]".
void configure_logging(log_format format, spdlog::level::level_enum level, unsigned worker = 0);

// Returns the logger whose name becomes the "source" field: "fluxlit", "access", "streamlit",
// "app". Creates it on first use with the shared sink; safe from any thread.
std::shared_ptr<spdlog::logger> logger(std::string_view source);

}  // namespace fluxlit::observability
