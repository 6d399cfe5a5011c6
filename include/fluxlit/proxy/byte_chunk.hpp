// A relay buffer allocated without zero-filling: a read fills each byte before it is sent, and
// untouched pages cost no memory.
#pragma once

#include <cstddef>
#include <memory>

namespace fluxlit::proxy {

class byte_chunk {
 public:
  explicit byte_chunk(std::size_t size)
      : data_(std::make_unique_for_overwrite<char[]>(size)), size_(size) {}

  char* data() { return data_.get(); }
  std::size_t size() const { return size_; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t size_;
};

}  // namespace fluxlit::proxy
