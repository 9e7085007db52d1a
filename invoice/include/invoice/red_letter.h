#pragma once
// Red letters (冲红) the 数电 way: a red invoice needs a red-letter confirmation form
// (红字确认单) first (specs/e-invoice.md "Red-letter (冲红) for 数电 invoices").
//
// One confirmation row per attempt (table invoice_red_confirm), at most one live per red
// invoice. The red invoice itself still runs CLAIMED -> ISSUING -> ISSUED | FAILED
// (claims.h); the form is what happens while it is CLAIMED:
//
//   NEW ──mark_red_apply_sent() (committed BEFORE saveInvoiceRedConfirm)──> APPLYING
//   APPLYING ──apply answered, or the form found by a query──> APPLIED
//   APPLYING ──apply refused──> REFUSED; the red invoice -> FAILED
//   APPLIED | AWAITING_* | CONFIRMED ──queryInvoiceRedConfirm: billStatus──>
//       15 (Nuonuo: applying)          APPLIED          poll again
//       01 no confirmation needed      CONFIRMED
//       04 both sides confirmed        CONFIRMED
//       02 awaiting the buyer          AWAITING_BUYER   poll (the buyer has 72 h)
//       03 awaiting the seller         AWAITING_SELLER  parked: an operator decides
//       05..10 void                    VOID; the red invoice -> FAILED, alarm; the blue stays ISSUED
//       16 (Nuonuo: apply failed)      REFUSED; the red invoice -> FAILED with billMessage
//       anything else                  nothing changes: kProtocol field "bill_status" (parked)
//   CONFIRMED ──the platform issued the red itself (openStatus 1 / our orderNo known),
//               or fastInvoiceRed──> USED; the red invoice -> ISSUING (tracked by its orderNo)
//   red FAILED with a VOID or REFUSED form ──retry_failed()──> a new form, attempt n+1
//
// Invariants:
//   R1. A red invoice is never sent with requestBillingNew; fastInvoiceRed is called only
//       for a CONFIRMED form (bureau 01 or 04) whose billNo and billUuid are stored.
//   R2. A form's billId is fixed when the row is created and committed (with
//       apply_sent_at) before the first apply, so a lost reply is resolved by querying,
//       never by a second form.
//   R3. A void or refused form reverses nothing: the blue stays ISSUED, the red FAILED.
//   R4. Forms are never deleted; billId, attempt and the reason are frozen (triggers).
//   R5. The reason is chosen once per red invoice; its Nuonuo and tax-bureau codes come
//       from two explicit tables (the numberings differ: map, never pass through).
//   R6. The red invoice keeps one orderNo for every attempt and both issuing paths (the
//       platform's automatic issue after confirmation and fastInvoiceRed), so at most one
//       red invoice can exist per red request: the platform refuses a second use (E9106).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/error.h"

namespace lanegate::invoice {

// Why an invoice is reversed. The enumerator values are Nuonuo's redReason codes (the
// column invoice_document.red_reason has always held them).
enum class RedLetterReason { kReturned = 1, kInvoicingError = 2, kServiceStopped = 3, kDiscount = 4 };

// "returned" | "invoicing_error" | "service_stopped" | "discount"
std::string_view to_string(RedLetterReason reason);
[[nodiscard]] Result<RedLetterReason> parse_red_reason(std::string_view name);
[[nodiscard]] Result<RedLetterReason> red_reason_from_nuonuo(int code);
// Nuonuo redReason: 1 销货退回, 2 开票有误, 3 服务中止, 4 销售折让.
std::string_view nuonuo_red_reason(RedLetterReason reason);
// Tax bureau: 01 开票有误, 02 销货退回, 03 服务中止, 04 销售折让.
std::string_view bureau_red_reason(RedLetterReason reason);
std::string_view red_reason_label(RedLetterReason reason);  // 销货退回 ...

enum class RedConfirmState {
  kNew,
  kApplying,
  kApplied,
  kAwaitingBuyer,
  kAwaitingSeller,
  kConfirmed,
  kUsed,
  kVoid,
  kRefused
};
std::string_view to_string(RedConfirmState state);  // "new", "applying", ... "awaiting_buyer"
[[nodiscard]] Result<RedConfirmState> parse_red_confirm_state(std::string_view text);

// What a billStatus from queryInvoiceRedConfirm means for the form. Unknown codes are
// kProtocol, field "bill_status": nothing may change on an answer we cannot read.
[[nodiscard]] Result<RedConfirmState> red_confirm_state_from_bill_status(std::string_view code);
// The tax bureau's text for a billStatus ("作废（超72小时未确认）"), or "" when unknown.
std::string_view bill_status_label(std::string_view code);

// The buyer has 72 hours to answer a form (spec); after that the platform voids it (07).
inline constexpr std::chrono::hours kRedConfirmWindow{72};

struct RedConfirmation {
  std::int64_t id = 0;
  std::int64_t red_invoice_id = 0;
  int attempt = 1;
  std::string bill_id;  // ours, fixed at creation (R2)
  RedLetterReason reason = RedLetterReason::kReturned;
  RedConfirmState state = RedConfirmState::kNew;
  std::string bill_status;  // the platform's last billStatus ("01".."16"), "" before any
  std::string bill_no;      // 红字确认单编号, once the platform has the form
  std::string bill_uuid;
  std::string message;      // why it is void/refused (billMessage or the refusal)
  std::optional<SystemTime> apply_sent_at;
  std::optional<SystemTime> applied_at;
  SystemTime created_at;
  SystemTime updated_at;
};

// What the platform says about one form (queryInvoiceRedConfirm, one row).
struct RedConfirmView {
  std::string bill_id;
  std::string bill_no;
  std::string bill_uuid;
  std::string bill_status;
  bool red_issued = false;   // openStatus 1
  std::string red_order_no;  // orderNo of the red invoice, once issued
  std::string red_serial;    // invoiceSerialNum, when the reply has it
  std::string message;       // billMessage
  std::string blue_number;   // blueElecInvoiceNumber / blueInvoiceNumber
};

}  // namespace lanegate::invoice
