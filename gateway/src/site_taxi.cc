// Taxi lanes (site.h "TAXI").
//
// RIDER PAIRING (one taxi lane):
//   a RiderToken is held for the lane's next trip record (a newer token replaces it);
//   a trip record takes the held token; without one, when the lane has a code_reader
//   and the meter's payment type is not a card, the trip waits up to kRiderTokenGrace
//   for a token (the passenger scans as the fare shows), ends early when the next trip
//   record arrives, then is recorded as paid per the meter's payment type.
//   Card-paid trips (payment type 0x01/0x03) never charge a token (no double charge).
#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include "core/crypto.h"
#include "core/log.h"
#include "site_impl.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using std::chrono::milliseconds;

// How long a trip record without a rider token waits for one (the passenger scans as
// the fare shows). TODO(config): lane.rider_grace_ms once the loader has it.
constexpr auto kRiderTokenGrace = std::chrono::seconds(5);

const char* meter_method(std::uint8_t payment_type) {
  return payment_type == 0x00 ? "cash" : (payment_type == 0x09 ? "qr" : "card");
}
bool card_paid(std::uint8_t payment_type) { return payment_type == 0x01 || payment_type == 0x03; }

metrics::Counter& rider_counter(std::string_view lane, std::string_view result) {
  return metrics::Registry::global().counter(
      "lanegate_rider_pairings_total", "Rider tokens by what became of them",
      {{"lane", std::string(lane)}, {"result", std::string(result)}});
}

metrics::Counter& trips_counter(std::string_view method) {
  return metrics::Registry::global().counter("lanegate_taxi_trips_total", "Taxi trips recorded",
                                             {{"payment", std::string(method)}});
}

bool same_trip(const lane::TripRecord& a, const lane::TripRecord& b) {
  return a.meter == b.meter && a.trip_number == b.trip_number && a.boarding == b.boarding;
}

}  // namespace

std::string taxi_out_trade_no(std::string_view gateway_id, std::string_view meter,
                              std::uint32_t trip_number, std::string_view boarding) {
  // Deterministic, so a meter's retransmission of a recorded trip maps to the same number;
  // derived from the whole identity (gateway, meter, boarding time, trip number), so two
  // meters, or two cabs whose ids share a prefix, never meet under one merchant. 120 bits
  // of SHA-256 in 30 hex digits: "T" + 30 = 31 characters, and the cash record of a
  // refused rider charge ("…C") still fits the provider's 32.
  std::string identity;
  identity.append(gateway_id).append("\n").append(meter).append("\n");
  identity.append(boarding).append("\n").append(std::to_string(trip_number));
  return "T" + crypto::sha256_hex(identity).substr(0, 30);
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

static std::string trip_out(const config::Config& cfg, const lane::TripRecord& trip) {
  return taxi_out_trade_no(cfg.gateway.id, trip.meter, trip.trip_number, trip.boarding.to_string());
}

void Site::Impl::taxi_token(const lane::PaymentCode& tok) {
  LaneState* ls = lane_of(tok.lane);
  if (ls == nullptr || ls->cfg.mode != config::LaneMode::kTaxi) {
    rider_counter(tok.lane, "unbound").inc();
    log::warn("rider token from a reader bound to no taxi lane", {{"READER", tok.reader}});
    return;
  }
  if (!ls->held_trip && ls->settled_without_token &&
      clock.steady_now() - *ls->settled_without_token < kRiderTokenGrace) {
    // Scanned just after a trip that was already recorded as paid at the meter: it
    // belongs to that trip, not to the next passenger's. Dropped; the driver's screen
    // already showed how that trip was paid.
    ls->settled_without_token.reset();
    rider_counter(ls->cfg.id, "late").inc();
    log::notice("rider token scanned after its trip was settled: not charged",
                {{"LANE", ls->cfg.id}});
    return;
  }
  if (ls->rider) {
    rider_counter(ls->cfg.id, "replaced").inc();
  }
  ls->rider = tok;
  if (ls->held_trip && !ls->busy) {
    // The trip was waiting for this token.
    ls->trip_timer->cancel();
    lane::TripRecord trip = std::move(*ls->held_trip);
    ls->held_trip.reset();
    taxi_settle(*ls, trip);
  }
}

void Site::Impl::taxi_trip(const lane::TripRecord& trip) {
  LaneState* ls = lane_of(trip.lane);
  if (ls == nullptr || ls->cfg.mode != config::LaneMode::kTaxi) {
    // A meter bound to no taxi lane: record it as paid at the meter (nothing is lost).
    return taxi_record_at_meter(nullptr, trip, trip_out(cfg, trip), "paid_at_meter");
  }
  LaneState& l = *ls;
  auto same = [&](const lane::TripRecord& t) { return same_trip(t, trip); };
  if ((l.held_trip && same(*l.held_trip)) ||
      std::any_of(l.waiting_trips.begin(), l.waiting_trips.end(), same)) {
    return;  // already being handled; it is acknowledged when it is
  }
  if (l.busy) {
    l.waiting_trips.push_back(trip);
    return;
  }
  if (l.held_trip) {
    // The next trip ended before a token came: the held one had none.
    l.trip_timer->cancel();
    lane::TripRecord held = std::move(*l.held_trip);
    l.held_trip.reset();
    l.waiting_trips.push_front(trip);
    return taxi_settle(l, held);
  }
  const bool may_wait = !l.cfg.code_reader.empty() && !card_paid(trip.payment_type) && !l.rider &&
                        !trip.fare.is_zero();
  auto existing = store.find_transaction(trip_out(cfg, trip));
  const bool recorded = existing && *existing;
  if (may_wait && !recorded) {
    l.held_trip = trip;
    l.phase = LanePhase::kTripWaitingToken;
    l.trip_timer->expires_after(kRiderTokenGrace);
    l.trip_timer->async_wait(
        [this, alive = std::weak_ptr<bool>(alive), id = l.cfg.id](boost::system::error_code ec) {
          if (ec || alive.expired()) {
            return;
          }
          LaneState* x = lane_of(id);
          if (x == nullptr || !x->held_trip || x->busy) {
            return;
          }
          lane::TripRecord t = std::move(*x->held_trip);
          x->held_trip.reset();
          taxi_settle(*x, t);
        });
    return;
  }
  taxi_settle(l, trip);
}

void Site::Impl::taxi_settle(LaneState& ls, const lane::TripRecord& trip) {
  const std::string out = trip_out(cfg, trip);
  auto existing = store.find_transaction(out);
  if (existing && *existing) {
    // Recorded before (a retransmission after our ack was lost, or a restart).
    taxi_ack(trip);
    return taxi_next(ls);
  }
  std::optional<lane::PaymentCode> tok = std::move(ls.rider);
  ls.rider.reset();
  if (tok && card_paid(trip.payment_type)) {
    rider_counter(ls.cfg.id, "card_paid_unused").inc();
    tok.reset();
  }
  if (!tok || trip.fare.is_zero()) {
    taxi_record_at_meter(&ls, trip, out, "paid_at_meter");
    ls.settled_without_token = clock.steady_now();
    return taxi_next(ls);
  }
  rider_counter(ls.cfg.id, "paired").inc();
  ls.busy = true;
  ls.phase = LanePhase::kRiderCharging;
  const int off = cfg.gateway.utc_offset_minutes;
  auto p = std::make_shared<Pending>();
  p->lane = ls.cfg.id;
  p->binding_key = "rider:" + tok->code;
  p->payment_method = "rider";
  p->learn_binding = true;
  p->passage = false;
  p->started = clock.steady_now();
  ChargeOrder& o = p->order;
  o.out_trade_no = out;
  o.kind = TxKind::kTaxi;
  o.amount = trip.fare;
  o.lane = ls.cfg.id;
  o.plate = trip.plate;
  o.contract_id = tok->code;
  o.description = "出租车费 " + cfg.gateway.site_name;
  o.device_id = trip.meter;
  o.start_time = SystemTime(std::chrono::seconds(trip.boarding.to_unix(off)));
  o.end_time = SystemTime(std::chrono::seconds(trip.alighting.to_unix(off)));
  o.trip_number = trip.trip_number;
  o.distance_m = trip.distance_m;
  p->detail = trip_detail(trip);
  p->detail["reader"] = tok->reader;
  p->in_commit = [this, pr = p.get(), trip](Transaction& txn, const Decision& d) -> Status {
    if (d.opens_barrier()) {
      return {};
    }
    // The account did not pay: the driver collects per the meter, recorded as such.
    const std::string cash_no =
        pr->recorded ? pr->order.out_trade_no + "C" : pr->order.out_trade_no;
    return insert_meter_paid(txn, pr->lane, trip, cash_no, "rider_" + d.reason);
  };
  p->after = [this, lane_id = ls.cfg.id, trip](const Decision& d, std::int64_t) {
    LaneState* l = lane_of(lane_id);
    if (l == nullptr) {
      return;
    }
    trips_counter(d.opens_barrier() ? "rider" : meter_method(trip.payment_type)).inc();
    l->last_decision = std::string("trip rider ") + std::string(to_string(d.kind));
    l->last_plate = trip.plate;
    const std::string fare = trip.fare.to_string();
    if (d.kind == DecisionKind::kPassOnline) {
      display(*l, "乘客账户已支付 " + fare + "元");
    } else if (d.kind == DecisionKind::kPassOffline) {
      display(*l, "乘客账户支付 " + fare + "元 稍后扣款");
    } else {
      display(*l, "账户未支付 请收现金或扫码 " + fare + "元");
    }
    taxi_ack(trip);
    taxi_next(*l);
  };
  p->not_decided = [this, lane_id = ls.cfg.id, trip, token = *tok] {
    LaneState* l = lane_of(lane_id);
    if (l == nullptr) {
      return;
    }
    log::error("taxi trip not decided; the meter will retransmit it",
               {{"METER", trip.meter}, {"TRIP", static_cast<std::int64_t>(trip.trip_number)}});
    display(*l, "系统故障 请收现金");
    l->rider = token;  // the retransmitted trip pairs with it again
    taxi_next(*l);
  };
  charge(ls, std::move(p));
}

Status Site::Impl::insert_meter_paid(Transaction& txn, const std::string& lane_id,
                                     const lane::TripRecord& trip, const std::string& out_trade_no,
                                     const std::string& reason) {
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
  const json::object detail = trip_detail(trip);
  tx.detail = json::serialize(detail);
  auto id = store.insert_transaction(txn, tx);
  if (!id) {
    return std::unexpected(id.error());
  }
  return append_ledger(txn, ledger::Kind::kChargeSettled, lane_id, trip.plate, out_trade_no,
                       trip.fare, "CASH", "meter:" + trip.meter, detail);
}

void Site::Impl::taxi_record_at_meter(LaneState* ls, const lane::TripRecord& trip,
                                      const std::string& out_trade_no, const std::string& reason) {
  const std::string lane_id = ls ? ls->cfg.id : trip.lane;
  auto existing = store.find_transaction(out_trade_no);
  if (!(existing && *existing)) {
    auto s = commit([&](Transaction& txn) {
      return insert_meter_paid(txn, lane_id, trip, out_trade_no, reason);
    });
    if (!s) {
      log::error("taxi trip not recorded; the meter will retransmit it",
                 {{"METER", trip.meter},
                  {"TRIP", static_cast<std::int64_t>(trip.trip_number)},
                  {"ERROR", s.error().message}});
      return;
    }
    trips_counter(meter_method(trip.payment_type)).inc();
    if (ls) {
      ls->last_plate = trip.plate;
      ls->last_decision = std::string("trip ") + meter_method(trip.payment_type);
    }
  }
  taxi_ack(trip);
}

void Site::Impl::taxi_ack(const lane::TripRecord& trip) {
  if (auto a = actuator.ack_trip(trip.meter, trip.trip_number, trip.boarding); !a) {
    log::warn("trip acknowledgement not sent",
              {{"METER", trip.meter}, {"ERROR", a.error().message}});
  }
}

void Site::Impl::taxi_started(const lane::TripStarted&) {}

void Site::Impl::taxi_next(LaneState& ls) {
  ls.busy = false;
  ls.phase = LanePhase::kIdle;
  if (ls.waiting_trips.empty()) {
    return;
  }
  lane::TripRecord trip = std::move(ls.waiting_trips.front());
  ls.waiting_trips.pop_front();
  asio::post(io, [this, alive = std::weak_ptr<bool>(alive), trip] {
    if (alive.expired()) {
      return;
    }
    taxi_trip(trip);
  });
}

}  // namespace lanegate::gateway
