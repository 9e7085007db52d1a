#include "gateway/decision.h"

#include <gtest/gtest.h>

namespace lanegate::gateway {
namespace {

using namespace std::chrono;

config::OfflineLimits limits() {
  config::OfflineLimits l;
  l.per_transaction = Money::from_fen(5000);
  l.per_plate_outstanding = Money::from_fen(8000);
  l.site_exposure = Money::from_fen(100000);
  l.binding_max_age_s = 3600;
  return l;
}

DecisionInput offline(Money fee) {
  DecisionInput in;
  in.fee = fee;
  in.online = OnlineOutcome::kNotTried;
  in.now = SystemTime(seconds(1'800'000'000));
  in.binding = CachedBinding{BindingState::kNormal, in.now - minutes(10)};
  return in;
}

Decision run(const DecisionInput& in) { return decide(in, limits()); }

TEST(Decision, ZeroFeeIsFreeWhateverElseHolds) {
  auto in = offline(Money::zero());
  in.binding.reset();
  in.queue_accepting = false;
  in.online = OnlineOutcome::kRefused;
  const auto d = run(in);
  EXPECT_EQ(d.kind, DecisionKind::kFree);
  EXPECT_TRUE(d.opens_barrier());
}

TEST(Decision, AcceptedOnlineChargePasses) {
  auto in = offline(Money::from_fen(9999999));  // far over every offline limit
  in.online = OnlineOutcome::kAccepted;
  in.binding.reset();
  EXPECT_EQ(run(in).kind, DecisionKind::kPassOnline);
}

TEST(Decision, RefusedOnlineChargeFallsBackEvenWithAGoodBinding) {
  auto in = offline(Money::from_fen(500));
  in.online = OnlineOutcome::kRefused;
  const auto d = run(in);
  EXPECT_EQ(d.kind, DecisionKind::kFallback);
  EXPECT_EQ(d.reason, "refused");
  EXPECT_FALSE(d.opens_barrier());
}

TEST(Decision, NoAnswerUsesTheOfflineRule) {
  auto in = offline(Money::from_fen(500));
  in.online = OnlineOutcome::kNoAnswer;
  EXPECT_EQ(run(in).kind, DecisionKind::kPassOffline);
}

TEST(Decision, OfflinePassNeedsACachedNormalFreshBinding) {
  auto in = offline(Money::from_fen(500));
  EXPECT_EQ(run(in).kind, DecisionKind::kPassOffline);
  in.binding.reset();
  EXPECT_EQ(run(in).reason, "no_binding");
  for (auto s : {BindingState::kPause, BindingState::kOutService, BindingState::kBlocked}) {
    in = offline(Money::from_fen(500));
    in.binding->state = s;
    EXPECT_EQ(run(in).reason, "binding_not_normal");
  }
  in = offline(Money::from_fen(500));
  in.binding->refreshed_at = in.now - seconds(3600);
  EXPECT_EQ(run(in).kind, DecisionKind::kPassOffline) << "exactly at the max age is still fresh";
  in.binding->refreshed_at = in.now - seconds(3601);
  EXPECT_EQ(run(in).reason, "binding_stale");
}

TEST(Decision, OfflineLimitsAreInclusive) {
  auto in = offline(Money::from_fen(5000));
  EXPECT_EQ(run(in).kind, DecisionKind::kPassOffline);
  in.fee = Money::from_fen(5001);
  EXPECT_EQ(run(in).reason, "over_transaction_limit");

  in = offline(Money::from_fen(3000));
  in.plate_outstanding = Money::from_fen(5000);
  EXPECT_EQ(run(in).kind, DecisionKind::kPassOffline);
  in.plate_outstanding = Money::from_fen(5001);
  EXPECT_EQ(run(in).reason, "over_plate_limit");

  in = offline(Money::from_fen(3000));
  in.site_exposure = Money::from_fen(97000);
  EXPECT_EQ(run(in).kind, DecisionKind::kPassOffline);
  in.site_exposure = Money::from_fen(97001);
  EXPECT_EQ(run(in).reason, "over_site_limit");
}

TEST(Decision, AFullQueueStopsOfflinePasses) {
  auto in = offline(Money::from_fen(100));
  in.queue_accepting = false;
  EXPECT_EQ(run(in).reason, "queue_full");
  in.online = OnlineOutcome::kAccepted;
  EXPECT_EQ(run(in).kind, DecisionKind::kPassOnline) << "an accepted online charge needs no queue room";
}

TEST(Decision, OverflowingExposureIsOverTheLimitNotAWrap) {
  auto in = offline(Money::from_fen(100));
  in.site_exposure = Money::from_fen(std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(run(in).reason, "over_site_limit");
}

// Issue 13, defect 9: a binding stamped in the future had a negative age and stayed fresh
// forever.
TEST(Decision, ABindingStampedInTheFutureIsNotTrusted) {
  auto in = offline(Money::from_fen(100));
  in.binding->refreshed_at = in.now + hours(24);
  const auto d = run(in);
  EXPECT_EQ(d.kind, DecisionKind::kFallback);
  EXPECT_EQ(d.reason, "binding_from_future");
}

// Issue 13: a read error of the outstanding sums counted as 0 and bypassed the limits.
TEST(Decision, AnUnknownExposureMeansNoOfflinePass) {
  auto in = offline(Money::from_fen(100));
  in.exposure_known = false;
  EXPECT_EQ(run(in).reason, "exposure_unknown");
  in.online = OnlineOutcome::kAccepted;
  EXPECT_EQ(run(in).kind, DecisionKind::kPassOnline) << "an accepted charge needs no offline limit";
}

}  // namespace
}  // namespace lanegate::gateway
