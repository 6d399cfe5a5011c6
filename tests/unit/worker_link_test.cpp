// The messages between a `--workers` parent and its workers.
#include "cli/worker_link.hpp"

#include <gtest/gtest.h>

namespace fluxlit::cli {
namespace {

using supervisor::child_state;

TEST(WorkerHandoff, RoundTrips) {
  const worker_handoff sent{3, 3, 4, 4242, 5};
  const auto text = format_handoff(sent);
  EXPECT_EQ(text, "3:3:4:4242:5");
  const auto parsed = parse_handoff(text);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->index, 3u);
  EXPECT_EQ(parsed->listener_fd, 3);
  EXPECT_EQ(parsed->control_fd, 4);
  EXPECT_EQ(parsed->parent, 4242);
  EXPECT_EQ(parsed->metrics_fd, 5);
}

TEST(WorkerHandoff, RejectsMalformedText) {
  for (const char* text : {"", "1:3:4:5", "1:3:4:5:6:7", "0:3:4:5:6", "1:-3:4:5:6", "1:3:4:0:6",
                           "a:3:4:5:6", "1:3:4:5:6 ", "1::4:5:6", "1:3:4:5:-6", "1:3:4:5:"}) {
    EXPECT_FALSE(parse_handoff(text).has_value()) << text;
  }
}

TEST(UiUpdate, RoundTripsEveryState) {
  for (const auto state : {child_state::starting, child_state::ready, child_state::restarting,
                           child_state::crash_loop, child_state::stopping, child_state::stopped}) {
    auto line = format_ui_update({state, 8501});
    ASSERT_EQ(line.back(), '\n');
    line.pop_back();
    const auto parsed = parse_ui_update(line);
    ASSERT_TRUE(parsed.has_value()) << line;
    EXPECT_EQ(parsed->state, state);
    EXPECT_EQ(parsed->port, 8501);
  }
}

TEST(UiUpdate, RejectsMalformedLines) {
  for (const char* line : {"", "ui", "ui ready", "ui ready 70000", "ui asleep 8501",
                           "ready", "ui ready 8501 extra", "UI ready 8501", "ui ready -1"}) {
    EXPECT_FALSE(parse_ui_update(line).has_value()) << line;
  }
}

TEST(RelayedUiState, StartsNotReadyAndFollowsUpdates) {
  relayed_ui_state relayed;
  EXPECT_FALSE(relayed.ready());
  EXPECT_EQ(relayed.port(), 0);
  relayed.apply({child_state::ready, 40000});
  EXPECT_TRUE(relayed.ready());
  EXPECT_EQ(relayed.port(), 40000);
  relayed.apply({child_state::restarting, 40000});
  EXPECT_FALSE(relayed.ready());
}

}  // namespace
}  // namespace fluxlit::cli
