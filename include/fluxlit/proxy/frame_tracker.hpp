// Follows WebSocket frame boundaries (RFC 6455 section 5.2) in a relayed byte stream, so the
// gateway can insert a close frame between frames without parsing or changing payloads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fluxlit::proxy {

class frame_tracker {
 public:
  // Consumes relayed bytes in order.
  void consume(std::string_view bytes);

  // True when the bytes consumed so far end exactly at the end of a frame.
  bool at_boundary() const { return header_length_ == 0 && payload_left_ == 0; }

 private:
  std::array<std::uint8_t, 14> header_{};
  std::size_t header_length_ = 0;  // bytes of the current header seen so far
  std::uint64_t payload_left_ = 0;
};

// Builds a close frame with `code` and `reason` (at most 123 bytes, cut otherwise). A frame
// from a client to a server must be masked; `mask` gives the masking key for that case.
std::string make_close_frame(std::uint16_t code, std::string_view reason, bool masked,
                             std::uint32_t mask = 0);

}  // namespace fluxlit::proxy
