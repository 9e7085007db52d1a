// Toll-exit lanes: a plate read and a roadside-unit record make one vehicle.
//
// PAIRING (per lane, in arrival order):
//   reads and records wait in two FIFOs, each stamped with its arrival (steady clock);
//   the oldest read and the oldest record pair when they arrived within the lane's
//   pair_window_ms of each other; the older of two fronts further apart can never pair
//   with anything that comes later (later arrivals are newer still), so it expires at once;
//   a front that waited pair_window_ms alone expires when the lane's timer fires.
//   Expired read   -> the vehicle goes to the attendant (fallback "no_entry_data").
//   Expired record -> dropped, never charged to anyone: a log line,
//                     lanegate_toll_unpaired_total{kind="record"} and a lane event.
//   Pairs (and expired reads) queue in toll_work and are decided one at a time, in order:
//   a pair formed while the lane is busy keeps its record (nothing is split again).
#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include "core/log.h"
#include "core/time_format.h"
#include "gateway/tariff.h"
#include "lane/plate.h"
#include "gateway/contract_state.h"
#include "site_impl.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

metrics::Counter& unpaired_counter(std::string_view lane, std::string_view kind) {
  return metrics::Registry::global().counter(
      "lanegate_toll_unpaired_total",
      "Toll plate reads or roadside-unit records that found no partner within the pair window",
      {{"lane", std::string(lane)}, {"kind", std::string(kind)}});
}

}  // namespace

void Site::Impl::toll_plate(LaneState& ls, const lane::PlateRead& read) {
  ls.toll_plates.push_back(TimedPlate{read, clock.steady_now()});
  toll_pair(ls);
}

void Site::Impl::toll_record(LaneState& ls, const lane::RoadsideRecord& rec) {
  ls.toll_records.push_back(TimedRecord{rec, clock.steady_now()});
  toll_pair(ls);
}

void Site::Impl::toll_pair(LaneState& ls) {
  const auto window = std::chrono::milliseconds(ls.cfg.pair_window_ms);
  const SteadyTime now = clock.steady_now();
  auto expire_plate = [&] {
    TimedPlate t = std::move(ls.toll_plates.front());
    ls.toll_plates.pop_front();
    unpaired_counter(ls.cfg.id, "plate").inc();
    log::notice("toll plate read without a roadside-unit record: attendant",
                {{"LANE", ls.cfg.id}, {"PLATE", log::mask_plate(t.read.plate)}});
    lane_event(ls, "plate_without_record", json::object{{"plate", log::mask_plate(t.read.plate)}});
    ls.toll_work.push_back(TollWork{std::move(t.read), std::nullopt});
  };
  auto expire_record = [&] {
    TimedRecord t = std::move(ls.toll_records.front());
    ls.toll_records.pop_front();
    unpaired_counter(ls.cfg.id, "record").inc();
    log::warn("roadside-unit record without a plate read expired: not charged",
              {{"LANE", ls.cfg.id},
               {"ENTRY_STATION", static_cast<std::int64_t>(t.rec.entry_station)},
               {"SEQUENCE", static_cast<std::int64_t>(t.rec.sequence)}});
    lane_event(ls, "record_without_plate",
               json::object{{"entry_station", t.rec.entry_station},
                            {"entry_time", format_rfc3339(t.rec.entry_time, offset())},
                            {"sequence", t.rec.sequence}});
  };
  for (;;) {
    const bool plate = !ls.toll_plates.empty();
    const bool record = !ls.toll_records.empty();
    if (plate && record) {
      const SteadyTime pa = ls.toll_plates.front().at;
      const SteadyTime ra = ls.toll_records.front().at;
      const auto gap = pa > ra ? pa - ra : ra - pa;
      if (gap <= window) {
        TollWork w{std::move(ls.toll_plates.front().read), std::move(ls.toll_records.front().rec)};
        ls.toll_plates.pop_front();
        ls.toll_records.pop_front();
        ls.toll_work.push_back(std::move(w));
        continue;
      }
      // The older front can never pair: everything after the other front is newer still.
      if (pa < ra) {
        expire_plate();
      } else {
        expire_record();
      }
      continue;
    }
    if (plate && now - ls.toll_plates.front().at >= window) {
      expire_plate();
      continue;
    }
    if (record && now - ls.toll_records.front().at >= window) {
      expire_record();
      continue;
    }
    break;
  }
  // Wake when the oldest lone front expires.
  std::optional<SteadyTime> due;
  if (!ls.toll_plates.empty()) {
    due = ls.toll_plates.front().at + window;
  }
  if (!ls.toll_records.empty()) {
    const SteadyTime r = ls.toll_records.front().at + window;
    due = due ? std::min(*due, r) : r;
  }
  if (due) {
    ls.toll_timer->expires_after(std::max(*due - now, SteadyTime::duration::zero()));
    ls.toll_timer->async_wait(
        [this, alive = std::weak_ptr<bool>(alive), id = ls.cfg.id](boost::system::error_code ec) {
          if (ec || alive.expired()) {
            return;
          }
          if (LaneState* l = lane_of(id)) {
            toll_pair(*l);
          }
        });
  }
  toll_next(ls);
}

void Site::Impl::toll_next(LaneState& ls) {
  if (ls.busy || ls.toll_work.empty()) {
    return;
  }
  TollWork w = std::move(ls.toll_work.front());
  ls.toll_work.pop_front();
  ls.busy = true;
  if (!w.rec) {
    return fallback_now(ls, w.read, "no_entry_data", Money::zero());
  }
  toll_exit(ls, w.read, *w.rec);
}

void Site::Impl::toll_exit(LaneState& ls, const lane::PlateRead& read,
                           const lane::RoadsideRecord& rsu) {
  ls.busy = true;
  ls.last_plate = log::mask_plate(read.plate);
  const config::TollTariff* tariff = nullptr;
  for (const auto& t : cfg.toll_tariffs) {
    if (t.id == ls.cfg.tariff) {
      tariff = &t;
    }
  }
  const int vclass = rsu.vehicle_class > 0 ? rsu.vehicle_class : read.vehicle_class;
  if (tariff == nullptr) {
    return fallback_now(ls, read, "internal_error", Money::zero());
  }
  auto fare = toll_fare(*tariff, rsu.entry_station, ls.cfg.station_id, vclass);
  if (!fare) {
    log::warn("toll fare unknown: attendant needed",
              {{"LANE", ls.cfg.id}, {"ERROR", fare.error().message}});
    return fallback_now(ls, read, "unknown_route", Money::zero());
  }
  // Spec (ETC highway_info): entrance and exit are station names. The config check makes
  // sure every priced station has one; a config built without them falls back.
  const config::Station* entry_station = cfg.find_station(rsu.entry_station);
  const config::Station* exit_station = cfg.find_station(ls.cfg.station_id);
  if (entry_station == nullptr || exit_station == nullptr) {
    log::warn("toll station has no name: attendant needed",
              {{"LANE", ls.cfg.id},
               {"STATION", static_cast<std::int64_t>(entry_station == nullptr ? rsu.entry_station
                                                                              : ls.cfg.station_id)}});
    return fallback_now(ls, read, "unknown_station", *fare);
  }
  // Spec: deduct only while the contract's last seen bind_state is the bound value. A
  // contract the provider said is not bound is not charged (not even tried): the driver
  // pays another way.
  if (auto known = store.find_contract(rsu.obu_id); known && *known) {
    if (!contract_chargeable(**known, contract_rules(cfg.provider))) {
      log::info("ETC contract not bound: attendant needed",
                {{"LANE", ls.cfg.id}, {"CONTRACT", rsu.obu_id}});
      return fallback_now(ls, read, "contract_not_bound", *fare);
    }
  }
  auto p = std::make_shared<Pending>();
  p->lane = ls.cfg.id;
  p->binding_key = read.plate;
  p->started = read.received_steady;
  ChargeOrder& o = p->order;
  o.kind = TxKind::kToll;
  o.amount = *fare;
  o.lane = ls.cfg.id;
  o.plate = read.plate;
  o.plate_colour = std::string(lane::provider_colour_name(read.colour));
  o.contract_id = rsu.obu_id;
  o.description = "通行费 " + cfg.gateway.site_name;
  o.device_id = ls.cfg.camera;
  // Spec (ETC highway_info): start_time is the entry time the roadside unit read, end_time
  // the exit.
  o.start_time = rsu.entry_time;
  o.end_time = read.received_at;
  o.entrance = entry_station->name;
  o.exit = exit_station->name;
  o.vehicle_class = vclass;
  // The same vehicle read again (after a restart) is the same passage (charge.h inv. 7).
  o.passage_key =
      "toll:" + ls.cfg.id + ":" + rsu.obu_id + ":" + std::to_string(unix_ms(rsu.entry_time));
  // The trip as the toll receipt prints it (api_routes.cc, toll_trip_of): station names
  // as they were when the vehicle passed, so renaming a [[station]] later does not
  // rewrite old receipts.
  p->detail = {{"tariff", tariff->id},
               {"entry_station", rsu.entry_station},
               {"entry_name", entry_station->name},
               {"exit_station", ls.cfg.station_id},
               {"exit_name", exit_station->name},
               {"vehicle_class", vclass},
               {"entry_time", format_rfc3339(rsu.entry_time, offset())},
               {"exit_time", format_rfc3339(read.received_at, offset())},
               {"obu_id", rsu.obu_id}};
  barrier_actions(ls, read, *p);
  auto undecided = store.find_undecided_charge(o.passage_key);
  if (undecided && *undecided) {
    o.amount = (*undecided)->amount;
    o.out_trade_no = (*undecided)->out_trade_no;
    p->recorded = true;
    p->detail["resumed"] = true;
    return await_recorded(ls, std::move(p));
  }
  charge(ls, std::move(p));
}

}  // namespace lanegate::gateway
