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

ChargeState map_state(TradeState s) {
  switch (s) {
    case TradeState::kAccepted: return ChargeState::kAccepted;
    case TradeState::kSuccess: return ChargeState::kSuccess;
    case TradeState::kPayFail: return ChargeState::kPayFail;
    case TradeState::kRefund: return ChargeState::kRefund;
  }
  return ChargeState::kUnknown;
}

ledger::Kind ledger_kind(ChargeState s) {
  switch (s) {
    case ChargeState::kAccepted: return ledger::Kind::kChargeAccepted;
    case ChargeState::kSuccess: return ledger::Kind::kChargeSettled;
    case ChargeState::kPayFail: return ledger::Kind::kChargeFailed;
    case ChargeState::kRefund: return ledger::Kind::kRefund;
    case ChargeState::kUnknown: return ledger::Kind::kChargeUnknown;
    case ChargeState::kVoid: return ledger::Kind::kCorrection;
    default: return ledger::Kind::kChargeSubmitted;
  }
}

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
  std::unique_ptr<queue::Drainer> drainer;
  std::atomic<bool> up{true};
  bool signature_refused = false;  // io thread
  // When each charge request last left (steady clock), kept until a reply proves it is no
  // longer in flight: a fallen-back charge is voided on "not found" only after that. io thread.
  std::unordered_map<std::string, SteadyTime> last_charge_send;
  std::map<std::string, std::vector<Waiter>> waiters;
  InvoiceUplink* invoices = nullptr;

  Impl(asio::io_context& i, const config::Config& c, Store& s, queue::Outbox& o, PaymentProvider& p, const Clock& cl)
      : io(i),
        cfg(c),
        store(s),
        outbox(o),
        provider(p),
        clock(cl),
        pool(static_cast<std::size_t>(std::max(1, c.queue.max_in_flight))) {
    metrics::Registry::global().gauge("lanegate_uplink_up", "1 when the last provider exchange got an answer").set(1);
  }

  // Items backing off after failures upstream are due at once and the drain runs now (the
  // cause is gone: the link or the signatures are back). Returns how many were waiting.
  std::int64_t send_waiting_now() {
    auto moved = outbox.retry_all_now();
    if (drainer) drainer->link_up();
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
      log::notice("uplink up: draining the outbox", {{"ITEMS_WAITING", send_waiting_now()}});
    } else {
      log::warn("uplink down: charges are queued and offline limits apply", {{"ERROR", why}});
    }
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

  Status append(Transaction& txn, ledger::Kind kind, const TxRecord& tx, std::string state, std::string actor,
                json::object detail) {
    ledger::LedgerEvent ev;
    ev.kind = kind;
    ev.time = clock.now();
    ev.lane = tx.lane;
    ev.plate = tx.plate;
    ev.out_trade_no = tx.out_trade_no;
    ev.amount = tx.amount;
    ev.state = std::move(state);
    ev.actor = std::move(actor);
    ev.detail = json::serialize(detail);
    auto r = ledger::append(txn, ev);
    if (!r) return std::unexpected(r.error());
    return {};
  }

  // Moves a charge to `to` (when the lifecycle allows it) with its ledger record.
  // Returns false when the move was not allowed (late or duplicate information).
  Result<bool> move(Transaction& txn, const TxRecord& tx, ChargeState to, const std::string& provider_txn_id,
                    const std::string& actor, json::object detail) {
    if (tx.state == to || !allowed_transition(tx.state, to)) return false;
    if (auto s = store.set_state(txn, tx.out_trade_no, to, provider_txn_id); !s) return std::unexpected(s.error());
    detail["from"] = to_string(tx.state);
    if (auto s = append(txn, ledger_kind(to), tx, std::string(to_string(to)), actor, std::move(detail)); !s) {
      return std::unexpected(s.error());
    }
    if (to == ChargeState::kPayFail && tx.offline) {
      if (auto s = append(txn, ledger::Kind::kArrears, tx, "PAY_FAIL", "system", json::object{{"offline_pass", true}});
          !s) {
        return std::unexpected(s.error());
      }
      metrics::Registry::global().counter("lanegate_arrears_total", "Offline passes whose charge failed").inc();
      log::warn("arrears: an offline pass's charge failed",
                {{"LANE", tx.lane}, {"PLATE", log::mask_plate(tx.plate)}, {"AMOUNT", tx.amount.to_string()}});
    }
    if (to == ChargeState::kSuccess && tx.state == ChargeState::kPayFail && tx.arrears) {
      if (auto s = append(txn, ledger::Kind::kArrearsCleared, tx, "SUCCESS", "provider", json::object{}); !s) {
        return std::unexpected(s.error());
      }
    }
    return true;
  }

  Result<bool> move_committed(const std::string& out_trade_no, ChargeState to, const std::string& provider_txn_id,
                              const std::string& actor, json::object detail) {
    auto txn = store.db().begin();
    if (!txn) return std::unexpected(txn.error());
    auto tx = store.find_transaction(out_trade_no);
    if (!tx) return std::unexpected(tx.error());
    if (!*tx) return fail(Errc::kNotFound, "no transaction " + out_trade_no);
    auto moved = move(*txn, **tx, to, provider_txn_id, actor, std::move(detail));
    if (!moved) return moved;
    if (auto s = txn->commit(); !s) return std::unexpected(s.error());
    return *moved;
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
    if (item.topic == kTopicCharge) return send_charge(p, std::move(done));
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
    std::string binding = r->state == "NORMAL" ? "NORMAL" : r->block_reason.value_or("BLOCKED");
    if (binding == "OVERDUE" || binding == "EVALUATION_FAILED") binding = "BLOCKED";
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

  void send_charge(const json::object& p, queue::Drainer::Completion done) {
    const std::string out = get_str(p, "out_trade_no");
    auto found = store.find_transaction(out);
    if (!found) return done(local_retry(found.error().message));
    if (!*found) return done(queue::Outcome::park("no transaction " + out));
    const TxRecord tx = **found;
    ChargeRequest req;
    const std::string product = get_str(p, "product");
    req.product = product == "HIGHWAY" ? Product::kHighway : product == "TAXI" ? Product::kTaxi : Product::kParking;
    req.out_trade_no = out;
    req.description = get_str(p, "description");
    req.amount = tx.amount;
    const SystemTime start = from_ms(get_int(p, "start_time_ms"));
    const SystemTime end = from_ms(get_int(p, "end_time_ms"));
    if (req.product == Product::kParking) {
      if (tx.session_id) {
        auto s = store.find_session(*tx.session_id);
        if (s && *s) req.parking.parking_id = (*s)->parking_id;
      }
      req.parking.plate_number = tx.plate;
      req.parking.plate_color = tx.plate_colour;
      req.parking.start_time = start;
      req.parking.end_time = end;
      req.parking.parking_name = cfg.gateway.site_name;
      req.parking.charging_duration_s =
          std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(end - start).count());
      req.parking.device_id = get_str(p, "device_id");
    } else if (req.product == Product::kTaxi) {
      // The rider's account (the token read by the cab's code reader) is the payer.
      req.taxi.rider_openid = tx.contract_id;
      req.taxi.plate_number = tx.plate;
      req.taxi.start_time = start;
      req.taxi.end_time = end;
      req.taxi.distance_m = get_int(p, "distance_m");
      req.taxi.trip_number = static_cast<std::uint32_t>(get_int(p, "trip_number"));
      req.taxi.device_id = get_str(p, "device_id");
    } else {
      req.contract_id = tx.contract_id;
      req.highway.plate_number = tx.plate;
      req.highway.plate_color = tx.plate_colour;
      req.highway.start_time = start;
      req.highway.end_time = end;
      req.highway.channel_type = "ETC";
      req.highway.entrance = get_str(p, "entrance");
      req.highway.exit = get_str(p, "exit");
    }
    ChargeAttempt attempt = ChargeAttempt::kAfterAmbiguity;
    bool query_only = false;
    const bool fell_back = tx.decision == "fallback";
    if (fell_back && tx.state == ChargeState::kRecorded) {
      // The vehicle was sent to pay another way and this charge never left: it never will.
      auto moved = move_committed(out, ChargeState::kVoid, "", "system", json::object{{"reason", "fallback"}});
      if (!moved) return done(local_retry(moved.error().message));
      return done(queue::Outcome::ack());
    }
    if (fell_back && (tx.state == ChargeState::kSubmitting || tx.state == ChargeState::kUnknown)) {
      // It may have reached the provider: find out, but never resend it.
      query_only = true;
    }
    switch (tx.state) {
      case ChargeState::kRecorded: {
        // Commit before the request leaves: from here on the provider may have it.
        auto moved = move_committed(out, ChargeState::kSubmitting, "", "system", json::object{});
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
    if (!query_only) last_charge_send[req.out_trade_no] = clock.steady_now();
    auto self = shared_from_this();
    asio::post(pool, [self, req, attempt, query_only, done = std::move(done)]() mutable {
      auto r = query_only ? self->provider.query_transaction(req.product, req.out_trade_no)
                          : self->provider.charge(req, attempt);
      asio::post(self->io, [self, out = req.out_trade_no, r = std::move(r), done = std::move(done)]() mutable {
        self->on_charge(out, r, std::move(done));
      });
    });
  }

  void on_charge(const std::string& out, const ProviderResult<ProviderTransaction>& r,
                 queue::Drainer::Completion done) {
    auto fallen_back = [&] {
      auto tx = store.find_transaction(out);
      return tx && *tx && (*tx)->decision == "fallback";
    };
    if (!r && r.error().outcome == Outcome::kNotFound && fallen_back()) {
      // Only a query answers "not found": for a fallen-back charge that settles it -- once
      // no earlier send can still be in flight (a request delayed on the way could land
      // after the query). The last send was before the charge's last state change.
      set_link(true, {});
      // Measured on the steady clock: a wall-clock jump must neither void early nor wait forever.
      if (auto it = last_charge_send.find(out); it != last_charge_send.end()) {
        const auto quiet = milliseconds{2 * std::max(cfg.provider.request_timeout_ms, cfg.provider.connect_timeout_ms)};
        const auto since = std::chrono::duration_cast<milliseconds>(clock.steady_now() - it->second);
        if (since < quiet) {
          return done(queue::Outcome::retry("not found yet; an earlier send may still be in flight", quiet - since));
        }
        last_charge_send.erase(it);
      }
      auto moved = move_committed(out, ChargeState::kVoid, "", "provider",
                                  json::object{{"reason", "fallback"}, {"provider", "ORDER_NOT_EXIST"}});
      if (!moved) return done(local_retry(moved.error().message));
      return done(queue::Outcome::ack());
    }
    if (!r) {
      note_failure(r.error());
      const ProviderFailure& f = r.error();
      if (f.outcome == Outcome::kQueryFirst) {
        (void)move_committed(out, ChargeState::kUnknown, "", "system",
                             json::object{{"error", f.error.message}, {"http_status", f.http_status}});
      }
      if (f.outcome == Outcome::kPark) {
        last_charge_send.erase(out);  // a refusal is an answer: nothing of it is in flight
        auto tx = store.find_transaction(out);
        const std::string decision = tx && *tx ? (*tx)->decision : std::string("?");
        if (decision.empty() && waiters.contains(out)) {
          // The lane is still waiting for this answer: it decides now (refused -> fallback),
          // and the item comes back once the decision is recorded, to be voided below.
          log::info("charge refused by the provider; the lane decides",
                    {{"OUT_TRADE_NO", out}, {"HTTP_STATUS", f.http_status}, {"CODE", f.provider_code}});
          resolve(out, OnlineOutcome::kRefused);
          return done(queue::Outcome::retry("refused; waiting for the lane's decision", milliseconds{1000}));
        }
        if (decision == "fallback" || decision.empty()) {
          // Refused as a whole (no deduction service for the plate, unknown contract...): the
          // provider holds no transaction, and no barrier opened on this charge (the driver
          // was sent to pay another way, or no decision was ever committed: the gateway
          // stopped, or the database refused the decision). It ends VOID, never resent; a new
          // read of the same vehicle records a new charge. Nothing is left for an operator.
          auto moved = move_committed(out, ChargeState::kVoid, "", "provider",
                                      json::object{{"reason", decision.empty() ? "undecided" : "fallback"},
                                                   {"provider", f.provider_code},
                                                   {"http_status", f.http_status}});
          if (!moved) return done(local_retry(moved.error().message));
          log::info("refused charge voided: no passage was decided on it",
                    {{"OUT_TRADE_NO", out}, {"HTTP_STATUS", f.http_status}, {"CODE", f.provider_code}});
          resolve(out, OnlineOutcome::kRefused);
          return done(queue::Outcome::ack());
        }
      }
      if (f.outcome == Outcome::kPark) {
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
    const ChargeState to = map_state(r->state);
    if (auto before = store.find_transaction(out); before && *before && (*before)->decision == "fallback" &&
        (to == ChargeState::kAccepted || to == ChargeState::kSuccess) && (*before)->state != to) {
      metrics::Registry::global()
          .counter("lanegate_charges_after_fallback_total",
                   "Charges that reached the provider although the passage fell back (operator review: refund)")
          .inc();
      log::warn("a charge succeeded after its passage fell back: review for a refund",
                {{"OUT_TRADE_NO", out}, {"LANE", (*before)->lane}, {"AMOUNT", (*before)->amount.to_string()}});
    }
    auto moved = move_committed(out, to, r->transaction_id, "provider",
                                json::object{{"transaction_id", r->transaction_id}, {"bank_type", r->bank_type}});
    if (!moved && moved.error().code != Errc::kNotFound) {
      resolve(out, OnlineOutcome::kNoAnswer);
      return done(local_retry(moved.error().message));
    }
    auto now = store.find_transaction(out);
    const ChargeState current = (now && *now) ? (*now)->state : to;
    switch (current) {
      case ChargeState::kAccepted:
        resolve(out, OnlineOutcome::kAccepted);
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

  // ---------------- notifications ----------------

  Status apply_notification(Transaction& txn, const NotificationEvent& ev) {
    if (const auto* t = std::get_if<TransactionEvent>(&ev.payload)) {
      auto tx = store.find_transaction(t->transaction.out_trade_no);
      if (!tx) return std::unexpected(tx.error());
      if (!*tx) {
        log::warn("notification for an unknown out_trade_no ignored", {{"OUT_TRADE_NO", t->transaction.out_trade_no}});
        return {};
      }
      if ((*tx)->amount != t->transaction.amount) {
        log::error("notification amount differs from the recorded charge",
                   {{"OUT_TRADE_NO", t->transaction.out_trade_no},
                    {"RECORDED", (*tx)->amount.to_string()},
                    {"NOTIFIED", t->transaction.amount.to_string()}});
        metrics::Registry::global()
            .counter("lanegate_provider_notification_amount_mismatch_total",
                     "Signed notifications whose amount differs from the recorded charge")
            .inc();
      }
      const ChargeState to = map_state(t->transaction.state);
      auto moved = move(txn, **tx, to, t->transaction.transaction_id, "provider",
                        json::object{{"event_id", ev.event_id}, {"event_type", ev.event_type}});
      if (!moved) return std::unexpected(moved.error());
      if (!*moved && (*tx)->state != to) {
        // Not an arrow of the lifecycle. A late ACCEPTED after the outcome is only stale;
        // anything else contradicts what is recorded: never applied, and an operator must see it.
        if (to != ChargeState::kAccepted) {
          metrics::Registry::global()
              .counter("lanegate_provider_notifications_conflicting_total",
                       "Signed notifications contradicting the recorded charge (not applied)")
              .inc();
          log::error("notification contradicts the recorded charge; not applied",
                     {{"OUT_TRADE_NO", (*tx)->out_trade_no},
                      {"RECORDED", std::string(to_string((*tx)->state))},
                      {"NOTIFIED", std::string(to_string(to))},
                      {"EVENT_ID", ev.event_id}});
        }
        return {};  // waiters are not resolved with a contradicting outcome
      }
      const std::string out = t->transaction.out_trade_no;
      const OnlineOutcome o = to == ChargeState::kPayFail ? OnlineOutcome::kRefused : OnlineOutcome::kAccepted;
      // Waiters are resolved after the handler commits (posted behind it).
      asio::post(io, [self = shared_from_this(), out, o] { self->resolve(out, o); });
      return {};
    }
    if (const auto* c = std::get_if<ContractStateEvent>(&ev.payload)) {
      return apply_contract_state(txn, store, *c);
    }
    const auto* entrance = std::get_if<EntranceStateEvent>(&ev.payload);
    if (entrance == nullptr) {
      log::warn("notification of a kind this gateway does not apply ignored", {{"EVENT_TYPE", ev.event_type}});
      return {};
    }
    const auto& e = *entrance;
    const std::string state = e.parking_state == "NORMAL" ? "NORMAL" : e.blocked_state_description.value_or("BLOCKED");
    return store.put_binding(txn, e.plate_number, state == "OVERDUE" || state == "REMOVE" ? "BLOCKED" : state,
                             clock.now());
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
  impl_->drainer = std::make_unique<queue::Drainer>(
      impl_->io, impl_->outbox, impl_->cfg.queue, impl_->clock,
      [weak](const queue::Item& item, queue::Drainer::Completion done) {
        if (auto self = weak.lock()) self->sink(item, std::move(done));
      });
  impl_->drainer->start();
}

void Uplink::stop() {
  if (impl_->drainer) impl_->drainer->stop();
}

bool Uplink::link_up() const { return impl_->up.load(); }

void Uplink::kick() {
  if (impl_->drainer) impl_->drainer->link_up();
}

void Uplink::await_charge(const std::string& out_trade_no, std::chrono::milliseconds deadline,
                          std::function<void(OnlineOutcome)> done) {
  // Already known (a resumed charge, or a notification that came first): answer now.
  if (auto tx = impl_->store.find_transaction(out_trade_no); tx && *tx) {
    const ChargeState st = (*tx)->state;
    if (st == ChargeState::kAccepted || st == ChargeState::kSuccess || st == ChargeState::kPayFail) {
      const OnlineOutcome o = st == ChargeState::kPayFail ? OnlineOutcome::kRefused : OnlineOutcome::kAccepted;
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

queue::Drainer::Counters Uplink::drain_counters() const {
  return impl_->drainer ? impl_->drainer->counters() : queue::Drainer::Counters{};
}

}  // namespace lanegate::gateway
