#include "fluxlit/asgi/exchange.hpp"

#include <gtest/gtest.h>
#include <malloc.h>

namespace fluxlit::asgi {
namespace {

struct counters {
  int io_notifications = 0;
  int python_wakes = 0;
};

std::shared_ptr<http_exchange> make_exchange(counters& seen, std::uint64_t send_high = 10,
                                             std::uint64_t receive_high = 10) {
  auto exchange = std::make_shared<http_exchange>(http_request_head{}, send_high, receive_high);
  exchange->io_set_notify([&seen] { ++seen.io_notifications; });
  exchange->wake_python = [&seen] { ++seen.python_wakes; };
  return exchange;
}

std::vector<response_event> take(http_exchange& exchange) {
  std::vector<response_event> events;
  exchange.io_take_response_events(events);
  return events;
}

TEST(ExchangeTest, ReceiveWaitsUntilBodyArrives) {
  counters seen;
  auto exchange = make_exchange(seen);
  EXPECT_FALSE(exchange->py_receive().has_value());
  exchange->py_set_waiting(true);
  exchange->io_push_body("abc", false);
  EXPECT_EQ(seen.python_wakes, 1);
  const auto event = exchange->py_receive();
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->body, "abc");
  EXPECT_FALSE(event->more_body);
}

TEST(ExchangeTest, NoWakeWhenPythonNotWaiting) {
  counters seen;
  auto exchange = make_exchange(seen);
  exchange->io_push_body("abc", true);
  EXPECT_EQ(seen.python_wakes, 0);
}

TEST(ExchangeTest, DisconnectAfterClientGone) {
  counters seen;
  auto exchange = make_exchange(seen);
  exchange->py_set_waiting(true);
  exchange->io_client_gone();
  EXPECT_EQ(seen.python_wakes, 1);
  const auto event = exchange->py_receive();
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->what, receive_event::kind::disconnect);
}

TEST(ExchangeTest, QueuedBodyBeforeDisconnect) {
  counters seen;
  auto exchange = make_exchange(seen);
  exchange->io_push_body("part", true);
  exchange->io_client_gone();
  EXPECT_EQ(exchange->py_receive()->what, receive_event::kind::body);
  EXPECT_EQ(exchange->py_receive()->what, receive_event::kind::disconnect);
}

TEST(ExchangeTest, ReceiveHighWaterPausesReading) {
  counters seen;
  auto exchange = make_exchange(seen, 10, 8);
  EXPECT_FALSE(exchange->io_push_body("0123456789", true));
  EXPECT_FALSE(exchange->io_wants_more_body());
  exchange->py_receive();
  EXPECT_TRUE(exchange->io_wants_more_body());
  EXPECT_EQ(seen.io_notifications, 1);
}

TEST(ExchangeTest, BodyOrderSurvivesInterleaving) {
  counters seen;
  auto exchange = make_exchange(seen, 10, 100);
  exchange->io_push_body("a", true);
  exchange->io_push_body("b", true);
  EXPECT_EQ(exchange->py_receive()->body, "ab");
  exchange->io_push_body("c", true);
  EXPECT_EQ(exchange->py_receive()->body, "c");
  // Drained: the queue starts over, and the next piece still comes out first.
  EXPECT_FALSE(exchange->py_receive().has_value());
  exchange->io_push_body("d", false);
  const auto last = exchange->py_receive();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->body, "d");
  EXPECT_FALSE(last->more_body);
}

TEST(ExchangeTest, UnreadBodyPiecesJoin) {
  counters seen;
  auto exchange = make_exchange(seen, 10, 1 << 20);
  for (int piece = 0; piece < 1000; ++piece) exchange->io_push_body("x", true);
  exchange->io_push_body("end", false);
  // Nothing joins a piece that ended its body.
  exchange->io_push_body("after", false);
  const auto joined = exchange->py_receive();
  ASSERT_TRUE(joined.has_value());
  EXPECT_EQ(joined->body, std::string(1000, 'x') + "end");
  EXPECT_FALSE(joined->more_body);
  EXPECT_EQ(exchange->py_receive()->body, "after");
}

TEST(ExchangeTest, JoinedPiecesCountTowardHighWater) {
  counters seen;
  auto exchange = make_exchange(seen, 10, 8);
  EXPECT_TRUE(exchange->io_push_body("1234", true));
  EXPECT_FALSE(exchange->io_push_body("5678", true));
  EXPECT_FALSE(exchange->io_wants_more_body());
  EXPECT_EQ(exchange->py_receive()->body, "12345678");
  EXPECT_TRUE(exchange->io_wants_more_body());
}

// The heap in use, mmapped blocks included, as glibc reports it.
std::size_t heap_in_use() {
  const auto info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

TEST(ExchangeTest, UndrainedQueueStaysBounded) {
  // A WebSocket client that always stays one message ahead of the app: the queue contains one or
  // two events at any time, so its memory must not grow with the number of messages.
  websocket_exchange exchange(http_request_head{}, 1 << 20, 1 << 20);
  exchange.io_push({websocket_inbound::kind::message, true, "first", 1005, {}}, 5);
  const auto before = heap_in_use();
  for (int message = 0; message < 1'000'000; ++message) {
    exchange.io_push({websocket_inbound::kind::message, true, "x", 1005, {}}, 1);
    ASSERT_TRUE(exchange.py_receive().has_value());
  }
  const auto grown = heap_in_use() - before;
  EXPECT_LT(grown, 1u << 20) << "the inbound queue grew by " << grown << " bytes";
}

TEST(ExchangeTest, QueueKeepsOrderAcrossCompaction) {
  websocket_exchange exchange(http_request_head{}, 10, 1 << 20);
  int next_pushed = 0;
  int next_read = 0;
  const auto push = [&] {
    const auto text = std::to_string(next_pushed++);
    exchange.io_push({websocket_inbound::kind::message, true, text, 1005, {}}, text.size());
  };
  // Three pushes per two reads: the queue grows, and compacts while unread events remain.
  for (int round = 0; round < 500; ++round) {
    push();
    push();
    push();
    for (int read = 0; read < 2; ++read) {
      ASSERT_EQ(exchange.py_receive()->data, std::to_string(next_read++));
    }
  }
  while (next_read < next_pushed) {
    ASSERT_EQ(exchange.py_receive()->data, std::to_string(next_read++));
  }
  EXPECT_FALSE(exchange.py_receive().has_value());
}

TEST(ExchangeTest, ReadingResumesBelowHighWater) {
  int notifications = 0;
  websocket_exchange exchange(http_request_head{}, 10, 8);
  exchange.io_set_notify([&notifications] { ++notifications; });
  exchange.io_push({websocket_inbound::kind::message, true, "12345", 1005, {}}, 5);
  EXPECT_FALSE(exchange.io_push({websocket_inbound::kind::message, true, "67890", 1005, {}}, 5));
  exchange.py_receive();  // 5 bytes left queued: below the mark again
  EXPECT_TRUE(exchange.io_wants_more());
  EXPECT_EQ(notifications, 1);
  exchange.py_receive();
  EXPECT_EQ(notifications, 1);
}

TEST(ExchangeTest, TakeReusesVector) {
  counters seen;
  auto exchange = make_exchange(seen, 100);
  std::vector<response_event> events;
  exchange->py_send(response_start{201, {}}, 0);
  exchange->io_take_response_events(events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(std::get<response_start>(events[0]).status, 201);
  events.clear();
  exchange->py_send(response_body{"x", false}, 1);
  exchange->io_take_response_events(events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(std::get<response_body>(events[0]).bytes(), "x");
  EXPECT_TRUE(take(*exchange).empty());
}

TEST(ExchangeTest, SendBatchNotifiesOnce) {
  counters seen;
  auto exchange = make_exchange(seen, 100);
  exchange->py_send(response_start{200, {}}, 0);
  exchange->py_send(response_body{"a", true}, 1);
  exchange->py_send(response_body{"b", false}, 1);
  EXPECT_EQ(seen.io_notifications, 1);
  EXPECT_EQ(take(*exchange).size(), 3u);
}

TEST(ExchangeTest, SendWaitsAboveHighWater) {
  counters seen;
  auto exchange = make_exchange(seen, 4);
  exchange->py_send(response_start{200, {}}, 0);
  EXPECT_TRUE(exchange->py_send(response_body{"123456", true}, 6));
  EXPECT_TRUE(exchange->py_must_wait_for_drain());
  exchange->py_set_waiting(true);
  exchange->io_written(6);
  EXPECT_FALSE(exchange->py_must_wait_for_drain());
  EXPECT_EQ(seen.python_wakes, 1);
}

TEST(ExchangeTest, SendAfterClientGoneThrows) {
  counters seen;
  auto exchange = make_exchange(seen);
  exchange->io_client_gone();
  EXPECT_THROW(exchange->py_send(response_body{"late", false}, 4), client_disconnected);
  EXPECT_TRUE(take(*exchange).empty());
}

TEST(ExchangeTest, SendAfterConnectionFinishedThrows) {
  counters seen;
  auto exchange = make_exchange(seen);
  exchange->py_send(response_start{200, {}}, 0);
  exchange->io_response_finished();
  EXPECT_THROW(exchange->py_send(response_body{"late", true}, 4), client_disconnected);
}

TEST(ExchangeTest, ServerEndAfterClientGoneDropped) {
  counters seen;
  auto exchange = make_exchange(seen);
  exchange->io_client_gone();
  exchange->py_end(response_abort{"the app raised"});
  EXPECT_TRUE(take(*exchange).empty());
}

TEST(ExchangeTest, ReceiveAfterResponseIsDisconnect) {
  counters seen;
  auto exchange = make_exchange(seen);
  exchange->io_response_finished();
  EXPECT_EQ(exchange->py_receive()->what, receive_event::kind::disconnect);
}

TEST(ExchangeTest, DeferredStartNotifiesWithBody) {
  counters seen;
  auto exchange = make_exchange(seen, 100);
  exchange->py_send(response_start{200, {}}, 0, false);
  EXPECT_EQ(seen.io_notifications, 0);
  exchange->py_send(response_body{"a", false}, 1);
  EXPECT_EQ(seen.io_notifications, 1);
  exchange->py_flush_notify();
  EXPECT_EQ(seen.io_notifications, 1);
  EXPECT_EQ(take(*exchange).size(), 2u);
}

// Records what a lent writer was given.
struct lent_calls {
  int calls = 0;
  std::size_t events = 0;
};

// A writer that records its calls and leaves `unsent` bytes for the connection.
http_exchange::lent_writer recording_writer(lent_calls& seen, std::uint64_t unsent = 0) {
  return [&seen, unsent](std::vector<response_event>& events) {
    ++seen.calls;
    seen.events = events.size();
    return unsent;
  };
}

// Sends a response start and its only body, as an app that ends a response in one go does.
void send_whole_response(http_exchange& exchange, const std::string& body = "ab") {
  exchange.py_send(response_start{200, {}}, 0, false);
  exchange.py_send(response_body{body, false}, body.size(), true, true);
}

// An exchange with a send high-water mark of 100 bytes and a recording writer lent to it.
class LentWriterTest : public ::testing::Test {
 protected:
  LentWriterTest() : exchange(make_exchange(seen, 100)) {
    exchange->io_lend_writer(recording_writer(writer));
  }

  counters seen;
  lent_calls writer;
  std::shared_ptr<http_exchange> exchange;
};

TEST_F(LentWriterTest, SendsResponseAtFlush) {
  exchange->py_send(response_start{200, {}}, 0, false);
  EXPECT_FALSE(exchange->py_send(response_body{"ab", false}, 2, true, true));
  EXPECT_EQ(writer.calls, 0);
  EXPECT_TRUE(exchange->py_write_due());
  EXPECT_EQ(seen.io_notifications, 1);
  exchange->py_flush();
  EXPECT_EQ(writer.calls, 1);
  EXPECT_EQ(writer.events, 2u);
  EXPECT_FALSE(exchange->py_write_due());
  EXPECT_EQ(seen.io_notifications, 1);
  std::vector<response_event> events;
  EXPECT_TRUE(exchange->io_take_response_events(events));
  EXPECT_TRUE(events.empty());
  EXPECT_FALSE(exchange->py_must_wait_for_drain());
  EXPECT_TRUE(exchange->io_response_finished());
}

TEST(ExchangeTest, LentWriterRestCountsAsUnsent) {
  counters seen;
  lent_calls writer;
  auto exchange = make_exchange(seen, 10);
  exchange->io_lend_writer(recording_writer(writer, 50));
  exchange->py_send(response_start{200, {}}, 0, false);
  EXPECT_FALSE(exchange->py_send(response_body{"body", false}, 4, true, true));
  exchange->py_flush();
  EXPECT_TRUE(exchange->py_must_wait_for_drain());
  exchange->py_set_waiting(true);
  exchange->io_written(50);
  EXPECT_FALSE(exchange->py_must_wait_for_drain());
  EXPECT_EQ(seen.python_wakes, 1);
}

TEST(ExchangeTest, FlushWakesWaitingLastSend) {
  counters seen;
  lent_calls writer;
  auto exchange = make_exchange(seen, 10);
  exchange->io_lend_writer(recording_writer(writer, 5));
  exchange->py_send(response_start{200, {}}, 0, false);
  EXPECT_TRUE(exchange->py_send(response_body{std::string(20, 'x'), false}, 20, true, true));
  exchange->py_set_waiting(true);
  exchange->py_flush();
  EXPECT_EQ(writer.calls, 1);
  EXPECT_FALSE(exchange->py_must_wait_for_drain());
  EXPECT_EQ(seen.python_wakes, 1);
}

TEST_F(LentWriterTest, ConnectionTakesOwedResponse) {
  send_whole_response(*exchange);
  // The connection ran before the flush, as it does when the app's task keeps the loop busy.
  std::vector<response_event> events;
  EXPECT_FALSE(exchange->io_take_response_events(events));
  EXPECT_EQ(events.size(), 2u);
  EXPECT_FALSE(exchange->py_write_due());
  exchange->py_flush();
  EXPECT_EQ(writer.calls, 0);
}

TEST_F(LentWriterTest, EventAfterEndFollowsOwedResponse) {
  send_whole_response(*exchange);
  exchange->py_send(response_abort{"the app sent after the end"}, 0);
  EXPECT_EQ(writer.calls, 1);
  EXPECT_EQ(writer.events, 2u);
  std::vector<response_event> events;
  EXPECT_TRUE(exchange->io_take_response_events(events));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<response_abort>(events[0]));
}

TEST_F(LentWriterTest, FlushAfterEndWritesNothing) {
  send_whole_response(*exchange);
  EXPECT_FALSE(exchange->io_response_finished());
  exchange->py_flush();
  EXPECT_EQ(writer.calls, 0);
  EXPECT_FALSE(exchange->py_write_due());
}

TEST_F(LentWriterTest, TakingEventTakesWriterBack) {
  exchange->py_send(response_start{200, {}}, 0);
  exchange->py_send(response_body{"a", true}, 1);
  EXPECT_EQ(take(*exchange).size(), 2u);
  exchange->py_send(response_body{"b", false}, 1, true, true);
  EXPECT_FALSE(exchange->py_write_due());
  exchange->py_flush();
  EXPECT_EQ(writer.calls, 0);
  std::vector<response_event> events;
  EXPECT_FALSE(exchange->io_take_response_events(events));
  EXPECT_EQ(events.size(), 1u);
}

TEST_F(LentWriterTest, EmptyTakeKeepsWriterLent) {
  EXPECT_TRUE(take(*exchange).empty());
  send_whole_response(*exchange, "a");
  exchange->py_flush();
  EXPECT_EQ(writer.calls, 1);
}

TEST(ExchangeTest, NoWriterAfterEndOrClientGone) {
  counters seen;
  lent_calls writer;
  auto finished = make_exchange(seen, 100);
  finished->io_lend_writer(recording_writer(writer));
  EXPECT_FALSE(finished->io_response_finished());
  EXPECT_THROW(send_whole_response(*finished, "a"), client_disconnected);
  finished->py_flush();

  auto client_left = make_exchange(seen, 100);
  client_left->io_lend_writer(recording_writer(writer));
  client_left->io_client_gone();
  EXPECT_THROW(send_whole_response(*client_left, "a"), client_disconnected);
  client_left->py_flush();

  EXPECT_EQ(writer.calls, 0);
}

TEST(ExchangeTest, FlushSendsOwedNotification) {
  counters seen;
  auto exchange = make_exchange(seen, 100);
  exchange->py_send(response_start{200, {}}, 0, false);
  exchange->py_flush_notify();
  EXPECT_EQ(seen.io_notifications, 1);
  exchange->py_flush_notify();
  EXPECT_EQ(seen.io_notifications, 1);
}

TEST(ExchangeTest, OwedNotificationSurvivesDrain) {
  counters seen;
  auto exchange = make_exchange(seen, 100);
  exchange->py_send(response_start{200, {}}, 0, false);
  // The connection took the start on its own wake-up before the owed notification was sent.
  EXPECT_EQ(take(*exchange).size(), 1u);
  exchange->py_send(response_body{"a", false}, 1);
  EXPECT_EQ(seen.io_notifications, 1);
}

TEST(ExchangeTest, KeptBodyBytesComeFromView) {
  static const char text[] = "kept body";
  response_body body;
  body.kept = std::shared_ptr<const void>(text, [](const void*) {});
  body.kept_view = std::string_view(text, sizeof text - 1);
  EXPECT_EQ(body.bytes(), "kept body");
  EXPECT_EQ(body.size(), 9u);
  response_body copied{"copied", false};
  EXPECT_EQ(copied.bytes(), "copied");
}

}  // namespace
}  // namespace fluxlit::asgi
