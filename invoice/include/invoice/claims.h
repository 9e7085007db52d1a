#pragma once
// Invoice claims: from a settled transaction to an invoice the passenger asked for.
//
// At settlement every transaction gets a claim: an unguessable token (128 random bits,
// base64url, 22 characters) that goes into the receipt's QR URL, and a short human code
// (8 characters from an alphabet without 0/O, 1/I/L) to type when the QR cannot be
// scanned. Human-code lookups are rate-limited per client key (the caller's IP, its /64 for
// IPv6): the counters live in memory, bounded and never written to disk (guess_limit.h says
// why and how keys are evicted).
//
// Invoice lifecycle (one row of invoice_document; transitions name the function):
//
//   NONE ──submit()/submit_merged()/claim_with_default_title()──> CLAIMED
//   CLAIMED ──mark_issuing(serial)──> ISSUING
//   CLAIMED ──mark_failed(reason)──> FAILED        (platform refused before accepting)
//   ISSUING ──mark_issued(number, pdf)──> ISSUED
//   ISSUING ──mark_failed(reason)──> FAILED
//   FAILED ──retry_failed()──> CLAIMED             (operator, same order_no)
//   ISSUED ──(its red invoice reaches ISSUED)──> REVERSED
//   A red invoice (request_red_letter()) runs CLAIMED -> ISSUING -> ISSUED | FAILED itself;
//   while it is CLAIMED its red-letter confirmation form runs (red_letter.h), and the form
//   moves it CLAIMED -> ISSUING (mark_red_confirm_used) or CLAIMED -> FAILED
//   (close_red_confirm).
//
// Invariants:
//   I1. A settled transaction has at most one claim (transaction_id is unique); claims,
//       invoices and lines are never deleted (enforced by triggers).
//   I2. A claim points to at most one invoice and, once set, never to another: one
//       invoice per transaction. A second submission returns the existing invoice.
//       Several claims may point to one invoice (merge, same account only).
//   I3. order_no (the platform's idempotency key) is fixed when the invoice is created
//       and never changes, so a re-sent issue request can only ever create one invoice.
//   I4. Buyer, lines and totals are frozen at creation (triggers refuse updates): an
//       issued invoice is never edited; a correction is a red-letter invoice.
//   I5. Every transition is a conditional update from the expected state; a transition
//       from any other state fails with kRejected and changes nothing.
//   I6. A red invoice exists only for an ISSUED blue invoice, at most one per blue
//       invoice; its lines are the blue lines negated, in the original order.
//   I7. Blue amounts are positive, red amounts negative; totals are the sum of the lines,
//       each line split separately (split_tax).
//   I8. A claim is accepted only within claim_window_days of settlement (Clock seam) and
//       only while the transaction is not refunded (void).
//   I9. Audit ledger (core/ledger.h): a blue invoice reaching ISSUED appends one
//       invoice_issued record, and a blue invoice reaching REVERSED (its red invoice
//       issued) one invoice_reversed record, in the same transaction as the state change
//       (docs/AUDIT.md lists their fields). So the database must also hold the ledger
//       schema (ledger::ledger_schema_steps()).
//   I10. Tolls are never invoiced here (spec "Tolls": the national toll e-bill platform
//       issues them): create_claim() refuses service "toll" (kInvalidArgument), and a toll
//       claim left from before that rule is never submitted, merged into an invoice or
//       retried (kRejected, field "service"). Its passenger is sent to www.txffp.com.
//   I11. A refund of one trip of an invoice of several reverses the whole invoice; once the
//       red is issued, the trips not refunded get one new blue invoice naming the reversed
//       one (replaces_id, at most one per invoice, frozen). Their claims keep pointing to
//       the original (I2); current_invoice() follows the replacement.
//
// Threading: a ClaimStore and its Database are used by one thread at a time (the io
// thread in the gateway). The store does not own the Database or the Clock.
// Transactions: create_claim() and the lookups work inside a transaction the caller has
// open (e.g. the settlement's); submit(), submit_merged(), claim_with_default_title(),
// request_red_letter(), on_refund(), mark_issued() and retry_failed() open their own
// (BEGIN IMMEDIATE) and REQUIRE that none is open on the connection. find_by_human_code()
// and retry_after() never write: a wrong code costs no transaction and no fsync (the public
// claim-code route runs on the io thread that decides barriers).
// The guess counters belong to the store object: give the public API one long-lived
// ClaimStore (the gateway's io-thread store); they are lost when it is destroyed.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/tax_rules.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/money.h"
#include "core/sqlite.h"
#include "invoice/guess_limit.h"
#include "invoice/model.h"
#include "invoice/red_letter.h"
#include "invoice/specific_business.h"

namespace lanegate::invoice {

// Schema steps of this module (tables invoice_*), append-only. Tests call db.migrate() with
// them and the ledger's steps (I9); the gateway appends them to the production database's
// list (gateway/src/schema.cc, one plan entry per step). Step 2 drops invoice_code_guess,
// the guess counters' old table (issue 13).
std::span<const std::string_view> invoice_schema_steps();

enum class InvoiceState { kNone, kClaimed, kIssuing, kIssued, kFailed, kReversed };
std::string_view to_string(InvoiceState state);  // "none", "claimed", "issuing", ...
[[nodiscard]] Result<InvoiceState> parse_invoice_state(std::string_view text);


struct SettledTransaction {
  std::string transaction_id;  // the gateway's id, unique
  std::string account_id;      // empty when anonymous: no merge, no default title
  std::string service;         // "taxi" | "parking" | "toll" (selects the tax rule)
  Money amount;                // tax-inclusive, > 0
  SystemTime settled_at;
  std::string description;     // for the receipt and claim page, e.g. "粤B***45 08:12-09:40"
  // The trip the invoice describes (parking: entry and exit, the 06 lease period). The plate
  // is kept whole: it goes on the invoice's remark, never into a public view or a log.
  std::string plate;
  std::optional<SystemTime> period_start;
  std::optional<SystemTime> period_end;
};

struct Claim {
  std::string token;       // 22 characters [A-Za-z0-9_-]
  std::string human_code;  // 8 characters from kHumanCodeAlphabet
  std::string transaction_id;
  std::string account_id;
  std::string service;
  Money amount;
  std::string description;
  SystemTime settled_at;
  SystemTime expires_at;   // settled_at + claim_window_days
  bool voided = false;     // refunded before an invoice existed
  std::optional<std::int64_t> invoice_id;
  std::string plate;       // the trip, as SettledTransaction; frozen once set
  std::optional<SystemTime> period_start;
  std::optional<SystemTime> period_end;
};

// The service whose invoices lanegate never issues (I10), and what it tells the caller.
inline constexpr std::string_view kTollService = "toll";
using config::kTollInvoiceElsewhere;

inline constexpr std::string_view kHumanCodeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";

struct InvoiceRecord {
  std::int64_t id = 0;
  std::string order_no;  // 20 characters, fixed at creation (I3)
  InvoiceKind kind = InvoiceKind::kBlue;
  std::optional<std::int64_t> original_id;  // red: the blue invoice it reverses
  int red_reason = 0;
  InvoiceState state = InvoiceState::kClaimed;
  Buyer buyer;
  std::vector<InvoiceLine> lines;
  InvoiceTotals totals;
  std::string serial_num;      // platform's invoiceSerialNum once accepted
  std::string invoice_number;  // 20 digits once issued
  std::string pdf_url;
  std::string fail_reason;
  SystemTime created_at;
  SystemTime updated_at;
  std::optional<SystemTime> issued_at;
  SpecificBusiness specific;   // specificFactor, its block and the remark; frozen at creation
};

struct SubmitResult {
  InvoiceRecord invoice;
  bool created = false;  // false: the transaction already had this invoice (I2)
};

struct ClaimPolicy {
  // Human-code guessing: this many wrong codes within `guess_window` lock the client
  // key for `guess_lockout`. At most `guess_max_clients` keys are tracked (in memory; see
  // invoice/guess_limit.h for what a full table forgets first).
  int guess_max_failures = 5;
  std::chrono::seconds guess_window{600};
  std::chrono::seconds guess_lockout{900};
  std::size_t guess_max_clients = kGuessMaxClients;
  // Most transactions merged into one invoice.
  int max_merged = 50;
};

// Checks a buyer as the claim page submits it; errors name the field (kind, title,
// tax_id, email, phone) and the rule. Returns the normalised buyer (tax id normalised,
// person's empty title becomes 个人, spaces trimmed).
[[nodiscard]] Result<Buyer> validate_buyer(const Buyer& buyer,
                                           std::span<const std::string> allow_list);

class ClaimStore {
 public:
  // REQUIRES: `db` migrated with invoice_schema_steps(); `db`, `section` and `clock`
  // outlive the store. Tax rules come from section.tax (spec defaults when empty).
  ClaimStore(Database& db, const config::InvoicingSection& section, const Clock& clock,
             ClaimPolicy policy = {});

  // Creates the claim for a settled transaction; idempotent: the same transaction_id
  // returns its existing claim. Errors: kInvalidArgument (amount <= 0, unknown service,
  // service "toll" (I10, field "service"), empty id), kDatabase.
  [[nodiscard]] Result<Claim> create_claim(const SettledTransaction& tx);

  // kNotFound for an unknown token (no rate limit needed: 128 bits).
  [[nodiscard]] Result<Claim> find_by_token(std::string_view token);
  [[nodiscard]] Result<Claim> find_by_transaction(std::string_view transaction_id);

  // Looks up a typed human code (case and spaces/dashes ignored). Every miss counts
  // against `client_key` (in memory, no write transaction); when locked: kPermission, and
  // retry_after() says how long. A malformed code is not counted.
  [[nodiscard]] Result<Claim> find_by_human_code(std::string_view code, std::string_view client_key);
  // Remaining lockout for a client key, or nullopt when it may guess.
  std::optional<std::chrono::seconds> retry_after(std::string_view client_key);

  // Submits the buyer for one claim. Errors: kNotFound (token), kRejected (window closed,
  // refunded; field "token"), kRejected (a legacy toll claim without an invoice, I10;
  // field "service"), kInvalidArgument (buyer field named).
  // `traveller`: the passenger's identity for a 09 passenger-transport invoice (spec "Taxi →
  // plain invoice; 09 only on request"): a taxi trip only, when [invoicing.taxi]
  // offer_traveller; otherwise kInvalidArgument, field "traveller_name".
  [[nodiscard]] Result<SubmitResult> submit(std::string_view token, const Buyer& buyer,
                                            const std::optional<TravellerInput>& traveller = {});

  // One invoice for several settled transactions of one account, atomically: every
  // transaction must belong to `account_id`, be within its window, not voided and not
  // yet invoiced, and not a toll (I10); otherwise nothing changes and the error names the
  // transaction.
  [[nodiscard]] Result<SubmitResult> submit_merged(std::string_view account_id,
                                                   std::span<const std::string> transaction_ids,
                                                   const Buyer& buyer);

  // "Accounts with a default title get their invoice automatically": creates the claim
  // and, when `default_title` is set, submits it at once. Returns the claim and, when
  // submitted, the invoice.
  struct AutoClaim {
    Claim claim;
    std::optional<SubmitResult> submitted;
  };
  [[nodiscard]] Result<AutoClaim> claim_with_default_title(const SettledTransaction& tx,
                                                           const std::optional<Buyer>& default_title);

  // The invoice of a claim whose account has a default title ([[invoicing.default_title]]),
  // made inside the caller's transaction (the settlement's): the buyer is validated, the
  // invoice created and the issue hook run; nothing is committed here. Errors: the buyer's
  // rule (kInvalidArgument naming the field), kAlreadyExists when the claim has an invoice.
  [[nodiscard]] Result<SubmitResult> invoice_in(Transaction& txn, const Claim& claim, const Buyer& buyer);

  [[nodiscard]] Result<InvoiceRecord> get_invoice(std::int64_t id);
  [[nodiscard]] Result<InvoiceRecord> get_invoice_by_order_no(std::string_view order_no);
  // Ids in a state, oldest first (the issuing driver and recovery after restart).
  [[nodiscard]] Result<std::vector<std::int64_t>> invoices_in_state(InvoiceState state);

  // Transitions (I5).
  [[nodiscard]] Status mark_issuing(std::int64_t id, std::string_view serial_num);
  // REQUIRES: invoice_number is 20 digits (checked: kInvalidArgument).
  // For a red invoice, also moves its blue original ISSUED -> REVERSED in the same commit.
  [[nodiscard]] Status mark_issued(std::int64_t id, std::string_view invoice_number,
                                   std::string_view pdf_url);
  [[nodiscard]] Status mark_failed(std::int64_t id, std::string_view reason);
  // FAILED -> CLAIMED, except an invoice with a toll line (legacy data, I10): kRejected,
  // field "service", and nothing changes.
  [[nodiscard]] Status retry_failed(std::int64_t id);

  // Creates the red-letter invoice reversing an ISSUED blue invoice (I6); idempotent:
  // asking again returns the existing red invoice.
  [[nodiscard]] Result<InvoiceRecord> request_red_letter(std::int64_t blue_id, RedLetterReason reason);

  // Red-letter confirmation forms (red_letter.h; each transition is a conditional update
  // from the form's expected state, like I5).
  // The live form of a red invoice. A red invoice made before forms existed gets its
  // first form here (billId = its order number). kRejected when its last form is closed
  // (void/refused: retry_failed() opens the next), kInvalidArgument for a blue invoice.
  [[nodiscard]] Result<RedConfirmation> red_confirmation(std::int64_t red_id);
  // The red invoice reversing a blue one, if any (I6: at most one).
  [[nodiscard]] Result<std::optional<std::int64_t>> red_letter_of(std::int64_t blue_id);
  // Every form of a red invoice, first attempt first.
  [[nodiscard]] Result<std::vector<RedConfirmation>> red_confirmations(std::int64_t red_id);
  // NEW -> APPLYING, committed before the apply leaves (R2).
  [[nodiscard]] Status mark_red_apply_sent(const RedConfirmation& form);
  // What the platform said: -> APPLIED | AWAITING_BUYER | AWAITING_SELLER | CONFIRMED, with
  // its billStatus, billNo and billUuid.
  [[nodiscard]] Status note_red_confirm(const RedConfirmation& form, RedConfirmState to,
                                        const RedConfirmView& view);
  // -> VOID | REFUSED and the red invoice CLAIMED -> FAILED, one commit, with an alarm (R3).
  [[nodiscard]] Status close_red_confirm(const RedConfirmation& form, RedConfirmState to,
                                         std::string_view bill_status, std::string message);
  // CONFIRMED -> USED and the red invoice CLAIMED -> ISSUING (serial may be empty when the
  // platform issued the red itself and has not named it yet), one commit.
  [[nodiscard]] Status mark_red_confirm_used(const RedConfirmation& form, std::string_view serial_num);

  // A refund of a settled transaction: no invoice yet -> the claim is voided (nothing to
  // reverse); invoice ISSUED -> a red letter for the whole invoice is requested (for a
  // merged invoice the other trips are reversed too and need a new claim by the
  // operator); invoice CLAIMED/ISSUING -> kBusy (retry when issuing settles); FAILED ->
  // the claim is voided. Returns the red invoice when one was requested.
  [[nodiscard]] Result<std::optional<InvoiceRecord>> on_refund(std::string_view transaction_id);
  // The same inside the caller's open transaction (the gateway's refund transition), so
  // the refund, the voided claim or the red invoice and its queued issue request commit
  // together. REQUIRES: `txn` is active on this store's Database.
  [[nodiscard]] Result<std::optional<InvoiceRecord>> on_refund(Transaction& txn,
                                                               std::string_view transaction_id);

  // Called inside the committing transaction whenever an invoice (blue or red) enters
  // CLAIMED: created by a submission or merge, requested as a red letter, or retried.
  // The gateway enqueues the platform request here (Outbox::enqueue on `txn`, idempotency
  // key = order_no), so "invoice claimed" and "issue request queued" are one commit and a
  // claim made offline is issued when the link returns. An error rolls the whole change
  // back and is returned to the caller. Unset: no hook.
  using IssueHook = std::function<Status(Transaction& txn, const InvoiceRecord& invoice)>;
  void set_issue_hook(IssueHook hook) { issue_hook_ = std::move(hook); }
  // Called inside on_refund's transaction when a refund reverses an invoice of several
  // trips: the gateway queues reissue_kept(red) behind the red's own issue item, so the
  // trips not refunded get a new invoice once the red is issued (spec "Red-letter": "for a
  // partial refund, reverse the whole invoice and issue a new blue one for the amount kept").
  void set_reissue_hook(IssueHook hook) { reissue_hook_ = std::move(hook); }

  // The invoice that bills a claim now: `id`, or the replacement of a reversed one (I11).
  [[nodiscard]] Result<InvoiceRecord> current_invoice(std::int64_t id);
  // After a partial refund: a new blue invoice for the trips of the reversed invoice that
  // were not refunded (same buyer, the same lines as split then), queued through the issue
  // hook in one commit. Idempotent (I11). nullopt when every trip was refunded. kBusy while
  // the red is not issued; kRejected when it failed (the kept trips stay on the issued
  // original).
  [[nodiscard]] Result<std::optional<InvoiceRecord>> reissue_kept(std::int64_t red_id);

  const ClaimPolicy& policy() const { return policy_; }
  const CodeGuessLimit& TEST_guess_limit() const { return guesses_; }
  const config::InvoicingSection& section() const { return section_; }

 private:
  Result<Claim> load_claim(std::string_view column, std::string_view value);
  Result<std::int64_t> insert_blue(std::string_view order_no, const Buyer& buyer,
                                   std::span<const InvoiceLine> lines,
                                   const SpecificBusiness& specific,
                                   std::optional<std::int64_t> replaces_id);
  Result<SubmitResult> create_invoice(std::span<const Claim> claims, const Buyer& buyer,
                                      const std::optional<TravellerInput>& traveller = {});
  Result<SpecificBusiness> specific_business_for(std::span<const Claim> claims,
                                                 const std::optional<TravellerInput>& traveller) const;
  Status insert_lines(std::int64_t invoice_id, std::span<const InvoiceLine> lines);
  Result<SubmitResult> create_and_commit(Transaction& txn, std::span<const Claim> claims,
                                         const Buyer& buyer,
                                         const std::optional<TravellerInput>& traveller = {});
  Status transition(std::int64_t id, InvoiceState from, InvoiceState to, std::string_view set_sql,
                    std::span<const std::string> args);
  // UPDATE table SET state = to, updated_at = now[, set_sql] WHERE id = ? AND state = from;
  // true when the row was in `from` (I5), false when it was not (nothing changed).
  Result<bool> update_state(std::string_view table, std::int64_t id, std::string_view from,
                            std::string_view to, std::string_view set_sql,
                            std::span<const std::string> args);
  // The invoice whose `column` (original_id: its red; replaces_id: its replacement) names
  // `id`; each is unique where set.
  Result<std::optional<std::int64_t>> document_linked_to(std::string_view column, std::int64_t id);
  Status insert_red_confirm(std::int64_t red_id, int attempt, std::string_view bill_id,
                            RedLetterReason reason);
  Status update_red_confirm(std::int64_t form_id, RedConfirmState from, RedConfirmState to,
                            std::string_view set_sql, std::span<const std::string> args);
  // request_red_letter's work inside an open transaction (no commit, no log).
  Result<InvoiceRecord> red_letter_in(Transaction& txn, std::int64_t blue_id,
                                      RedLetterReason reason);

  Database& db_;
  const config::InvoicingSection& section_;
  const Clock& clock_;
  ClaimPolicy policy_;
  std::vector<config::TaxRule> rules_;
  IssueHook issue_hook_;
  IssueHook reissue_hook_;
  CodeGuessLimit guesses_;
};

}  // namespace lanegate::invoice
