#pragma once
// lanegate-sim invoicing: a local invoicing platform speaking the Nuonuo-style open API
// of docs/INVOICE.md (POST /open/v1/services), so the gateway's platform client, the demo
// and tests run the real protocol on one machine. Its checks are written from the spec,
// independently of invoice/ (which sim/ must not link): the envelope (query senid /
// nonce / timestamp / appkey, X-Nuonuo-Sign = HMAC-SHA1 over the spec's sign string;
// plain or URL-encoded both verify, because cpp-httplib percent-decodes header values
// before the sandbox sees them), access token, userTax = seller, timestamp window
// and senid replay; the order and line keys against the spec's lists (an unlisted key is
// refused naming it), clerk, remark length; per line the 19-digit code, the flag/rate
// pairs, allowed rate, excl + tax = incl and
// |excl * r - tax| <= 0.06 yuan, price * num = incl; the buyer id check character;
// totals; red letters against the original invoice; the red-letter calls
// saveInvoiceRedConfirm, queryInvoiceRedConfirm, confirm and fastInvoiceRed (keys,
// required fields, the blue and the form they name, the form's state).
//
// Endpoints (127.0.0.1; HTTPS when a certificate and key are given, plain HTTP otherwise):
//   POST /open/v1/services          headers accessToken, userTax, method
//   GET  /invoices/{number}.pdf     the invoice as a real PDF 1.4
//
// Invoice lifecycle in the sandbox (one row per orderNo, never deleted):
//   (none) --issue accepted--> 20 (in progress) --after N queries--> 2 (issued) | 22 (failed)
// Invariants:
//   1. An orderNo is accepted once; a second issue with it is answered E9106 and changes
//      nothing. An orderNo a red-letter confirmation form holds for its red counts as used.
//   2. Invoice numbers are 20 digits: YY + province (2) + channel (1) + a 15-digit
//      sequence that only grows (persisted), so no number is handed out twice.
//   3. A blue invoice is reversed at most once, by a red invoice with the same lines
//      negated in the same order; it is marked reversed when that red reaches 2.
//   4. Issuing is asynchronous but deterministic: the first `queries_in_progress`
//      queries of an order answer 20, the next one issues (no timers, no sleeps).
//
// Red-letter confirmation forms (红字确认单, spec "Red-letter (冲红) for 数电 invoices"; one
// row per billId, never deleted). States are the platform's billStatus codes:
//
//   saveInvoiceRedConfirm --buyer has no tax id--------------------------> 01 (no confirmation)
//   saveInvoiceRedConfirm (applySource 0) / buyer_applies() (source 1) --> 02 / 03
//   02 --confirm identity 1 or buyer_confirms(): agree--> 04   reject--> 05
//   03 --confirm identity 0:                     agree--> 04   reject--> 06
//   02 | 03 --read more than 72 h after the apply (sandbox clock)------> 07
//   any --force_bill_status()--> any code (16 carries billMessage "该发票已全额冲红")
//   01 | 04 --auto-issue (at the moment the form reaches it, when the form has an orderNo
//             and auto_issue_red) or fastInvoiceRed(billNo + billUuid)--> issued
//             (openStatus 1): a red order exists, and follows the invoice lifecycle above
// Invariants:
//   5. A blue has at most one live form (live: any state but 05-10 and 16).
//   6. A form is issued at most once, only at 01 or 04, and the red it issues reverses
//      exactly its blue (lines and totals negated); the red inherits a planned failure
//      (fail_next_issue) like any order.
//   7. billId, billNo (20 digits) and billUuid (32 lowercase hex) are each unique.
//   8. The first `red_apply_pending_queries` queries of a form report 15 (申请中) with
//      openStatus 0; only the reply changes, not the state that confirm and
//      fastInvoiceRed check.
//
// Threading: start() runs the HTTP server on its own threads; all public methods are
// thread-safe.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/error.h"

namespace lanegate::sim {

// How the query reply names the 数电 number: the platform's "allElectronicInvoiceNumbe",
// the full spelling, both, or both with different values (a test of the client's check).
enum class NumberField { kTruncated, kFull, kBoth, kBothConflicting };

struct InvoicingSandboxOptions {
  std::filesystem::path db_file;  // sandbox state (created when missing)
  int port = 0;                   // 0: any free port
  // Both set: serve HTTPS with this PEM certificate chain and private key.
  std::filesystem::path tls_cert_file;
  std::filesystem::path tls_key_file;
  std::string app_key = "sandbox-app-key";
  std::string app_secret = "sandbox-app-secret";
  std::string access_token = "sandbox-access-token";
  std::string seller_tax_id = "339902999999789113";  // the spec's sandbox seller
  std::string seller_name = "沙箱测试销方";          // printed on the PDF
  NumberField number_field = NumberField::kTruncated;
  // Red letters: the platform issues a 数电 red itself once its form reaches 01 or 04
  // ("电票都自动开"), under the orderNo the form carries. false: the form waits at
  // openStatus 0 until fastInvoiceRed.
  bool auto_issue_red = true;
  // The first N queries of a new confirmation form answer billStatus 15 (申请中).
  int red_apply_pending_queries = 0;
  // Specific business (spec: *unconfirmed* whether the platform refuses parking without 06 or
  // a 06 block without a certificate; the sandbox can play either platform).
  bool require_parking_06 = true;
  bool require_certificate = false;
  // Which traveller-list key names the platform accepts (spec: *unconfirmed*).
  std::vector<std::string> traveller_keys = {"invoiceTravellerTransport",
                                             "invoiceTravellerTransportInfoList"};
  std::string province_code = "35";  // 2 digits in invoice numbers
  char channel = '0';
  int queries_in_progress = 1;
  int timestamp_window_s = 300;
  const Clock* clock = &SystemClock::instance();  // not owned
};

struct SandboxInvoice {
  std::string order_no;
  std::string serial_num;
  std::string status;  // "20" | "2" | "22"
  std::string kind;    // "blue" | "red"
  std::string invoice_number;
  std::string original_number;
  std::string buyer_name;
  std::string buyer_tax_num;
  std::int64_t excl_fen = 0;
  std::int64_t tax_fen = 0;
  std::int64_t incl_fen = 0;
  std::string fail_cause;
  bool reversed = false;
  std::string specific_factor;  // "0" | "6" | "9" | ...
  std::string remark;
  std::string invoice_line;  // "pc" | "bs"; "" for orders stored before forms existed
};

// A red-letter confirmation form as stored (after the 72-hour rule), not as a query
// reports it while it is pending.
struct SandboxRedConfirm {
  std::string bill_id, bill_no, bill_uuid, bill_status, blue_number, red_reason, order_no,
      serial_num;  // order_no: the red's (wanted, or used once issued); serial_num once issued
  int apply_source = 0;  // 0 seller, 1 buyer
  bool issued = false;   // openStatus
};

class InvoicingSandbox {
 public:
  [[nodiscard]] static Result<std::unique_ptr<InvoicingSandbox>> start(InvoicingSandboxOptions options);
  ~InvoicingSandbox();  // stops the server
  InvoicingSandbox(const InvoicingSandbox&) = delete;
  InvoicingSandbox& operator=(const InvoicingSandbox&) = delete;

  int port() const;
  std::string base_url() const;  // "https://127.0.0.1:PORT" (or http:// without TLS)
  void stop();

  // Test hooks.
  // The next accepted order fails asynchronously (status 22) with this cause.
  void fail_next_issue(std::string cause);
  // While set, every API call is answered HTTP 503 (platform down).
  void set_unavailable(bool unavailable);
  // Queries of this order answer `code` as its status (e.g. "99", "3", "31").
  void force_status(const std::string& order_no, std::string code);
  // Queries of this order report orderAmount off by `fen`.
  void misreport_amount(const std::string& order_no, std::int64_t fen);
  std::optional<SandboxInvoice> find(const std::string& order_no) const;
  std::int64_t issue_requests() const;  // issue calls that reached the business checks

  // Red-letter test hooks (see the form lifecycle above).
  std::optional<SandboxRedConfirm> find_red_confirm(const std::string& bill_id) const;
  // The buyer answers a seller-entered form: 02 -> 04 (and auto-issue) or 05. Does nothing
  // unless the form is at 02.
  void buyer_confirms(const std::string& bill_id, bool agree);
  // The buyer enters a form (applySource 1, state 03, no orderNo) for this issued blue and
  // reason "1".."4"; returns its billId, or "" when the blue is unknown, not issued,
  // reversed, or already has a live form.
  std::string buyer_applies(const std::string& blue_number, std::string red_reason);
  // Stores `code` as the form's state (e.g. "16", "99", "10"); nothing else happens (no red
  // is issued). "16" gets billMessage "该发票已全额冲红".
  void force_bill_status(const std::string& bill_id, std::string code);
  std::int64_t fast_red_requests() const;  // fastInvoiceRed calls that reached the business checks

  struct Impl;

 private:
  explicit InvoicingSandbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// `lanegate-sim invoicing --db FILE [--port N] [--app-secret-file F] [--access-token-file F]
//  [--app-key K] [--seller-tax-id ID] [--seller-name NAME]
//  [--queries-in-progress N] [--no-auto-issue-red] [--red-apply-pending-queries N]
//  [--tls-cert F --tls-key F]`:
// prints "ready http(s)://127.0.0.1:PORT" and serves until SIGINT/SIGTERM. Returns the exit code.
int run_invoicing_sandbox(std::span<const std::string> args);

}  // namespace lanegate::sim
