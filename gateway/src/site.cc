#include "gateway/site.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <deque>
#include <map>

#include "core/crypto.h"
#include "core/ledger.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/time_format.h"
#include "gateway/tariff.h"
#include "lane/plate.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using std::chrono::milliseconds;

constexpr auto kTollPairWindow = std::chrono::seconds(3);
// How long a trip record without a rider token waits for one (the passenger scans as
// the fare shows). TODO(config): lane.rider_grace_ms once the loader has it.
constexpr auto kRiderTokenGrace = std::chrono::seconds(5);

std::int64_t unix_ms(SystemTime t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

metrics::Counter& decisions_counter(std::string_view lane, std::string_view decision) {
  return metrics::Registry::global().counter(
      "lanegate_decisions_total", "Pass decisions by lane and outcome",
      {{"lane", std::string(lane)}, {"decision", std::string(decision)}});
}

std::optional<CachedBinding> to_cached(const std::optional<Store::Binding>& b) {
  if (!b) return std::nullopt;
  CachedBinding c;
  c.refreshed_at = b->refreshed_at;
  if (b->state == "NORMAL")
    c.state = BindingState::kNormal;
  else if (b->state == "PAUSE")
    c.state = BindingState::kPause;
  else if (b->state == "OUT_SERVICE")
    c.state = BindingState::kOutService;
  else
    c.state = BindingState::kBlocked;
  return c;
}

std::string sanitize_prefix(std::string_view id, std::size_t max) {
  std::string out;
  for (char c : id) {
    if (std::isalnum(static_cast<unsigned char>(c)) && out.size() < max) out.push_back(c);
  }
  return out.empty() ? "LG" : out;
}

}  // namespace

Result<std::string> new_out_trade_no(std::string_view gateway_id, char kind) {
  auto rnd = crypto::random_token(16);
  if (!rnd) return std::unexpected(rnd.error());
  return sanitize_prefix(gateway_id, 11) + std::string(1, kind) + "_" + *rnd;
}

struct Site::Impl {
  // One vehicle's charge, from the plate read to the barrier.
  struct Pending {
    lane::PlateRead read;
    Money fee;
    TxKind kind = TxKind::kParking;
    std::optional<Store::Session> session;
    std::string out_trade_no;  // set once recorded
    bool recorded = false;     // transaction + charge item committed (online path)
    std::string contract_id;   // toll
    json::object detail;       // tariff and entry data for the record
    json::object payload;      // outbox charge payload
  };

  struct LaneState {
    config::LaneSection cfg;
    bool busy = false;
    std::deque<lane::PlateRead> waiting;
    std::string last_plate;  // masked
    std::string last_decision;
    std::string phase = "IDLE";
    std::int64_t passage_id = 0;
    std::uint64_t barrier_command = 0;
    // toll-exit pairing of the camera read and the roadside unit record
    std::optional<lane::PlateRead> toll_plate;
    std::optional<lane::RoadsideRecord> toll_rsu;
    std::unique_ptr<asio::steady_timer> toll_timer;
    // taxi: the rider token held for the next trip, a trip waiting for its token, trips
    // queued behind a rider charge in flight
    std::optional<lane::RiderToken> rider;
    std::optional<lane::TripRecord> held_trip;
    std::deque<lane::TripRecord> waiting_trips;
    std::unique_ptr<asio::steady_timer> trip_timer;
    // when the last trip was settled without a token (a scan just after it is late for
    // it and must not be charged for the next passenger's trip)
    std::optional<SteadyTime> settled_without_token;
  };

  asio::io_context& io;
  config::Config cfg;
  Store& store;
  queue::Outbox& outbox;
  const Clock& clock;
  LaneActuator& actuator;
  ChargeGate& gate;
  std::map<std::string, LaneState, std::less<>> lanes;
  bool attendant = false;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  Impl(asio::io_context& i, const config::Config& c, Store& s, queue::Outbox& o, const Clock& cl,
       LaneActuator& a, ChargeGate& g)
      : io(i), cfg(c), store(s), outbox(o), clock(cl), actuator(a), gate(g) {
    for (const auto& l : cfg.lanes) {
      LaneState st;
      st.cfg = l;
      st.toll_timer = std::make_unique<asio::steady_timer>(io);
      st.trip_timer = std::make_unique<asio::steady_timer>(io);
      lanes.emplace(l.id, std::move(st));
    }
  }

  UtcOffset offset() const { return UtcOffset{cfg.gateway.utc_offset_minutes}; }

  void display(const LaneState& ls, const std::string& text) {
    if (ls.cfg.display.empty()) return;
    if (auto s = actuator.show_text(ls.cfg.display, text); !s) {
      log::warn("display text not queued", {{"LANE", ls.cfg.id}, {"ERROR", s.error().message}});
    }
  }

  void set_attendant(bool on, const std::string& why) {
    if (attendant == on) return;
    attendant = on;
    metrics::Registry::global()
        .gauge("lanegate_attendant_mode",
               "1 while the database cannot commit and lanes need an attendant")
        .set(on ? 1 : 0);
    if (on) {
      log::error(
          "database cannot commit: all lanes switched to attendant mode, no barrier opens on its "
          "own",
          {{"ERROR", why}});
      for (auto& [id, ls] : lanes) display(ls, "系统维护 请联系管理员");
    } else {
      log::notice("database commits again: attendant mode ended");
      gate.kick();  // what waited on the database goes upstream now
    }
  }

  // Runs `work` in one transaction. A failure to begin or commit (disk full, I/O)
  // switches to attendant mode; success ends it.
  Status commit(const std::function<Status(Transaction&)>& work) {
    auto txn = store.db().begin();
    if (!txn) {
      set_attendant(true, txn.error().message);
      return std::unexpected(txn.error());
    }
    if (auto s = work(*txn); !s) {
      txn->rollback();
      const Errc c = s.error().code;
      if (c == Errc::kDiskFull || c == Errc::kIo || c == Errc::kDatabase || c == Errc::kBusy ||
          c == Errc::kPermission) {
        set_attendant(true, s.error().message);
      }
      return s;
    }
    if (auto s = txn->commit(); !s) {
      set_attendant(true, s.error().message);
      return s;
    }
    set_attendant(false, {});
    return {};
  }

  Status append_ledger(Transaction& txn, ledger::Kind kind, const std::string& lane,
                       const std::string& plate, const std::string& out_trade_no, Money amount,
                       std::string state, std::string actor, const json::object& detail) {
    ledger::LedgerEvent ev;
    ev.kind = kind;
    ev.time = clock.now();
    ev.lane = lane;
    ev.plate = plate;
    ev.out_trade_no = out_trade_no;
    ev.amount = amount;
    ev.state = std::move(state);
    ev.actor = std::move(actor);
    ev.detail = json::serialize(detail);
    auto r = ledger::append(txn, ev);
    if (!r) return std::unexpected(r.error());
    return {};
  }

  // ---------------- events ----------------

  void on_event(const lane::LaneEvent& event) {
    std::visit([this](const auto& e) { handle(e); }, event);
  }

  LaneState* lane_of(std::string_view id) {
    auto it = lanes.find(id);
    return it == lanes.end() ? nullptr : &it->second;
  }

  void handle(const lane::PlateRead& read) {
    LaneState* ls = lane_of(read.lane);
    if (ls == nullptr) {
      log::warn("plate read from a camera bound to no lane", {{"DEVICE", read.device}});
      return;
    }
    switch (ls->cfg.mode) {
      case config::LaneMode::kParkingEntry:
        return parking_entry(*ls, read);
      case config::LaneMode::kParkingExit:
        if (ls->busy) {
          ls->waiting.push_back(read);
          return;
        }
        return parking_exit(*ls, read);
      case config::LaneMode::kTollExit:
        ls->toll_plate = read;
        return toll_try_pair(*ls);
      case config::LaneMode::kTaxi:
        return;
    }
  }

  void handle(const lane::RoadsideRecord& rec) {
    LaneState* ls = lane_of(rec.lane);
    if (ls == nullptr || ls->cfg.mode != config::LaneMode::kTollExit) return;
    ls->toll_rsu = rec;
    toll_try_pair(*ls);
  }

  void handle(const lane::VehiclePresent& v) {
    LaneState* ls = lane_of(v.lane);
    if (ls == nullptr) return;
    if (!v.present && ls->phase == "OPENED") passed(*ls);
  }

  void handle(const lane::BarrierState& b) {
    LaneState* ls = lane_of(b.lane);
    if (ls == nullptr) return;
    if (b.command_id != 0 && b.command_id == ls->barrier_command) {
      if (b.command_result == lane::BarrierState::CommandResult::kConfirmed) {
        ls->phase = "OPENED";
        if (ls->passage_id != 0) (void)store.set_passage_state(ls->passage_id, "OPENED");
      } else if (b.command_result == lane::BarrierState::CommandResult::kAlarm ||
                 b.command_result == lane::BarrierState::CommandResult::kFailed) {
        ls->phase = "ALARM";
        if (ls->passage_id != 0) (void)store.set_passage_state(ls->passage_id, "ALARM");
        metrics::Registry::global()
            .counter("lanegate_barrier_alarms_total", "Barrier opens that were not confirmed",
                     {{"lane", ls->cfg.id}})
            .inc();
        log::error("barrier did not confirm the open command",
                   {{"LANE", ls->cfg.id}, {"DEVICE", b.device}, {"DETAIL", b.detail}});
        display(*ls, "道闸故障 请联系管理员");
      }
    } else if (b.position == lane::BarrierState::Position::kClosed && ls->phase == "OPENED" &&
               ls->cfg.loop.empty()) {
      passed(*ls);
    }
  }

  void handle(const lane::TripRecord& trip) { taxi_trip(trip); }
  void handle(const lane::DeviceHealth&) {}

  void passed(LaneState& ls) {
    ls.phase = "PASSED";
    if (ls.passage_id != 0) (void)store.set_passage_state(ls.passage_id, "PASSED");
  }

  void open(LaneState& ls, std::int64_t passage_id) {
    ls.passage_id = passage_id;
    ls.phase = "DECIDED";
    if (ls.cfg.barrier.empty()) return;
    auto cmd = actuator.open_barrier(ls.cfg.barrier);
    if (!cmd) {
      log::error("barrier command not queued",
                 {{"LANE", ls.cfg.id}, {"ERROR", cmd.error().message}});
      return;
    }
    ls.barrier_command = *cmd;
  }

  // ---------------- parking entry ----------------

  void parking_entry(LaneState& ls, const lane::PlateRead& read) {
    const std::string colour(lane::provider_colour_name(read.colour));
    auto out_parking_no = new_out_trade_no(cfg.gateway.id, 'E');
    if (!out_parking_no) return;
    const auto t0 = read.received_steady;
    std::int64_t passage = 0;
    auto s = commit([&](Transaction& txn) -> Status {
      auto prev = store.find_open_session(read.plate);
      if (!prev) return std::unexpected(prev.error());
      if (*prev) {
        // The exit was never seen (tailgating, camera miss): the old stay is closed as
        // superseded and is not charged; the new entry starts a new stay.
        if (auto c = store.close_session(txn, (*prev)->id, read.received_at, "superseded"); !c)
          return c;
      }
      Store::Session sess{0, ls.cfg.id, read.plate, colour, read.received_at, *out_parking_no, {}};
      auto id = store.open_session(txn, sess);
      if (!id) return std::unexpected(id.error());
      const config::ParkingTariff* tariff = find_parking_tariff(ls.cfg.tariff);
      json::object p{{"out_parking_no", *out_parking_no},
                     {"plate", read.plate},
                     {"colour", colour},
                     {"start_time_ms", unix_ms(read.received_at)},
                     {"free_duration_s", tariff ? tariff->free_minutes * 60 : 0},
                     {"parking_name", cfg.gateway.site_name}};
      auto q = outbox.enqueue(txn, kTopicParkingEntry, "session:" + std::to_string(*id),
                              "entry:" + *out_parking_no, json::serialize(p));
      if (!q) return std::unexpected(q.error());
      const auto latency =
          std::chrono::duration_cast<std::chrono::microseconds>(clock.steady_now() - t0).count();
      auto pid = store.insert_passage(txn, ls.cfg.id, read.plate, "free", "entry", "", latency);
      if (!pid) return std::unexpected(pid.error());
      passage = *pid;
      return {};
    });
    ls.last_plate = log::mask_plate(read.plate);
    if (!s) {
      log::error("entry not recorded; barrier stays closed",
                 {{"LANE", ls.cfg.id}, {"ERROR", s.error().message}});
      display(ls, "请联系管理员");
      return;
    }
    ls.last_decision = "free";
    decisions_counter(ls.cfg.id, "free").inc();
    gate.kick();
    open(ls, passage);
    display(ls, read.plate + " 欢迎光临");
  }

  const config::ParkingTariff* find_parking_tariff(std::string_view id) const {
    for (const auto& t : cfg.parking_tariffs) {
      if (t.id == id) return &t;
    }
    return nullptr;
  }

  const config::TollTariff* find_toll_tariff(std::string_view id) const {
    for (const auto& t : cfg.toll_tariffs) {
      if (t.id == id) return &t;
    }
    return nullptr;
  }

  // ---------------- parking exit ----------------

  void parking_exit(LaneState& ls, const lane::PlateRead& read) {
    ls.busy = true;
    ls.last_plate = log::mask_plate(read.plate);
    Pending p;
    p.read = read;
    p.kind = TxKind::kParking;
    const config::ParkingTariff* tariff = find_parking_tariff(ls.cfg.tariff);
    auto session = store.find_open_session(read.plate);
    if (!session || tariff == nullptr) {
      return fallback_now(ls, read, "internal_error", Money::zero());
    }
    if (!*session) {
      if (ls.cfg.exit_without_entry != "daily_cap") {
        return fallback_now(ls, read, "no_entry_record", Money::zero());
      }
      // Charge the daily cap; the provider needs an entry, so one is created now.
      p.fee = tariff->daily_cap;
      p.detail = {{"no_entry", true}, {"tariff", tariff->id}, {"fee_fen", p.fee.fen()}};
    } else {
      p.session = **session;
      auto undecided = store.find_undecided_charge(p.session->id);
      if (undecided && *undecided) {
        // A charge for this stay was recorded before the gateway stopped, and never
        // decided: the same money keeps its out_trade_no (it may already be at the
        // provider). Its outcome decides this passage.
        p.fee = (*undecided)->amount;
        p.out_trade_no = (*undecided)->out_trade_no;
        p.recorded = true;
        boost::system::error_code ec;
        auto d = json::parse((*undecided)->detail, ec);
        if (!ec && d.is_object()) p.detail = d.as_object();
        p.detail["resumed"] = true;
        return await_recorded_charge(ls, std::move(p));
      }
      auto fee = parking_fee(*tariff, p.session->entry_time, read.received_at, offset());
      if (!fee) return fallback_now(ls, read, "tariff_error", Money::zero());
      p.fee = fee->amount;
      p.detail = {{"tariff", tariff->id},
                  {"entry_time", format_rfc3339(p.session->entry_time, offset())},
                  {"exit_time", format_rfc3339(read.received_at, offset())},
                  {"charged_seconds", fee->charged_seconds},
                  {"free_period", fee->free_period},
                  {"capped_windows", fee->capped_windows}};
    }
    charge_flow(ls, std::move(p));
  }

  // ---------------- toll exit ----------------

  void toll_try_pair(LaneState& ls) {
    const auto now = clock.steady_now();
    (void)now;
    if (ls.toll_plate && ls.toll_rsu) {
      ls.toll_timer->cancel();
      lane::PlateRead read = *ls.toll_plate;
      lane::RoadsideRecord rsu = *ls.toll_rsu;
      ls.toll_plate.reset();
      ls.toll_rsu.reset();
      if (ls.busy) {
        // One vehicle at a time: the pair is handled after the current decision.
        ls.waiting.push_back(read);
        ls.toll_rsu = rsu;
        return;
      }
      return toll_exit(ls, read, rsu);
    }
    if (ls.toll_plate && !ls.busy) {
      ls.toll_timer->expires_after(kTollPairWindow);
      ls.toll_timer->async_wait(
          [this, alive = std::weak_ptr<bool>(alive), id = ls.cfg.id](boost::system::error_code ec) {
            if (ec || alive.expired()) return;
            LaneState* l = lane_of(id);
            if (l == nullptr || !l->toll_plate || l->busy) return;
            lane::PlateRead read = *l->toll_plate;
            l->toll_plate.reset();
            l->busy = true;
            fallback_now(*l, read, "no_entry_data", Money::zero());
          });
    }
  }

  void toll_exit(LaneState& ls, const lane::PlateRead& read, const lane::RoadsideRecord& rsu) {
    ls.busy = true;
    ls.last_plate = log::mask_plate(read.plate);
    const config::TollTariff* tariff = find_toll_tariff(ls.cfg.tariff);
    const int vclass = rsu.vehicle_class > 0 ? rsu.vehicle_class : read.vehicle_class;
    if (tariff == nullptr) return fallback_now(ls, read, "internal_error", Money::zero());
    auto fare = toll_fare(*tariff, rsu.entry_station, ls.cfg.station_id, vclass);
    if (!fare) {
      log::warn("toll fare unknown: attendant needed",
                {{"LANE", ls.cfg.id}, {"ERROR", fare.error().message}});
      return fallback_now(ls, read, "unknown_route", Money::zero());
    }
    Pending p;
    p.read = read;
    p.kind = TxKind::kToll;
    p.fee = *fare;
    p.contract_id = rsu.obu_id;
    p.detail = {{"tariff", tariff->id},
                {"entry_station", rsu.entry_station},
                {"exit_station", ls.cfg.station_id},
                {"vehicle_class", vclass},
                {"entry_time", format_rfc3339(rsu.entry_time, offset())},
                {"obu_id", rsu.obu_id}};
    charge_flow(ls, std::move(p));
  }

  // ---------------- the charge and the decision ----------------

  json::object charge_payload(const LaneState& ls, const Pending& p) const {
    json::object o{
        {"out_trade_no", p.out_trade_no},
        {"product", p.kind == TxKind::kToll ? "HIGHWAY" : "PARKING"},
        {"lane", ls.cfg.id},
        {"plate", p.read.plate},
        {"colour", std::string(lane::provider_colour_name(p.read.colour))},
        {"amount_fen", p.fee.fen()},
        {"end_time_ms", unix_ms(p.read.received_at)},
        {"description", (p.kind == TxKind::kToll ? "通行费 " : "停车费 ") + cfg.gateway.site_name},
        {"device_id", ls.cfg.camera}};
    if (p.session) {
      o["session_id"] = p.session->id;
      o["out_parking_no"] = p.session->out_parking_no;
      o["start_time_ms"] = unix_ms(p.session->entry_time);
    } else {
      o["start_time_ms"] = unix_ms(p.read.received_at);
    }
    if (p.kind == TxKind::kToll) {
      o["contract_id"] = p.contract_id;
      if (auto it = p.detail.find("entry_station"); it != p.detail.end())
        o["entrance"] = json::serialize(it->value());
      o["exit"] = std::to_string(ls.cfg.station_id);
      if (auto it = p.detail.find("entry_time"); it != p.detail.end())
        o["entry_time"] = it->value();
    }
    return o;
  }

  std::string ordering_key(const Pending& p) const {
    return p.session ? "session:" + std::to_string(p.session->id) : "trade:" + p.out_trade_no;
  }

  // Inserts the transaction and its charge item (and, for an exit without entry, the
  // provider entry first). REQUIRES: txn active.
  Status record_charge(Transaction& txn, LaneState& ls, Pending& p, bool offline,
                       std::string_view decision, std::string_view reason) {
    if (!p.session && p.kind == TxKind::kParking) {
      // Exit without an entry record (daily-cap policy): the provider needs an entry.
      auto out_parking_no = new_out_trade_no(cfg.gateway.id, 'E');
      if (!out_parking_no) return std::unexpected(out_parking_no.error());
      Store::Session sess{0,
                          ls.cfg.id,
                          p.read.plate,
                          std::string(lane::provider_colour_name(p.read.colour)),
                          p.read.received_at,
                          *out_parking_no,
                          {}};
      auto id = store.open_session(txn, sess);
      if (!id) return std::unexpected(id.error());
      sess.id = *id;
      p.session = sess;
      json::object e{{"out_parking_no", *out_parking_no},
                     {"plate", p.read.plate},
                     {"colour", sess.plate_colour},
                     {"start_time_ms", unix_ms(p.read.received_at)},
                     {"free_duration_s", 0},
                     {"parking_name", cfg.gateway.site_name}};
      auto q = outbox.enqueue(txn, kTopicParkingEntry, ordering_key(p), "entry:" + *out_parking_no,
                              json::serialize(e));
      if (!q) return std::unexpected(q.error());
    }
    TxRecord tx;
    tx.out_trade_no = p.out_trade_no;
    tx.kind = p.kind;
    tx.lane = ls.cfg.id;
    tx.plate = p.read.plate;
    tx.plate_colour = std::string(lane::provider_colour_name(p.read.colour));
    tx.amount = p.fee;
    tx.state = ChargeState::kRecorded;
    tx.decision = std::string(decision);
    tx.decision_reason = std::string(reason);
    tx.offline = offline;
    if (p.session) tx.session_id = p.session->id;
    tx.contract_id = p.contract_id;
    tx.payment_method = "provider";
    tx.detail = json::serialize(p.detail);
    auto id = store.insert_transaction(txn, tx);
    if (!id) return std::unexpected(id.error());
    auto q = outbox.enqueue(txn, kTopicCharge, ordering_key(p), "charge:" + p.out_trade_no,
                            json::serialize(charge_payload(ls, p)));
    if (!q) return std::unexpected(q.error());
    p.recorded = true;
    return {};
  }

  // Sends a recorded charge now and decides when its answer comes or the deadline
  // passes. Used for fresh online charges and for charges recorded before a restart.
  void await_recorded_charge(LaneState& ls, Pending p) {
    gate.kick();
    auto shared = std::make_shared<Pending>(std::move(p));
    gate.await_charge(
        shared->out_trade_no, milliseconds(cfg.provider.charge_deadline_ms),
        [this, alive = std::weak_ptr<bool>(alive), lane_id = ls.cfg.id, shared](OnlineOutcome o) {
          if (alive.expired()) return;
          finish(lane_id, std::move(*shared), o);
        });
  }

  void charge_flow(LaneState& ls, Pending p) {
    if (p.fee.is_zero()) {
      return finish(ls.cfg.id, std::move(p), OnlineOutcome::kNotTried);
    }
    auto out = new_out_trade_no(cfg.gateway.id, p.kind == TxKind::kToll ? 'H' : 'P');
    if (!out) return fallback_now(ls, p.read, "internal_error", p.fee);
    p.out_trade_no = *out;
    if (!gate.link_up()) {
      return finish(ls.cfg.id, std::move(p), OnlineOutcome::kNotTried);
    }
    // Online: commit the transaction and its charge item, then let the uplink send it
    // and wait for the answer up to the deadline.
    bool queue_full = false;
    auto s = commit([&](Transaction& txn) -> Status {
      auto r = record_charge(txn, ls, p, false, "", "");
      if (!r && r.error().code == Errc::kQueueFull) queue_full = true;
      return r;
    });
    if (!s) {
      if (queue_full) return finish(ls.cfg.id, std::move(p), OnlineOutcome::kNotTried, true);
      return fallback_now(ls, p.read, "database_error", p.fee);
    }
    await_recorded_charge(ls, std::move(p));
  }

  void finish(const std::string& lane_id, Pending p, OnlineOutcome online,
              bool queue_full = false) {
    LaneState* lsp = lane_of(lane_id);
    if (lsp == nullptr) return;
    LaneState& ls = *lsp;
    DecisionInput in;
    in.fee = p.fee;
    in.online = online;
    in.now = clock.now();
    in.queue_accepting = !queue_full;
    if (auto b = store.get_binding(p.read.plate); b) in.binding = to_cached(*b);
    if (auto o = store.plate_outstanding(p.read.plate); o) in.plate_outstanding = *o;
    if (auto e = store.site_exposure(); e) in.site_exposure = *e;
    Decision d = decide(in, cfg.offline);
    const bool offline = d.kind == DecisionKind::kPassOffline;
    std::int64_t passage = 0;
    auto body = [&](Transaction& txn) -> Status {
      if (d.kind != DecisionKind::kFree && !p.recorded && d.opens_barrier()) {
        if (auto r = record_charge(txn, ls, p, offline, to_string(d.kind), d.reason); !r) return r;
      } else if (p.recorded) {
        if (auto r = store.set_decision(txn, p.out_trade_no, to_string(d.kind), d.reason, offline);
            !r)
          return r;
      }
      if (p.session && d.opens_barrier()) {
        if (auto r = store.close_session(txn, p.session->id, p.read.received_at,
                                         d.kind == DecisionKind::kFree ? "free" : "paid");
            !r) {
          return r;
        }
      }
      const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(
                               clock.steady_now() - p.read.received_steady)
                               .count();
      auto pid = store.insert_passage(txn, ls.cfg.id, p.read.plate, to_string(d.kind), d.reason,
                                      p.recorded ? p.out_trade_no : "", latency);
      if (!pid) return std::unexpected(pid.error());
      passage = *pid;
      json::object detail = p.detail;
      detail["reason"] = d.reason;
      detail["latency_us"] = latency;
      return append_ledger(txn, ledger::Kind::kDecision, ls.cfg.id, p.read.plate,
                           p.recorded ? p.out_trade_no : "", p.fee, std::string(to_string(d.kind)),
                           "system", detail);
    };
    auto s = commit(body);
    if (!s && s.error().code == Errc::kQueueFull) {
      // The outbox refused the offline charge: no offline pass.
      d = Decision{DecisionKind::kFallback, "queue_full"};
      s = commit(body);
    }
    if (!s) {
      log::error("decision not recorded; barrier stays closed",
                 {{"LANE", ls.cfg.id},
                  {"PLATE", log::mask_plate(p.read.plate)},
                  {"ERROR", s.error().message}});
      display(ls, "请联系管理员");
      return next(ls);
    }
    decisions_counter(ls.cfg.id, to_string(d.kind)).inc();
    ls.last_decision = std::string(to_string(d.kind));
    log::info("decision", {{"LANE", ls.cfg.id},
                           {"PLATE", log::mask_plate(p.read.plate)},
                           {"DECISION", to_string(d.kind)},
                           {"REASON", d.reason},
                           {"FEE", p.fee.to_string()}});
    if (d.opens_barrier()) {
      open(ls, passage);
      display(ls, p.read.plate + " " + p.fee.to_string() + "元 一路顺风");
    } else {
      ls.phase = "IDLE";
      display(ls, p.read.plate + " " + p.fee.to_string() + "元 请扫码缴费或联系管理员");
    }
    next(ls);
  }

  void fallback_now(LaneState& ls, const lane::PlateRead& read, std::string_view reason,
                    Money fee) {
    auto s = commit([&](Transaction& txn) -> Status {
      const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(
                               clock.steady_now() - read.received_steady)
                               .count();
      auto pid = store.insert_passage(txn, ls.cfg.id, read.plate, "fallback", reason, "", latency);
      if (!pid) return std::unexpected(pid.error());
      return append_ledger(txn, ledger::Kind::kDecision, ls.cfg.id, read.plate, "", fee, "fallback",
                           "system", json::object{{"reason", reason}});
    });
    (void)s;
    decisions_counter(ls.cfg.id, "fallback").inc();
    ls.last_decision = "fallback";
    ls.phase = "IDLE";
    log::info("decision", {{"LANE", ls.cfg.id},
                           {"PLATE", log::mask_plate(read.plate)},
                           {"DECISION", "fallback"},
                           {"REASON", reason}});
    display(ls, read.plate + " 请联系管理员");
    next(ls);
  }

  void next(LaneState& ls) {
    ls.busy = false;
    if (ls.waiting.empty()) {
      if (ls.cfg.mode == config::LaneMode::kTollExit && (ls.toll_plate || ls.toll_rsu))
        toll_try_pair(ls);
      return;
    }
    lane::PlateRead read = ls.waiting.front();
    ls.waiting.pop_front();
    const std::string id = ls.cfg.id;
    asio::post(io, [this, alive = std::weak_ptr<bool>(alive), id, read] {
      if (alive.expired()) return;
      LaneState* l = lane_of(id);
      if (l == nullptr) return;
      if (l->cfg.mode == config::LaneMode::kTollExit) {
        l->toll_plate = read;
        toll_try_pair(*l);
      } else {
        handle(read);
      }
    });
  }

  // ---------------- taxi ----------------
  //
  // RIDER PAIRING (one taxi lane; see site.h "TAXI"):
  //   a RiderToken is held for the lane's next trip record (a newer token replaces it);
  //   a trip record takes the held token; without one, when the lane has a rider_reader
  //   and the meter's payment type is not a card, the trip waits up to kRiderTokenGrace
  //   for a token (the passenger scans as the fare shows), ends early when the next trip
  //   record arrives, then is recorded as paid per the meter's payment type.
  //   Card-paid trips (payment type 0x01/0x03) never charge a token (no double charge).

  static std::string trip_out_trade_no(const std::string& gateway_id,
                                       const lane::TripRecord& trip) {
    char boarding[16];
    std::snprintf(boarding, sizeof boarding, "%02d%02d%02d%02d%02d", trip.boarding.year % 100,
                  trip.boarding.month, trip.boarding.day, trip.boarding.hour, trip.boarding.minute);
    char trip_hex[12];
    std::snprintf(trip_hex, sizeof trip_hex, "%08X", trip.trip_number);
    // Deterministic: a meter retransmission of a recorded trip maps to the same number.
    return sanitize_prefix(gateway_id, 8) + "T" + boarding + trip_hex;
  }

  static const char* meter_method(std::uint8_t payment_type) {
    return payment_type == 0x00 ? "cash" : (payment_type == 0x09 ? "qr" : "card");
  }
  static bool card_paid(std::uint8_t payment_type) {
    return payment_type == 0x01 || payment_type == 0x03;
  }

  static metrics::Counter& rider_counter(std::string_view lane, std::string_view result) {
    return metrics::Registry::global().counter(
        "lanegate_rider_pairings_total", "Rider tokens by what became of them",
        {{"lane", std::string(lane)}, {"result", std::string(result)}});
  }

  static std::string rider_binding_key(std::string_view token) {
    return "rider:" + std::string(token);
  }

  json::object trip_detail(const lane::TripRecord& trip) const {
    return json::object{{"meter", trip.meter},
                        {"boarding", trip.boarding.to_string()},
                        {"alighting", trip.alighting.to_string()},
                        {"distance_m", trip.distance_m},
                        {"surcharge_fen", trip.surcharge.fen()},
                        {"payment_type", trip.payment_type},
                        {"licence", trip.operating_licence}};
  }

  void handle(const lane::RiderToken& tok) {
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
    if (ls->rider) rider_counter(ls->cfg.id, "replaced").inc();
    ls->rider = tok;
    if (ls->held_trip && !ls->busy) {
      // The trip was waiting for this token.
      ls->trip_timer->cancel();
      lane::TripRecord trip = std::move(*ls->held_trip);
      ls->held_trip.reset();
      taxi_settle(*ls, trip);
    }
  }

  void taxi_trip(const lane::TripRecord& trip) {
    LaneState* ls = lane_of(trip.lane);
    if (ls == nullptr || ls->cfg.mode != config::LaneMode::kTaxi) {
      // A meter bound to no taxi lane: record it as paid at the meter (nothing is lost).
      return taxi_record_at_meter(nullptr, trip, trip_out_trade_no(cfg.gateway.id, trip),
                                  "paid_at_meter");
    }
    LaneState& l = *ls;
    auto same = [&](const lane::TripRecord& t) {
      return t.trip_number == trip.trip_number && t.boarding == trip.boarding;
    };
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
    const bool may_wait = !l.cfg.rider_reader.empty() && !card_paid(trip.payment_type) &&
                          !l.rider && !trip.fare.is_zero();
    auto existing = store.find_transaction(trip_out_trade_no(cfg.gateway.id, trip));
    const bool recorded = existing && *existing;
    if (may_wait && !recorded) {
      l.held_trip = trip;
      l.phase = "TRIP_WAITING_TOKEN";
      l.trip_timer->expires_after(kRiderTokenGrace);
      l.trip_timer->async_wait(
          [this, alive = std::weak_ptr<bool>(alive), id = l.cfg.id](boost::system::error_code ec) {
            if (ec || alive.expired()) return;
            LaneState* x = lane_of(id);
            if (x == nullptr || !x->held_trip || x->busy) return;
            lane::TripRecord t = std::move(*x->held_trip);
            x->held_trip.reset();
            taxi_settle(*x, t);
          });
      return;
    }
    taxi_settle(l, trip);
  }

  // Decides how one trip is paid: the held token's account, or per the meter.
  void taxi_settle(LaneState& ls, const lane::TripRecord& trip) {
    const std::string out = trip_out_trade_no(cfg.gateway.id, trip);
    auto existing = store.find_transaction(out);
    if (existing && *existing) {
      // Recorded before (a retransmission after our ack was lost, or a restart).
      taxi_ack(ls, trip);
      return taxi_next(ls);
    }
    std::optional<lane::RiderToken> tok = std::move(ls.rider);
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
    ls.phase = "RIDER_CHARGING";
    auto shared =
        std::make_shared<TaxiCharge>(TaxiCharge{trip, *tok, out, false, clock.steady_now()});
    if (!gate.link_up()) return taxi_decide(ls.cfg.id, shared, OnlineOutcome::kNotTried);
    bool queue_full = false;
    auto s = commit([&](Transaction& txn) -> Status {
      auto r = record_rider_charge(txn, ls, *shared, "", "", false);
      if (!r && r.error().code == Errc::kQueueFull) queue_full = true;
      return r;
    });
    if (!s) {
      if (queue_full) return taxi_decide(ls.cfg.id, shared, OnlineOutcome::kNotTried, true);
      log::error("taxi rider charge not recorded; the meter will retransmit the trip",
                 {{"METER", trip.meter},
                  {"TRIP", static_cast<std::int64_t>(trip.trip_number)},
                  {"ERROR", s.error().message}});
      ls.rider = tok;  // the retransmitted trip pairs with it again
      return taxi_next(ls);
    }
    gate.kick();
    gate.await_charge(
        out, milliseconds(cfg.provider.charge_deadline_ms),
        [this, alive = std::weak_ptr<bool>(alive), lane_id = ls.cfg.id, shared](OnlineOutcome o) {
          if (alive.expired()) return;
          taxi_decide(lane_id, shared, o);
        });
  }

  struct TaxiCharge {
    lane::TripRecord trip;
    lane::RiderToken token;
    std::string out_trade_no;
    bool recorded = false;
    SteadyTime started;
  };

  json::object rider_charge_payload(const LaneState& ls, const TaxiCharge& c) const {
    const int off = cfg.gateway.utc_offset_minutes;
    return json::object{{"out_trade_no", c.out_trade_no},
                        {"product", "TAXI"},
                        {"lane", ls.cfg.id},
                        {"plate", c.trip.plate},
                        {"colour", ""},
                        {"amount_fen", c.trip.fare.fen()},
                        {"start_time_ms", c.trip.boarding.to_unix(off) * 1000},
                        {"end_time_ms", c.trip.alighting.to_unix(off) * 1000},
                        {"description", "出租车费 " + cfg.gateway.site_name},
                        {"device_id", c.trip.meter},
                        {"rider", c.token.token},
                        {"trip_number", c.trip.trip_number},
                        {"distance_m", c.trip.distance_m}};
  }

  // The rider's charge and its outbox item. REQUIRES: txn active.
  Status record_rider_charge(Transaction& txn, LaneState& ls, TaxiCharge& c,
                             std::string_view decision, std::string_view reason, bool offline) {
    TxRecord tx;
    tx.out_trade_no = c.out_trade_no;
    tx.kind = TxKind::kTaxi;
    tx.lane = ls.cfg.id;
    tx.plate = c.trip.plate;
    tx.amount = c.trip.fare;
    tx.state = ChargeState::kRecorded;
    tx.decision = std::string(decision);
    tx.decision_reason = std::string(reason);
    tx.offline = offline;
    tx.contract_id = c.token.token;
    tx.payment_method = "rider";
    tx.trip_number = c.trip.trip_number;
    json::object detail = trip_detail(c.trip);
    detail["reader"] = c.token.reader;
    tx.detail = json::serialize(detail);
    auto id = store.insert_transaction(txn, tx);
    if (!id) return std::unexpected(id.error());
    auto q =
        outbox.enqueue(txn, kTopicCharge, "trade:" + c.out_trade_no, "charge:" + c.out_trade_no,
                       json::serialize(rider_charge_payload(ls, c)));
    if (!q) return std::unexpected(q.error());
    c.recorded = true;
    return {};
  }

  // Whether the ride counts as paid by the rider's account (no barrier: the outcome is
  // what the driver's display says and how the trip is recorded).
  void taxi_decide(const std::string& lane_id, const std::shared_ptr<TaxiCharge>& c,
                   OnlineOutcome online, bool queue_full = false) {
    LaneState* lsp = lane_of(lane_id);
    if (lsp == nullptr) return;
    LaneState& ls = *lsp;
    const std::string key = rider_binding_key(c->token.token);
    DecisionInput in;
    in.fee = c->trip.fare;
    in.online = online;
    in.now = clock.now();
    in.queue_accepting = !queue_full;
    if (auto b = store.get_binding(key); b) in.binding = to_cached(*b);
    if (auto o = store.plate_outstanding(c->trip.plate); o) in.plate_outstanding = *o;
    if (auto e = store.site_exposure(); e) in.site_exposure = *e;
    Decision d = decide(in, cfg.offline);
    const bool offline = d.kind == DecisionKind::kPassOffline;
    auto body = [&](Transaction& txn) -> Status {
      if (!c->recorded && d.opens_barrier()) {
        if (auto r = record_rider_charge(txn, ls, *c, to_string(d.kind), d.reason, offline); !r)
          return r;
      } else if (c->recorded) {
        if (auto r = store.set_decision(txn, c->out_trade_no, to_string(d.kind), d.reason, offline);
            !r)
          return r;
      }
      if (online == OnlineOutcome::kAccepted || online == OnlineOutcome::kRefused) {
        // What the provider said about this account, for the next offline ride.
        if (auto r = store.put_binding(
                txn, key, online == OnlineOutcome::kAccepted ? "NORMAL" : "BLOCKED", clock.now());
            !r) {
          return r;
        }
      }
      json::object detail = trip_detail(c->trip);
      detail["reason"] = d.reason;
      detail["latency_us"] =
          std::chrono::duration_cast<std::chrono::microseconds>(clock.steady_now() - c->started)
              .count();
      if (!d.opens_barrier()) {
        // The account did not pay: the driver collects per the meter, recorded as such.
        const std::string cash_no = c->recorded ? c->out_trade_no + "C" : c->out_trade_no;
        if (auto r = insert_meter_paid(txn, ls.cfg.id, c->trip, cash_no, "rider_" + d.reason); !r)
          return r;
      }
      return append_ledger(txn, ledger::Kind::kDecision, ls.cfg.id, c->trip.plate,
                           c->recorded ? c->out_trade_no : "", c->trip.fare,
                           std::string(to_string(d.kind)), "system", detail);
    };
    auto s = commit(body);
    if (!s && s.error().code == Errc::kQueueFull) {
      d = Decision{DecisionKind::kFallback, "queue_full"};
      s = commit(body);
    }
    if (!s) {
      log::error("taxi decision not recorded; the meter will retransmit the trip",
                 {{"LANE", ls.cfg.id}, {"ERROR", s.error().message}});
      display(ls, "系统故障 请收现金");
      return taxi_next(ls);
    }
    decisions_counter(ls.cfg.id, to_string(d.kind)).inc();
    const char* method = d.opens_barrier() ? "rider" : meter_method(c->trip.payment_type);
    metrics::Registry::global()
        .counter("lanegate_taxi_trips_total", "Taxi trips recorded", {{"payment", method}})
        .inc();
    ls.last_decision = std::string("trip rider ") + std::string(to_string(d.kind));
    ls.last_plate = c->trip.plate;
    log::info("taxi rider decision", {{"LANE", ls.cfg.id},
                                      {"TRIP", static_cast<std::int64_t>(c->trip.trip_number)},
                                      {"DECISION", to_string(d.kind)},
                                      {"REASON", d.reason},
                                      {"FARE", c->trip.fare.to_string()}});
    const std::string fare = c->trip.fare.to_string();
    if (d.kind == DecisionKind::kPassOnline) {
      display(ls, "乘客账户已支付 " + fare + "元");
    } else if (d.kind == DecisionKind::kPassOffline) {
      display(ls, "乘客账户支付 " + fare + "元 稍后扣款");
    } else {
      display(ls, "账户未支付 请收现金或扫码 " + fare + "元");
    }
    taxi_ack(ls, c->trip);
    taxi_next(ls);
  }

  // A trip paid outside lanegate (cash, card, QR per the meter). REQUIRES: txn active.
  Status insert_meter_paid(Transaction& txn, const std::string& lane_id,
                           const lane::TripRecord& trip, const std::string& out_trade_no,
                           const std::string& reason) {
    const char* method = meter_method(trip.payment_type);
    TxRecord tx;
    tx.out_trade_no = out_trade_no;
    tx.kind = TxKind::kTaxi;
    tx.lane = lane_id;
    tx.plate = trip.plate;
    tx.amount = trip.fare;
    tx.state = ChargeState::kCash;
    tx.decision = "free";
    tx.decision_reason = reason;
    tx.payment_method = method;
    tx.trip_number = trip.trip_number;
    const json::object detail = trip_detail(trip);
    tx.detail = json::serialize(detail);
    auto id = store.insert_transaction(txn, tx);
    if (!id) return std::unexpected(id.error());
    return append_ledger(txn, ledger::Kind::kChargeSettled, lane_id, trip.plate, out_trade_no,
                         trip.fare, "CASH", "meter:" + trip.meter, detail);
  }

  void taxi_record_at_meter(LaneState* ls, const lane::TripRecord& trip,
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
      const char* method = meter_method(trip.payment_type);
      metrics::Registry::global()
          .counter("lanegate_taxi_trips_total", "Taxi trips recorded", {{"payment", method}})
          .inc();
      if (ls) {
        ls->last_plate = trip.plate;
        ls->last_decision = std::string("trip ") + method;
      }
    }
    if (auto a = actuator.ack_trip(trip.meter, trip.trip_number, trip.boarding); !a) {
      log::warn("trip acknowledgement not sent",
                {{"METER", trip.meter}, {"ERROR", a.error().message}});
    }
  }

  void taxi_ack(LaneState&, const lane::TripRecord& trip) {
    if (auto a = actuator.ack_trip(trip.meter, trip.trip_number, trip.boarding); !a) {
      log::warn("trip acknowledgement not sent",
                {{"METER", trip.meter}, {"ERROR", a.error().message}});
    }
  }

  void taxi_next(LaneState& ls) {
    ls.busy = false;
    ls.phase = "IDLE";
    if (ls.waiting_trips.empty()) return;
    lane::TripRecord trip = std::move(ls.waiting_trips.front());
    ls.waiting_trips.pop_front();
    asio::post(io, [this, alive = std::weak_ptr<bool>(alive), trip] {
      if (alive.expired()) return;
      taxi_trip(trip);
    });
  }

  // ---------------- manual open ----------------

  Result<std::int64_t> manual_open(std::string_view lane_id, std::string_view actor,
                                   std::string_view reason) {
    LaneState* ls = lane_of(lane_id);
    if (ls == nullptr)
      return fail(Errc::kNotFound, "no lane '" + std::string(lane_id) + "'", "lane");
    if (ls->cfg.barrier.empty()) {
      return fail(Errc::kInvalidArgument, "lane '" + std::string(lane_id) + "' has no barrier",
                  "lane");
    }
    if (reason.empty()) return fail(Errc::kInvalidArgument, "a reason is required", "reason");
    std::int64_t passage = 0;
    auto s = commit([&](Transaction& txn) -> Status {
      auto id = store.record_manual_open(txn, lane_id, actor, reason);
      if (!id) return std::unexpected(id.error());
      auto pid = store.insert_passage(txn, lane_id, "", "manual", std::string(reason), "", 0);
      if (!pid) return std::unexpected(pid.error());
      passage = *pid;
      return append_ledger(txn, ledger::Kind::kManualOpen, std::string(lane_id), "", "",
                           Money::zero(), "OPENED", "operator:" + std::string(actor),
                           json::object{{"reason", reason}});
    });
    if (!s) return std::unexpected(s.error());
    log::notice("barrier opened by hand", {{"LANE", std::string(lane_id)},
                                           {"ACTOR", std::string(actor)},
                                           {"REASON", std::string(reason)}});
    open(*ls, passage);
    return passage;
  }

  std::string lanes_json() const {
    json::array out;
    for (const auto& [id, ls] : lanes) {
      out.push_back(json::object{{"id", id},
                                 {"mode", config::to_string(ls.cfg.mode)},
                                 {"phase", ls.phase},
                                 {"busy", ls.busy},
                                 {"waiting", ls.waiting.size()},
                                 {"last_plate", ls.last_plate},
                                 {"last_decision", ls.last_decision}});
    }
    return json::serialize(out);
  }
};

Site::Site(asio::io_context& io, const config::Config& config, Store& store, queue::Outbox& outbox,
           const Clock& clock, LaneActuator& actuator, ChargeGate& gate)
    : impl_(std::make_unique<Impl>(io, config, store, outbox, clock, actuator, gate)) {}

Site::~Site() = default;

void Site::on_event(const lane::LaneEvent& event) { impl_->on_event(event); }

Result<std::int64_t> Site::manual_open(std::string_view lane_id, std::string_view actor,
                                       std::string_view reason) {
  return impl_->manual_open(lane_id, actor, reason);
}

bool Site::attendant_mode() const { return impl_->attendant; }
std::string Site::lanes_json() const { return impl_->lanes_json(); }

void Site::set_config(const config::Config& config) {
  impl_->cfg = config;
  for (const auto& l : config.lanes) {
    if (auto* ls = impl_->lane_of(l.id)) ls->cfg = l;
  }
}

}  // namespace lanegate::gateway
