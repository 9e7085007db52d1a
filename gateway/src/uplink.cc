#include "gateway/uplink.h"

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json.hpp>
#include <map>
#include <unordered_map>
#include <vector>

#include "core/ledger.h"
#include "core/log.h"
#include "core/metrics.h"
#include "gateway/contract_state.h"
#include "gateway/provider_wechatpay.h"
#include "gateway/settlement.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using std::chrono::milliseconds;

// How long an ACCEPTED charge waits before the gateway queries it (a notification
// normally settles it first).
constexpr milliseconds kAcceptedQueryAfter{5000};
// Retry delay after a failure that reached no provider (link down): short, because the
// failure is the link's, not the item's; the drain is also kicked when the link returns.
constexpr milliseconds kLinkDownRetry{2000};
// While the link is down, a read-only query every so often finds out when it is back, so
// lanes that decide by the link (taxi trips go to the meter while it is down) do not wait
// for a charge to retry. The order number does not exist: the provider's 404 is an answer.
// First probe after 5 s, then doubling up to a minute (each failed probe logs a line).
constexpr milliseconds kLinkProbeFirst{5000};
constexpr milliseconds kLinkProbeMax{60000};
constexpr std::string_view kLinkProbeOrder = "LGLINKPROBE0000";
// Our own database refused a write (disk full, busy): nothing is wrong upstream, so the item
// comes back soon at a fixed pace instead of backing off towards retry_cap_ms, and the
// outbox drains promptly once the database commits again.
constexpr milliseconds kLocalRetry{2000};
queue::Outcome local_retry(std::string error) { return queue::Outcome::retry(std::move(error), kLocalRetry); }

SystemTime from_ms(std::int64_t ms) {
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(milliseconds(ms)));
}

std::int64_t get_int(const json::object& o, std::string_view k) {
  auto it = o.find(k);
  if (it == o.end()) return 0;
  if (auto p = it->value().if_int64()) return *p;
  if (auto p = it->value().if_uint64()) return static_cast<std::int64_t>(*p);
  return 0;
}

std::string get_str(const json::object& o, std::string_view k) {
  auto it = o.find(k);
  if (it == o.end()) return {};
  if (auto p = it->value().if_string()) return std::string(*p);
  return {};
}

// What a waiting lane learns from a charge's state. Parking: the provider's rule is that
// the barrier may open once the charge is ACCEPTED. ETC: the spec treats only SUCCESS as
// paid (its state set is unconfirmed), so an accepted-but-not-paid ETC charge is no
// answer yet: the lane decides by the offline rule and the item queries until final.
// ETC PAY_FAIL (or FAIL) is read with the vehicle products' table as a final failure:
// it is not "paid", and querying a failed deduction forever would leave it open with no
// end; an ETC value outside the table is parked with an alarm (never guessed), like any
// product's. This reading of the unconfirmed ETC set is lanegate's, not the provider's.
OnlineOutcome online_outcome(TxKind kind, ChargeState st) {
  switch (st) {
    case ChargeState::kPayFail:
      return OnlineOutcome::kRefused;
    case ChargeState::kAccepted:
      return kind == TxKind::kToll ? OnlineOutcome::kNoAnswer : OnlineOutcome::kAccepted;
    case ChargeState::kSuccess:
    case ChargeState::kRefund:
      return OnlineOutcome::kAccepted;
    default:
      return OnlineOutcome::kNoAnswer;
  }
}

// Silent ETC contracts queried per check (spec: query a contract nothing was heard of
// for 4 h); the rest wait for the next check, so a large backlog never floods the
// provider's rate limit.
constexpr int kContractQueriesPerCheck = 50;

// The invoice drainer's budget: the invoicing platform client runs one call at a time on
// its own worker thread, so more in flight would only wait there.
constexpr int kInvoiceInFlight = 2;

}  // namespace

struct Uplink::Impl : std::enable_shared_from_this<Uplink::Impl> {
  struct Waiter {
    std::shared_ptr<asio::steady_timer> timer;
    std::function<void(OnlineOutcome)> done;
  };

  asio::io_context& io;
  const config::Config& cfg;
  Store& store;
  queue::Outbox& outbox;
  PaymentProvider& provider;
  const Clock& clock;
  asio::thread_pool pool;
  ChargeBook book;
  std::unique_ptr<queue::Drainer> drainer;           // parking.entry, charge
  std::unique_ptr<queue::Drainer> invoice_drainer;   // invoice.issue, invoice.refund
  std::atomic<bool> up{true};
  std::unique_ptr<asio::steady_timer> probe_timer;  // set by start(); io thread
  bool probing = false;
  milliseconds probe_delay = kLinkProbeFirst;
  bool signature_refused = false;  // io thread
  // When each charge request last left (steady clock), kept until a reply proves it is no
  // longer in flight: a fallen-back charge is voided on "not found" only after that. io thread.
  std::unordered_map<std::string, SteadyTime> last_charge_send;
  std::map<std::string, std::vector<Waiter>> waiters;
  InvoiceUplink* invoices = nullptr;
  std::function<void(const queue::Item&, queue::Drainer::Completion)> pay_sink;
  std::function<Status(Transaction&, const Payment&)> payment_applier;
  config::QueueLimits invoice_limits;  // outlives invoice_drainer (it keeps a reference)

  Impl(asio::io_context& i, const config::Config& c, Store& s, queue::Outbox& o, PaymentProvider& p, const Clock& cl)
      : io(i),
        cfg(c),
        store(s),
        outbox(o),
        provider(p),
        clock(cl),
        pool(static_cast<std::size_t>(std::max(1, c.queue.max_in_flight))),
        book(s, o, cl, MerchantIds{c.provider.caller_mchid(), c.provider.sub_mchid}) {
    metrics::Registry::global().gauge("lanegate_uplink_up", "1 when the last provider exchange got an answer").set(1);
  }

  // Items backing off after failures upstream are due at once and the drain runs now (the
  // cause is gone: the link or the signatures are back). Returns how many were waiting.
  std::int64_t send_waiting_now() {
    auto moved = outbox.retry_all_now();
    if (drainer) drainer->link_up();
    if (invoice_drainer) invoice_drainer->link_up();
    return moved ? *moved : 0;
  }

  void set_link(bool now_up, const std::string& why) {
    const bool was = up.exchange(now_up);
    if (was == now_up) return;
    metrics::Registry::global().gauge("lanegate_uplink_up", "1 when the last provider exchange got an answer")
        .set(now_up ? 1 : 0);
    metrics::Registry::global()
        .counter("lanegate_uplink_transitions_total", "Uplink state changes", {{"to", now_up ? "up" : "down"}})
        .inc();
    if (now_up) {
      probe_delay = kLinkProbeFirst;
      log::notice("uplink up: draining the outbox", {{"ITEMS_WAITING", send_waiting_now()}});
    } else {
      log::warn("uplink down: charges are queued and offline limits apply", {{"ERROR", why}});
      schedule_probe();
    }
  }

  void schedule_probe() {
    if (!probe_timer || probing) return;
    probing = true;
    probe_timer->expires_after(probe_delay);
    probe_delay = std::min(probe_delay * 2, kLinkProbeMax);
    probe_timer->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!self) return;
      self->probing = false;
      if (ec || self->up.load()) return;
      asio::post(self->pool, [self] {
        auto r = self->provider.query_payment(PayProduct::kCodepay, kLinkProbeOrder);
        const bool answered = r || r.error().http_status != 0;
        asio::post(self->io, [self, answered] {
          if (answered) {
            self->set_link(true, {});
          } else {
            self->schedule_probe();
          }
        });
      });
    });
  }

  void note_failure(const ProviderFailure& f) {
    if (f.http_status == 0) {
      set_link(false, f.error.message);
    } else {
      set_link(true, {});
    }
    note_signature(f.http_status == 401 || f.provider_code == "SIGN_ERROR", f.error.message);
  }

  // The provider refusing our signatures (our clock more than 300 s off, or a wrong merchant
  // key) stops every charge: said once when it starts and once when it ends, counted always.
  void note_signature(bool refused, const std::string& why) {
    if (refused) {
      metrics::Registry::global()
          .counter("lanegate_provider_sign_errors_total",
                   "Requests the provider refused with SIGN_ERROR (clock skew or wrong merchant key)")
          .inc();
    }
    metrics::Registry::global()
        .gauge("lanegate_provider_signature_refused", "1 while the provider refuses our signatures")
        .set(refused ? 1 : 0);
    if (refused == signature_refused) return;
    signature_refused = refused;
    if (refused) {
      log::error("provider refuses our signatures (check the system clock and the merchant key); retrying",
                 {{"ERROR", why}});
    } else {
      // Items that backed off while every request was refused go now, as after a link-up.
      log::notice("provider accepts our signatures again", {{"ITEMS_WAITING", send_waiting_now()}});
    }
  }

  void resolve(const std::string& out_trade_no, OnlineOutcome o) {
    auto it = waiters.find(out_trade_no);
    if (it == waiters.end()) return;
    auto list = std::move(it->second);
    waiters.erase(it);
    for (auto& w : list) {
      w.timer->cancel();
      w.done(o);
    }
  }

  // ---------------- the drain sink (io thread) ----------------

  void sink(const queue::Item& item, queue::Drainer::Completion done) {
    boost::system::error_code ec;
    json::value v = json::parse(item.payload, ec);
    if (ec || !v.is_object()) {
      return done(queue::Outcome::park("payload is not a JSON object"));
    }
    const json::object& p = v.as_object();
    if (item.topic == kTopicParkingEntry) return send_entry(p, std::move(done));
    if (item.topic == kTopicCharge) return send_charge(item.payload, std::move(done));
    if (item.topic == kTopicPay) {
      if (pay_sink) return pay_sink(item, std::move(done));
      return done(queue::Outcome::park("no taxi lane handles in-cab payments here"));
    }
    if (invoices != nullptr && InvoiceUplink::handles(item.topic)) return invoices->sink(item, std::move(done));
    done(queue::Outcome::park("no sender for topic '" + item.topic + "'"));
  }

  void send_entry(const json::object& p, queue::Drainer::Completion done) {
    ParkingEntryRequest req;
    req.out_parking_no = get_str(p, "out_parking_no");
    req.plate_number = get_str(p, "plate");
    req.plate_color = get_str(p, "colour");
    req.start_time = from_ms(get_int(p, "start_time_ms"));
    req.parking_name = get_str(p, "parking_name");
    req.free_duration_s = get_int(p, "free_duration_s");
    auto self = shared_from_this();
    asio::post(pool, [self, req, done = std::move(done)]() mutable {
      auto r = self->provider.create_parking_entry(req);
      asio::post(self->io, [self, req, r = std::move(r), done = std::move(done)]() mutable {
        self->on_entry(req, r, std::move(done));
      });
    });
  }

  void on_entry(const ParkingEntryRequest& req, const ProviderResult<ParkingEntry>& r,
                queue::Drainer::Completion done) {
    if (!r) {
      note_failure(r.error());
      return done(outcome_for(r.error()));
    }
    set_link(true, {});
    auto txn = store.db().begin();
    if (!txn) return done(local_retry(txn.error().message));
    const BindingState binding = binding_from_parking_entry(r->state, r->block_reason);
    if (auto s = store.set_parking_id(*txn, req.out_parking_no, r->id); !s) return done(local_retry(s.error().message));
    if (auto s = store.put_binding(*txn, req.plate_number, binding, clock.now()); !s) {
      return done(local_retry(s.error().message));
    }
    if (auto s = txn->commit(); !s) return done(local_retry(s.error().message));
    done(queue::Outcome::ack());
  }

  queue::Outcome outcome_for(const ProviderFailure& f) {
    switch (f.outcome) {
      case Outcome::kPark: return queue::Outcome::park(f.error.message);
      case Outcome::kRetryLater:
      case Outcome::kQueryFirst:
      case Outcome::kNotFound:
      case Outcome::kOk: break;
    }
    if (f.http_status == 0) return queue::Outcome::retry(f.error.message, kLinkDownRetry);
    return queue::Outcome::retry(f.error.message);
  }

  void send_charge(const std::string& payload, queue::Drainer::Completion done) {
    auto order = decode_charge_order(payload);
    if (!order) return done(queue::Outcome::park(order.error().to_string()));
    const std::string out = order->out_trade_no;
    auto found = store.find_transaction(out);
    if (!found) return done(local_retry(found.error().message));
    if (!*found) return done(queue::Outcome::park("no transaction " + out));
    const TxRecord tx = **found;
    if (order->kind == TxKind::kTaxi) {
      // A rider charge queued by the previous release, which charged an invented vehicle
      // "taxi" call. It is never sent; an operator settles the fare.
      return done(queue::Outcome::park("taxi rider charge of the previous release: there is no vehicle taxi call; "
                                       "settle the fare by hand"));
    }
    if (tx.amount != order->amount || tx.contract_id != order->contract_id || tx.kind != order->kind) {
      // charge.h invariant 2: the payload and the record are one order; two stories about
      // the same out_trade_no are for an operator, never for the provider.
      log::error("charge payload differs from its record: parked",
                 {{"OUT_TRADE_NO", out}, {"RECORDED", tx.amount.to_string()}, {"PAYLOAD", order->amount.to_string()}});
      return done(queue::Outcome::park("charge payload differs from its record (amount, account or kind)"));
    }
    std::string parking_id;
    if (tx.session_id) {
      auto sess = store.find_session(*tx.session_id);
      if (sess && *sess) parking_id = (*sess)->parking_id;
    }
    ChargeRequest req = provider_request(*order, parking_id, cfg.gateway.site_name);
    ChargeAttempt attempt = ChargeAttempt::kAfterAmbiguity;
    bool query_only = false;
    // Nobody decides on this charge: it fell back, or it is undecided and no lane waits for
    // it (the gateway stopped in between). It is never (re)sent; only found out about.
    const bool orphan = !tx.decision && !waiters.contains(out);
    if ((tx.fell_back() || orphan) && tx.state == ChargeState::kRecorded) {
      // The vehicle was sent to pay another way, or no lane decides on the charge (the
      // gateway stopped, or the decision did not commit, so no barrier opened on it): it
      // never left, and it never will. Voiding it at once is safe: no money moved under this
      // out_trade_no, and a new read of the same passage records a new charge.
      auto moved = book.move_committed(out, ChargeState::kVoid, "", "system",
                                       orphan ? R"({"reason":"undecided"})" : R"({"reason":"fallback"})");
      if (!moved) return done(local_retry(moved.error().message));
      if (orphan) {
        log::notice("undecided charge never sent and given up", {{"OUT_TRADE_NO", out}, {"LANE", tx.lane}});
      }
      return done(queue::Outcome::ack());
    }
    if ((tx.fell_back() || orphan) && (tx.state == ChargeState::kSubmitting || tx.state == ChargeState::kUnknown)) {
      // It may have reached the provider: find out, but never resend it.
      query_only = true;
    }
    switch (tx.state) {
      case ChargeState::kRecorded: {
        // Commit before the request leaves: from here on the provider may have it.
        auto moved = book.move_committed(out, ChargeState::kSubmitting, "", "system");
        if (!moved) return done(local_retry(moved.error().message));
        attempt = ChargeAttempt::kFirst;
        break;
      }
      case ChargeState::kSubmitting:
      case ChargeState::kUnknown: attempt = ChargeAttempt::kAfterAmbiguity; break;
      case ChargeState::kAccepted: query_only = true; break;
      case ChargeState::kSuccess:
      case ChargeState::kPayFail:
      case ChargeState::kRefund:
      case ChargeState::kCash:
      case ChargeState::kVoid: return done(queue::Outcome::ack());
    }
    const auto now = clock.steady_now();
    if (!query_only) {
      // Forget sends long past any in-flight window (a charge settled by notification never
      // got the reply that would erase its entry).
      const auto quiet = quiet_period();
      std::erase_if(last_charge_send, [&](const auto& kv) { return now - kv.second > 4 * quiet; });
      last_charge_send[req.out_trade_no] = now;
    }
    auto self = shared_from_this();
    asio::post(pool, [self, req, attempt, query_only, done = std::move(done)]() mutable {
      auto r = query_only ? self->provider.query_transaction(req.product, req.out_trade_no)
                          : self->provider.charge(req, attempt);
      asio::post(self->io, [self, out = req.out_trade_no, query_only, r = std::move(r), done = std::move(done)]() mutable {
        self->on_charge(out, query_only, r, std::move(done));
      });
    });
  }

  // How long after a charge was handed to a worker it may still reach the provider: the
  // client ends every call within kMaxExchangesPerCall exchanges of connect + request time
  // each (gateway/provider_wechatpay.h, TIME BOUNDS).
  milliseconds quiet_period() const {
    return milliseconds{kMaxExchangesPerCall * (cfg.provider.connect_timeout_ms + cfg.provider.request_timeout_ms)};
  }


  void on_charge(const std::string& out, bool query_only, const ProviderResult<ProviderTransaction>& r,
                 queue::Drainer::Completion done) {
    auto found = store.find_transaction(out);
    if (!found) {
      resolve(out, OnlineOutcome::kNoAnswer);
      return done(local_retry(found.error().message));
    }
    if (!*found) return done(queue::Outcome::park("no transaction " + out));
    const TxRecord tx = **found;
    const bool nobody_decides = tx.fell_back() || (!tx.decision && !waiters.contains(out));
    if (!r && r.error().outcome == Outcome::kNotFound && nobody_decides) {
      // Only a query answers "not found": for a charge nobody decides on, that settles it --
      // once no earlier send can still be in flight (a request delayed on the way could land
      // after the query). Measured on the steady clock: a wall-clock jump must neither void
      // early nor wait forever.
      set_link(true, {});
      if (auto it = last_charge_send.find(out); it != last_charge_send.end()) {
        const auto quiet = quiet_period();
        const auto since = std::chrono::duration_cast<milliseconds>(clock.steady_now() - it->second);
        if (since < quiet) {
          return done(queue::Outcome::retry("not found yet; an earlier send may still be in flight", quiet - since));
        }
        last_charge_send.erase(it);
      }
      auto moved = book.move_committed(
          out, ChargeState::kVoid, "", "provider",
          json::serialize(json::object{{"reason", tx.fell_back() ? "fallback" : "undecided"},
                                       {"provider", "ORDER_NOT_EXIST"}}));
      if (!moved) return done(local_retry(moved.error().message));
      return done(queue::Outcome::ack());
    }
    if (!r) {
      note_failure(r.error());
      const ProviderFailure& f = r.error();
      if (f.provider_code == kUnknownTradeState) {
        // The provider holds this charge in a state the spec does not list (alarmed by the
        // client): the money's fate is unknown, so it is neither voided nor passed on. The
        // lane decides by the offline rule; the item waits for an operator.
        last_charge_send.erase(out);
        (void)book.move_committed(out, ChargeState::kUnknown, "", "system",
                                  json::serialize(json::object{{"error", f.error.message}}));
        resolve(out, OnlineOutcome::kNoAnswer);
        return done(queue::Outcome::park("provider trade_state unknown to lanegate: " + f.error.message));
      }
      if (f.outcome == Outcome::kQueryFirst) {
        (void)book.move_committed(out, ChargeState::kUnknown, "", "system",
                                  json::serialize(json::object{{"error", f.error.message}, {"http_status", f.http_status}}));
      }
      if (f.outcome == Outcome::kPark) {
        last_charge_send.erase(out);  // a refusal is an answer: nothing of it is in flight
        if (!tx.decision && waiters.contains(out)) {
          // The lane is still waiting for this answer: it decides now (refused -> fallback),
          // and the item comes back once the decision is recorded, to be voided below.
          log::info("charge refused by the provider; the lane decides",
                    {{"OUT_TRADE_NO", out}, {"HTTP_STATUS", f.http_status}, {"CODE", f.provider_code}});
          resolve(out, OnlineOutcome::kRefused);
          return done(queue::Outcome::retry("refused; waiting for the lane's decision", milliseconds{1000}));
        }
        if (tx.fell_back() || !tx.decision) {
          // Refused as a whole (no deduction service for the plate, unknown contract...): the
          // provider holds no transaction, and no barrier opened on this charge (the driver
          // was sent to pay another way, or no decision was ever committed). It ends VOID,
          // never resent; a new read of the same vehicle records a new charge.
          auto moved = book.move_committed(
              out, ChargeState::kVoid, "", "provider",
              json::serialize(json::object{{"reason", tx.decision ? "fallback" : "undecided"},
                                           {"provider", f.provider_code},
                                           {"http_status", f.http_status}}));
          if (!moved) return done(local_retry(moved.error().message));
          log::info("refused charge voided: no passage was decided on it",
                    {{"OUT_TRADE_NO", out}, {"HTTP_STATUS", f.http_status}, {"CODE", f.provider_code}});
          resolve(out, OnlineOutcome::kRefused);
          return done(queue::Outcome::ack());
        }
        log::error("charge refused permanently: item parked for an operator",
                   {{"OUT_TRADE_NO", out}, {"HTTP_STATUS", f.http_status}, {"CODE", f.provider_code}});
        resolve(out, OnlineOutcome::kRefused);
      } else {
        resolve(out, OnlineOutcome::kNoAnswer);
      }
      return done(outcome_for(f));
    }
    set_link(true, {});
    note_signature(false, {});
    last_charge_send.erase(out);  // a reply came: nothing of this charge is in flight
    // charge.h invariant 4: the answer must be about this money before it moves anything.
    auto applied = apply_committed(tx, *r, query_only ? AnswerSource::kQuery : AnswerSource::kReply, {});
    if (!applied) {
      resolve(out, OnlineOutcome::kNoAnswer);
      return done(local_retry(applied.error().message));
    }
    if (*applied == Applied::kMismatch) {
      resolve(out, OnlineOutcome::kNoAnswer);
      return done(queue::Outcome::park("provider answer is about other money (out_trade_no, amount or merchant)"));
    }
    auto now = store.find_transaction(out);
    const ChargeState current = (now && *now) ? (*now)->state : tx.state;
    switch (current) {
      case ChargeState::kAccepted:
        resolve(out, online_outcome(tx.kind, current));
        return done(queue::Outcome::retry("ACCEPTED: waiting for the deduction result", kAcceptedQueryAfter));
      case ChargeState::kSuccess:
      case ChargeState::kRefund:
        resolve(out, OnlineOutcome::kAccepted);
        return done(queue::Outcome::ack());
      case ChargeState::kPayFail:
        resolve(out, OnlineOutcome::kRefused);
        return done(queue::Outcome::ack());
      default:
        resolve(out, OnlineOutcome::kNoAnswer);
        return done(queue::Outcome::retry("charge state " + std::string(to_string(current))));
    }
  }

  // ---------------- ETC contract checks ----------------
  //
  // Spec "ETC highway deduction": if no VEHICLE.USER_STATE_CHANGE arrives, poll the
  // contract by id; the provider's own guide says to query once its ~4 h notification
  // schedule has passed without one. So every contract_check_interval_s, the contracts
  // seen at a lane within binding_max_age_s (older ones no longer keep a binding fresh)
  // that nothing was heard of for contract_silence_s are queried, a bounded batch at a
  // time, on one pool thread; the answers are applied on the io thread.

  std::unique_ptr<asio::steady_timer> contract_timer;  // io thread
  bool contract_check_running = false;                 // io thread

  void schedule_contract_check(std::chrono::milliseconds after) {
    if (!contract_timer) return;
    contract_timer->expires_after(after);
    contract_timer->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->check_contracts();
    });
  }

  void check_contracts() {
    const auto& etc = cfg.provider.etc;
    const auto interval = std::chrono::duration_cast<milliseconds>(std::chrono::seconds(etc.contract_check_interval_s));
    if (contract_check_running) return;
    const SystemTime now = clock.now();
    auto due = store.silent_contracts(now - std::chrono::seconds(cfg.offline.binding_max_age_s),
                                      now - std::chrono::seconds(etc.contract_silence_s), kContractQueriesPerCheck);
    if (!due) {
      log::warn("ETC contract check: cannot read the contracts", {{"ERROR", due.error().to_string()}});
      return schedule_contract_check(interval);
    }
    if (due->empty()) return schedule_contract_check(interval);
    contract_check_running = true;
    asio::post(pool, [self = shared_from_this(), ids = std::move(*due), interval] {
      std::vector<std::pair<std::string, ProviderResult<EtcContract>>> answers;
      for (const auto& id : ids) {
        auto answer = self->provider.query_etc_contract(id);
        const bool unreachable = !answer && answer.error().http_status == 0;
        answers.emplace_back(id, std::move(answer));
        if (unreachable) break;  // the link is down: the rest wait for the next check
      }
      asio::post(self->io, [self, answers = std::move(answers), interval] {
        self->apply_contract_answers(answers);
        self->contract_check_running = false;
        self->schedule_contract_check(interval);
      });
    });
  }

  void apply_contract_answers(const std::vector<std::pair<std::string, ProviderResult<EtcContract>>>& answers) {
    auto& registry = metrics::Registry::global();
    const ContractRules rules = contract_rules(cfg.provider);
    for (const auto& [id, answer] : answers) {
      std::optional<ContractStatement> statement;
      if (answer) {
        set_link(true, {});
        statement = statement_of(*answer, clock.now());
      } else if (answer.error().outcome == Outcome::kNotFound) {
        // The provider knows no such contract: it cannot be charged. The marker is
        // lanegate's own (not a provider value) and is never the bound value.
        set_link(true, {});
        auto row = store.find_contract(id);
        if (row && *row) {
          statement = ContractStatement{id, (*row)->plate, "?not_found_at_provider", rules.mchid, {}, clock.now(),
                                        "query"};
        }
      } else {
        note_failure(answer.error());
      }
      registry
          .counter("lanegate_etc_contract_checks_total", "ETC contract queries by result",
                   {{"result", answer ? "ok" : std::string(outcome_name(answer.error().outcome))}})
          .inc();
      if (!statement) continue;
      auto txn = store.db().begin();
      if (!txn) return;
      auto applied = apply_contract_state(*txn, store, *statement, rules);
      if (!applied || !txn->commit()) {
        log::warn("ETC contract answer not applied; asked again at the next check", {{"CONTRACT", id}});
      }
    }
  }

  // Applies one answer in a transaction of its own.
  Result<Applied> apply_committed(const TxRecord& tx, const ProviderTransaction& answer, AnswerSource source,
                                  std::string_view event_id) {
    auto txn = store.db().begin();
    if (!txn) return std::unexpected(txn.error());
    auto applied = book.apply_answer(*txn, tx, answer, source, event_id);
    if (!applied) return applied;
    if (auto s = txn->commit(); !s) return std::unexpected(s.error());
    return applied;
  }

  // ---------------- notifications ----------------

  Status apply_notification(Transaction& txn, const NotificationEvent& ev) {
    if (const auto* t = std::get_if<TransactionEvent>(&ev.payload)) {
      auto tx = store.find_transaction(t->transaction.out_trade_no);
      if (!tx) return std::unexpected(tx.error());
      if (!*tx) {
        log::warn("notification for an unknown out_trade_no ignored", {{"OUT_TRADE_NO", t->transaction.out_trade_no}});
        return {};
      }
      auto applied = book.apply_answer(txn, **tx, t->transaction, AnswerSource::kNotification, ev.event_id);
      if (!applied) return std::unexpected(applied.error());
      if (*applied == Applied::kNotYet) {
        // charge.h invariant 8: not lost -- the handler answers with a retryable error, so
        // the provider sends it again once a query has moved the charge on.
        return fail(Errc::kUnavailable, "the charge cannot take " +
                                            std::string(to_string(charge_state_of(t->transaction.state))) +
                                            " yet (it is " + std::string(to_string((*tx)->state)) + ")",
                    "trade_state");
      }
      if (*applied != Applied::kMoved) return {};  // waiters are not resolved with it
      const std::string out = t->transaction.out_trade_no;
      const OnlineOutcome o = online_outcome((*tx)->kind, charge_state_of(t->transaction.state));
      // Waiters are resolved after the handler commits (posted behind it).
      asio::post(io, [self = shared_from_this(), out, o] { self->resolve(out, o); });
      return {};
    }
    if (const auto* pay = std::get_if<PaymentEvent>(&ev.payload)) {
      // An in-cab Native payment: the taxi lane owns its trip (site_taxi.cc).
      if (!payment_applier) {
        log::warn("payment notification without a taxi lane ignored", {{"OUT_TRADE_NO", pay->payment.out_trade_no}});
        return {};
      }
      return payment_applier(txn, pay->payment);
    }
    if (const auto* c = std::get_if<ContractStateEvent>(&ev.payload)) {
      auto applied = apply_contract_state(txn, store, statement_of(*c), contract_rules(cfg.provider));
      if (!applied) return std::unexpected(applied.error());
      return {};
    }
    const auto* entrance = std::get_if<EntranceStateEvent>(&ev.payload);
    if (entrance == nullptr) {
      log::warn("notification of a kind this gateway does not apply ignored", {{"EVENT_TYPE", ev.event_type}});
      return {};
    }
    const auto& e = *entrance;
    return store.put_binding(txn, e.plate_number,
                             binding_from_entrance_state(e.parking_state, e.blocked_state_description), clock.now());
  }
};

Uplink::Uplink(asio::io_context& io, const config::Config& config, Store& store, queue::Outbox& outbox,
               PaymentProvider& provider, const Clock& clock)
    : impl_(std::make_shared<Impl>(io, config, store, outbox, provider, clock)) {}

Uplink::~Uplink() {
  stop();
  impl_->pool.join();
}

void Uplink::start() {
  std::weak_ptr<Impl> weak = impl_;
  auto sink = [weak](const queue::Item& item, queue::Drainer::Completion done) {
    if (auto self = weak.lock()) self->sink(item, std::move(done));
  };
  // Charges and invoices drain separately, each with its own in-flight budget, so a charge
  // never waits behind an invoice (the invoicing platform may be slow or down).
  queue::DrainerOptions charges;
  charges.topics = {std::string(kTopicParkingEntry), std::string(kTopicCharge), std::string(kTopicPay)};
  impl_->drainer =
      std::make_unique<queue::Drainer>(impl_->io, impl_->outbox, impl_->cfg.queue, impl_->clock, sink, charges);
  impl_->drainer->start();
  impl_->probe_timer = std::make_unique<asio::steady_timer>(impl_->io);
  if (!impl_->up.load()) impl_->schedule_probe();
  if (impl_->invoices != nullptr) {
    impl_->invoice_limits = impl_->cfg.queue;
    impl_->invoice_limits.max_in_flight = std::min(kInvoiceInFlight, impl_->cfg.queue.max_in_flight);
    queue::DrainerOptions invoices;
    invoices.topics = InvoiceUplink::topics();
    invoices.compact_interval = std::chrono::milliseconds(0);  // the charge drainer compacts
    impl_->invoice_drainer = std::make_unique<queue::Drainer>(impl_->io, impl_->outbox, impl_->invoice_limits,
                                                              impl_->clock, sink, invoices);
    impl_->invoice_drainer->start();
  }
  if (impl_->cfg.provider.partner() && !impl_->cfg.provider.etc.bound_state.empty()) {
    impl_->contract_timer = std::make_unique<asio::steady_timer>(impl_->io);
    impl_->schedule_contract_check(std::chrono::seconds(impl_->cfg.provider.etc.contract_check_interval_s));
  }
}

void Uplink::check_contracts() { impl_->check_contracts(); }

void Uplink::stop() {
  if (impl_->probe_timer) impl_->probe_timer->cancel();
  if (impl_->contract_timer) impl_->contract_timer->cancel();
  if (impl_->drainer) impl_->drainer->stop();
  if (impl_->invoice_drainer) impl_->invoice_drainer->stop();
}

bool Uplink::link_up() const { return impl_->up.load(); }

void Uplink::kick() {
  if (impl_->drainer) impl_->drainer->link_up();
  if (impl_->invoice_drainer) impl_->invoice_drainer->link_up();
}

void Uplink::await_charge(const std::string& out_trade_no, std::chrono::milliseconds deadline,
                          std::function<void(OnlineOutcome)> done) {
  // Already known (a resumed charge, or a notification that came first): answer now.
  if (auto tx = impl_->store.find_transaction(out_trade_no); tx && *tx) {
    const ChargeState st = (*tx)->state;
    if (st == ChargeState::kAccepted || st == ChargeState::kSuccess || st == ChargeState::kPayFail) {
      const OnlineOutcome o = online_outcome((*tx)->kind, st);
      asio::post(impl_->io, [done = std::move(done), o] { done(o); });
      return;
    }
  }
  auto timer = std::make_shared<asio::steady_timer>(impl_->io);
  timer->expires_after(deadline);
  std::weak_ptr<Impl> weak = impl_;
  timer->async_wait([weak, out_trade_no, timer](boost::system::error_code ec) {
    if (ec) return;  // cancelled: resolved by a result
    auto self = weak.lock();
    if (!self) return;
    auto it = self->waiters.find(out_trade_no);
    if (it == self->waiters.end()) return;
    auto& list = it->second;
    for (auto w = list.begin(); w != list.end(); ++w) {
      if (w->timer == timer) {
        auto cb = std::move(w->done);
        list.erase(w);
        if (list.empty()) self->waiters.erase(it);
        cb(OnlineOutcome::kNoAnswer);
        return;
      }
    }
  });
  impl_->waiters[out_trade_no].push_back(Impl::Waiter{timer, std::move(done)});
}

Status Uplink::apply_notification(Transaction& txn, const NotificationEvent& event) {
  return impl_->apply_notification(txn, event);
}

void Uplink::set_invoice_uplink(InvoiceUplink* invoices) { impl_->invoices = invoices; }

void Uplink::set_pay_sink(std::function<void(const queue::Item&, queue::Drainer::Completion)> sink) {
  impl_->pay_sink = std::move(sink);
}

void Uplink::set_payment_applier(std::function<Status(Transaction&, const Payment&)> applier) {
  impl_->payment_applier = std::move(applier);
}

bool Uplink::call_provider(ProviderCall call) {
  std::weak_ptr<Impl> weak = impl_;
  asio::post(impl_->pool, [weak, call = std::move(call)] {
    auto self = weak.lock();
    if (!self) return;
    auto then = call(self->provider);
    asio::post(self->io, std::move(then));
  });
  return true;
}

void Uplink::note_link(bool up, const std::string& why) { impl_->set_link(up, why); }

queue::Drainer::Counters Uplink::drain_counters() const {
  queue::Drainer::Counters c = impl_->drainer ? impl_->drainer->counters() : queue::Drainer::Counters{};
  if (impl_->invoice_drainer) {
    const auto i = impl_->invoice_drainer->counters();
    c.in_flight += i.in_flight;
    c.max_in_flight_seen = std::max(c.max_in_flight_seen, i.max_in_flight_seen);
    c.dispatched += i.dispatched;
    c.acked += i.acked;
    c.retried += i.retried;
    c.parked += i.parked;
    c.stale += i.stale;
    c.cycle_errors += i.cycle_errors;
  }
  return c;
}

}  // namespace lanegate::gateway
