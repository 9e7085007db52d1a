#pragma once
// The invoice side of the uplink: drains the outbox topics `invoice.issue` and
// `invoice.refund` (gateway/settlement.h puts them there) to the invoicing platform.
//
//   invoice.issue  {"invoice_id":N}         advance_invoice() on the worker thread:
//                                           CLAIMED -> issue (orderNo duplicate -> query)
//                                           -> ISSUING -> query ... -> ISSUED | FAILED.
//                                           A red invoice first runs its confirmation form
//                                           (invoice/red_letter.h: apply, query, then the
//                                           platform's own red or fastInvoiceRed).
//                                           CLAIMED/ISSUING: retried (results by polling);
//                                           ISSUED/FAILED/REVERSED: acknowledged.
//   invoice.refund {"transaction_id":"..."} ClaimStore::on_refund() on the io thread, once
//                                           the blue invoice's own item is done (same
//                                           ordering key): red letter, or claim voided.
//   invoice.reissue {"red_invoice_id":N}    ClaimStore::reissue_kept() on the io thread, once
//                                           the red's own item is done (ordering key = its
//                                           order_no): the trips a partial refund did not
//                                           touch get a new invoice; a failed red parks it.
// The item stays in the outbox until the invoice is final, so a crash, a restart or a
// platform outage only delays it; orderNo (fixed at creation) makes every resend safe.
//
// THREADS AND DATABASE CONNECTIONS
// The platform call blocks (up to the client's timeouts), so it runs on one worker
// thread, never on the io thread. The worker owns a second SQLite connection to the same
// database file, its own ClaimStore on that connection and its own platform client; it
// touches nothing else. advance_invoice() writes the invoice state (and its ledger record)
// through that connection in its own short BEGIN IMMEDIATE transactions; WAL lets the io
// thread read meanwhile, and the busy timeout serialises the two writers. The worker's
// connection gets the same PRAGMAs as the io thread's (max_page_count from
// [gateway] max_database_mb), so a full database refuses the worker's writes too.
// The io thread keeps everything that enqueues (invoice.refund runs there because a red
// letter enqueues an invoice.issue item through the io thread's Outbox).
//
// Link state (separate from the payment provider's): down after a platform call that got
// no answer (kUnavailable, kTimeout, kCrypto), up after any answer. Each change is
// logged and counted (lanegate_invoicing_up gauge, lanegate_invoicing_transitions_total);
// on up, the on_link_up callback (the daemon: retry waiting items now, kick the drain)
// runs on the io thread. While down, items are retried every kLinkDownRetry.
//
// Lifecycle: create -> sink()* -> stop() (joins the worker; outcomes of items in flight
// are still delivered to their completions) -> destroy.
// Threading: create, sink, stop and the destructor on the io thread; link_up() any thread.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/sqlite.h"
#include "invoice/claims.h"
#include "invoice/platform.h"
#include "offline_queue/drainer.h"
#include "offline_queue/queue.h"

namespace lanegate::gateway {

class InvoiceUplink {
 public:
  static constexpr std::chrono::milliseconds kLinkDownRetry{2000};
  static constexpr std::chrono::milliseconds kIssuingPoll{1000};
  // A red-letter form waiting for the buyer (who has 72 h): ask every five minutes.
  static constexpr std::chrono::milliseconds kRedConfirmPoll{5 * 60 * 1000};
  static constexpr std::chrono::milliseconds kRefundBusyRetry{5000};

  // `worker_db` is the worker's own connection (moved to the worker); `platform` is used
  // by the worker only; `io_claims` is the io thread's ClaimStore (invoice.refund).
  // REQUIRES: worker_db migrated; io, io_claims and clock outlive the InvoiceUplink.
  InvoiceUplink(boost::asio::io_context& io, const config::InvoicingSection& section,
                Database worker_db, std::unique_ptr<invoice::InvoicingPlatform> platform,
                invoice::ClaimStore& io_claims, const Clock& clock);
  ~InvoiceUplink();
  InvoiceUplink(const InvoiceUplink&) = delete;
  InvoiceUplink& operator=(const InvoiceUplink&) = delete;

  static bool handles(std::string_view topic);
  // The topics it drains: invoice.issue, invoice.refund, invoice.reissue.
  static std::vector<std::string> topics();
  // A drain sink for the invoice topics (Drainer::Sink contract). io thread.
  void sink(const queue::Item& item, queue::Drainer::Completion done);

  bool link_up() const;
  // Runs on the io thread after the link came back. Set before the first sink().
  void set_on_link_up(std::function<void()> callback);

  // Applies [gateway] max_database_mb to the worker's connection (on the worker thread,
  // after the item in flight). SIGHUP reload.
  void apply_database_limit(const config::GatewaySection& gateway);

  // Waits for the worker to finish the item in flight; later sinks retry their item.
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// What one advance_invoice() result means for its outbox item and the link (pure):
//   no answer (kUnavailable, kTimeout, kCrypto)  retry in kLinkDownRetry, link down
//   unknown invoice (kNotFound, field invoice_id) park (an operator looks)
//   credentials refused (kPermission)          retry with backoff, link up
//   platform daily limit (kBusy, field order_no) retry in an hour, link up
//   other platform answers (kProtocol, kRejected) retry with backoff, link up
//   local errors (database busy/full, ...)     retry with backoff, link unchanged
//   unreadable answers (kProtocol, field status, bill_status, invoice_number, amount)
//                                              park + alarm (nothing changed)
//   red form awaiting the buyer                retry in kRedConfirmPoll
//   red form awaiting the seller               park + alarm (the buyer entered a form: an
//                                              operator answers it on the platform)
//   CLAIMED / ISSUING                          retry in kIssuingPoll (results by polling)
//   ISSUED / FAILED / REVERSED                 ack
struct IssueStep {
  queue::Outcome outcome;
  std::optional<bool> link_up;  // nullopt: says nothing about the platform link
};
IssueStep issue_step(const Result<invoice::Advance>& state);

// The options of every connection lanegated opens to its database: max_page_count from
// [gateway] max_database_mb (0: unlimited). Pure.
DatabaseOptions state_database_options(const config::GatewaySection& gateway);
// Applies max_database_mb to an open connection (start-up and SIGHUP reload).
[[nodiscard]] Status apply_database_limit(Database& db, const config::GatewaySection& gateway);

}  // namespace lanegate::gateway
