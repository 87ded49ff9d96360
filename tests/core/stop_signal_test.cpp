// StopOnSignal: a signal becomes a flag while it lives; a repeat within 2 s is ignored (`timeout` delivers one signal
// twice); one after that is the default action; the previous handlers come back when it ends.
#include "core/stop_signal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

namespace wattmoe {
namespace {

TEST(StopSignal, SignalsBecomeAFlagAndARepeatIsIgnored) {
  StopOnSignal stop;
  EXPECT_FALSE(stop.requested());
  std::raise(SIGTERM);
  std::raise(SIGTERM);  // within 2 s: ignored, the process lives
  EXPECT_TRUE(stop.requested());
  EXPECT_EQ(stop_signal_received(), SIGTERM);
  EXPECT_STREQ(stop_signal_name(stop_signal_received()), "SIGTERM");
}

TEST(StopSignal, ALaterRepeatKillsAndHandlersComeBack) {
  EXPECT_EXIT(
      {
        StopOnSignal stop;
        std::raise(SIGINT);
        sleep(3);
        std::raise(SIGINT);  // a person insisting: dies now
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGINT), "");
  EXPECT_EXIT(
      {
        { StopOnSignal stop; }
        std::raise(SIGTERM);  // the default handler is back
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGTERM), "");
}

}  // namespace
}  // namespace wattmoe
