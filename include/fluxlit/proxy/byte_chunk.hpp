// A relay buffer allocated without zero-filling: a read fills each byte before it is sent, and
// untouched pages cost no memory.
//
// A released buffer of `recycled_size` goes to a short per-thread list, and the next buffer of
// that size comes from there. Every proxied response and request body takes one, and a fresh
// 64 KiB block costs malloc, free and often page faults each time.
#pragma once

#include <cstddef>
#include <memory>

namespace fluxlit::proxy {

class byte_chunk {
 public:
  static constexpr std::size_t recycled_size = 64 * 1024;

  explicit byte_chunk(std::size_t size);
  ~byte_chunk();
  byte_chunk(byte_chunk&&) noexcept = default;
  byte_chunk& operator=(byte_chunk&& other) noexcept;

  char* data() { return data_.get(); }
  std::size_t size() const { return size_; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t size_;
};

}  // namespace fluxlit::proxy
