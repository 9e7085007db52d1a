#pragma once
// From settled money to an invoice claim, inside the settlement's own transaction.
//
// wire_invoicing() connects three things the daemon owns:
//   Store settlement hook (store.h invariant 5)
//     SUCCESS / CASH / born-SUCCESS with amount > 0 -> ClaimStore::create_claim (same txn),
//         except a toll: no claim (counted as toll_national_platform; spec "Tolls")
//     REFUND                                       -> ClaimStore::on_refund (same txn): the
//         claim is voided, or a red-letter invoice is created and queued. When the blue
//         invoice is still being issued (kBusy) an `invoice.refund` item is queued in the
//         same transaction instead; the invoice worker retries on_refund until issuing has
//         settled. A refund is never held up by its invoice. A transaction without a
//         claim (a toll, or settled while invoicing was off) has nothing to reverse.
//   ClaimStore issue hook
//     an invoice entering CLAIMED -> Outbox item `invoice.issue` (ordering and idempotency
//     key = order_no, payload {"invoice_id":N}) in the same transaction.
//
// Merge and default title: the claim's account is TxRecord::contract_id when set (ETC
// contract, taxi rider account), else the plate for parking and toll, else empty (a cash
// taxi trip: anonymous, never merged).
//
// Threading: everything runs on the io thread (Store, ClaimStore, Outbox share its
// Database).

#include <string>
#include <string_view>

#include "core/error.h"
#include "core/time_format.h"
#include "gateway/store.h"
#include "invoice/claims.h"
#include "offline_queue/queue.h"

namespace lanegate::gateway {

inline constexpr std::string_view kTopicInvoiceIssue = "invoice.issue";
inline constexpr std::string_view kTopicInvoiceRefund = "invoice.refund";
// After a refund reversed an invoice of several trips: the kept trips' new invoice, once
// the red is issued (ClaimStore::reissue_kept), ordered behind the red's own issue item.
inline constexpr std::string_view kTopicInvoiceReissue = "invoice.reissue";

// The account a claim is filed under (see above). Pure.
std::string invoice_account(const TxRecord& tx);

// The claim's view of a settled transaction: id = out_trade_no, service = kind,
// settled_at = tx.updated_at, a description with the plate masked (the claim page is
// reachable by anyone holding the token). Pure.
invoice::SettledTransaction settled_transaction(const TxRecord& tx, UtcOffset offset);

// Payload of an `invoice.issue` item.
std::string invoice_issue_payload(std::int64_t invoice_id);

// Sets the Store's settlement hook and the ClaimStore's issue hook (see above).
// REQUIRES: store, claims and outbox use the same Database and outlive their hooks.
void wire_invoicing(Store& store, invoice::ClaimStore& claims, queue::Outbox& outbox,
                    UtcOffset offset);

}  // namespace lanegate::gateway
