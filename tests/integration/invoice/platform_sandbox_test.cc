// The platform client against the sandbox platform, over real HTTP on loopback with real
// signatures: issue, duplicate orderNo, failures, link down, red letter, PDF served.
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <regex>

#include "core/ledger.h"
#include "core/sqlite.h"
#include "invoice/claims.h"
#include "invoice/platform.h"
#include "sim/invoicing_sandbox.h"

namespace lanegate::invoice {
namespace {

// The claims tables and the audit ledger they append to (claims.h I9).
std::span<const std::string_view> claims_schema() {
  static const std::vector<std::string_view> steps = [] {
    std::vector<std::string_view> v;
    for (auto s : ledger::ledger_schema_steps()) {
      v.push_back(s);
    }
    for (auto s : invoice_schema_steps()) {
      v.push_back(s);
    }
    return v;
  }();
  return steps;
}


class TempDir {
 public:
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "it-invoice-XXXXXX").string();
    if (mkdtemp(t.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp";
    }
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

constexpr const char* kSeller = "91350100M000100Y43";

class PlatformIT : public ::testing::Test {
 protected:
  void SetUp() override {
    start_sandbox();
    ASSERT_TRUE(db.migrate(claims_schema()));
    section.seller_name = "Lanegate Demo Parking";
    section.seller_tax_id = kSeller;
  }

  // (Re)starts the sandbox on a fresh file, with `tweak` applied to its options.
  void start_sandbox(std::function<void(sim::InvoicingSandboxOptions&)> tweak = {}) {
    sandbox.reset();
    sim::InvoicingSandboxOptions o;
    o.db_file = dir.path() / ("sandbox-" + std::to_string(++sandboxes) + ".db");
    o.clock = &clock;
    o.seller_tax_id = kSeller;
    if (tweak) tweak(o);
    auto s = sim::InvoicingSandbox::start(o);
    ASSERT_TRUE(s) << s.error().to_string();
    sandbox = std::move(*s);
    platform = make_client("sandbox-app-secret");
  }

  std::unique_ptr<NuonuoPlatform> make_client(std::string secret, std::string base = {}) {
    PlatformClientOptions po;
    po.base_url = base.empty() ? sandbox->base_url() : base;
    po.app_key = "sandbox-app-key";
    po.access_token = "sandbox-access-token";
    po.seller_tax_id = kSeller;
    po.clerk = "测试开票员";
    po.connect_timeout = std::chrono::milliseconds(1000);
    po.request_timeout = std::chrono::milliseconds(5000);
    return std::make_unique<NuonuoPlatform>(po, std::make_unique<NuonuoSigner>(secret), clock);
  }

  std::int64_t claimed_invoice(std::string tx, std::string_view amount, Buyer buyer,
                               std::string service = "taxi") {
    auto c = store.create_claim(
        SettledTransaction{tx, "", service, *Money::parse(amount), clock.now(), "trip"});
    EXPECT_TRUE(c);
    auto r = store.submit(c->token, buyer);
    EXPECT_TRUE(r) << r.error().to_string();
    return r->invoice.id;
  }

  Result<Advance> advance(std::int64_t id, InvoicingPlatform* p = nullptr) {
    return advance_invoice(store, p ? *p : *platform, seller_from_config(section), id, clock);
  }

  static Buyer company() {
    return Buyer{BuyerKind::kCompany, "Example Logistics Ltd", "91110000802100433B",
                 "ap@example.cn", ""};
  }

  TempDir dir;
  FakeClock clock;
  std::unique_ptr<sim::InvoicingSandbox> sandbox;
  Database db = Database::open(dir.path() / "gw.db").value();
  config::InvoicingSection section;
  ClaimStore store{db, section, clock};
  std::unique_ptr<NuonuoPlatform> platform;
  int sandboxes = 0;
};

// Checks the PDF's structure: header, every xref offset lands on "N 0 obj", startxref
// lands on "xref", the trailer names the catalog, and the text carries `needle`.
void expect_valid_pdf(const std::string& pdf, const std::string& needle) {
  ASSERT_EQ(pdf.rfind("%PDF-1.4\n", 0), 0u);
  ASSERT_TRUE(pdf.ends_with("%%EOF\n"));
  const auto sx = pdf.rfind("startxref\n");
  ASSERT_NE(sx, std::string::npos);
  const std::size_t xref = std::stoul(pdf.substr(sx + 10));
  ASSERT_EQ(pdf.compare(xref, 5, "xref\n"), 0);
  std::smatch m;
  const std::string table = pdf.substr(xref);
  ASSERT_TRUE(std::regex_search(table, m, std::regex(R"(xref\n0 (\d+)\n)")));
  const int count = std::stoi(m[1]);
  ASSERT_GE(count, 4);
  std::size_t pos = xref + static_cast<std::size_t>(m.length(0));
  EXPECT_EQ(pdf.compare(pos, 20, "0000000000 65535 f \n"), 0);
  for (int i = 1; i < count; ++i) {
    pos += 20;
    const std::string entry = pdf.substr(pos, 20);
    ASSERT_EQ(entry.substr(10), " 00000 n \n") << entry;
    const std::size_t off = std::stoul(entry.substr(0, 10));
    const std::string head = std::to_string(i) + " 0 obj\n";
    EXPECT_EQ(pdf.compare(off, head.size(), head), 0) << "object " << i;
  }
  EXPECT_NE(pdf.find("/Size " + std::to_string(count)), std::string::npos);
  EXPECT_NE(pdf.find("/Root 1 0 R"), std::string::npos);
  // Stream length matches the bytes between "stream\n" and "\nendstream".
  std::smatch lm;
  ASSERT_TRUE(std::regex_search(pdf, lm, std::regex(R"(/Length (\d+) >>\nstream\n)")));
  const std::size_t start = static_cast<std::size_t>(lm.position(0) + lm.length(0));
  const std::size_t len = std::stoul(lm[1]);
  EXPECT_EQ(pdf.compare(start + len, 10, "endstream\n"), 0);
  EXPECT_NE(pdf.find(needle), std::string::npos);
}

std::string fetch(const std::string& url, const std::filesystem::path& ca = {}) {
  std::smatch m;
  std::regex re(R"((https?://[^/]+)(/.*))");
  if (!std::regex_match(url, m, re)) {
    return {};
  }
  httplib::Client c(m[1].str());
  if (!ca.empty()) {
    c.set_ca_cert_path(ca.c_str());
  }
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(5, 0);
  auto res = c.Get(m[2].str());
  return res && res->status == 200 ? res->body : std::string();
}

TEST_F(PlatformIT, IssueThenPollToIssuedWithPdf) {
  const auto id = claimed_invoice("t1", "19.19", company());
  auto first = advance(id);
  ASSERT_TRUE(first) << first.error().to_string();
  EXPECT_EQ(*first, InvoiceState::kIssuing);  // the platform is still working on it
  auto second = advance(id);
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ(*second, InvoiceState::kIssued);
  auto inv = store.get_invoice(id).value();
  // YY (FakeClock is in 2026) + province 35 + channel 0 + 15-digit sequence.
  EXPECT_TRUE(std::regex_match(inv.invoice_number, std::regex(R"(26350\d{15})")))
      << inv.invoice_number;
  auto remote = sandbox->find(inv.order_no);
  ASSERT_TRUE(remote);
  EXPECT_EQ(remote->incl_fen, 1919);
  EXPECT_EQ(remote->tax_fen, 56);
  EXPECT_EQ(remote->buyer_tax_num, "91110000802100433B");
  const std::string pdf = fetch(inv.pdf_url);
  ASSERT_FALSE(pdf.empty()) << inv.pdf_url;
  expect_valid_pdf(pdf, "Invoice number: " + inv.invoice_number);
  EXPECT_NE(pdf.find("19.19"), std::string::npos);
  EXPECT_NE(pdf.find("Example Logistics Ltd"), std::string::npos);
  // Further calls change nothing.
  EXPECT_EQ(*advance(id), InvoiceState::kIssued);
}

TEST_F(PlatformIT, MergedInvoiceWithTwoRatesPassesPlatformChecks) {
  // A site that issues parking as a plain line (no 06), on a platform that allows it.
  section.parking.specific_business = false;
  sandbox.reset();
  sim::InvoicingSandboxOptions o;
  o.db_file = dir.path() / "sandbox-plain-parking.db";
  o.clock = &clock;
  o.seller_tax_id = kSeller;
  o.require_parking_06 = false;
  sandbox = sim::InvoicingSandbox::start(o).value();
  platform = make_client("sandbox-app-secret");
  store.create_claim({"t1", "acct", "taxi", *Money::parse("5.61"), clock.now(), ""}).value();
  store.create_claim({"p1", "acct", "parking", *Money::parse("9.00"), clock.now(), ""}).value();
  const std::vector<std::string> ids = {"t1", "p1"};
  auto merged = store.submit_merged("acct", ids, company());
  ASSERT_TRUE(merged);
  ASSERT_TRUE(advance(merged->invoice.id));
  EXPECT_EQ(*advance(merged->invoice.id), InvoiceState::kIssued);
  auto remote = sandbox->find(merged->invoice.order_no);
  EXPECT_EQ(remote->incl_fen, 1461);
  EXPECT_EQ(remote->tax_fen, 16 + 74);
}

TEST_F(PlatformIT, DuplicateOrderNoIsQueriedNotReissued) {
  const auto id = claimed_invoice("t1", "19.19", company());
  const auto inv = store.get_invoice(id).value();
  const auto req = make_issue_request(inv, seller_from_config(section), clock.now());
  // The first issue reached the platform but the reply was lost.
  auto a = platform->issue(req);
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_FALSE(a->duplicate);
  auto b = platform->issue(req);
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_TRUE(b->duplicate);
  EXPECT_EQ(b->serial_num, a->serial_num);
  // The driver, still seeing CLAIMED, resends: E9106 -> query -> ISSUING with that serial.
  ASSERT_TRUE(advance(id));
  EXPECT_EQ(store.get_invoice(id)->serial_num, a->serial_num);
  EXPECT_EQ(*advance(id), InvoiceState::kIssued);
  EXPECT_EQ(sandbox->issue_requests(), 3);  // three issue calls, one invoice
}

TEST_F(PlatformIT, AsynchronousFailureCarriesTheReason) {
  sandbox->fail_next_issue("购方纳税人识别号未在税务机关登记");
  const auto id = claimed_invoice("t1", "19.19", company());
  EXPECT_EQ(*advance(id), InvoiceState::kIssuing);
  EXPECT_EQ(*advance(id), InvoiceState::kFailed);
  auto inv = store.get_invoice(id).value();
  EXPECT_EQ(inv.fail_reason, "购方纳税人识别号未在税务机关登记");
  // Operator retry with the same order number: the platform answers E9106 and the query
  // still reports the failure (the sandbox does not re-run a failed order).
  ASSERT_TRUE(store.retry_failed(id));
  EXPECT_EQ(store.get_invoice(id)->order_no, inv.order_no);
}

TEST_F(PlatformIT, PlatformRefusalMovesToFailedWithCode) {
  // An allow-listed buyer id (check character wrong) that the platform refuses.
  section.buyer_id_allow_list = {"91110000802100433C"};
  Buyer b = company();
  b.tax_id = "91110000802100433C";
  const auto id = claimed_invoice("t1", "19.19", b);
  auto r = advance(id);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, InvoiceState::kFailed);
  EXPECT_NE(store.get_invoice(id)->fail_reason.find("E9104"), std::string::npos);
}

TEST_F(PlatformIT, LinkDownChangesNothingAndIssuesWhenBack) {
  const auto id = claimed_invoice("t1", "19.19", company());
  sandbox->set_unavailable(true);
  auto down = advance(id);
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, Errc::kUnavailable);
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kClaimed);
  // Nothing listening at all: connection refused is also "retry later".
  const int port = sandbox->port();
  auto closed = make_client("sandbox-app-secret", "http://127.0.0.1:1");
  auto refused = advance(id, closed.get());
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().code == Errc::kUnavailable || refused.error().code == Errc::kTimeout);
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kClaimed);
  sandbox->set_unavailable(false);
  EXPECT_EQ(*advance(id), InvoiceState::kIssuing);
  EXPECT_EQ(*advance(id), InvoiceState::kIssued);
  EXPECT_EQ(sandbox->port(), port);
}

TEST_F(PlatformIT, WrongSecretIsRefusedAsPermission) {
  const auto id = claimed_invoice("t1", "19.19", company());
  auto bad = make_client("not-the-secret");
  auto r = advance(id, bad.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kPermission);
  EXPECT_NE(r.error().message.find("E1001"), std::string::npos);
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kClaimed);
  EXPECT_EQ(sandbox->issue_requests(), 0);
}

// A company buyer: the seller's form waits for the buyer (02); once the buyer confirms
// (04) the platform issues the red under our orderNo, and the blue is reversed with the
// reason in both numberings in the ledger.
TEST_F(PlatformIT, RedLetterReversesIssuedInvoice) {
  store.create_claim({"t1", "", "taxi", *Money::parse("19.19"), clock.now(), ""}).value();
  section.parking = {true, "广东省深圳市福田区", "深南大道1000号", false, "", 2};
  store.create_claim({"p1", "", "parking", *Money::parse("9.00"), clock.now(), "", "粤B12345",
                      clock.now() - std::chrono::hours(2), clock.now()})
      .value();
  auto id = store.submit(store.find_by_transaction("p1")->token, company())->invoice.id;
  ASSERT_TRUE(advance(id));
  ASSERT_EQ(*advance(id), InvoiceState::kIssued);
  const auto blue = store.get_invoice(id).value();
  auto red = store.on_refund("p1");
  ASSERT_TRUE(red);
  ASSERT_TRUE(*red);
  const std::int64_t red_id = (*red)->id;
  auto step = advance(red_id);
  ASSERT_TRUE(step) << step.error().to_string();
  EXPECT_EQ(step->state, InvoiceState::kClaimed);
  EXPECT_EQ(step->red, RedConfirmState::kAwaitingBuyer);
  const auto form = store.red_confirmation(red_id).value();
  EXPECT_EQ(form.bill_status, "02");
  EXPECT_EQ(form.bill_no.size(), 20u);
  auto remote_form = sandbox->find_red_confirm(form.bill_id);
  ASSERT_TRUE(remote_form);
  EXPECT_EQ(remote_form->red_reason, "1");  // a refund: 销货退回, Nuonuo's 1
  EXPECT_EQ(remote_form->blue_number, blue.invoice_number);
  // Nothing moves while the buyer has not answered; no red exists yet.
  EXPECT_EQ(advance(red_id)->red, RedConfirmState::kAwaitingBuyer);
  EXPECT_FALSE(sandbox->find((*red)->order_no));
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kIssued);

  sandbox->buyer_confirms(form.bill_id, true);
  EXPECT_EQ(*advance(red_id), InvoiceState::kIssuing);
  EXPECT_EQ(*advance(red_id), InvoiceState::kIssued);
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kReversed);
  EXPECT_EQ(store.red_confirmation(red_id)->state, RedConfirmState::kUsed);
  EXPECT_EQ(sandbox->fast_red_requests(), 0);  // the platform issued it itself
  auto remote_red = sandbox->find((*red)->order_no);
  ASSERT_TRUE(remote_red);
  EXPECT_EQ(remote_red->kind, "red");
  EXPECT_EQ(remote_red->incl_fen, -900);
  EXPECT_EQ(remote_red->original_number, blue.invoice_number);
  EXPECT_TRUE(sandbox->find(blue.order_no)->reversed);
  const std::string pdf = fetch(store.get_invoice(red_id)->pdf_url);
  expect_valid_pdf(pdf, "Reverses invoice: " + blue.invoice_number);
  EXPECT_NE(pdf.find("-9.00"), std::string::npos);
  // The blue invoice PDF is still served, unchanged.
  expect_valid_pdf(fetch(blue.pdf_url), "Invoice number: " + blue.invoice_number);

  auto rec = ledger::read(db, ledger::SeqRange{1, 1000});
  ASSERT_TRUE(rec) << rec.error().to_string();
  const auto reversed = std::find_if(rec->begin(), rec->end(), [](const ledger::LedgerEntry& r) {
    return r.event.kind == ledger::Kind::kInvoiceReversed;
  });
  ASSERT_NE(reversed, rec->end());
  const std::string& detail = reversed->event.detail;
  EXPECT_NE(detail.find("\"bureau_red_reason\":\"02\""), std::string::npos) << detail;
  EXPECT_NE(detail.find("\"red_reason\":1"), std::string::npos) << detail;
  EXPECT_NE(detail.find(form.bill_no), std::string::npos) << detail;
}

// A person as buyer: no confirmation needed (01), the red follows at once.
TEST_F(PlatformIT, RedLetterForAPersonNeedsNoConfirmation) {
  const auto id = claimed_invoice("t1", "19.19", Buyer{BuyerKind::kPerson, "个人", "", "p@example.cn", ""});
  ASSERT_TRUE(advance(id));
  ASSERT_EQ(*advance(id), InvoiceState::kIssued);
  auto red = store.request_red_letter(id, RedLetterReason::kInvoicingError).value();
  EXPECT_EQ(*advance(red.id), InvoiceState::kIssuing);
  EXPECT_EQ(store.red_confirmation(red.id)->bill_status, "01");
  EXPECT_EQ(sandbox->find_red_confirm(store.red_confirmation(red.id)->bill_id)->red_reason, "2");
  EXPECT_EQ(*advance(red.id), InvoiceState::kIssued);
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kReversed);
  EXPECT_EQ(sandbox->find(red.order_no)->incl_fen, -1919);
}

// Where the platform does not issue the red by itself, the client asks with fastInvoiceRed
// and the confirmed form's billNo and billUuid, under the same orderNo.
TEST_F(PlatformIT, WithoutAnAutomaticRedTheClientUsesFastInvoiceRed) {
  start_sandbox([](sim::InvoicingSandboxOptions& o) { o.auto_issue_red = false; });
  const auto id = claimed_invoice("t1", "19.19", Buyer{BuyerKind::kPerson, "个人", "", "p@example.cn", ""});
  ASSERT_TRUE(advance(id));
  ASSERT_EQ(*advance(id), InvoiceState::kIssued);
  auto red = store.request_red_letter(id, RedLetterReason::kReturned).value();
  EXPECT_EQ(*advance(red.id), InvoiceState::kIssuing);
  EXPECT_EQ(sandbox->fast_red_requests(), 1);
  EXPECT_EQ(*advance(red.id), InvoiceState::kIssued);
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kReversed);
  EXPECT_TRUE(sandbox->find_red_confirm(store.red_confirmation(red.id)->bill_id)->issued);
  EXPECT_EQ(sandbox->find(red.order_no)->kind, "red");
}

// The buyer says no (05): no red, the blue stays issued, the red fails with the reason; an
// operator's retry opens a second form, which the buyer then accepts.
TEST_F(PlatformIT, ARejectedFormReversesNothingAndARetryAppliesAgain) {
  const auto id = claimed_invoice("t1", "19.19", company());
  ASSERT_TRUE(advance(id));
  ASSERT_EQ(*advance(id), InvoiceState::kIssued);
  auto red = store.request_red_letter(id, RedLetterReason::kServiceStopped).value();
  ASSERT_EQ(advance(red.id)->red, RedConfirmState::kAwaitingBuyer);
  const auto first = store.red_confirmation(red.id).value();
  sandbox->buyer_confirms(first.bill_id, false);
  EXPECT_EQ(*advance(red.id), InvoiceState::kFailed);
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kIssued);
  EXPECT_NE(store.get_invoice(red.id)->fail_reason.find("05"), std::string::npos)
      << store.get_invoice(red.id)->fail_reason;
  EXPECT_FALSE(sandbox->find(red.order_no));

  ASSERT_TRUE(store.retry_failed(red.id));
  ASSERT_EQ(advance(red.id)->red, RedConfirmState::kAwaitingBuyer);
  const auto second = store.red_confirmation(red.id).value();
  EXPECT_EQ(second.attempt, 2);
  EXPECT_NE(second.bill_id, first.bill_id);
  sandbox->buyer_confirms(second.bill_id, true);
  EXPECT_EQ(*advance(red.id), InvoiceState::kIssuing);
  EXPECT_EQ(*advance(red.id), InvoiceState::kIssued);
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kReversed);
}

// Spec: 72 hours without the buyer's answer voids the form (07): stop and alarm.
TEST_F(PlatformIT, AFormTheBuyerLetsLapseIsVoidAfter72Hours) {
  const auto id = claimed_invoice("t1", "19.19", company());
  ASSERT_TRUE(advance(id));
  ASSERT_EQ(*advance(id), InvoiceState::kIssued);
  auto red = store.request_red_letter(id, RedLetterReason::kReturned).value();
  ASSERT_EQ(advance(red.id)->red, RedConfirmState::kAwaitingBuyer);
  clock.advance(std::chrono::hours(71));
  ASSERT_EQ(advance(red.id)->red, RedConfirmState::kAwaitingBuyer);
  clock.advance(std::chrono::hours(2));
  EXPECT_EQ(*advance(red.id), InvoiceState::kFailed);
  const auto forms = store.red_confirmations(red.id).value();
  ASSERT_EQ(forms.size(), 1u);
  EXPECT_EQ(forms[0].state, RedConfirmState::kVoid);
  EXPECT_EQ(forms[0].bill_status, "07");
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kIssued);
}

// The apply reached the platform but its answer was lost (the worker crashed or the link
// dropped after the request left): the form is found by its billId, never applied twice.
TEST_F(PlatformIT, AnApplyWhoseAnswerWasLostIsFoundNotRepeated) {
  const auto id = claimed_invoice("t1", "19.19", Buyer{BuyerKind::kPerson, "个人", "", "p@example.cn", ""});
  ASSERT_TRUE(advance(id));
  ASSERT_EQ(*advance(id), InvoiceState::kIssued);
  auto red = store.request_red_letter(id, RedLetterReason::kReturned).value();
  auto form = store.red_confirmation(red.id).value();
  ASSERT_TRUE(store.mark_red_apply_sent(form));  // committed, then the request left ...
  ASSERT_TRUE(platform->apply_red_confirm(
      make_red_confirm_apply(form, red, store.get_invoice(id).value(), seller_from_config(section))));
  // ... and the answer never came back. The next advance asks first.
  EXPECT_EQ(*advance(red.id), InvoiceState::kIssuing);
  EXPECT_EQ(*advance(red.id), InvoiceState::kIssued);
  EXPECT_EQ(store.red_confirmations(red.id)->size(), 1u);
}

// Answers the spec does not list change nothing and are reported (the worker parks them);
// Nuonuo's 16 (apply failed) fails the red with the platform's message.
TEST_F(PlatformIT, UnknownFormStatusChangesNothingAndAFailedApplyFailsTheRed) {
  const auto id = claimed_invoice("t1", "19.19", company());
  ASSERT_TRUE(advance(id));
  ASSERT_EQ(*advance(id), InvoiceState::kIssued);
  auto red = store.request_red_letter(id, RedLetterReason::kReturned).value();
  ASSERT_EQ(advance(red.id)->red, RedConfirmState::kAwaitingBuyer);
  const auto form = store.red_confirmation(red.id).value();
  sandbox->force_bill_status(form.bill_id, "99");
  auto r = advance(red.id);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kProtocol);
  EXPECT_EQ(r.error().field, "bill_status");
  EXPECT_EQ(store.red_confirmation(red.id)->state, RedConfirmState::kAwaitingBuyer);
  EXPECT_EQ(store.get_invoice(red.id)->state, InvoiceState::kClaimed);

  sandbox->force_bill_status(form.bill_id, "16");
  EXPECT_EQ(*advance(red.id), InvoiceState::kFailed);
  EXPECT_EQ(store.red_confirmations(red.id)->back().state, RedConfirmState::kRefused);
  EXPECT_NE(store.get_invoice(red.id)->fail_reason.find("申请失败"), std::string::npos)
      << store.get_invoice(red.id)->fail_reason;
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kIssued);
}

TEST_F(PlatformIT, SandboxRefusesTamperedAmounts) {
  const auto id = claimed_invoice("t1", "19.19", company());
  auto inv = store.get_invoice(id).value();
  auto req = make_issue_request(inv, seller_from_config(section), clock.now());
  req.lines[0].tax = *Money::parse("0.70");  // 18.63 * 3% = 0.56, off by 0.14
  req.lines[0].excl = *Money::parse("18.49");
  auto r = platform->issue(req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRejected);
  EXPECT_NE(r.error().message.find("E9207"), std::string::npos) << r.error().message;
  req = make_issue_request(inv, seller_from_config(section), clock.now());
  req.lines[0].tax_code = "304050202020000000";  // 18 digits
  auto r2 = platform->issue(req);
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().message.find("E9202"), std::string::npos);
}

TEST_F(PlatformIT, StaleTimestampIsRefused) {
  const auto id = claimed_invoice("t1", "19.19", company());
  FakeClock late;  // same start, then ten minutes ahead of the platform
  late.advance(std::chrono::minutes(10));
  PlatformClientOptions po;
  po.base_url = sandbox->base_url();
  po.app_key = "sandbox-app-key";
  po.access_token = "sandbox-access-token";
  po.seller_tax_id = kSeller;
  po.clerk = "测试开票员";
  NuonuoPlatform skewed(po, std::make_unique<NuonuoSigner>("sandbox-app-secret"), late);
  auto r = advance(id, &skewed);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("E1003"), std::string::npos);
}

// Platform quirks (specs/e-invoice.md "Invoicing platform API", issue 17 point 5): a status
// code we do not know, a paper-only status, two spellings that disagree and an amount that
// contradicts the invoice each stop the invoice where it is (kProtocol naming the field,
// which the worker parks with an alarm) instead of being taken for an answer.
// A parking stay issued end to end as specific business 06: the sandbox (which refuses
// parking without 06) issues it, keeps the block, and prints it on the PDF.
TEST_F(PlatformIT, ParkingIsIssuedAsALease) {
  section.parking = {true, "广东省深圳市福田区", "深南大道1000号", false, "", 2};
  const SystemTime entry{std::chrono::seconds(1795362600)};  // 2026-11-22 23:50 CST
  store.create_claim({"p1", "", "parking", *Money::parse("9.00"), clock.now(), "", "粤B12345",
                      entry, entry + std::chrono::minutes(40)})
      .value();
  auto id = store.submit(store.find_by_transaction("p1")->token, Buyer{BuyerKind::kPerson, "", "", "a@example.cn", ""})->invoice.id;
  ASSERT_TRUE(advance(id));
  ASSERT_EQ(*advance(id), InvoiceState::kIssued);
  const auto inv = store.get_invoice(id).value();
  auto remote = sandbox->find(inv.order_no);
  ASSERT_TRUE(remote);
  EXPECT_EQ(remote->specific_factor, "6");
  EXPECT_NE(remote->remark.find("粤B12345"), std::string::npos);
  expect_valid_pdf(fetch(inv.pdf_url), "Specific business 06 real property lease: 2026-11-22 to 2026-11-23");
}

// The same stay on a site that switched 06 off is refused by a platform that requires it:
// the invoice fails with the platform's reason instead of being issued wrong.
TEST_F(PlatformIT, PlainParkingIsRefusedByAPlatformThatRequires06) {
  section.parking.specific_business = false;
  store.create_claim({"p1", "", "parking", *Money::parse("9.00"), clock.now(), ""}).value();
  auto id = store.submit(store.find_by_transaction("p1")->token, Buyer{BuyerKind::kPerson, "", "", "a@example.cn", ""})->invoice.id;
  EXPECT_EQ(*advance(id), InvoiceState::kFailed);
  EXPECT_NE(store.get_invoice(id)->fail_reason.find("E9129"), std::string::npos);
}

TEST_F(PlatformIT, UnknownAndPaperOnlyStatusesChangeNothing) {
  for (const char* code : {"99", "3", "31"}) {
    const auto id = claimed_invoice(std::string("t-") + code, "19.19", company());
    ASSERT_EQ(*advance(id), InvoiceState::kIssuing);
    sandbox->force_status(store.get_invoice(id)->order_no, code);
    auto r = advance(id);
    ASSERT_FALSE(r) << code;
    EXPECT_EQ(r.error().code, Errc::kProtocol) << code;
    EXPECT_EQ(r.error().field, "status") << code;
    EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kIssuing) << code;
  }
}

TEST_F(PlatformIT, AnAmountThatContradictsTheInvoiceIsNotMarkedIssued) {
  const auto id = claimed_invoice("t1", "19.19", company());
  ASSERT_EQ(*advance(id), InvoiceState::kIssuing);
  sandbox->misreport_amount(store.get_invoice(id)->order_no, 100);
  auto r = advance(id);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "amount");
  EXPECT_NE(r.error().message.find("20.19"), std::string::npos) << r.error().message;
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kIssuing);
  EXPECT_TRUE(store.get_invoice(id)->invoice_number.empty());
}

class PlatformNumberFieldIT : public PlatformIT,
                              public ::testing::WithParamInterface<sim::NumberField> {};

TEST_P(PlatformNumberFieldIT, EitherSpellingIssuesTwoDifferentNumbersDoNot) {
  sandbox.reset();
  sim::InvoicingSandboxOptions o;
  o.db_file = dir.path() / "sandbox2.db";
  o.clock = &clock;
  o.seller_tax_id = kSeller;
  o.number_field = GetParam();
  sandbox = sim::InvoicingSandbox::start(o).value();
  platform = make_client("sandbox-app-secret");
  const auto id = claimed_invoice("t1", "19.19", company());
  ASSERT_EQ(*advance(id), InvoiceState::kIssuing);
  auto r = advance(id);
  if (GetParam() == sim::NumberField::kBothConflicting) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().field, "invoice_number");
    EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kIssuing);
    return;
  }
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, InvoiceState::kIssued);
  EXPECT_EQ(store.get_invoice(id)->invoice_number.size(), 20u);
}

INSTANTIATE_TEST_SUITE_P(Spellings, PlatformNumberFieldIT,
                         ::testing::Values(sim::NumberField::kTruncated, sim::NumberField::kFull,
                                           sim::NumberField::kBoth,
                                           sim::NumberField::kBothConflicting));

// X-Nuonuo-Sign URL-encoded (sign_encoding = "url", the spec's *unconfirmed* alternative):
// once the server decodes the header it is the very signature the plain form carries, so
// the sandbox verifies it and the invoice issues. (The exact bytes on the wire are in
// wire_fields_test.cc.) A wrong secret still fails with the URL form.
TEST_F(PlatformIT, UrlEncodedSignatureVerifiesOnceDecoded) {
  PlatformClientOptions po;
  po.base_url = sandbox->base_url();
  po.app_key = "sandbox-app-key";
  po.access_token = "sandbox-access-token";
  po.seller_tax_id = kSeller;
  po.clerk = "测试开票员";
  po.sign_encoding = config::SignEncoding::kUrl;
  NuonuoPlatform wrong(po, std::make_unique<NuonuoSigner>("not-the-secret"), clock);
  NuonuoPlatform url(po, std::make_unique<NuonuoSigner>("sandbox-app-secret"), clock);
  const auto id = claimed_invoice("t1", "19.19", company());
  auto refused = advance(id, &wrong);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("E1001"), std::string::npos) << refused.error().message;
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kClaimed);
  ASSERT_TRUE(advance(id, &url));
  EXPECT_EQ(*advance(id, &url), InvoiceState::kIssued);
}

// Real HTTPS: the sandbox serves a certificate for 127.0.0.1 made here with the openssl
// tool; the client trusts exactly that certificate and refuses the connection without it.
TEST(PlatformTlsIT, IssuesOverVerifiedHttps) {
  TempDir dir;
  const auto cert = dir.path() / "cert.pem";
  const auto key = dir.path() / "key.pem";
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1"
                          " -addext subjectAltName=IP:127.0.0.1 -keyout " + key.string() +
                          " -out " + cert.string() + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    GTEST_SKIP() << "openssl tool not available";
  }
  FakeClock clock(std::chrono::system_clock::now());  // certificate validity is real time
  sim::InvoicingSandboxOptions o;
  o.db_file = dir.path() / "sandbox.db";
  o.clock = &clock;
  o.tls_cert_file = cert;
  o.tls_key_file = key;
  o.seller_tax_id = kSeller;
  auto sandbox = sim::InvoicingSandbox::start(o);
  ASSERT_TRUE(sandbox) << sandbox.error().to_string();
  ASSERT_TRUE((*sandbox)->base_url().starts_with("https://127.0.0.1:"));

  Database db = Database::open(dir.path() / "gw.db").value();
  ASSERT_TRUE(db.migrate(claims_schema()));
  config::InvoicingSection section;
  section.seller_tax_id = kSeller;
  ClaimStore store(db, section, clock);
  auto c = store.create_claim({"t1", "", "taxi", *Money::parse("9.00"), clock.now(), ""});
  auto id = store.submit(c->token, Buyer{BuyerKind::kPerson, "", "", "a@example.cn", ""})
                ->invoice.id;

  PlatformClientOptions po;
  po.base_url = (*sandbox)->base_url();
  po.app_key = "sandbox-app-key";
  po.access_token = "sandbox-access-token";
  po.seller_tax_id = kSeller;
  po.clerk = "测试开票员";
  po.connect_timeout = std::chrono::milliseconds(2000);
  po.request_timeout = std::chrono::milliseconds(5000);
  NuonuoPlatform untrusting(po, std::make_unique<NuonuoSigner>("sandbox-app-secret"), clock);
  auto refused = advance_invoice(store, untrusting, seller_from_config(section), id, clock);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::kCrypto) << refused.error().to_string();
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kClaimed);

  po.ca_file = cert;
  NuonuoPlatform trusting(po, std::make_unique<NuonuoSigner>("sandbox-app-secret"), clock);
  auto r1 = advance_invoice(store, trusting, seller_from_config(section), id, clock);
  ASSERT_TRUE(r1) << r1.error().to_string();
  auto r2 = advance_invoice(store, trusting, seller_from_config(section), id, clock);
  ASSERT_TRUE(r2) << r2.error().to_string();
  EXPECT_EQ(*r2, InvoiceState::kIssued);
  const auto inv = store.get_invoice(id).value();
  EXPECT_TRUE(inv.pdf_url.starts_with("https://127.0.0.1:")) << inv.pdf_url;
  expect_valid_pdf(fetch(inv.pdf_url, cert), "Invoice number: " + inv.invoice_number);
}

}  // namespace
}  // namespace lanegate::invoice
