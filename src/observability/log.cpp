#include "fluxlit/observability/log.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

namespace fluxlit::observability {
namespace {

// Writes one JSON object per line: ts (UTC, milliseconds), level, source, msg.
class json_formatter final : public spdlog::formatter {
 public:
  explicit json_formatter(unsigned worker) : worker_(worker) {}

  void format(const spdlog::details::log_msg& message, spdlog::memory_buf_t& out) override {
    using namespace std::chrono;
    const auto since_epoch = message.time.time_since_epoch();
    const auto seconds_part = duration_cast<seconds>(since_epoch);
    const auto millis = duration_cast<milliseconds>(since_epoch - seconds_part).count();
    const std::time_t seconds_value = seconds_part.count();
    std::tm utc{};
    gmtime_r(&seconds_value, &utc);
    char stamp[40];
    const auto stamp_length = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    std::string timestamp(stamp, stamp_length);
    timestamp += '.';
    timestamp += std::to_string(1000 + millis).substr(1);
    timestamp += 'Z';

    const auto level_name = spdlog::level::to_string_view(message.level);
    nlohmann::json line = {
        {"ts", timestamp},
        {"level", std::string(level_name.data(), level_name.size())},
        {"source", std::string(message.logger_name.data(), message.logger_name.size())},
        {"msg", std::string(message.payload.data(), message.payload.size())},
    };
    if (worker_ != 0) line["worker"] = worker_;
    // Replace invalid UTF-8 from a child's output instead of throwing from the logger.
    const auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out.append(text.data(), text.data() + text.size());
    out.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_formatter>(worker_);
  }

 private:
  unsigned worker_;
};

struct logging_state {
  std::mutex mutex;
  spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  spdlog::level::level_enum level = spdlog::level::info;
};

logging_state& state() {
  static logging_state instance;
  return instance;
}

}  // namespace

void configure_logging(log_format format, spdlog::level::level_enum level, unsigned worker) {
  auto& shared = state();
  std::lock_guard lock(shared.mutex);
  if (format == log_format::json) {
    shared.sink->set_formatter(std::make_unique<json_formatter>(worker));
  } else {
    const auto source = worker == 0 ? std::string("[%n]") : "[%n w" + std::to_string(worker) + "]";
    shared.sink->set_formatter(
        std::make_unique<spdlog::pattern_formatter>("%H:%M:%S.%e %^%-5l%$ " + source + " %v"));
  }
  shared.level = level;
  spdlog::apply_all(
      [level](const std::shared_ptr<spdlog::logger>& each) { each->set_level(level); });
}

std::shared_ptr<spdlog::logger> logger(std::string_view source) {
  const std::string name(source);
  if (auto existing = spdlog::get(name)) return existing;

  auto& shared = state();
  std::lock_guard lock(shared.mutex);
  if (auto existing = spdlog::get(name)) return existing;
  auto created = std::make_shared<spdlog::logger>(name, shared.sink);
  created->set_level(shared.level);
  created->flush_on(spdlog::level::trace);
  spdlog::register_logger(created);
  return created;
}

}  // namespace fluxlit::observability
