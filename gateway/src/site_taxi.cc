// Taxi lanes (site.h "TAXI"): in-cab payment by the passenger's payment code or a Native
// QR, else the meter's own payment (spec: payment-provider "Taxi: in-cab payment").
//
// A TRIP (meter end-of-trip record, lane/events.h TripRecord):
//   stored in taxi_trips (and its regulator upload queued) before the meter is acknowledged;
//   retransmissions find it stored and are acknowledged again.
//   card-paid at the meter, fare 0, no provider, or the uplink down
//        --> METER at once: a CASH row per the meter's payment type, the receipt's claim
//            (offline: nothing is ever charged later; a code is never kept)
//   otherwise OPEN: the screen shows the fare (kFare) and the lane waits for a code
//     --PaymentCode--> codepay order "<key>P<n>" (SUBMITTING committed, its `pay` item
//          queued, then the one request leaves) --SUCCESS--> PAID (kPaid + claim)
//          --documented refusal--> PAY_FAIL (kDeclined: scan again, QR, or the driver)
//          --anything else--> UNKNOWN (kConfirming): the `pay` item queries every 4 s for
//            30 s, then reverses (not before 15 s after creation) until the reverse holds;
//            a SUCCESS found on the way pays the trip.
//     --code_wait_ms without a code--> Native order "<key>Q<n>" (kQr shows code_url)
//          --TRANSACTION.SUCCESS or a query--> PAID
//     --qr_wait_s, the meter's next trip start (0x00E7) or its next record-->
//          METER (the driver collected); every order of the trip still open is marked
//          fallback, so the `pay` item closes (Native) or reverses (code) it, and a payment
//          that lands after all is flagged refund_due (charge.h invariant 5).
// Invariants:
//  1. A trip is paid at most once: the trip row moves OPEN -> PAID | METER exactly once
//     (Store::settle_trip); a second SUCCESS is flagged refund_due, never a second fare.
//  2. A payment code is used for one codepay request, while the passenger waits; it is
//     never logged, stored or queued, and never resubmitted (an unknown result is queried,
//     then reversed).
//  3. Every order ends SUCCESS, PAY_FAIL (refused, nothing taken) or VOID (reversed or
//     closed, confirmed by the provider): its `pay` item stays until then.
#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include "core/crypto.h"
#include "core/log.h"
#include "gateway/regulator.h"
#include "gateway/screen.h"
#include "lane/meter_frame.h"
#include "site_impl.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Phase = ScreenView::Phase;

// The provider's quick-pay rules (spec "Payment code", "Ambiguous results").
constexpr auto kCodepayQueryEvery = seconds(4);  // "every 3-5 s"
constexpr auto kCodepayQueryFor = seconds(30);   // "for at most 30 s"
constexpr auto kReverseNotBefore = seconds(15);  // "no earlier than 15 s after creation"
constexpr auto kFirstQueryAfterError = seconds(5);
// A code is valid for about a minute: an order the provider still does not know this long
// after its request left can no longer be created by that request.
constexpr auto kCodeLifetime = seconds(90);
constexpr auto kNativeQueryEvery = seconds(5);
// While a request for the order is still in flight on a worker, its `pay` item waits.
constexpr auto kInFlightRetry = seconds(2);
// "Query every 3-5 s": at least 3.5 s between the dispatches of one order's follow-ups, so
// a worker that starts one late still leaves 3 s at the provider.
constexpr auto kMinFollowupGap = milliseconds(3500);
constexpr int kMaxAttempts = 99;
// How often OPEN trips that no lane holds are looked for (Impl::sweep_trips).
constexpr auto kSweepEvery = seconds(10);

const char* meter_method(int payment_type) {
  return payment_type == 0x00 ? "cash" : (payment_type == 0x01 || payment_type == 0x03 ? "card" : "other");
}
bool card_paid(int payment_type) { return payment_type == 0x01 || payment_type == 0x03; }

metrics::Counter& trips_counter(std::string_view method) {
  return metrics::Registry::global().counter("lanegate_taxi_trips_total", "Taxi trips by how they were paid",
                                             {{"payment", std::string(method)}});
}

metrics::Counter& codes_counter(std::string_view lane, std::string_view result) {
  return metrics::Registry::global().counter(
      "lanegate_taxi_payment_codes_total", "Scanned payment codes by what became of them",
      {{"lane", std::string(lane)}, {"result", std::string(result)}});
}

metrics::Counter& pay_counter(std::string_view product, std::string_view result) {
  return metrics::Registry::global().counter(
      "lanegate_taxi_payments_total", "In-cab payment orders by product and end",
      {{"product", std::string(product)}, {"result", std::string(result)}});
}

// REQUIRES: 0 <= n <= 99.
std::string two_digits(int n) { return {static_cast<char>('0' + n / 10), static_cast<char>('0' + n % 10)}; }

std::string trip_of(const TxRecord& tx) {
  constexpr std::string_view kPrefix = "trip:";
  return tx.passage_key.starts_with(kPrefix) ? tx.passage_key.substr(kPrefix.size()) : std::string();
}

std::int64_t now_ms(const Clock& clock) { return unix_ms(clock.now()); }

// The provider's payment as the charge lifecycle reads it. Only SUCCESS and REFUND move a
// charge; the other states are handled by the caller.
ProviderTransaction as_transaction(const Payment& p) {
  ProviderTransaction t;
  // Only the money fields matter to the lifecycle; the vehicle product is not one of them.
  t.product = Product::kParking;
  t.merchant_id = p.merchant_id;
  t.sub_merchant_id = p.sub_merchant_id;
  t.out_trade_no = p.out_trade_no;
  t.transaction_id = p.transaction_id;
  t.state = p.state == PayState::kRefund ? TradeState::kRefund : TradeState::kSuccess;
  t.trade_state_description = p.trade_state_description;
  t.amount = p.amount;
  t.payer_total = p.payer_total;
  t.success_time = p.success_time;
  t.openid = p.openid;
  t.raw_json = p.raw_json;
  return t;
}

}  // namespace

std::string taxi_trip_key(std::string_view gateway_id, std::string_view meter, std::uint32_t trip_number,
                          std::string_view boarding) {
  std::string identity;
  identity.append(gateway_id).append("\n").append(meter).append("\n");
  identity.append(boarding).append("\n").append(std::to_string(trip_number));
  return "T" + crypto::sha256_hex(identity).substr(0, 27);
}

json::object Site::Impl::trip_detail(const lane::TripRecord& trip) const {
  return json::object{{"meter", trip.meter},
                      {"boarding", trip.boarding.to_string()},
                      {"alighting", trip.alighting.to_string()},
                      {"distance_m", trip.distance_m},
                      {"surcharge_fen", trip.surcharge.fen()},
                      {"payment_type", trip.payment_type},
                      {"trip_number", trip.trip_number},
                      {"licence", trip.operating_licence}};
}

// ---------------- the screen ----------------

void Site::Impl::show(const std::string& lane_id, ScreenView view) {
  if (screens == nullptr) return;
  screens->set(lane_id, std::move(view));
}

void Site::Impl::show_settled(const std::string& lane_id, Phase phase, Money fare, std::string method,
                              const std::string& out_trade_no) {
  ScreenView v;
  v.phase = phase;
  v.fare = fare;
  v.method = std::move(method);
  if (claim_lookup) {
    if (auto c = claim_lookup(out_trade_no)) {
      v.claim_url = c->url;
      v.claim_code = c->code;
    }
  }
  show(lane_id, std::move(v));
}

void Site::Impl::show_trip(LaneState& ls, Phase phase, std::string reason) {
  if (!ls.trip) return;
  ScreenView v;
  v.phase = phase;
  v.fare = ls.trip->fare;
  v.reason = std::move(reason);
  if (phase == Phase::kQr) {
    v.qr_text = ls.trip->qr_url;
    v.method = "native";
  } else if (phase == Phase::kConfirming) {
    v.method = "codepay";
  }
  show(ls.cfg.id, std::move(v));
}

// ---------------- trips ----------------

Status Site::Impl::insert_meter_paid(Transaction& txn, const std::string& lane_id, const Store::TaxiTrip& trip,
                                     const std::string& out_trade_no, const std::string& reason) {
  TxRecord tx;
  tx.out_trade_no = out_trade_no;
  tx.kind = TxKind::kTaxi;
  tx.lane = lane_id;
  tx.plate = trip.plate;
  tx.amount = trip.fare;
  tx.state = ChargeState::kCash;
  tx.decision = DecisionKind::kFree;
  tx.decision_reason = reason;
  tx.payment_method = meter_method(trip.payment_type);
  tx.trip_number = trip.trip_number;
  tx.passage_key = "trip:" + trip.trip_key;
  tx.detail = trip.detail;
  auto id = store.insert_transaction(txn, tx);
  if (!id) return std::unexpected(id.error());
  boost::system::error_code ec;
  json::value detail = json::parse(trip.detail, ec);
  return append_ledger(txn, ledger::Kind::kChargeSettled, lane_id, trip.plate, out_trade_no, trip.fare, "CASH",
                       "meter:" + trip.meter, !ec && detail.is_object() ? detail.as_object() : json::object{});
}

// Settles an OPEN trip as paid at the meter, in txn: its CASH row, and every order of the
// trip still open marked fallback (its `pay` item closes or reverses it; a late SUCCESS is
// flagged refund_due). false: the trip was no longer open.
Result<bool> Site::Impl::settle_at_meter(Transaction& txn, const Store::TaxiTrip& trip, const std::string& reason) {
  const std::string cash_no = trip.trip_key + "C";
  auto settled = store.settle_trip(txn, trip.trip_key, "METER", cash_no);
  if (!settled || !*settled) return settled;
  if (auto s = insert_meter_paid(txn, trip.lane, trip, cash_no, reason); !s) return std::unexpected(s.error());
  auto orders = store.passage_transactions("trip:" + trip.trip_key);
  if (!orders) return std::unexpected(orders.error());
  for (const TxRecord& o : *orders) {
    if (o.out_trade_no == cash_no || !is_open(o.state) || o.fell_back()) continue;
    if (auto s = store.set_decision(txn, o.out_trade_no, DecisionKind::kFallback, "trip_paid_at_meter", false); !s) {
      return std::unexpected(s.error());
    }
  }
  return true;
}

void Site::Impl::taxi_trip(const lane::TripRecord& trip) {
  LaneState* ls = lane_of(trip.lane);
  const std::string lane_id = ls != nullptr ? ls->cfg.id : trip.lane;
  Store::TaxiTrip row;
  row.trip_key = taxi_trip_key(cfg.gateway.id, trip.meter, trip.trip_number, trip.boarding.to_string());
  row.lane = lane_id;
  row.meter = trip.meter;
  row.trip_number = trip.trip_number;
  row.boarding = trip.boarding.to_string();
  row.fare = trip.fare;
  row.payment_type = trip.payment_type;
  row.plate = trip.plate;
  row.detail = json::serialize(trip_detail(trip));

  auto existing = store.find_trip(row.trip_key);
  if (existing && *existing) {
    // A retransmission (our acknowledgement was lost, or a restart): stored already.
    return taxi_ack(trip);
  }
  if (ls != nullptr && ls->trip && ls->trip->key != row.trip_key) {
    // The meter finished another trip: the previous passenger paid the driver.
    end_trip_at_meter(*ls, "next_trip");
  }
  const bool taxi_lane = ls != nullptr && ls->cfg.mode == config::LaneMode::kTaxi;
  const bool online = gate.link_up() && cfg.provider.configured();
  const bool electronic = taxi_lane && online && !card_paid(trip.payment_type) && !trip.fare.is_zero();
  std::string method = meter_method(trip.payment_type);
  auto s = commit([&](Transaction& txn) -> Status {
    if (auto st = store.insert_trip(txn, row); !st) return st;
    if (auto st = enqueue_regulator(txn, lane_id, trip, row); !st) return st;
    if (electronic) return {};
    auto settled = settle_at_meter(txn, row, !taxi_lane ? "meter_bound_to_no_taxi_lane"
                                             : card_paid(trip.payment_type) ? "card_paid_at_meter"
                                             : trip.fare.is_zero()          ? "no_fare"
                                                                            : "offline");
    if (!settled) return std::unexpected(settled.error());
    return {};
  });
  if (!s) {
    log::error("taxi trip not recorded; the meter will retransmit it",
               {{"METER", trip.meter}, {"TRIP", static_cast<std::int64_t>(trip.trip_number)}, {"ERROR", s.error().message}});
    return;
  }
  taxi_ack(trip);
  if (!electronic) {
    trips_counter(method).inc();
    if (ls != nullptr) {
      ls->last_plate = trip.plate;
      ls->last_decision = "trip " + method;
      const bool offline = taxi_lane && !online && !card_paid(trip.payment_type) && !trip.fare.is_zero();
      show_settled(ls->cfg.id, offline ? Phase::kOffline : Phase::kMeterPaid, trip.fare, method, row.trip_key + "C");
      display(*ls, (offline ? "网络中断 请付现金 " : "已付款 ") + trip.fare.to_string() + "元");
    }
    return;
  }
  LaneState& l = *ls;
  l.trip = TaxiTripState{};
  l.trip->key = row.trip_key;
  l.trip->record = trip;
  l.trip->fare = trip.fare;
  l.last_plate = trip.plate;
  l.last_decision = "trip awaiting payment";
  l.phase = LanePhase::kTripAwaitingPayment;
  show_trip(l, Phase::kFare);
  display(l, "请乘客扫码支付 " + trip.fare.to_string() + "元");
  arm_qr_timer(l, milliseconds(l.cfg.code_wait_ms));
}

void Site::Impl::arm_qr_timer(LaneState& ls, milliseconds after) {
  ls.trip_timer->cancel();
  ls.trip_timer->expires_after(after);
  ls.trip_timer->async_wait([this, alive = std::weak_ptr<bool>(alive), id = ls.cfg.id,
                             key = ls.trip ? ls.trip->key : std::string()](boost::system::error_code ec) {
    if (ec || alive.expired()) return;
    LaneState* l = lane_of(id);
    if (l == nullptr || !l->trip || l->trip->key != key) return;
    if (!l->trip->qr_out.empty() || l->trip->qr_failed) {
      // The QR (or the attempt to make one) had its time: the driver collects.
      return end_trip_at_meter(*l, "qr_timeout");
    }
    if (!l->trip->paying.empty()) return;  // a code is being confirmed; it re-arms after
    native_start(*l);
  });
}

void Site::Impl::end_trip_at_meter(LaneState& ls, const std::string& reason, Phase shown) {
  if (!ls.trip) return;
  TaxiTripState t = std::move(*ls.trip);
  ls.trip.reset();
  ls.trip_timer->cancel();
  ls.phase = LanePhase::kIdle;
  auto row = store.find_trip(t.key);
  if (!row || !*row) return;
  bool settled = false;
  auto s = commit([&](Transaction& txn) -> Status {
    auto r = settle_at_meter(txn, **row, reason);
    if (!r) return std::unexpected(r.error());
    settled = *r;
    return {};
  });
  if (!s) {
    // The trip stays OPEN in the database: the sweep settles it once commits work again.
    log::error("taxi trip not settled at the meter; retried by the sweep",
               {{"LANE", ls.cfg.id}, {"ERROR", s.error().message}});
    return;
  }
  if (!settled) return;  // paid electronically in the meantime
  const std::string method = meter_method((*row)->payment_type);
  trips_counter(method).inc();
  ls.last_decision = "trip " + method;
  show_settled(ls.cfg.id, shown, t.fare, method, t.key + "C");
  if (shown == Phase::kOffline) display(ls, "网络中断 请付现金 " + t.fare.to_string() + "元");
  gate.kick();  // the trip's open orders: close or reverse them now
}

void Site::Impl::taxi_started(const lane::TripStarted& started) {
  LaneState* ls = lane_of(started.lane);
  if (ls == nullptr || ls->cfg.mode != config::LaneMode::kTaxi) return;
  if (ls->trip) end_trip_at_meter(*ls, "next_trip_started");
  show(ls->cfg.id, ScreenView{});
}

// ---------------- payment code ----------------

void Site::Impl::taxi_token(const lane::PaymentCode& code) {
  LaneState* ls = lane_of(code.lane);
  if (ls == nullptr || ls->cfg.mode != config::LaneMode::kTaxi) {
    codes_counter(code.lane, "unbound").inc();
    log::warn("payment code from a reader bound to no taxi lane", {{"READER", code.reader}});
    return;
  }
  if (!ls->trip) {
    // No fare to pay: a code is never kept for a later trip (it expires in a minute).
    codes_counter(ls->cfg.id, "no_trip").inc();
    return;
  }
  if (!ls->trip->paying.empty()) {
    codes_counter(ls->cfg.id, "busy").inc();
    return;
  }
  codepay_start(*ls, code.code);
}

// Records the order (SUBMITTING, with its `pay` item) for the trip's next attempt. Returns
// the out_trade_no, or "" when nothing was recorded.
std::string Site::Impl::record_attempt(LaneState& ls, PayProduct product) {
  TaxiTripState& t = *ls.trip;
  std::string out;
  auto s = commit([&](Transaction& txn) -> Status {
    auto n = store.next_trip_attempt(txn, t.key);
    if (!n) return std::unexpected(n.error());
    if (*n > kMaxAttempts) return fail(Errc::kOutOfRange, "more than 99 payment orders for one trip", "attempts");
    out = t.key + (product == PayProduct::kCodepay ? "P" : "Q") + two_digits(*n);
    TxRecord tx;
    tx.out_trade_no = out;
    tx.kind = TxKind::kTaxi;
    tx.lane = ls.cfg.id;
    tx.plate = t.record.plate;
    tx.amount = t.fare;
    tx.state = ChargeState::kRecorded;
    tx.payment_method = std::string(pay_product_name(product));
    tx.trip_number = t.record.trip_number;
    tx.passage_key = "trip:" + t.key;
    tx.detail = json::serialize(trip_detail(t.record));
    auto id = store.insert_transaction(txn, tx);
    if (!id) return std::unexpected(id.error());
    // Commit before the request leaves: from here on the provider may have it.
    auto moved = book.move(txn, tx, ChargeState::kSubmitting, "", "system");
    if (!moved) return std::unexpected(moved.error());
    json::object item{{"v", 1},
                      {"out_trade_no", out},
                      {"product", pay_product_name(product)},
                      {"trip", t.key},
                      {"created_ms", now_ms(clock)}};
    auto q = outbox.enqueue(txn, kTopicPay, "pay:" + out, "pay:" + out, json::serialize(item));
    if (!q) return std::unexpected(q.error());
    return {};
  });
  if (!s) {
    log::error("taxi payment order not recorded", {{"LANE", ls.cfg.id}, {"ERROR", s.error().message}});
    return {};
  }
  return out;
}

void Site::Impl::codepay_start(LaneState& ls, const std::string& code) {
  const std::string out = record_attempt(ls, PayProduct::kCodepay);
  if (out.empty()) {
    codes_counter(ls.cfg.id, "not_recorded").inc();
    show_trip(ls, Phase::kDeclined, "error");
    return;
  }
  codes_counter(ls.cfg.id, "used").inc();
  ls.trip->paying = out;
  ls.trip_timer->cancel();
  show_trip(ls, Phase::kConfirming);
  display(ls, "支付确认中 " + ls.trip->fare.to_string() + "元");
  CodepayRequest req;
  req.out_trade_no = out;
  req.description = "出租车费 " + cfg.gateway.site_name;
  req.auth_code = code;  // lives only in this request (invariant 2)
  req.amount = ls.trip->fare;
  req.device_id = ls.trip->record.meter;
  req.store_out_id = cfg.gateway.id;
  in_flight.insert(out);
  const bool sent = gate.call_provider([this, alive = std::weak_ptr<bool>(alive), req](PaymentProvider& p) {
    auto r = p.codepay(req);
    return std::function<void()>([this, alive, out = req.out_trade_no, r = std::move(r)] {
      if (!alive.expired()) codepay_result(out, r);
    });
  });
  if (!sent) {
    codepay_result(out, std::unexpected(ProviderFailure{Outcome::kRetryLater, 0, "",
                                                        Error{Errc::kUnavailable, "no payment provider", "provider"}}));
  }
}

void Site::Impl::codepay_result(const std::string& out, const ProviderResult<Payment>& r) {
  in_flight.erase(out);
  auto found = store.find_transaction(out);
  if (!found || !*found) return;
  if (!r) gate.note_link(r.error().http_status != 0, r.error().error.message);
  else gate.note_link(true, {});
  if (r && r->state == PayState::kSuccess) {
    return settle_payment(*r, AnswerSource::kReply);
  }
  if (!r && (r.error().outcome == Outcome::kPark || r.error().outcome == Outcome::kRetryLater) &&
      r.error().provider_code != kUnknownTradeState) {
    // Refused, or never sent: nothing was taken under this number (a new code gets a new one).
    const ProviderFailure& f = r.error();
    (void)book.move_committed(out, f.outcome == Outcome::kPark ? ChargeState::kPayFail : ChargeState::kVoid, "",
                              "provider",
                              json::serialize(json::object{{"code", f.provider_code}, {"http_status", f.http_status}}));
    pay_counter("codepay", f.outcome == Outcome::kPark ? "declined" : "not_sent").inc();
    log::info("payment code not accepted", {{"OUT_TRADE_NO", out}, {"HTTP_STATUS", f.http_status}, {"CODE", f.provider_code}});
    return release_code_order(out, f.outcome == Outcome::kPark ? "declined" : "network");
  }
  // Unknown (USERPAYING, 5xx, timeout, unverifiable): never resubmitted; the `pay` item
  // queries, then reverses.
  (void)book.move_committed(out, ChargeState::kUnknown, "", "system",
                            json::serialize(json::object{{"error", r ? std::string(pay_state_name(r->state))
                                                                     : r.error().error.message}}));
  gate.kick();
}

// ---------------- Native QR ----------------

void Site::Impl::native_start(LaneState& ls) {
  if (!gate.link_up()) {
    ls.trip->qr_failed = true;
    show_trip(ls, Phase::kDeclined, "network");
    arm_qr_timer(ls, seconds(ls.cfg.qr_wait_s));
    return;
  }
  const std::string out = record_attempt(ls, PayProduct::kNative);
  if (out.empty()) {
    ls.trip->qr_failed = true;
    arm_qr_timer(ls, seconds(ls.cfg.qr_wait_s));
    return;
  }
  ls.trip->qr_pending = out;
  NativeRequest req;
  req.out_trade_no = out;
  req.description = "出租车费 " + cfg.gateway.site_name;
  req.amount = ls.trip->fare;
  req.time_expire = clock.now() + seconds(ls.cfg.qr_wait_s);
  req.device_id = ls.trip->record.meter;
  in_flight.insert(out);
  const bool sent = gate.call_provider([this, alive = std::weak_ptr<bool>(alive), req](PaymentProvider& p) {
    auto r = p.create_native(req);
    return std::function<void()>([this, alive, out = req.out_trade_no, r = std::move(r)] {
      if (!alive.expired()) native_result(out, r);
    });
  });
  if (!sent) {
    native_result(out, std::unexpected(ProviderFailure{Outcome::kRetryLater, 0, "",
                                                       Error{Errc::kUnavailable, "no payment provider", "provider"}}));
  }
}

void Site::Impl::native_result(const std::string& out, const ProviderResult<std::string>& r) {
  in_flight.erase(out);
  auto found = store.find_transaction(out);
  if (!found || !*found) return;
  const TxRecord tx = **found;
  LaneState* ls = lane_of(tx.lane);
  const bool current = ls != nullptr && ls->trip && ls->trip->qr_pending == out;
  if (current) ls->trip->qr_pending.clear();
  if (!r) gate.note_link(r.error().http_status != 0, r.error().error.message);
  else gate.note_link(true, {});
  if (r) {
    // The order exists and waits for the passenger: it stays SUBMITTING (no money moved
    // yet) until a payment, or a close the provider confirms, ends it.
    if (current) {
      ls->trip->qr_out = out;
      ls->trip->qr_url = *r;
      show_trip(*ls, Phase::kQr);
      display(*ls, "请扫描乘客屏二维码支付 " + ls->trip->fare.to_string() + "元");
      arm_qr_timer(*ls, seconds(ls->cfg.qr_wait_s));
    }
    gate.kick();  // the `pay` item queries it (a notification usually comes first)
    return;
  }
  const ProviderFailure& f = r.error();
  if (f.outcome == Outcome::kPark || f.outcome == Outcome::kRetryLater) {
    (void)book.move_committed(out, ChargeState::kVoid, "", "provider",
                              json::serialize(json::object{{"code", f.provider_code}, {"http_status", f.http_status}}));
    pay_counter("native", "not_created").inc();
    if (current && f.http_status == 0 && ls->trip->paying.empty()) {
      // The provider cannot be reached: the passenger pays the driver now, as on any
      // offline trip, instead of waiting out a QR that cannot come.
      return end_trip_at_meter(*ls, "offline", Phase::kOffline);
    }
  } else {
    (void)book.move_committed(out, ChargeState::kUnknown, "", "system",
                              json::serialize(json::object{{"error", f.error.message}}));
  }
  if (current) {
    ls->trip->qr_failed = true;
    show_trip(*ls, Phase::kDeclined, "network");
    display(*ls, "二维码不可用 请付现金 " + ls->trip->fare.to_string() + "元");
    arm_qr_timer(*ls, seconds(ls->cfg.qr_wait_s));
  }
  gate.kick();
}

// ---------------- answers ----------------

Status Site::Impl::apply_payment(Transaction& txn, const Payment& p, AnswerSource source, bool* paid_trip) {
  auto found = store.find_transaction(p.out_trade_no);
  if (!found) return std::unexpected(found.error());
  if (!*found) {
    return fail(Errc::kNotFound, "no in-cab payment order " + p.out_trade_no, "out_trade_no");
  }
  TxRecord tx = **found;
  if (p.state != PayState::kSuccess && p.state != PayState::kRefund) return {};
  const ProviderTransaction answer = as_transaction(p);
  if (p.state == PayState::kSuccess && same_money(tx, answer, book.merchant())) {
    const std::string key = trip_of(tx);
    auto trip = store.find_trip(key);
    if (!trip) return std::unexpected(trip.error());
    if (*trip && (*trip)->state == "OPEN") {
      auto settled = store.settle_trip(txn, key, "PAID", tx.out_trade_no);
      if (!settled) return std::unexpected(settled.error());
      if (auto s = store.set_decision(txn, tx.out_trade_no, DecisionKind::kPassOnline, "paid", false); !s) return s;
      tx.decision = DecisionKind::kPassOnline;
      if (paid_trip != nullptr) *paid_trip = true;
    } else if (!(*trip && (*trip)->settled_by == tx.out_trade_no) && !tx.fell_back()) {
      // The trip was paid another way first: this payment is a second one (invariant 1).
      if (auto s = store.set_decision(txn, tx.out_trade_no, DecisionKind::kFallback, "trip_settled_otherwise", false);
          !s) {
        return s;
      }
      tx.decision = DecisionKind::kFallback;
    }
  }
  auto applied = book.apply_answer(txn, tx, answer, source);
  if (!applied) return std::unexpected(applied.error());
  return {};
}

void Site::Impl::settle_payment(const Payment& p, AnswerSource source) {
  bool paid_trip = false;
  auto s = commit([&](Transaction& txn) { return apply_payment(txn, p, source, &paid_trip); });
  if (!s) {
    log::error("in-cab payment answer not applied", {{"OUT_TRADE_NO", p.out_trade_no}, {"ERROR", s.error().message}});
    return;
  }
  after_payment(p.out_trade_no, paid_trip);
}

// After a payment's answer committed: the lane and the screen follow the database.
void Site::Impl::after_payment(const std::string& out, bool paid_trip) {
  auto found = store.find_transaction(out);
  if (!found || !*found) return;
  const TxRecord tx = **found;
  LaneState* ls = lane_of(tx.lane);
  if (tx.state == ChargeState::kSuccess) {
    pay_counter(tx.payment_method, tx.refund_due ? "paid_twice" : "paid").inc();
  }
  if (ls == nullptr || !ls->trip || ls->trip->key != trip_of(tx)) return;
  if (paid_trip) {
    TaxiTripState t = std::move(*ls->trip);
    ls->trip.reset();
    ls->trip_timer->cancel();
    ls->phase = LanePhase::kIdle;
    trips_counter(tx.payment_method).inc();
    ls->last_decision = "trip " + tx.payment_method;
    show_settled(ls->cfg.id, Phase::kPaid, t.fare, tx.payment_method, out);
    display(*ls, "乘客已支付 " + t.fare.to_string() + "元");
    gate.kick();  // a QR still open for the trip gets closed
    return;
  }
  if (ls->trip->paying == out && !is_open(tx.state)) {
    // The code's order ended without paying (reversed, closed, refused).
    release_code_order(out, tx.state == ChargeState::kVoid ? "reversed" : "declined");
  }
}

// The lane stops waiting for a code's order that will not pay: the passenger may scan
// another code, or the QR comes after code_wait_ms.
void Site::Impl::release_code_order(const std::string& out, const std::string& reason) {
  auto found = store.find_transaction(out);
  if (!found || !*found) return;
  LaneState* ls = lane_of((*found)->lane);
  if (ls == nullptr || !ls->trip || ls->trip->paying != out) return;
  ls->trip->paying.clear();
  show_trip(*ls, Phase::kDeclined, reason);
  display(*ls, "支付未成功 请重新扫码或付现金");
  arm_qr_timer(*ls, milliseconds(ls->cfg.code_wait_ms));
}

// ---------------- the `pay` follow-ups ----------------

void Site::Impl::pay_item(const queue::Item& item, std::function<void(queue::Outcome)> done) {
  boost::system::error_code ec;
  json::value v = json::parse(item.payload, ec);
  if (ec || !v.is_object()) return done(queue::Outcome::park("pay item is not a JSON object"));
  const json::object& o = v.as_object();
  const auto* out_v = o.if_contains("out_trade_no");
  const auto* product_v = o.if_contains("product");
  const auto* created_v = o.if_contains("created_ms");
  if (out_v == nullptr || !out_v->is_string() || product_v == nullptr || !product_v->is_string() ||
      created_v == nullptr || !created_v->is_int64()) {
    return done(queue::Outcome::park("pay item lacks out_trade_no, product or created_ms"));
  }
  const std::string out(out_v->as_string());
  const PayProduct product = product_v->as_string() == "native" ? PayProduct::kNative : PayProduct::kCodepay;
  const auto age = milliseconds(now_ms(clock) - created_v->as_int64());
  auto found = store.find_transaction(out);
  if (!found) return done(queue::Outcome::retry(found.error().message));
  if (!*found) return done(queue::Outcome::park("no transaction " + out));
  const TxRecord tx = **found;
  if (!is_open(tx.state)) return done(queue::Outcome::ack());
  if (in_flight.contains(out)) return done(queue::Outcome::retry("request in flight", kInFlightRetry));
  // One order's follow-ups keep the spec's pace (3-5 s) even when every waiting item is
  // made due at once (the uplink does that when the link comes back).
  const SteadyTime now_steady = clock.steady_now();
  if (auto it = last_followup.find(out); it != last_followup.end()) {
    const auto since = std::chrono::duration_cast<milliseconds>(now_steady - it->second);
    if (since < kMinFollowupGap) return done(queue::Outcome::retry("keeping the query pace", kMinFollowupGap - since));
  }

  // Whether the trip still wants this order: an open trip on its lane whose current order it is.
  const LaneState* ls = lane_of(tx.lane);
  const bool wanted = !tx.fell_back() && ls != nullptr && ls->trip && ls->trip->key == trip_of(tx) &&
                      (ls->trip->paying == out || ls->trip->qr_out == out);
  enum class Step { kQuery, kReverse, kClose };
  Step step = Step::kQuery;
  if (product == PayProduct::kCodepay) {
    if (age >= kCodepayQueryFor || (!wanted && age >= kReverseNotBefore)) step = Step::kReverse;
    if (step == Step::kQuery && tx.state == ChargeState::kUnknown && age < kFirstQueryAfterError) {
      return done(queue::Outcome::retry("first query 5 s after the error", kFirstQueryAfterError - age));
    }
  } else if (!wanted) {
    step = Step::kClose;  // a refused close queries and follows the state
  }
  last_followup[out] = now_steady;
  const bool sent = gate.call_provider([this, alive = std::weak_ptr<bool>(alive), out, product, step, age, wanted,
                                        done](PaymentProvider& p) {
    FollowupAnswer a;
    a.step = static_cast<int>(step);
    if (step == Step::kQuery) {
      a.query = p.query_payment(product, out);
    } else if (step == Step::kReverse) {
      a.ended = p.reverse_payment(out);
    } else {
      a.ended = p.close_payment(product, out);
    }
    return std::function<void()>([this, alive, out, product, age, wanted, a = std::move(a), done] {
      if (alive.expired()) return done(queue::Outcome::retry("site stopped"));
      pay_followup_result(out, product, age, wanted, a, done);
    });
  });
  if (!sent) return done(queue::Outcome::retry("no payment provider", seconds(30)));
}

void Site::Impl::pay_followup_result(const std::string& out, PayProduct product, milliseconds age, bool wanted,
                                     const FollowupAnswer& a, const std::function<void(queue::Outcome)>& done) {
  const char* name = product == PayProduct::kCodepay ? "codepay" : "native";
  const auto again = product == PayProduct::kCodepay ? milliseconds(kCodepayQueryEvery)
                                                     : milliseconds(kNativeQueryEvery);
  auto end_void = [&](std::string_view why) {
    auto moved = book.move_committed(out, ChargeState::kVoid, "", "provider",
                                     json::serialize(json::object{{"reason", why}}));
    if (!moved) return done(queue::Outcome::retry(moved.error().message));
    last_followup.erase(out);
    pay_counter(name, why).inc();
    after_payment(out, false);
    done(queue::Outcome::ack());
  };
  if (a.step == 0) {  // query
    const auto& r = a.query;
    if (!r) {
      gate.note_link(r.error().http_status != 0, r.error().error.message);
      if (r.error().outcome == Outcome::kNotFound) {
        // The order never reached the provider. Its request can no longer land once the
        // code expired (codepay) or long after it was sent (Native): then it is void.
        if (age >= kCodeLifetime) return end_void("never_created");
        return done(queue::Outcome::retry("order not found yet", again));
      }
      if (r.error().provider_code == kUnknownTradeState) {
        return done(queue::Outcome::park("provider trade_state unknown to lanegate: " + r.error().error.message));
      }
      return done(queue::Outcome::retry(r.error().error.message, again));
    }
    gate.note_link(true, {});
    switch (r->state) {
      case PayState::kSuccess:
      case PayState::kRefund: {
        bool paid_trip = false;
        auto s = commit([&](Transaction& txn) { return apply_payment(txn, *r, AnswerSource::kQuery, &paid_trip); });
        if (!s) return done(queue::Outcome::retry(s.error().message));
        after_payment(out, paid_trip);
        auto now = store.find_transaction(out);
        if (now && *now && (*now)->refund_due) pay_counter(name, "refund_due").inc();
        last_followup.erase(out);
        return done(queue::Outcome::ack());
      }
      case PayState::kClosed:
      case PayState::kRevoked:
        return end_void(r->state == PayState::kClosed ? "closed" : "revoked");
      case PayState::kPayError:
        if (product == PayProduct::kCodepay) {
          // The payment failed (the passenger's bank refused, say): the passenger may scan
          // another code now; the order itself is reversed once the 15 s rule allows, so it
          // ends REVOKED as every order must (spec rule 4).
          release_code_order(out, "declined");
          return done(queue::Outcome::retry("PAYERROR: reversing", std::max(milliseconds(kCodepayQueryEvery),
                                                                           milliseconds(kReverseNotBefore) - age)));
        }
        [[fallthrough]];
      case PayState::kNotPay:
      case PayState::kUserPaying:
        if (product == PayProduct::kNative && !wanted) {
          return done(queue::Outcome::retry("unpaid; closing next", again));
        }
        return done(queue::Outcome::retry(std::string(pay_state_name(r->state)), again));
    }
    return done(queue::Outcome::retry("unhandled state", again));
  }
  // reverse or close
  const auto& r = a.ended;
  if (r) {
    gate.note_link(true, {});
    return end_void(a.step == 1 ? "reversed" : "closed");
  }
  gate.note_link(r.error().http_status != 0, r.error().error.message);
  if (a.step == 1 && r.error().outcome == Outcome::kNotFound && age >= kCodeLifetime) {
    return end_void("never_created");
  }
  if (a.step == 2) {
    // A refused close: query and follow the state (it may have been paid just now).
    log::info("close refused; querying the order", {{"OUT_TRADE_NO", out}, {"CODE", r.error().provider_code}});
    const bool sent = gate.call_provider([this, alive = std::weak_ptr<bool>(alive), out, product, age, wanted,
                                          done](PaymentProvider& p) {
      FollowupAnswer q;
      q.step = 0;
      q.query = p.query_payment(product, out);
      return std::function<void()>([this, alive, out, product, age, wanted, q = std::move(q), done] {
        if (alive.expired()) return done(queue::Outcome::retry("site stopped"));
        pay_followup_result(out, product, age, wanted, q, done);
      });
    });
    if (!sent) done(queue::Outcome::retry("no payment provider", seconds(30)));
    return;
  }
  // The reverse is repeated until it holds (spec rule 3).
  log::warn("payment reverse did not hold; repeating", {{"OUT_TRADE_NO", out}, {"ERROR", r.error().error.message}});
  return done(queue::Outcome::retry("reverse: " + r.error().error.message, again));
}

// ---------------- restart ----------------

// Settles at the meter every OPEN trip that no lane holds: after a restart (the passenger
// is gone), or a trip whose settlement did not commit (a full disk) when its lane moved on.
void Site::Impl::sweep_trips(const std::string& reason) {
  auto open = store.open_trips();
  if (!open) {
    log::error("open taxi trips not read", {{"ERROR", open.error().message}});
    return;
  }
  for (const Store::TaxiTrip& t : *open) {
    const LaneState* ls = lane_of(t.lane);
    if (ls != nullptr && ls->trip && ls->trip->key == t.trip_key) continue;
    bool settled = false;
    auto s = commit([&](Transaction& txn) -> Status {
      auto r = settle_at_meter(txn, t, reason);
      if (!r) return std::unexpected(r.error());
      settled = *r;
      return {};
    });
    if (s && settled) {
      trips_counter(meter_method(t.payment_type)).inc();
      log::notice("open taxi trip recorded as paid at the meter",
                  {{"LANE", t.lane}, {"TRIP", static_cast<std::int64_t>(t.trip_number)}, {"REASON", reason}});
      gate.kick();  // its open orders: close or reverse them
    }
  }
}

void Site::Impl::recover_trips() {
  sweep_trips("restart");
  if (!sweep_timer) sweep_timer = std::make_unique<asio::steady_timer>(io);
  schedule_sweep();
}

void Site::Impl::schedule_sweep() {
  sweep_timer->expires_after(kSweepEvery);
  sweep_timer->async_wait([this, alive = std::weak_ptr<bool>(alive)](boost::system::error_code ec) {
    if (ec || alive.expired()) return;
    sweep_trips("not_settled_in_time");
    schedule_sweep();
  });
}

void Site::Impl::taxi_ack(const lane::TripRecord& trip) {
  if (auto a = actuator.ack_trip(trip.meter, trip.trip_number, trip.boarding); !a) {
    log::warn("trip acknowledgement not sent", {{"METER", trip.meter}, {"ERROR", a.error().message}});
  }
}

// The trip's operation-data upload to the city's regulator (gateway/regulator.h), queued in
// the transaction that stores the trip, ordered per cab (the lane).
Status Site::Impl::enqueue_regulator(Transaction& txn, const std::string& lane_id, const lane::TripRecord& trip,
                                     const Store::TaxiTrip& row) {
  if (!cfg.regulator.enabled) return {};
  const LaneState* ls = lane_of(lane_id);
  if (ls == nullptr || ls->cfg.isu_id.empty()) return {};  // check-config requires it on taxi lanes
  auto body = lane::encode_trip_record(trip);
  if (!body) return std::unexpected(body.error());
  RegulatorTrip up;
  up.isu_id = ls->cfg.isu_id;
  up.lane = lane_id;
  up.meter = trip.meter;
  up.trip_number = trip.trip_number;
  up.meter_body = std::move(*body);
  const int off = cfg.gateway.utc_offset_minutes;
  up.boarding = SystemTime(seconds(trip.boarding.to_unix(off)));
  up.alighting = SystemTime(seconds(trip.alighting.to_unix(off)));
  auto q = outbox.enqueue(txn, kTopicRegulatorTrip, "regulator:" + lane_id, "regulator:" + row.trip_key,
                          encode_regulator_item(up));
  if (!q) return std::unexpected(q.error());
  return {};
}

}  // namespace lanegate::gateway
