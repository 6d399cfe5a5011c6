#include "fluxlit/proxy/byte_chunk.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <utility>

namespace fluxlit::proxy {
namespace {

TEST(ByteChunk, ReleasedBufferServesNextChunk) {
  const char* first = nullptr;
  {
    byte_chunk chunk(byte_chunk::recycled_size);
    first = chunk.data();
  }
  // Had the buffer been freed, the allocator would likely return it for this block.
  const auto plain = std::make_unique<char[]>(byte_chunk::recycled_size);
  byte_chunk next(byte_chunk::recycled_size);
  EXPECT_NE(plain.get(), first);
  EXPECT_EQ(next.data(), first);
  EXPECT_EQ(next.size(), byte_chunk::recycled_size);
}

TEST(ByteChunk, OtherSizeNeverTakesSpareBuffer) {
  const char* spare = nullptr;
  {
    byte_chunk chunk(byte_chunk::recycled_size);
    spare = chunk.data();
  }
  // The spare buffer is still owned by the list, so the allocator cannot return it either.
  byte_chunk small(4096);
  EXPECT_NE(small.data(), spare);
  EXPECT_EQ(small.size(), 4096u);
  byte_chunk recycled(byte_chunk::recycled_size);
  EXPECT_EQ(recycled.data(), spare);
}

TEST(ByteChunk, MoveAssignmentReleasesOldBuffer) {
  byte_chunk target(byte_chunk::recycled_size);
  byte_chunk source(byte_chunk::recycled_size);
  const char* replaced = target.data();
  const char* moved = source.data();
  target = std::move(source);
  EXPECT_EQ(target.data(), moved);
  const auto plain = std::make_unique<char[]>(byte_chunk::recycled_size);
  EXPECT_NE(plain.get(), replaced);
  byte_chunk next(byte_chunk::recycled_size);
  EXPECT_EQ(next.data(), replaced);
}

TEST(ByteChunk, SelfMoveKeepsBuffer) {
  byte_chunk chunk(byte_chunk::recycled_size);
  const char* data = chunk.data();
  byte_chunk& alias = chunk;
  chunk = std::move(alias);
  EXPECT_EQ(chunk.data(), data);
  EXPECT_EQ(chunk.size(), byte_chunk::recycled_size);
}

TEST(ByteChunk, MovedFromChunkReleasesNothing) {
  const char* data = nullptr;
  {
    byte_chunk original(byte_chunk::recycled_size);
    data = original.data();
    byte_chunk owner(std::move(original));
    EXPECT_EQ(owner.data(), data);
  }
  // Only the owner gave the buffer back: two new chunks get it once.
  byte_chunk first(byte_chunk::recycled_size);
  byte_chunk second(byte_chunk::recycled_size);
  EXPECT_EQ(first.data(), data);
  EXPECT_NE(second.data(), data);
}

}  // namespace
}  // namespace fluxlit::proxy
