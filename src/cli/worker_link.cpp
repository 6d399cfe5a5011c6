#include "cli/worker_link.hpp"

#include <charconv>
#include <vector>

namespace fluxlit::cli {
namespace {

// Splits `text` at `separator` into fields, keeping empty ones.
std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> fields;
  for (;;) {
    const auto at = text.find(separator);
    fields.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return fields;
    text.remove_prefix(at + 1);
  }
}

template <typename Number>
std::optional<Number> parse_number(std::string_view text) {
  Number value{};
  const auto* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc{} || stop != end) return std::nullopt;
  return value;
}

}  // namespace

std::string format_handoff(const worker_handoff& handoff) {
  return std::to_string(handoff.index) + ":" + std::to_string(handoff.listener_fd) + ":" +
         std::to_string(handoff.control_fd) + ":" + std::to_string(handoff.parent) + ":" +
         std::to_string(handoff.metrics_fd);
}

std::optional<worker_handoff> parse_handoff(std::string_view text) {
  const auto fields = split(text, ':');
  if (fields.size() != 5) return std::nullopt;
  const auto index = parse_number<unsigned>(fields[0]);
  const auto listener = parse_number<int>(fields[1]);
  const auto control = parse_number<int>(fields[2]);
  const auto parent = parse_number<pid_t>(fields[3]);
  const auto metrics = parse_number<int>(fields[4]);
  if (!index || !listener || !control || !parent || !metrics || *index == 0 || *listener < 0 ||
      *control < 0 || *parent <= 0 || *metrics < 0) {
    return std::nullopt;
  }
  return worker_handoff{*index, *listener, *control, *parent, *metrics};
}

std::string format_ui_update(const ui_update& update) {
  return std::string("ui ") + supervisor::to_string(update.state) + " " +
         std::to_string(update.port) + "\n";
}

std::optional<ui_update> parse_ui_update(std::string_view line) {
  const auto fields = split(line, ' ');
  if (fields.size() != 3 || fields[0] != "ui") return std::nullopt;
  const auto state = supervisor::parse_child_state(fields[1]);
  const auto port = parse_number<std::uint16_t>(fields[2]);
  if (!state || !port) return std::nullopt;
  return ui_update{*state, *port};
}

}  // namespace fluxlit::cli
