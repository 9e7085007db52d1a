// Red-letter confirmation forms (invoice/red_letter.h): the two reason numberings, what each
// billStatus means, and the form rows a red invoice keeps (one live, never deleted, frozen).
#include "invoice/red_letter.h"

#include <gtest/gtest.h>

#include "invoice/claims.h"
#include "test_db.h"

namespace lanegate::invoice {
namespace {

using testing::company;
using testing::trip;

// Spec "Red-letter (冲红)": Nuonuo 1 销货退回, 2 开票有误, 3 服务中止, 4 销售折让; the tax
// bureau 01 开票有误, 02 销货退回, 03 服务中止, 04 销售折让. A passthrough of either would
// send "invoicing error" as "returned goods" on one side.
TEST(RedReason, EachReasonHasItsCodeInBothNumberings) {
  struct Row {
    std::string_view name, nuonuo, bureau, label;
  };
  for (const Row& r : {Row{"returned", "1", "02", "销货退回"}, Row{"invoicing_error", "2", "01", "开票有误"},
                       Row{"service_stopped", "3", "03", "服务中止"},
                       Row{"discount", "4", "04", "销售折让"}}) {
    auto reason = parse_red_reason(r.name);
    ASSERT_TRUE(reason) << r.name;
    EXPECT_EQ(to_string(*reason), r.name);
    EXPECT_EQ(nuonuo_red_reason(*reason), r.nuonuo) << r.name;
    EXPECT_EQ(bureau_red_reason(*reason), r.bureau) << r.name;
    EXPECT_EQ(red_reason_label(*reason), r.label) << r.name;
    EXPECT_EQ(red_reason_from_nuonuo(std::stoi(std::string(r.nuonuo))).value(), *reason);
  }
  auto bad = parse_red_reason("refund");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "reason");
  EXPECT_NE(bad.error().message.find("invoicing_error"), std::string::npos);
  EXPECT_FALSE(red_reason_from_nuonuo(5));
}

TEST(RedConfirmStatus, EveryListedBillStatusHasAMeaningAndNothingElseIsGuessed) {
  using S = RedConfirmState;
  const std::pair<std::string_view, S> known[] = {
      {"01", S::kConfirmed},     {"04", S::kConfirmed}, {"02", S::kAwaitingBuyer},
      {"03", S::kAwaitingSeller}, {"15", S::kApplied},   {"16", S::kRefused},
      {"05", S::kVoid}, {"06", S::kVoid}, {"07", S::kVoid}, {"08", S::kVoid}, {"09", S::kVoid},
      {"10", S::kVoid}};
  for (const auto& [code, state] : known) {
    auto s = red_confirm_state_from_bill_status(code);
    ASSERT_TRUE(s) << code;
    EXPECT_EQ(*s, state) << code;
    EXPECT_FALSE(bill_status_label(code).empty()) << code;
  }
  EXPECT_EQ(bill_status_label("07"), "作废（超72小时未确认）");
  for (std::string_view code : {"", "00", "1", "11", "14", "17", "99", "0A"}) {
    auto s = red_confirm_state_from_bill_status(code);
    ASSERT_FALSE(s) << code;
    EXPECT_EQ(s.error().code, Errc::kProtocol);
    EXPECT_EQ(s.error().field, "bill_status");
  }
}

class RedFormsTest : public ::testing::Test {
 protected:
  // An issued blue invoice for a company, and its number.
  std::int64_t issued_blue(std::string tx = "t1") {
    auto c = store.create_claim(trip(tx, "19.19", clock));
    auto r = store.submit(c->token, company());
    EXPECT_TRUE(store.mark_issuing(r->invoice.id, "S-" + tx));
    EXPECT_TRUE(store.mark_issued(r->invoice.id, "2633790445090025509" + std::to_string(++blues % 10), ""));
    return r->invoice.id;
  }

  testing::TempDir dir;
  Database db = testing::open_migrated(dir.path() / "gw.db");
  FakeClock clock;
  config::InvoicingSection section = testing::test_section();
  ClaimStore store{db, section, clock};
  int blues = 0;
};

TEST_F(RedFormsTest, ARedInvoiceIsBornWithItsFirstFormInTheSameCommit) {
  const auto blue = issued_blue();
  auto red = store.request_red_letter(blue, RedLetterReason::kInvoicingError);
  ASSERT_TRUE(red) << red.error().to_string();
  auto forms = store.red_confirmations(red->id);
  ASSERT_TRUE(forms);
  ASSERT_EQ(forms->size(), 1u);
  const RedConfirmation& f = forms->front();
  EXPECT_EQ(f.attempt, 1);
  EXPECT_EQ(f.bill_id, red->order_no);  // fixed before anything is sent (R2)
  EXPECT_EQ(f.state, RedConfirmState::kNew);
  EXPECT_EQ(f.reason, RedLetterReason::kInvoicingError);
  auto st = db.prepare("SELECT nuonuo_reason, bureau_reason FROM invoice_red_confirm WHERE id = ?");
  st->bind(1, f.id);
  ASSERT_TRUE(*st->step());
  EXPECT_EQ(st->column_text(0), "2");
  EXPECT_EQ(st->column_text(1), "01");
  // Asking again returns the same red invoice and opens no second form.
  ASSERT_TRUE(store.request_red_letter(blue, RedLetterReason::kInvoicingError));
  EXPECT_EQ(store.red_confirmations(red->id)->size(), 1u);
  // A blue invoice has no form.
  EXPECT_EQ(store.red_confirmation(blue).error().code, Errc::kInvalidArgument);
}

TEST_F(RedFormsTest, FormsAreNeverDeletedAndKeepTheirIdentity) {
  auto red = store.request_red_letter(issued_blue(), RedLetterReason::kReturned);
  ASSERT_TRUE(red);
  EXPECT_FALSE(db.exec("DELETE FROM invoice_red_confirm"));
  EXPECT_FALSE(db.exec("UPDATE invoice_red_confirm SET bill_id = 'other'"));
  EXPECT_FALSE(db.exec("UPDATE invoice_red_confirm SET red_reason = 2"));
  EXPECT_FALSE(db.exec("UPDATE invoice_red_confirm SET bureau_reason = '01'"));
  // One live form per red invoice.
  EXPECT_FALSE(db.exec("INSERT INTO invoice_red_confirm(red_invoice_id, attempt, bill_id, red_reason, "
                       "nuonuo_reason, bureau_reason, state, created_at, updated_at) VALUES (" +
                       std::to_string(red->id) + ", 2, 'x2', 1, '1', '02', 'new', 0, 0)"));
  EXPECT_EQ(store.red_confirmations(red->id)->size(), 1u);
}

TEST_F(RedFormsTest, AVoidFormFailsTheRedKeepsTheBlueAndARetryOpensANewForm) {
  const auto blue = issued_blue();
  auto red = store.request_red_letter(blue, RedLetterReason::kReturned);
  auto form = store.red_confirmation(red->id);
  ASSERT_TRUE(form);
  ASSERT_TRUE(store.mark_red_apply_sent(*form));
  EXPECT_FALSE(store.mark_red_apply_sent(*form));  // NEW only once (R2)
  form = store.red_confirmation(red->id);
  EXPECT_EQ(form->state, RedConfirmState::kApplying);
  EXPECT_TRUE(form->apply_sent_at);
  RedConfirmView seen{form->bill_id, "35080224091000701901", "322d5d68aa", "02", false, "", "", "", ""};
  ASSERT_TRUE(store.note_red_confirm(*form, RedConfirmState::kAwaitingBuyer, seen));
  form = store.red_confirmation(red->id);
  EXPECT_EQ(form->bill_no, "35080224091000701901");
  EXPECT_TRUE(form->applied_at);

  ASSERT_TRUE(store.close_red_confirm(*form, RedConfirmState::kVoid, "07", ""));
  auto failed = store.get_invoice(red->id);
  EXPECT_EQ(failed->state, InvoiceState::kFailed);
  EXPECT_NE(failed->fail_reason.find("07"), std::string::npos) << failed->fail_reason;
  EXPECT_NE(failed->fail_reason.find("超72小时未确认"), std::string::npos) << failed->fail_reason;
  EXPECT_EQ(store.get_invoice(blue)->state, InvoiceState::kIssued);  // R3
  EXPECT_EQ(store.red_confirmation(red->id).error().code, Errc::kRejected);

  ASSERT_TRUE(store.retry_failed(red->id));
  auto forms = store.red_confirmations(red->id);
  ASSERT_EQ(forms->size(), 2u);
  EXPECT_EQ(forms->at(0).state, RedConfirmState::kVoid);
  EXPECT_EQ(forms->at(1).attempt, 2);
  EXPECT_EQ(forms->at(1).state, RedConfirmState::kNew);
  EXPECT_NE(forms->at(1).bill_id, forms->at(0).bill_id);
  EXPECT_LE(forms->at(1).bill_id.size(), 32u);
  EXPECT_EQ(forms->at(1).reason, RedLetterReason::kReturned);
  EXPECT_EQ(store.get_invoice(red->id)->state, InvoiceState::kClaimed);
  EXPECT_EQ(store.get_invoice(red->id)->order_no, red->order_no);  // R6
}

TEST_F(RedFormsTest, AConfirmedFormIsUsedOnceAndTheRedIsThenIssuing) {
  const auto blue = issued_blue();
  auto red = store.request_red_letter(blue, RedLetterReason::kReturned);
  auto form = store.red_confirmation(red->id);
  ASSERT_TRUE(store.mark_red_apply_sent(*form));
  form = store.red_confirmation(red->id);
  ASSERT_TRUE(store.note_red_confirm(*form, RedConfirmState::kConfirmed,
                                     {form->bill_id, "35080224091000701901", "uuid", "01", false, "", "", "", ""}));
  form = store.red_confirmation(red->id);
  ASSERT_TRUE(store.mark_red_confirm_used(*form, "RED-SERIAL"));
  EXPECT_FALSE(store.mark_red_confirm_used(*form, "RED-SERIAL"));
  EXPECT_EQ(store.get_invoice(red->id)->state, InvoiceState::kIssuing);
  EXPECT_EQ(store.get_invoice(red->id)->serial_num, "RED-SERIAL");
  EXPECT_EQ(store.red_confirmation(red->id)->state, RedConfirmState::kUsed);
}

// Spec: "for a partial refund, reverse the whole invoice and issue a new blue one for the
// amount kept". One trip of a merged company invoice is refunded: the whole invoice is
// reversed, and once the red is issued the other trip gets a new invoice of its own, for
// the same buyer and the same split, which its claim then shows.
TEST_F(RedFormsTest, APartialRefundReissuesTheKeptTripsOnceTheRedIsIssued) {
  std::vector<std::int64_t> reissue_for;
  store.set_reissue_hook([&](Transaction&, const InvoiceRecord& red) -> Status {
    reissue_for.push_back(red.id);
    return {};
  });
  for (const char* t : {"m1", "m2"}) {
    ASSERT_TRUE(store.create_claim(trip(t, t == std::string("m1") ? "19.19" : "30.00", clock, "acct-1")));
  }
  const std::vector<std::string> ids = {"m1", "m2"};
  auto merged = store.submit_merged("acct-1", ids, company()).value().invoice;
  ASSERT_TRUE(store.mark_issuing(merged.id, "S-M"));
  ASSERT_TRUE(store.mark_issued(merged.id, "26337904450900255099", ""));

  auto red = store.on_refund("m1").value();
  ASSERT_TRUE(red);
  EXPECT_EQ(red->totals.incl, *Money::parse("-49.19"));  // the whole invoice
  EXPECT_EQ(reissue_for, std::vector<std::int64_t>{red->id});
  EXPECT_TRUE(store.find_by_transaction("m1")->voided);
  EXPECT_FALSE(store.find_by_transaction("m2")->voided);
  // Asked again (a retried refund): the same red, nothing queued twice.
  EXPECT_EQ(store.on_refund("m1").value()->id, red->id);
  EXPECT_EQ(reissue_for.size(), 1u);

  // Not before the red is issued: both invoices would bill m2 at once.
  EXPECT_EQ(store.reissue_kept(red->id).error().code, Errc::kBusy);
  ASSERT_TRUE(store.mark_issuing(red->id, "S-R"));
  ASSERT_TRUE(store.mark_issued(red->id, "26337904450900255098", ""));
  auto kept = store.reissue_kept(red->id).value();
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->kind, InvoiceKind::kBlue);
  EXPECT_EQ(kept->state, InvoiceState::kClaimed);
  ASSERT_EQ(kept->lines.size(), 1u);
  EXPECT_EQ(kept->lines[0].transaction_id, "m2");
  EXPECT_EQ(kept->totals.incl, *Money::parse("30.00"));
  EXPECT_EQ(kept->lines[0].tax, merged.lines[1].tax);  // the split it was issued with
  EXPECT_EQ(kept->buyer.tax_id, merged.buyer.tax_id);
  EXPECT_NE(kept->order_no, merged.order_no);
  EXPECT_EQ(store.reissue_kept(red->id).value()->id, kept->id);  // once only
  EXPECT_FALSE(db.exec("UPDATE invoice_document SET replaces_id = NULL"));
  // m2's claim still names the original (I2) and shows the replacement.
  const auto m2 = store.find_by_transaction("m2").value();
  EXPECT_EQ(m2.invoice_id, merged.id);
  EXPECT_EQ(store.current_invoice(*m2.invoice_id)->id, kept->id);
  // Refunding m2 later reverses the replacement, the invoice that bills it now.
  ASSERT_TRUE(store.mark_issuing(kept->id, "S-K"));
  ASSERT_TRUE(store.mark_issued(kept->id, "26337904450900255097", ""));
  auto red2 = store.on_refund("m2").value();
  ASSERT_TRUE(red2);
  EXPECT_EQ(red2->original_id, kept->id);
  EXPECT_EQ(reissue_for.size(), 1u);  // one trip: nothing kept
}

TEST_F(RedFormsTest, AFailedRedKeepsTheTripsOnTheIssuedOriginal) {
  store.set_reissue_hook([](Transaction&, const InvoiceRecord&) -> Status { return {}; });
  for (const char* t : {"m1", "m2"}) ASSERT_TRUE(store.create_claim(trip(t, "10.00", clock, "acct-1")));
  const std::vector<std::string> ids = {"m1", "m2"};
  auto merged = store.submit_merged("acct-1", ids, company()).value().invoice;
  ASSERT_TRUE(store.mark_issuing(merged.id, "S-M"));
  ASSERT_TRUE(store.mark_issued(merged.id, "26337904450900255099", ""));
  auto red = store.on_refund("m1").value();
  ASSERT_TRUE(store.mark_failed(red->id, "红字确认单 05"));
  auto r = store.reissue_kept(red->id);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRejected);
  EXPECT_EQ(store.get_invoice(merged.id)->state, InvoiceState::kIssued);
  EXPECT_EQ(store.current_invoice(merged.id)->id, merged.id);
}

// A red invoice requested before this version has no form; the upgrade gives it one when it
// is next advanced, with its own order number as billId and its stored Nuonuo reason.
TEST(RedFormsUpgrade, ARedFromBeforeFormsGetsItsFirstForm) {
  testing::TempDir dir;
  const auto file = dir.path() / "old.db";
  FakeClock clock;
  config::InvoicingSection section = testing::test_section();
  std::int64_t red_id = 0;
  std::string order_no;
  {
    auto db = Database::open(file);
    ASSERT_TRUE(db);
    std::vector<std::string_view> old_steps;
    for (auto s : ledger::ledger_schema_steps()) old_steps.push_back(s);
    for (std::size_t i = 0; i < 3; ++i) old_steps.push_back(invoice_schema_steps()[i]);
    ASSERT_TRUE(db->migrate(std::span<const std::string_view>(old_steps)));
    // The red of an older version: a plain row (no form table exists yet).
    ASSERT_TRUE(db->exec(
        "INSERT INTO invoice_document(order_no, kind, state, red_reason, buyer_kind, buyer_title, "
        "buyer_tax_id, buyer_email, buyer_phone, excl_fen, tax_fen, incl_fen, created_at, updated_at) "
        "VALUES ('LG000000000000000001', 'blue', 'issued', 0, 'company', 'A', '', '', '', 100, 0, 100, 0, 0)"));
    ASSERT_TRUE(db->exec(
        "INSERT INTO invoice_document(order_no, kind, original_id, state, red_reason, buyer_kind, buyer_title, "
        "buyer_tax_id, buyer_email, buyer_phone, excl_fen, tax_fen, incl_fen, created_at, updated_at) "
        "VALUES ('LG000000000000000002', 'red', 1, 'claimed', 3, 'company', 'A', '', '', '', -100, 0, -100, 0, 0)"));
    red_id = 2;
    order_no = "LG000000000000000002";
  }
  Database db = testing::open_migrated(file);
  ClaimStore store{db, section, clock};
  auto form = store.red_confirmation(red_id);
  ASSERT_TRUE(form) << form.error().to_string();
  EXPECT_EQ(form->bill_id, order_no);
  EXPECT_EQ(form->reason, RedLetterReason::kServiceStopped);
  EXPECT_EQ(form->state, RedConfirmState::kNew);
  EXPECT_EQ(store.red_confirmations(red_id)->size(), 1u);
}

}  // namespace
}  // namespace lanegate::invoice
