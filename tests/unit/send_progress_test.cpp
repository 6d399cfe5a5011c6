#include "gateway/send_progress.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

namespace fluxlit::gateway {
namespace {

using namespace std::chrono_literals;
using clock = send_progress::clock;

constexpr auto limit = 1000ms;

tcp_counts waiting(std::uint64_t acknowledged) {
  return {acknowledged, 4096, 0};
}

TEST(SendProgressTest, SilentClientStallsAfterLimit) {
  send_progress progress;
  const auto start = clock::time_point{} + 1h;
  EXPECT_FALSE(progress.stalled(waiting(100), start, limit));
  EXPECT_FALSE(progress.stalled(waiting(100), start + 500ms, limit));
  EXPECT_FALSE(progress.stalled(waiting(100), start + 999ms, limit));
  EXPECT_TRUE(progress.stalled(waiting(100), start + 1000ms, limit));
}

TEST(SendProgressTest, AcknowledgedBytesRestartCount) {
  send_progress progress;
  const auto start = clock::time_point{} + 1h;
  EXPECT_FALSE(progress.stalled(waiting(100), start, limit));
  EXPECT_FALSE(progress.stalled(waiting(101), start + 900ms, limit));
  EXPECT_FALSE(progress.stalled(waiting(101), start + 1800ms, limit));
  EXPECT_TRUE(progress.stalled(waiting(101), start + 1900ms, limit));
}

TEST(SendProgressTest, NothingWaitingNeverStalls) {
  send_progress progress;
  const auto start = clock::time_point{} + 1h;
  const tcp_counts idle{100, 0, 0};
  EXPECT_FALSE(progress.stalled(idle, start, limit));
  EXPECT_FALSE(progress.stalled(idle, start + 5s, limit));
  // Bytes found waiting only now may have started to wait just before, so they get a whole
  // limit from this check.
  EXPECT_FALSE(progress.stalled(waiting(100), start + 6s, limit));
  EXPECT_FALSE(progress.stalled(waiting(100), start + 6500ms, limit));
  EXPECT_TRUE(progress.stalled(waiting(100), start + 7s, limit));
  // Once nothing waits, the count starts over.
  EXPECT_FALSE(progress.stalled(idle, start + 8s, limit));
  EXPECT_FALSE(progress.stalled(waiting(100), start + 8500ms, limit));
  EXPECT_FALSE(progress.stalled(waiting(100), start + 9s, limit));
  EXPECT_TRUE(progress.stalled(waiting(100), start + 9500ms, limit));
}

TEST(SendProgressTest, UnacknowledgedSegmentsCountAsWaiting) {
  send_progress progress;
  const auto start = clock::time_point{} + 1h;
  const tcp_counts in_flight{100, 0, 3};
  EXPECT_FALSE(progress.stalled(in_flight, start, limit));
  EXPECT_TRUE(progress.stalled(in_flight, start + 2s, limit));
}

TEST(SendProgressTest, ClosedConnectionNeverStalls) {
  // After a reset from the client the kernel may still count unsent bytes.
  send_progress progress;
  const auto start = clock::time_point{} + 1h;
  tcp_counts reset = waiting(100);
  reset.open = false;
  EXPECT_FALSE(reset.waiting());
  EXPECT_FALSE(progress.stalled(reset, start, limit));
  EXPECT_FALSE(progress.stalled(reset, start + 5s, limit));
}

TEST(SendProgressTest, FirstCheckStartsCount) {
  // A connection checked for the first time may have stalled for a while already. It still
  // gets a whole limit, so that nothing is closed early.
  send_progress progress;
  const auto start = clock::time_point{} + 1h;
  EXPECT_FALSE(progress.stalled(waiting(0), start, limit));
  EXPECT_TRUE(progress.stalled(waiting(0), start + limit, limit));
}

TEST(SendProgressTest, QueueReadOnlyFromTcpSockets) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  EXPECT_FALSE(read_tcp_counts(pair[0]).has_value());
  ::close(pair[0]);
  ::close(pair[1]);

  const int tcp = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(tcp, 0);
  const auto queue = read_tcp_counts(tcp);
  ASSERT_TRUE(queue.has_value());
  EXPECT_FALSE(queue->waiting());
  ::close(tcp);
}

}  // namespace
}  // namespace fluxlit::gateway
