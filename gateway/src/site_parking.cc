// Parking entry and exit lanes (site.h "PASSAGE").
#include <boost/json.hpp>

#include "core/log.h"
#include "core/time_format.h"
#include "gateway/tariff.h"
#include "lane/plate.h"
#include "site_impl.h"

namespace lanegate::gateway {
namespace {

namespace json = boost::json;

std::string session_key(std::int64_t session_id) { return "session:" + std::to_string(session_id); }

}  // namespace

const config::ParkingTariff* Site::Impl::find_parking_tariff(std::string_view id) const {
  for (const auto& t : cfg.parking_tariffs) {
    if (t.id == id) {
      return &t;
    }
  }
  return nullptr;
}

void Site::Impl::parking_entry(LaneState& ls, const lane::PlateRead& read) {
  const std::string colour(lane::provider_colour_name(read.colour));
  auto out_parking_no = new_out_trade_no(cfg.gateway.id, 'E');
  if (!out_parking_no) {
    return;
  }
  const auto t0 = read.received_steady;
  std::int64_t passage = 0;
  auto s = commit([&](Transaction& txn) -> Status {
    auto prev = store.find_open_session(read.plate);
    if (!prev) {
      return std::unexpected(prev.error());
    }
    if (*prev) {
      // The exit was never seen (tailgating, camera miss): the old stay is closed as
      // superseded and is not charged; the new entry starts a new stay.
      if (auto c = store.close_session(txn, (*prev)->id, read.received_at, "superseded"); !c) {
        return c;
      }
    }
    // A record the camera resent after being offline: the stay began at its capture.
    const SystemTime start = read.resent ? read.device_time : read.received_at;
    Store::Session sess{0, ls.cfg.id, read.plate, colour, start, *out_parking_no, {}};
    auto id = store.open_session(txn, sess);
    if (!id) {
      return std::unexpected(id.error());
    }
    const config::ParkingTariff* tariff = find_parking_tariff(ls.cfg.tariff);
    json::object e{{"out_parking_no", *out_parking_no},
                   {"plate", read.plate},
                   {"colour", colour},
                   {"start_time_ms", unix_ms(start)},
                   {"free_duration_s", tariff ? tariff->free_minutes * 60 : 0},
                   {"parking_name", cfg.gateway.site_name}};
    auto q = outbox.enqueue(txn, kTopicParkingEntry, session_key(*id), "entry:" + *out_parking_no,
                            json::serialize(e));
    if (!q) {
      return std::unexpected(q.error());
    }
    const auto latency =
        std::chrono::duration_cast<std::chrono::microseconds>(clock.steady_now() - t0).count();
    auto pid = store.insert_passage(txn, ls.cfg.id, read.plate, read.resent ? "recorded" : "free",
                                    read.resent ? "entry_resent" : "entry", "", latency);
    if (!pid) {
      return std::unexpected(pid.error());
    }
    passage = *pid;
    return passage_evidence(txn, passage, read.camera_event, read.images, read.entered_by,
                            read.entered_reason);
  });
  ls.last_plate = log::mask_plate(read.plate);
  if (!s) {
    log::error("entry not recorded; barrier stays closed",
               {{"LANE", ls.cfg.id}, {"ERROR", s.error().message}});
    display(ls, "请联系管理员");
    return;
  }
  gate.kick();
  if (read.resent) {
    lane_event(ls, "resent_record", json::object{{"plate", ls.last_plate}, {"entry", true}});
    return;  // the vehicle entered long ago: nothing opens
  }
  ls.last_decision = "free";
  decisions_counter(ls.cfg.id, "free").inc();
  ls.no_plate.reset();
  if (read.on_decided) {
    (*read.on_decided)(true);
  }
  open(ls, passage);
  display(ls, read.plate + " 欢迎光临");
}

void Site::Impl::parking_exit(LaneState& ls, const lane::PlateRead& read) {
  ls.busy = true;
  ls.last_plate = log::mask_plate(read.plate);
  const config::ParkingTariff* tariff = find_parking_tariff(ls.cfg.tariff);
  auto session = store.find_open_session(read.plate);
  if (!session || tariff == nullptr) {
    return fallback_now(ls, read, "internal_error", Money::zero());
  }
  auto p = std::make_shared<Pending>();
  p->lane = ls.cfg.id;
  p->binding_key = read.plate;
  p->started = read.received_steady;
  ChargeOrder& o = p->order;
  o.kind = TxKind::kParking;
  o.lane = ls.cfg.id;
  o.plate = read.plate;
  o.plate_colour = std::string(lane::provider_colour_name(read.colour));
  o.description = "停车费 " + cfg.gateway.site_name;
  o.device_id = ls.cfg.camera;
  o.end_time = read.received_at;
  if (!*session) {
    if (ls.cfg.exit_without_entry != "daily_cap") {
      return fallback_now(ls, read, "no_entry_record", Money::zero());
    }
    // Charge the daily cap; the provider needs an entry, so one is opened with the charge.
    o.amount = tariff->daily_cap;
    o.start_time = read.received_at;
    p->detail = {{"no_entry", true}, {"tariff", tariff->id}, {"fee_fen", o.amount.fen()}};
    p->before_record = [this, lane_id = ls.cfg.id, read](Transaction& txn,
                                                         ChargeOrder& order) -> Status {
      auto out_parking_no = new_out_trade_no(cfg.gateway.id, 'E');
      if (!out_parking_no) {
        return std::unexpected(out_parking_no.error());
      }
      Store::Session sess{
          0, lane_id, read.plate, order.plate_colour, read.received_at, *out_parking_no, {}};
      auto id = store.open_session(txn, sess);
      if (!id) {
        return std::unexpected(id.error());
      }
      order.session_id = *id;
      order.out_parking_no = *out_parking_no;
      order.passage_key = session_key(*id);
      json::object e{{"out_parking_no", *out_parking_no},
                     {"plate", read.plate},
                     {"colour", order.plate_colour},
                     {"start_time_ms", unix_ms(read.received_at)},
                     {"free_duration_s", 0},
                     {"parking_name", cfg.gateway.site_name}};
      auto q = outbox.enqueue(txn, kTopicParkingEntry, session_key(*id), "entry:" + *out_parking_no,
                              json::serialize(e));
      if (!q) {
        return std::unexpected(q.error());
      }
      return {};
    };
  } else {
    const Store::Session& sess = **session;
    p->session = sess;
    o.session_id = sess.id;
    o.out_parking_no = sess.out_parking_no;
    o.passage_key = session_key(sess.id);
    o.start_time = sess.entry_time;
    auto undecided = store.find_undecided_charge(o.passage_key);
    if (undecided && *undecided) {
      // A charge for this stay was recorded before the gateway stopped and never decided:
      // the same money keeps its out_trade_no (it may already be at the provider), and its
      // outcome decides this passage (charge.h invariant 7).
      o.amount = (*undecided)->amount;
      o.out_trade_no = (*undecided)->out_trade_no;
      p->recorded = true;
      boost::system::error_code ec;
      auto d = json::parse((*undecided)->detail, ec);
      if (!ec && d.is_object()) {
        p->detail = d.as_object();
      }
      p->detail["resumed"] = true;
    } else {
      // An entry stamped after the exit, or longer ago than any stay the tariff allows, is
      // a clock fault (a box booted with a reset real-time clock), not a fee.
      const auto stay = read.received_at - sess.entry_time;
      if (stay < std::chrono::seconds(0) || stay > std::chrono::hours(24) * tariff->max_stay_days) {
        log::warn("entry time implausible: attendant needed",
                  {{"LANE", ls.cfg.id},
                   {"PLATE", log::mask_plate(read.plate)},
                   {"ENTRY", format_rfc3339(sess.entry_time, offset())},
                   {"EXIT", format_rfc3339(read.received_at, offset())}});
        metrics::Registry::global()
            .counter("lanegate_entry_time_implausible_total",
                     "Parking exits whose entry time was in the future or beyond max_stay_days")
            .inc();
        lane_event(ls, "entry_time_implausible",
                   json::object{{"plate", log::mask_plate(read.plate)},
                                {"entry_time", format_rfc3339(sess.entry_time, offset())}});
        return fallback_now(ls, read, "entry_time_implausible", Money::zero());
      }
      auto fee = parking_fee(*tariff, sess.entry_time, read.received_at, offset());
      if (!fee) {
        return fallback_now(ls, read, "tariff_error", Money::zero());
      }
      o.amount = fee->amount;
      p->detail = {{"tariff", tariff->id},
                   {"entry_time", format_rfc3339(sess.entry_time, offset())},
                   {"exit_time", format_rfc3339(read.received_at, offset())},
                   {"charged_seconds", fee->charged_seconds},
                   {"free_period", fee->free_period},
                   {"capped_windows", fee->capped_windows}};
    }
  }
  p->in_commit = [this, p_raw = p.get(), read](Transaction& txn, const Decision& d) -> Status {
    if (p_raw->order.session_id && d.opens_barrier()) {
      return store.close_session(txn, *p_raw->order.session_id, read.received_at,
                                 d.kind == DecisionKind::kFree ? "free" : "paid");
    }
    return {};
  };
  barrier_actions(ls, read, *p);
  if (p->recorded) {
    return await_recorded(ls, std::move(p));
  }
  charge(ls, std::move(p));
}

}  // namespace lanegate::gateway
