#include "fluxlit/proxy/frame_tracker.hpp"

#include <algorithm>

namespace fluxlit::proxy {
namespace {

// Total header size once the first two bytes are known: 2, plus 2 or 8 for the extended
// length, plus 4 for the masking key.
std::size_t header_size(std::uint8_t second_byte) {
  std::size_t size = 2;
  const auto short_length = second_byte & 0x7f;
  if (short_length == 126) size += 2;
  if (short_length == 127) size += 8;
  if (second_byte & 0x80) size += 4;
  return size;
}

std::uint64_t payload_size(const std::array<std::uint8_t, 14>& header) {
  const auto short_length = header[1] & 0x7f;
  if (short_length < 126) return short_length;
  const std::size_t bytes = short_length == 126 ? 2 : 8;
  std::uint64_t length = 0;
  for (std::size_t i = 0; i < bytes; ++i) length = (length << 8) | header[2 + i];
  return length;
}

}  // namespace

void frame_tracker::consume(std::string_view bytes) {
  while (!bytes.empty()) {
    if (payload_left_ > 0) {
      const auto skipped = std::min<std::uint64_t>(payload_left_, bytes.size());
      payload_left_ -= skipped;
      bytes.remove_prefix(static_cast<std::size_t>(skipped));
      continue;
    }
    header_[header_length_++] = static_cast<std::uint8_t>(bytes.front());
    bytes.remove_prefix(1);
    if (header_length_ >= 2 && header_length_ == header_size(header_[1])) {
      payload_left_ = payload_size(header_);
      header_length_ = 0;
    }
  }
}

std::string make_close_frame(std::uint16_t code, std::string_view reason, bool masked,
                             std::uint32_t mask) {
  // Control frames carry at most 125 payload bytes, two of them the code.
  constexpr std::size_t max_reason_bytes = 123;
  reason = reason.substr(0, std::min(reason.size(), max_reason_bytes));

  std::string payload;
  payload += static_cast<char>(code >> 8);
  payload += static_cast<char>(code & 0xff);
  payload += reason;

  std::string frame;
  frame += static_cast<char>(0x88);  // FIN and opcode 8 (close)
  frame += static_cast<char>((masked ? 0x80 : 0x00) | payload.size());
  if (masked) {
    const std::array<char, 4> key = {static_cast<char>(mask >> 24), static_cast<char>(mask >> 16),
                                     static_cast<char>(mask >> 8), static_cast<char>(mask)};
    frame.append(key.data(), key.size());
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] ^= key[i % 4];
  }
  frame += payload;
  return frame;
}

}  // namespace fluxlit::proxy
