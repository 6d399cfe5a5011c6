#include "fluxlit/proxy/frame_tracker.hpp"

#include <gtest/gtest.h>

namespace fluxlit::proxy {
namespace {

std::string unmasked_frame(std::size_t payload_size) {
  std::string frame;
  frame += static_cast<char>(0x82);
  if (payload_size < 126) {
    frame += static_cast<char>(payload_size);
  } else if (payload_size <= 0xffff) {
    frame += static_cast<char>(126);
    frame += static_cast<char>(payload_size >> 8);
    frame += static_cast<char>(payload_size & 0xff);
  } else {
    frame += static_cast<char>(127);
    for (int shift = 56; shift >= 0; shift -= 8) {
      frame += static_cast<char>((static_cast<std::uint64_t>(payload_size) >> shift) & 0xff);
    }
  }
  frame += std::string(payload_size, 'x');
  return frame;
}

TEST(FrameTrackerTest, StartsAtBoundary) {
  frame_tracker tracker;
  EXPECT_TRUE(tracker.at_boundary());
}

TEST(FrameTrackerTest, WholeFramesEndAtBoundary) {
  for (const std::size_t size : {0u, 5u, 125u, 126u, 300u, 70000u}) {
    frame_tracker tracker;
    tracker.consume(unmasked_frame(size));
    EXPECT_TRUE(tracker.at_boundary()) << "payload size " << size;
  }
}

TEST(FrameTrackerTest, SplitFrameIsInside) {
  const auto frame = unmasked_frame(300);
  frame_tracker tracker;
  for (std::size_t i = 0; i + 1 < frame.size(); ++i) {
    tracker.consume(frame.substr(i, 1));
    EXPECT_FALSE(tracker.at_boundary()) << "after byte " << i;
  }
  tracker.consume(frame.substr(frame.size() - 1));
  EXPECT_TRUE(tracker.at_boundary());
}

TEST(FrameTrackerTest, MaskedFrameCountsKey) {
  frame_tracker tracker;
  tracker.consume(make_close_frame(1000, "bye", true, 0x01020304));
  EXPECT_TRUE(tracker.at_boundary());
}

TEST(FrameTrackerTest, SeveralFramesInOneRead) {
  frame_tracker tracker;
  tracker.consume(unmasked_frame(10) + unmasked_frame(200) + unmasked_frame(3).substr(0, 2));
  EXPECT_FALSE(tracker.at_boundary());
  tracker.consume(std::string(3, 'x'));
  EXPECT_TRUE(tracker.at_boundary());
}

TEST(CloseFrameTest, UnmaskedLayout) {
  const auto frame = make_close_frame(1001, "going away", false);
  ASSERT_EQ(frame.size(), 2u + 2u + 10u);
  EXPECT_EQ(static_cast<unsigned char>(frame[0]), 0x88);
  EXPECT_EQ(static_cast<unsigned char>(frame[1]), 12);
  EXPECT_EQ(static_cast<unsigned char>(frame[2]), 0x03);
  EXPECT_EQ(static_cast<unsigned char>(frame[3]), 0xe9);
  EXPECT_EQ(frame.substr(4), "going away");
}

TEST(CloseFrameTest, MaskedPayloadIsMasked) {
  const auto frame = make_close_frame(1001, "", true, 0xffffffff);
  ASSERT_EQ(frame.size(), 2u + 4u + 2u);
  EXPECT_EQ(static_cast<unsigned char>(frame[1]), 0x80 | 2);
  EXPECT_EQ(static_cast<unsigned char>(frame[6]), 0x03 ^ 0xff);
  EXPECT_EQ(static_cast<unsigned char>(frame[7]), 0xe9 ^ 0xff);
}

TEST(CloseFrameTest, LongReasonIsCut) {
  const auto frame = make_close_frame(1000, std::string(200, 'r'), false);
  EXPECT_EQ(frame.size(), 2u + 125u);
}

}  // namespace
}  // namespace fluxlit::proxy
