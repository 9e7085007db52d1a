// What the invoice uplink does with each advance_invoice() result (pure mapping).
#include <gtest/gtest.h>

#include "gateway/invoice_uplink.h"

namespace lanegate::gateway {
namespace {

using invoice::InvoiceState;
using Kind = queue::Outcome::Kind;

Result<InvoiceState> err(Errc code, std::string field = {}) {
  return std::unexpected(Error{code, "because", std::move(field)});
}

TEST(IssueStep, PlatformUnreachableRetriesSoonAndMarksTheLinkDown) {
  for (Errc c : {Errc::kUnavailable, Errc::kTimeout, Errc::kCrypto}) {
    const IssueStep s = issue_step(err(c, "base_url"));
    EXPECT_EQ(s.outcome.kind, Kind::kRetry);
    EXPECT_EQ(s.outcome.after, InvoiceUplink::kLinkDownRetry);
    EXPECT_EQ(s.link_up, false);
  }
}

TEST(IssueStep, StillIssuingIsPolledFinalStatesAreAcknowledged) {
  for (InvoiceState st : {InvoiceState::kClaimed, InvoiceState::kIssuing}) {
    const IssueStep s = issue_step(st);
    EXPECT_EQ(s.outcome.kind, Kind::kRetry);
    EXPECT_EQ(s.outcome.after, InvoiceUplink::kIssuingPoll);
    EXPECT_EQ(s.link_up, true);
  }
  for (InvoiceState st : {InvoiceState::kIssued, InvoiceState::kFailed, InvoiceState::kReversed}) {
    EXPECT_EQ(issue_step(st).outcome.kind, Kind::kAck);
  }
}

TEST(IssueStep, DailyLimitWaitsAnHourButDatabaseBusyDoesNot) {
  const IssueStep limit = issue_step(err(Errc::kBusy, "order_no"));
  EXPECT_EQ(limit.outcome.kind, Kind::kRetry);
  EXPECT_EQ(limit.outcome.after, std::chrono::milliseconds(std::chrono::hours(1)));
  EXPECT_EQ(limit.link_up, true);
  const IssueStep busy = issue_step(err(Errc::kBusy));
  EXPECT_EQ(busy.outcome.kind, Kind::kRetry);
  EXPECT_FALSE(busy.outcome.after.has_value());  // normal backoff
  EXPECT_FALSE(busy.link_up.has_value());        // says nothing about the platform
  EXPECT_FALSE(issue_step(err(Errc::kDiskFull)).link_up.has_value());
}

TEST(IssueStep, UnknownInvoiceIsParkedCredentialsAreRetried) {
  EXPECT_EQ(issue_step(err(Errc::kNotFound, "invoice_id")).outcome.kind, Kind::kPark);
  const IssueStep perm = issue_step(err(Errc::kPermission, "access_token_file"));
  EXPECT_EQ(perm.outcome.kind, Kind::kRetry);  // nothing is lost while an operator fixes it
  EXPECT_EQ(perm.link_up, true);
}

// An answer we cannot act on without guessing (issue 17: "unknown status codes park the
// item with an alarm") waits for an operator instead of being retried silently; an
// unreadable reply is still retried.
TEST(IssueStep, AnswersThatContradictWhatWeHoldAreParked) {
  for (const char* field : {"status", "invoice_number", "amount", "bill_status"}) {
    const IssueStep step = issue_step(err(Errc::kProtocol, field));
    EXPECT_EQ(step.outcome.kind, Kind::kPark) << field;
    EXPECT_EQ(step.link_up, true) << field;
  }
  EXPECT_EQ(issue_step(err(Errc::kProtocol, "reply")).outcome.kind, Kind::kRetry);
}

// A red invoice while its confirmation form runs (invoice/red_letter.h): the buyer has 72 h,
// so a form awaiting them is asked about every five minutes, not every second; a form
// awaiting the seller (the buyer entered it) needs a person, so the item is parked.
TEST(IssueStep, RedFormAwaitingTheBuyerIsPolledSlowlyAwaitingTheSellerIsParked) {
  using invoice::Advance;
  using invoice::RedConfirmState;
  const IssueStep buyer = issue_step(Advance{InvoiceState::kClaimed, RedConfirmState::kAwaitingBuyer});
  EXPECT_EQ(buyer.outcome.kind, Kind::kRetry);
  EXPECT_EQ(buyer.outcome.after, InvoiceUplink::kRedConfirmPoll);
  EXPECT_EQ(buyer.link_up, true);
  const IssueStep seller = issue_step(Advance{InvoiceState::kClaimed, RedConfirmState::kAwaitingSeller});
  EXPECT_EQ(seller.outcome.kind, Kind::kPark);
  EXPECT_NE(seller.outcome.error.find("seller"), std::string::npos) << seller.outcome.error;
  for (RedConfirmState r : {RedConfirmState::kApplied, RedConfirmState::kConfirmed}) {
    const IssueStep s = issue_step(Advance{InvoiceState::kClaimed, r});
    EXPECT_EQ(s.outcome.kind, Kind::kRetry);
    EXPECT_EQ(s.outcome.after, InvoiceUplink::kIssuingPoll);
  }
  EXPECT_EQ(issue_step(Advance{InvoiceState::kFailed}).outcome.kind, Kind::kAck);
}

}  // namespace
}  // namespace lanegate::gateway
