#pragma once
// The invoicing platform: a licensed service that signs and files invoices with the tax
// authority. The gateway talks to it through InvoicingPlatform so that platforms (and
// the sandbox in sim/) can be swapped; NuonuoPlatform speaks the Nuonuo-style open API
// described in docs/INVOICE.md over cpp-httplib.
//
// Issuing is asynchronous: issue() returns once the platform accepted the order (a
// serial number), query() reports the outcome. orderNo is the idempotency key: a resent
// issue for the same order is answered E9106 by the platform, which issue() turns into a
// query, so a retry can never create a second invoice.
//
// Threading: a NuonuoPlatform may be used by one thread at a time (the outbox worker);
// it blocks for at most the configured timeouts. Create one per worker thread.

#include <chrono>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/error.h"
#include "invoice/claims.h"
#include "invoice/model.h"
#include "invoice/specific_business.h"

namespace lanegate::invoice {

// What the platform needs to issue one blue invoice. Red invoices never go through
// requestBillingNew (spec: "2 red is not used for 数电"); see the red-letter calls below.
struct IssueRequest {
  std::string order_no;
  Seller seller;
  Buyer buyer;
  std::vector<InvoiceLine> lines;
  SystemTime invoice_date;
  SpecificBusiness specific;            // specificFactor, its block, and the remark
};

// Builds the request for a stored blue invoice.
IssueRequest make_issue_request(const InvoiceRecord& invoice, const Seller& seller, SystemTime now);

// saveInvoiceRedConfirm: a seller-entered red-letter form for one issued blue invoice.
struct RedConfirmApply {
  std::string bill_id;         // ours (R2): the platform would otherwise make one
  std::string blue_number;     // 20 digits: blueElecInvoiceNumber
  std::string blue_line = "pc";  // blueInvoiceLine: the blue was issued as 数电普票
  Seller seller;
  Buyer buyer;                 // the blue's buyer (name; tax id for a company)
  RedLetterReason reason = RedLetterReason::kReturned;
  std::string red_order_no;    // orderNo: the red's number if the platform issues it itself
};
RedConfirmApply make_red_confirm_apply(const RedConfirmation& form, const InvoiceRecord& red,
                                       const InvoiceRecord& blue, const Seller& seller);

// fastInvoiceRed: the red invoice for a confirmed form.
struct FastRedRequest {
  std::string order_no;     // the red invoice's order number (R6)
  std::string seller_tax_id;
  std::string blue_serial;  // invoiceId
  std::string blue_number;  // elecInvoiceNumber
  std::string bill_no;
  std::string bill_uuid;
  std::string invoice_line = "pc";
};

struct IssueAccepted {
  std::string serial_num;
  bool duplicate = false;  // the platform already had this orderNo (E9106 -> query)
};

// Platform status codes: 2 issued, 20 in progress, 21 signing/sealing, 22 failed,
// 24 sealing failed, 3 voided and 31 voiding (paper invoices only). Any other code is
// kProtocol (field "status"): the worker parks the item with an alarm.
enum class PlatformStatus { kIssued, kInProgress, kSigning, kFailed, kSealFailed, kVoided, kVoiding };
[[nodiscard]] Result<PlatformStatus> platform_status_from_code(std::string_view code);
bool is_final(PlatformStatus s);

struct IssueResult {
  std::string order_no;
  std::string serial_num;
  PlatformStatus status = PlatformStatus::kInProgress;
  std::string invoice_number;  // allElectronicInvoiceNumbe (or ...Number), 20 digits when issued
  // exTaxAmount / taxAmount / orderAmount in fen, when the reply carries them: checked
  // against the stored invoice before it is marked issued.
  std::optional<std::int64_t> excl_fen;
  std::optional<std::int64_t> tax_fen;
  std::optional<std::int64_t> incl_fen;
  std::string pdf_url;
  std::string ofd_url;
  std::string qr_code;
  std::string fail_reason;
};

class InvoicingPlatform {
 public:
  virtual ~InvoicingPlatform() = default;
  // Errors: kUnavailable/kTimeout (link down: retry later, same order), kBusy (platform
  // retry limit E9613: retry tomorrow), kPermission (credentials or signature refused:
  // an operator must fix the config), kRejected (the platform refused this invoice:
  // the message says why; do not retry unchanged), kProtocol (unexpected reply).
  [[nodiscard]] virtual Result<IssueAccepted> issue(const IssueRequest& request) = 0;
  // kNotFound when the platform does not know the order.
  [[nodiscard]] virtual Result<IssueResult> query(std::string_view order_no) = 0;

  // Red letters (spec "Red-letter (冲红) for 数电 invoices"); errors as for issue().
  // saveInvoiceRedConfirm; a refusal that mentions a duplicate becomes a query by billId.
  // Returns the form's billId.
  [[nodiscard]] virtual Result<std::string> apply_red_confirm(const RedConfirmApply& apply) = 0;
  // queryInvoiceRedConfirm as the seller (identity 0) by billId; kNotFound when the
  // platform has no such form.
  [[nodiscard]] virtual Result<RedConfirmView> query_red_confirm(std::string_view bill_id) = 0;
  // fastInvoiceRed; a duplicate orderNo becomes a query (as for issue()).
  [[nodiscard]] virtual Result<IssueAccepted> fast_red(const FastRedRequest& request) = 0;
};

// The request signature scheme, behind its own interface: platforms differ.
class RequestSigner {
 public:
  virtual ~RequestSigner() = default;
  // The X-Nuonuo-Sign value (before any header encoding) over nuonuo_sign_string().
  [[nodiscard]] virtual Result<std::string> sign(std::string_view sign_string) const = 0;
};

// Base64(HMAC-SHA1(app_secret, sign_string)): specs/e-invoice.md "Invoicing platform API".
class NuonuoSigner final : public RequestSigner {
 public:
  explicit NuonuoSigner(std::string app_secret) : secret_(std::move(app_secret)) {}
  [[nodiscard]] Result<std::string> sign(std::string_view sign_string) const override;

 private:
  std::string secret_;
};

// "a=services&l=v1&p=open&k={appKey}&i={senid}&n={nonce}&t={timestamp}&f={content}", values
// verbatim (content is the JSON body as sent).
std::string nuonuo_sign_string(std::string_view app_key, std::string_view senid,
                               std::string_view nonce, std::string_view timestamp,
                               std::string_view content);

// True for a refusal that says the order (or request) already exists: E9106, or any reply
// whose text mentions a duplicate (重复 / "duplicate"). The spec marks the codes
// *unconfirmed* and asks to query before doing anything else on such a refusal.
bool is_duplicate_refusal(std::string_view code, std::string_view describe);

inline constexpr std::string_view kMethodIssue = "nuonuo.OpeMplatform.requestBillingNew";
inline constexpr std::string_view kMethodQuery = "nuonuo.OpeMplatform.queryInvoiceResult";
inline constexpr std::string_view kMethodRedApply = "nuonuo.OpeMplatform.saveInvoiceRedConfirm";
inline constexpr std::string_view kMethodRedQuery = "nuonuo.OpeMplatform.queryInvoiceRedConfirm";
inline constexpr std::string_view kMethodFastRed = "nuonuo.OpeMplatform.fastInvoiceRed";

struct PlatformClientOptions {
  std::string base_url;         // "https://sdk.nuonuo.com" or "http://127.0.0.1:PORT"
  std::string app_key;
  std::string access_token;     // secret: never logged
  std::string seller_tax_id;    // body salerTaxNum and header userTax
  std::string clerk;            // order clerk (数电: the e-tax account's clerk)
  config::SignEncoding sign_encoding = config::SignEncoding::kPlain;
  // The [[invoicing.tax]] rules: a small-scale seller's surveyAnswerType comes from the
  // rule of the line's service and rate.
  std::vector<config::TaxRule> tax_rules;
  // Where the 09 traveller rows go: the spec leaves open which of the two names the platform
  // accepts ([invoicing.taxi] traveller_list_key).
  std::string traveller_list_key = "invoiceTravellerTransportInfoList";
  std::string callback_url;     // optional: where the platform posts results
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds request_timeout{10000};
  std::optional<std::filesystem::path> ca_file;
  bool verify_tls = true;
};

class NuonuoPlatform final : public InvoicingPlatform {
 public:
  // REQUIRES: `clock` outlives the client.
  NuonuoPlatform(PlatformClientOptions options, std::unique_ptr<RequestSigner> signer,
                 const Clock& clock);
  ~NuonuoPlatform() override;
  [[nodiscard]] Result<IssueAccepted> issue(const IssueRequest& request) override;
  [[nodiscard]] Result<IssueResult> query(std::string_view order_no) override;
  [[nodiscard]] Result<std::string> apply_red_confirm(const RedConfirmApply& apply) override;
  [[nodiscard]] Result<RedConfirmView> query_red_confirm(std::string_view bill_id) override;
  [[nodiscard]] Result<IssueAccepted> fast_red(const FastRedRequest& request) override;

 private:
  struct Reply {
    std::string code;
    std::string describe;
    std::string result_json;
  };
  Result<Reply> call(std::string_view method, std::string_view content);
  // An order the platform refused as a duplicate: the one it already holds (E9106 → query).
  Result<IssueAccepted> accepted_earlier(std::string_view order_no);

  PlatformClientOptions options_;
  std::unique_ptr<RequestSigner> signer_;
  const Clock& clock_;
};

// Reads a secret file (app secret, access token): refuses a file readable by group or
// others, trims trailing whitespace.
[[nodiscard]] Result<std::string> read_secret_file(const std::filesystem::path& path);

// The platform from the [invoicing] section (reads app_secret_file and access_token_file).
[[nodiscard]] Result<std::unique_ptr<InvoicingPlatform>> make_platform(
    const config::InvoicingSection& section, const Clock& clock, std::string callback_url = {});

// Where advance_invoice() left an invoice: its state and, for a red invoice still
// CLAIMED, its confirmation form's (the worker polls a form awaiting the buyer slowly and
// parks one awaiting the seller).
struct Advance {
  InvoiceState state = InvoiceState::kClaimed;
  std::optional<RedConfirmState> red;
  Advance() = default;
  Advance(InvoiceState s) : state(s) {}  // NOLINT: an invoice state is an advance
  Advance(InvoiceState s, RedConfirmState r) : state(s), red(r) {}
  friend bool operator==(const Advance& a, InvoiceState s) { return a.state == s; }
};
// "claimed (red form awaiting_buyer)", for logs and test failures.
std::ostream& operator<<(std::ostream& out, const Advance& a);

// Moves one invoice forward by talking to the platform:
//   blue CLAIMED -> issue (E9106 -> query) -> ISSUING, then one query
//   red CLAIMED  -> its confirmation form (red_letter.h): apply, query; once confirmed the
//                   red is found issued by the platform under its orderNo, or fastInvoiceRed
//                   -> ISSUING; a void or refused form -> FAILED
//   ISSUING      -> query -> ISSUED | FAILED | still ISSUING
// Returns the state reached. CLAIMED or ISSUING mean "call again later" (outbox retry);
// an error means the platform was not reached or refused the credentials, and nothing
// changed. A definite refusal of the invoice (kRejected) moves it to FAILED with the
// platform's reason. Safe to call any number of times (I3, I5, R2, R6).
// REQUIRES: the calling thread owns `store`.
[[nodiscard]] Result<Advance> advance_invoice(ClaimStore& store, InvoicingPlatform& platform,
                                              const Seller& seller, std::int64_t invoice_id,
                                              const Clock& clock);

}  // namespace lanegate::invoice
