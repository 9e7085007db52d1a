#pragma once
// The uplink: drains the outbox to the payment provider and moves charges through their
// lifecycle (gateway/store.h) from replies, queries and notifications.
//
//   parking.entry item -> create_parking_entry; the reply refreshes the plate's binding
//                         cache and stores the parking_id the exit charge needs.
//   charge item        -> RECORDED: mark SUBMITTING (committed, ledger "charge_submitted")
//                         and send; SUBMITTING/UNKNOWN: the provider may have it, so the
//                         client queries the same out_trade_no before any resend;
//                         ACCEPTED: query until SUCCESS or PAY_FAIL (a notification usually
//                         comes first); final: acknowledged.
// The item stays in the outbox until the charge is final, so a crash at any point
// resumes from durable state. Provider calls run on a worker pool (one thread per item
// in flight); their results are applied on the io thread.
//
//   ETC contracts      -> every contract_check_interval_s, the contracts seen at a lane that
//                         nothing was heard of for contract_silence_s are queried
//                         (gateway/contract_state.h applies the answers).
//
// Link state: up after any answer from the provider, down after a failure that got no
// HTTP answer. Each change is logged, counted (lanegate_uplink_up gauge,
// lanegate_uplink_transitions_total) and, on up, kicks the drain.
//
//   invoice.issue / invoice.refund items -> the InvoiceUplink (gateway/invoice_uplink.h)
//                         when one is set: the invoicing platform has its own link state and
//                         its own worker thread with its own database connection, so a slow
//                         or unreachable invoicing platform never holds up a charge and
//                         never marks the payment link down.
//
// Threading: construct, start, stop and every member on the io thread, except
// link_up() (any thread).

#include <boost/asio/io_context.hpp>
#include <memory>

#include "config/config.h"
#include "core/clock.h"
#include "gateway/invoice_uplink.h"
#include "gateway/provider.h"
#include "gateway/provider_notify.h"
#include "gateway/site.h"
#include "gateway/store.h"
#include "offline_queue/drainer.h"
#include "offline_queue/queue.h"

namespace lanegate::gateway {

class Uplink final : public ChargeGate {
 public:
  // REQUIRES: every reference outlives the Uplink.
  Uplink(boost::asio::io_context& io, const config::Config& config, Store& store, queue::Outbox& outbox,
         PaymentProvider& provider, const Clock& clock);
  ~Uplink() override;

  void start();
  void stop();

  bool link_up() const override;
  void kick() override;
  void await_charge(const std::string& out_trade_no, std::chrono::milliseconds deadline,
                    std::function<void(OnlineOutcome)> done) override;

  // Applies a verified, new provider notification inside the notification handler's
  // transaction (charge state, ledger, binding cache).
  [[nodiscard]] Status apply_notification(Transaction& txn, const NotificationEvent& event);

  queue::Drainer::Counters drain_counters() const;

  // Queries the ETC contracts nothing was heard of for [provider.etc] contract_silence_s
  // (at most a batch; see uplink.cc). Runs by itself every contract_check_interval_s in
  // partner mode with a bound_state; callable at any time (a check already running wins).
  void check_contracts();

  bool call_provider(ProviderCall call) override;
  void note_link(bool up, const std::string& why) override;

  // Routes the `pay` topic (in-cab payment follow-ups, site_taxi.cc) to `sink` (unset: such
  // items are parked). REQUIRES: before start().
  void set_pay_sink(std::function<void(const queue::Item&, queue::Drainer::Completion)> sink);

  // Applies TRANSACTION.SUCCESS notifications of in-cab payments (Site::apply_payment).
  void set_payment_applier(std::function<Status(Transaction&, const Payment&)> applier);

  // Routes the invoice topics to `invoices` (null: such items are parked as unknown).
  // REQUIRES: before start(); `invoices` outlives the Uplink's drain.
  void set_invoice_uplink(InvoiceUplink* invoices);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace lanegate::gateway
