// The memory region where `--workers` workers publish their metrics, and the joined text.
#include "fluxlit/observability/metrics_board.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "fluxlit/observability/metrics.hpp"

namespace fluxlit::observability {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsBoard, StartsEmpty) {
  const auto board = metrics_board::create(3);
  EXPECT_EQ(board->slots(), 3u);
  EXPECT_TRUE(board->read().empty());
}

TEST(MetricsBoard, ReadsWhatEachSlotPublished) {
  const auto board = metrics_board::create(3);
  board->publish(0, "first\n");
  board->publish(2, "third\n");
  board->publish(0, "first again\n");
  const auto texts = board->read();
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(texts[0].first, 0u);
  EXPECT_EQ(texts[0].second, "first again\n");
  EXPECT_EQ(texts[1].first, 2u);
  EXPECT_EQ(texts[1].second, "third\n");

  board->clear(2);
  ASSERT_EQ(board->read().size(), 1u);
  board->publish(7, "beyond the last slot\n");  // ignored
  EXPECT_EQ(board->read().size(), 1u);
}

TEST(MetricsBoard, ClearRecoversSlotOfDeadWriter) {
  const auto board = metrics_board::create(1);
  // A writer that died in the middle of a write leaves the sequence odd.
  auto* sequence = static_cast<std::atomic<std::uint64_t>*>(
      ::mmap(nullptr, sizeof(std::uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, board->fd(), 0));
  ASSERT_NE(static_cast<void*>(sequence), MAP_FAILED);
  sequence->store(7);
  EXPECT_TRUE(board->read().empty());
  board->clear(0);
  board->publish(0, "replacement\n");
  const auto texts = board->read();
  ASSERT_EQ(texts.size(), 1u);
  EXPECT_EQ(texts[0].second, "replacement\n");
  ::munmap(sequence, sizeof(std::uint64_t));
}

TEST(MetricsBoard, CutsLongTextAfterLastWholeLine) {
  const auto board = metrics_board::create(1);
  const std::string line(1000, 'x');
  std::string text;
  while (text.size() <= metrics_board::slot_bytes) text += line + "\n";
  board->publish(0, text);
  const auto texts = board->read();
  ASSERT_EQ(texts.size(), 1u);
  const auto& stored = texts[0].second;
  EXPECT_LE(stored.size(), metrics_board::slot_bytes);
  EXPECT_EQ(stored.size() % (line.size() + 1), 0u);
  EXPECT_EQ(stored.back(), '\n');
}

TEST(MetricsBoard, SharedWithAChildProcess) {
  const auto board = metrics_board::create(2);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child maps the region again through a copy of the descriptor, as a worker does.
    const auto attached = metrics_board::attach(::dup(board->fd()));
    attached->publish(1, "from the child\n");
    ::_exit(attached->slots() == 2 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const auto texts = board->read();
  ASSERT_EQ(texts.size(), 1u);
  EXPECT_EQ(texts[0].first, 1u);
  EXPECT_EQ(texts[0].second, "from the child\n");
}

TEST(MetricsBoard, AttachRejectsOtherDescriptors) {
  int pipe_ends[2];
  ASSERT_EQ(::pipe(pipe_ends), 0);
  EXPECT_THROW(metrics_board::attach(pipe_ends[0]), std::system_error);
  ::close(pipe_ends[1]);
}

TEST(JoinWorkerMetrics, LabelsEverySampleWithItsWorker) {
  const std::string first =
      "# HELP requests_total Finished requests\n"
      "# TYPE requests_total counter\n"
      "requests_total{route=\"api\",status=\"2xx\"} 5\n"
      "# HELP open_connections Open connections\n"
      "# TYPE open_connections gauge\n"
      "open_connections 2\n";
  const std::string second =
      "# HELP requests_total Finished requests\n"
      "# TYPE requests_total counter\n"
      "requests_total{route=\"api\",status=\"2xx\"} 7\n"
      "requests_total{} 1\n"
      "# HELP open_connections Open connections\n"
      "# TYPE open_connections gauge\n"
      "open_connections 0\n";
  const auto joined = join_worker_metrics({{0, first}, {1, second}});
  EXPECT_EQ(joined,
            "# HELP requests_total Finished requests\n"
            "# TYPE requests_total counter\n"
            "requests_total{worker=\"1\",route=\"api\",status=\"2xx\"} 5\n"
            "requests_total{worker=\"2\",route=\"api\",status=\"2xx\"} 7\n"
            "requests_total{worker=\"2\"} 1\n"
            "# HELP open_connections Open connections\n"
            "# TYPE open_connections gauge\n"
            "open_connections{worker=\"1\"} 2\n"
            "open_connections{worker=\"2\"} 0\n");
}

TEST(JoinWorkerMetrics, KeepsFamiliesThatOnlyLaterWorkersHave) {
  const auto joined = join_worker_metrics(
      {{0, "# TYPE a counter\na 1\n"}, {2, "# TYPE a counter\na 2\n# TYPE b counter\nb 3\n"}});
  EXPECT_EQ(joined,
            "# TYPE a counter\na{worker=\"1\"} 1\na{worker=\"3\"} 2\n"
            "# TYPE b counter\nb{worker=\"3\"} 3\n");
}

TEST(SharedMetrics, SerializeReturnsEveryWorker) {
  const auto board = metrics_board::create(2);
  board->publish(1, "# TYPE fluxlit_open_connections gauge\nfluxlit_open_connections 4\n");
  metrics own;
  own.connection_opened();
  own.share(board, 0);
  const auto text = own.serialize();
  EXPECT_THAT(text, HasSubstr("fluxlit_open_connections{worker=\"1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("fluxlit_open_connections{worker=\"2\"} 4\n"));
  EXPECT_THAT(text, Not(HasSubstr("fluxlit_open_connections 1")));

  metrics alone;
  EXPECT_THAT(alone.serialize(), Not(HasSubstr("worker=")));
}

}  // namespace
}  // namespace fluxlit::observability
