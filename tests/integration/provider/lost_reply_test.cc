// The hardest case for double charging: the sandbox commits the charge and then loses
// the reply for 30 % of charges. The client follows the ambiguity rule (query the same
// out_trade_no before any resend). Exactly one transaction per charge must exist, with
// the amount that was asked for.
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "provider_fixture.h"

namespace provider_test {
namespace {

using namespace lanegate::gateway;

using LostReplyTest = ProviderFixture;

TEST_F(LostReplyTest, ThousandChargesWithThirtyPercentLostRepliesChargeExactlyOnce) {
  constexpr int kCharges = 1000;
  constexpr int kThreads = 16;
  auto c = client();
  auto e = c->create_parking_entry(entry("IN-LOST-1"));
  ASSERT_TRUE(e) << e.error().error.to_string();
  lanegate::sim::ProviderFaults faults;
  faults.lost_reply_share = 0.30;
  sandbox_->set_faults(faults);

  std::map<std::string, std::int64_t> asked;
  for (int i = 0; i < kCharges; ++i) {
    char no[33];
    std::snprintf(no, sizeof no, "LOST%06d", i);
    asked[no] = 100 + (i * 37) % 5000;  // distinct-ish amounts, fen
  }
  std::vector<std::pair<std::string, std::int64_t>> work(asked.begin(), asked.end());
  std::atomic<int> next{0};
  std::atomic<int> ambiguous{0};
  std::atomic<int> settled{0};
  std::atomic<int> gave_up{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      while (true) {
        int i = next.fetch_add(1);
        if (i >= kCharges) {
          return;
        }
        ChargeRequest r = parking_charge(work[i].first, e->id, work[i].second);
        ChargeAttempt attempt = ChargeAttempt::kFirst;
        bool done = false;
        for (int round = 0; round < 50 && !done; ++round) {
          auto result = c->charge(r, attempt);
          if (result) {
            done = true;
          } else if (result.error().outcome == Outcome::kQueryFirst) {
            ambiguous.fetch_add(1);
            attempt = ChargeAttempt::kAfterAmbiguity;  // never a new number for this money
          } else if (result.error().outcome == Outcome::kRetryLater) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          } else {
            break;  // park: counted below
          }
        }
        (done ? settled : gave_up).fetch_add(1);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(settled.load(), kCharges);
  EXPECT_EQ(gave_up.load(), 0);
  EXPECT_GT(ambiguous.load(), kCharges / 10) << "the fault was not exercised";

  auto list = sandbox_->transactions();
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), static_cast<std::size_t>(kCharges));
  std::set<std::string> seen;
  for (const auto& t : *list) {
    EXPECT_TRUE(seen.insert(t.out_trade_no).second) << "duplicate " << t.out_trade_no;
    auto it = asked.find(t.out_trade_no);
    ASSERT_NE(it, asked.end()) << "unknown out_trade_no " << t.out_trade_no;
    EXPECT_EQ(t.amount_fen, it->second) << t.out_trade_no;
  }
  EXPECT_EQ(seen.size(), asked.size());
}

}  // namespace
}  // namespace provider_test
