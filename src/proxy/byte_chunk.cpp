#include "fluxlit/proxy/byte_chunk.hpp"

#include <utility>
#include <vector>

namespace fluxlit::proxy {
namespace {

// Maximum of spare buffers per thread. Buffers released beyond it are freed, so a burst of
// concurrent transfers leaves at most this many behind.
constexpr std::size_t max_spare_chunks = 8;

thread_local std::vector<std::unique_ptr<char[]>> spare_chunks;

void release(std::unique_ptr<char[]> data, std::size_t size) {
  // A thread that never constructed a chunk has no room reserved, so it frees the buffer.
  if (data && size == byte_chunk::recycled_size && spare_chunks.size() < max_spare_chunks &&
      spare_chunks.size() < spare_chunks.capacity()) {
    spare_chunks.push_back(std::move(data));
  }
}

}  // namespace

byte_chunk::byte_chunk(std::size_t size) : size_(size) {
  // Room for every spare is reserved here, so release() never allocates. It runs in the
  // destructor, where a failed allocation would terminate the process.
  if (spare_chunks.capacity() < max_spare_chunks) spare_chunks.reserve(max_spare_chunks);
  if (size == recycled_size && !spare_chunks.empty()) {
    data_ = std::move(spare_chunks.back());
    spare_chunks.pop_back();
  } else {
    data_ = std::make_unique_for_overwrite<char[]>(size);
  }
}

byte_chunk::~byte_chunk() { release(std::move(data_), size_); }

byte_chunk& byte_chunk::operator=(byte_chunk&& other) noexcept {
  if (this == &other) return *this;
  release(std::exchange(data_, std::move(other.data_)), size_);
  size_ = other.size_;
  return *this;
}

}  // namespace fluxlit::proxy
