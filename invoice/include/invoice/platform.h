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

// What the platform needs to issue one invoice (blue or red).
struct IssueRequest {
  std::string order_no;
  InvoiceKind kind = InvoiceKind::kBlue;
  std::string original_invoice_number;  // red: the blue invoice being reversed
  int red_reason = 0;                   // red: RedLetterReason
  Seller seller;
  Buyer buyer;
  std::vector<InvoiceLine> lines;       // red: negative amounts, original order
  SystemTime invoice_date;
  SpecificBusiness specific;            // specificFactor, its block, and the remark
};

// Builds the request for a stored invoice. REQUIRES for red: `original_invoice_number`
// is the blue invoice's number.
IssueRequest make_issue_request(const InvoiceRecord& invoice, const Seller& seller,
                                std::string original_invoice_number, SystemTime now);

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

 private:
  struct Reply {
    std::string code;
    std::string describe;
    std::string result_json;
  };
  Result<Reply> call(std::string_view method, std::string_view content);

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

// Moves one invoice forward by talking to the platform:
//   CLAIMED  -> issue (E9106 -> query) -> ISSUING, then one query
//   ISSUING  -> query -> ISSUED | FAILED | still ISSUING
// Returns the state reached. CLAIMED or ISSUING mean "call again later" (outbox retry);
// an error means the platform was not reached or refused the credentials, and nothing
// changed. A definite refusal of the invoice (kRejected) moves it to FAILED with the
// platform's reason. Safe to call any number of times (I3, I5).
// REQUIRES: the calling thread owns `store`.
[[nodiscard]] Result<InvoiceState> advance_invoice(ClaimStore& store, InvoicingPlatform& platform,
                                                   const Seller& seller, std::int64_t invoice_id,
                                                   const Clock& clock);

}  // namespace lanegate::invoice
