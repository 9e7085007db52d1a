// Site: events, the one decide-and-commit step shared by every lane mode, manual opens
// and status. The modes live in site_parking.cc, site_toll.cc and site_taxi.cc.
#include "gateway/site.h"

#include <boost/asio/post.hpp>

#include "core/crypto.h"
#include "core/log.h"
#include "core/time_format.h"
#include "lane/plate.h"
#include "site_impl.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using std::chrono::milliseconds;

// Recent lane events kept for the status API, per lane.
constexpr std::size_t kLaneEventsKept = 32;

std::string sanitize_prefix(std::string_view id, std::size_t max) {
  std::string out;
  for (char c : id) {
    if (std::isalnum(static_cast<unsigned char>(c)) && out.size() < max) {
      out.push_back(c);
    }
  }
  return out.empty() ? "LG" : out;
}

bool storage_failure(Errc c) {
  return c == Errc::kDiskFull || c == Errc::kIo || c == Errc::kDatabase || c == Errc::kBusy ||
         c == Errc::kPermission;
}

}  // namespace

std::int64_t unix_ms(SystemTime t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

metrics::Counter& decisions_counter(std::string_view lane, std::string_view decision) {
  return metrics::Registry::global().counter(
      "lanegate_decisions_total", "Pass decisions by lane and outcome",
      {{"lane", std::string(lane)}, {"decision", std::string(decision)}});
}

std::string_view to_string(LanePhase p) {
  switch (p) {
    case LanePhase::kIdle:
      return "IDLE";
    case LanePhase::kDecided:
      return "DECIDED";
    case LanePhase::kOpened:
      return "OPENED";
    case LanePhase::kPassed:
      return "PASSED";
    case LanePhase::kAlarm:
      return "ALARM";
    case LanePhase::kTripAwaitingPayment:
      return "TRIP_AWAITING_PAYMENT";
  }
  return "?";
}

Result<std::string> new_out_trade_no(std::string_view gateway_id, char kind) {
  auto rnd = crypto::random_token(16);
  if (!rnd) {
    return std::unexpected(rnd.error());
  }
  return sanitize_prefix(gateway_id, 11) + std::string(1, kind) + "_" + *rnd;
}

Site::Impl::Impl(asio::io_context& i, const config::Config& c, Store& s, queue::Outbox& o,
                 const Clock& cl, LaneActuator& a, ChargeGate& g)
    : io(i),
      cfg(c),
      store(s),
      outbox(o),
      clock(cl),
      actuator(a),
      gate(g),
      book(s, o, cl, MerchantIds{c.provider.caller_mchid(), c.provider.sub_mchid}) {
  for (const auto& l : cfg.lanes) {
    LaneState st;
    st.cfg = l;
    st.toll_timer = std::make_unique<asio::steady_timer>(io);
    st.trip_timer = std::make_unique<asio::steady_timer>(io);
    st.no_plate_timer = std::make_unique<asio::steady_timer>(io);
    lanes.emplace(l.id, std::move(st));
  }
}

Site::Impl::LaneState* Site::Impl::lane_of(std::string_view id) {
  auto it = lanes.find(id);
  return it == lanes.end() ? nullptr : &it->second;
}

void Site::Impl::display(const LaneState& ls, const std::string& text) {
  if (ls.cfg.display.empty()) {
    return;
  }
  if (auto s = actuator.show_text(ls.cfg.display, text); !s) {
    log::warn("display text not queued", {{"LANE", ls.cfg.id}, {"ERROR", s.error().message}});
  }
}

void Site::Impl::set_attendant(bool on, const std::string& why) {
  if (attendant == on) {
    return;
  }
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
    for (auto& [id, ls] : lanes) {
      display(ls, "系统维护 请联系管理员");
    }
  } else {
    log::notice("database commits again: attendant mode ended");
    gate.kick();  // what waited on the database goes upstream now
  }
}

Status Site::Impl::commit(const std::function<Status(Transaction&)>& work) {
  auto txn = store.db().begin();
  if (!txn) {
    set_attendant(true, txn.error().message);
    return std::unexpected(txn.error());
  }
  if (auto s = work(*txn); !s) {
    txn->rollback();
    if (storage_failure(s.error().code)) {
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

Status Site::Impl::append_ledger(Transaction& txn, ledger::Kind kind, const std::string& lane,
                                 const std::string& plate, const std::string& out_trade_no,
                                 Money amount, std::string state, std::string actor,
                                 const json::object& detail) {
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
  if (!r) {
    return std::unexpected(r.error());
  }
  return {};
}

void Site::Impl::lane_event(LaneState& ls, std::string_view kind, json::object detail) {
  detail["event"] = kind;
  detail["time"] = format_rfc3339(clock.now(), offset());
  ls.events.push_back(std::move(detail));
  while (ls.events.size() > kLaneEventsKept) {
    ls.events.pop_front();
  }
}

// ---------------- events ----------------

void Site::Impl::on_event(const lane::LaneEvent& event) {
  std::visit([this](const auto& e) { handle(e); }, event);
}

void Site::Impl::handle(const lane::PlateRead& read) {
  LaneState* ls = lane_of(read.lane);
  if (ls == nullptr) {
    log::warn("plate read from a camera bound to no lane", {{"DEVICE", read.device}});
    return;
  }
  if (read.entered_by.empty()) {
    read_arrived(*ls, read.device);
  }
  if (read.resent && ls->cfg.mode != config::LaneMode::kParkingEntry) {
    return resent_record(*ls, read);
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
      return toll_plate(*ls, read);
    case config::LaneMode::kTaxi:
      return;
  }
}

void Site::Impl::handle(const lane::RoadsideRecord& rec) {
  LaneState* ls = lane_of(rec.lane);
  if (ls == nullptr || ls->cfg.mode != config::LaneMode::kTollExit) {
    return;
  }
  toll_record(*ls, rec);
}

void Site::Impl::handle(const lane::VehiclePresent& v) {
  LaneState* ls = lane_of(v.lane);
  if (ls == nullptr) {
    return;
  }
  if (v.present && !ls->present && ls->cfg.mode != config::LaneMode::kTaxi &&
      ls->cfg.no_plate_after_ms > 0 && !ls->cfg.camera.empty()) {
    // A vehicle arrived: it gets a plate read within no_plate_after_ms or an attendant.
    ls->read_seen = false;
    ls->no_plate_timer->expires_after(milliseconds(ls->cfg.no_plate_after_ms));
    ls->no_plate_timer->async_wait([this, alive = std::weak_ptr<bool>(alive),
                                    lane_id = ls->cfg.id](const boost::system::error_code& ec) {
      if (ec || alive.expired()) {
        return;
      }
      LaneState* l = lane_of(lane_id);
      if (l == nullptr || !l->present || l->read_seen || l->no_plate) {
        return;
      }
      if (camera_feedback) {
        camera_feedback(l->cfg.camera, true);
      }
      no_plate(*l, NoPlate{"no_read", l->cfg.camera, 0, {}, clock.now()});
    });
  }
  if (!v.present) {
    ls->no_plate_timer->cancel();
    if (ls->no_plate) {
      lane_event(*ls, "no_plate_left", json::object{{"reason", ls->no_plate->reason}});
      ls->no_plate.reset();
    }
  }
  ls->present = v.present;
  if (!v.present && ls->phase == LanePhase::kOpened) {
    passed(*ls);
  }
}

void Site::Impl::read_arrived(LaneState& ls, std::string_view device) {
  ls.read_seen = true;
  ls.no_plate_timer->cancel();
  if (camera_feedback && !device.empty()) {
    camera_feedback(device, false);
  }
}

void Site::Impl::handle(const lane::NoPlateRead& np) {
  LaneState* ls = lane_of(np.lane);
  if (ls == nullptr || ls->cfg.mode == config::LaneMode::kTaxi) {
    return;
  }
  read_arrived(*ls, np.device);
  no_plate(*ls, NoPlate{np.reason, np.device, np.camera_event, np.images, np.received_at});
}

void Site::Impl::no_plate(LaneState& ls, NoPlate np) {
  metrics::Registry::global()
      .counter("lanegate_no_plate_total",
               "Vehicles at a lane with no plate lanegate can charge, by reason",
               {{"lane", ls.cfg.id}, {"reason", np.reason}})
      .inc();
  log::notice("vehicle without a usable plate: attendant needed",
              {{"LANE", ls.cfg.id}, {"REASON", np.reason}, {"DEVICE", np.device}});
  lane_event(ls, "no_plate",
             json::object{{"reason", np.reason},
                          {"camera_event", np.camera_event},
                          {"images", static_cast<std::int64_t>(np.images.size())}});
  display(ls, "未识别车牌 请稍候 工作人员将为您处理");
  ls.no_plate = std::move(np);
}

void Site::Impl::resent_record(LaneState& ls, const lane::PlateRead& read) {
  // The camera stored it while lanegate could not hear it: the vehicle is gone. Recorded
  // for the operator and the audit; nothing opens and nothing is charged.
  auto s = commit([&](Transaction& txn) -> Status {
    auto pid = store.insert_passage(txn, ls.cfg.id, read.plate, "recorded", "resent_offline", "", 0);
    if (!pid) {
      return std::unexpected(pid.error());
    }
    if (auto r = passage_evidence(txn, *pid, read.camera_event, read.images, "", ""); !r) {
      return r;
    }
    json::object detail{{"reason", "resent_offline"},
                        {"device_time_ms", unix_ms(read.device_time)},
                        {"camera_event", read.camera_event}};
    return append_ledger(txn, ledger::Kind::kDecision, ls.cfg.id, read.plate, "", Money::zero(),
                         "recorded", "system", detail);
  });
  if (!s) {
    log::error("resent camera record not recorded",
               {{"LANE", ls.cfg.id}, {"ERROR", s.error().message}});
    return;
  }
  metrics::Registry::global()
      .counter("lanegate_resent_records_total",
               "Camera records resent after the camera was offline: recorded, never opened",
               {{"lane", ls.cfg.id}})
      .inc();
  lane_event(ls, "resent_record",
             json::object{{"plate", log::mask_plate(read.plate)},
                          {"device_time", format_rfc3339(read.device_time, offset())}});
}

Status Site::Impl::passage_evidence(Transaction& txn, std::int64_t passage,
                                    std::int64_t camera_event,
                                    const std::vector<lane::ImageRef>& images,
                                    const std::string& entered_by,
                                    const std::string& entered_reason) {
  if (camera_event == 0 && images.empty() && entered_by.empty()) {
    return {};
  }
  json::array list;
  for (const auto& i : images) {
    list.push_back(json::object{{"kind", i.kind}, {"sha256", i.sha256}, {"bytes", i.bytes}});
  }
  return store.set_passage_evidence(txn, passage, camera_event, json::serialize(list), entered_by,
                                    entered_reason);
}

void Site::Impl::handle(const lane::BarrierState& b) {
  LaneState* ls = lane_of(b.lane);
  if (ls == nullptr) {
    return;
  }
  if (b.command_id != 0 && b.command_id == ls->barrier_command) {
    if (b.command_result == lane::BarrierState::CommandResult::kConfirmed) {
      ls->phase = LanePhase::kOpened;
      if (ls->passage_id != 0) {
        (void)store.set_passage_state(ls->passage_id, "OPENED");
      }
    } else if (b.command_result == lane::BarrierState::CommandResult::kAlarm ||
               b.command_result == lane::BarrierState::CommandResult::kFailed) {
      ls->phase = LanePhase::kAlarm;
      if (ls->passage_id != 0) {
        (void)store.set_passage_state(ls->passage_id, "ALARM");
      }
      metrics::Registry::global()
          .counter("lanegate_barrier_alarms_total", "Barrier opens that were not confirmed",
                   {{"lane", ls->cfg.id}})
          .inc();
      log::error("barrier did not confirm the open command",
                 {{"LANE", ls->cfg.id}, {"DEVICE", b.device}, {"DETAIL", b.detail}});
      display(*ls, "道闸故障 请联系管理员");
    }
  } else if (b.position == lane::BarrierState::Position::kClosed &&
             ls->phase == LanePhase::kOpened && ls->cfg.loop.empty()) {
    passed(*ls);
  }
}

void Site::Impl::handle(const lane::TripRecord& trip) { taxi_trip(trip); }
void Site::Impl::handle(const lane::PaymentCode& code) { taxi_token(code); }
void Site::Impl::handle(const lane::TripStarted& started) { taxi_started(started); }

void Site::Impl::passed(LaneState& ls) {
  ls.phase = LanePhase::kPassed;
  if (ls.passage_id != 0) {
    (void)store.set_passage_state(ls.passage_id, "PASSED");
  }
}

void Site::Impl::open(LaneState& ls, std::int64_t passage_id) {
  ls.passage_id = passage_id;
  ls.phase = LanePhase::kDecided;
  if (ls.cfg.barrier.empty()) {
    return;
  }
  auto cmd = actuator.open_barrier(ls.cfg.barrier);
  if (!cmd) {
    log::error("barrier command not queued", {{"LANE", ls.cfg.id}, {"ERROR", cmd.error().message}});
    return;
  }
  ls.barrier_command = *cmd;
}

void Site::Impl::next(LaneState& ls) {
  ls.busy = false;
  if (ls.cfg.mode == config::LaneMode::kTollExit) {
    return toll_next(ls);
  }
  if (ls.waiting.empty()) {
    return;
  }
  lane::PlateRead read = ls.waiting.front();
  ls.waiting.pop_front();
  asio::post(io, [this, alive = std::weak_ptr<bool>(alive), read] {
    if (alive.expired()) {
      return;
    }
    handle(read);
  });
}

// ---------------- the charge and the decision (every mode) ----------------

void Site::Impl::charge(LaneState& ls, std::shared_ptr<Pending> p) {
  if (p->order.amount.is_zero()) {
    return decide_and_commit(ls.cfg.id, p, OnlineOutcome::kNotTried);
  }
  if (p->order.amount > cfg.provider.max_charge) {
    // Never sent without an operator: a fee this large is a clock or tariff fault until an
    // attendant says otherwise.
    log::warn("charge above the provider ceiling: attendant needed",
              {{"LANE", ls.cfg.id},
               {"FEE", p->order.amount.to_string()},
               {"CEILING", cfg.provider.max_charge.to_string()}});
    lane_event(ls, "over_charge_ceiling",
               json::object{{"fee_fen", p->order.amount.fen()},
                            {"plate", log::mask_plate(p->order.plate)}});
    p->preset = Decision{DecisionKind::kFallback, "over_charge_ceiling"};
    return decide_and_commit(ls.cfg.id, p, OnlineOutcome::kNotTried);
  }
  const char kind = p->order.kind == TxKind::kToll ? 'H' : 'P';
  if (p->order.out_trade_no.empty()) {
    auto out = new_out_trade_no(cfg.gateway.id, kind);
    if (!out) {
      p->preset = Decision{DecisionKind::kFallback, "internal_error"};
      return decide_and_commit(ls.cfg.id, p, OnlineOutcome::kNotTried);
    }
    p->order.out_trade_no = *out;
  }
  if (!gate.link_up()) {
    return decide_and_commit(ls.cfg.id, p, OnlineOutcome::kNotTried);
  }
  // Online: commit the charge and its outbox item, then let the uplink send it while the
  // lane waits for the answer up to the deadline.
  bool queue_full = false;
  auto s = commit([&](Transaction& txn) -> Status {
    if (p->before_record) {
      if (auto r = p->before_record(txn, p->order); !r) {
        return r;
      }
    }
    auto r = book.record(txn, p->order, std::nullopt, "", false, p->payment_method,
                         json::serialize(p->detail));
    if (!r && r.error().code == Errc::kQueueFull) {
      queue_full = true;
    }
    return r;
  });
  if (!s) {
    return decide_and_commit(ls.cfg.id, p, OnlineOutcome::kNotTried, queue_full);
  }
  p->recorded = true;
  await_recorded(ls, std::move(p));
}

void Site::Impl::await_recorded(LaneState& ls, std::shared_ptr<Pending> p) {
  // The uplink sends an undecided charge only while a lane waits for it (charge.h
  // invariant 7): register the wait before the drain runs.
  const std::string out = p->order.out_trade_no;
  gate.await_charge(
      out, milliseconds(cfg.provider.charge_deadline_ms),
      [this, alive = std::weak_ptr<bool>(alive), lane_id = ls.cfg.id, p](OnlineOutcome o) {
        if (alive.expired()) {
          return;
        }
        decide_and_commit(lane_id, p, o);
      });
  gate.kick();
}

void Site::Impl::decide_and_commit(const std::string& lane_id, const std::shared_ptr<Pending>& p,
                                   OnlineOutcome online, bool queue_full) {
  LaneState* lsp = lane_of(lane_id);
  if (lsp == nullptr) {
    return;
  }
  LaneState& ls = *lsp;
  DecisionInput in;
  in.fee = p->order.amount;
  in.online = online;
  in.now = clock.now();
  in.queue_accepting = !queue_full;
  if (auto b = store.get_binding(p->binding_key); b) {
    in.binding = *b;
  }
  auto outstanding = store.plate_outstanding(p->order.plate);
  auto exposure = store.site_exposure();
  in.exposure_known = outstanding.has_value() && exposure.has_value();
  if (in.exposure_known) {
    in.plate_outstanding = *outstanding;
    in.site_exposure = *exposure;
  }
  Decision d = p->preset ? *p->preset : decide(in, cfg.offline);
  std::int64_t passage = 0;
  auto body = [&](Transaction& txn) -> Status {
    const bool offline = d.kind == DecisionKind::kPassOffline;
    // A passing decision records the charge now unless it was recorded before it.
    const bool record_now = d.kind != DecisionKind::kFree && !p->recorded && d.opens_barrier() &&
                            !p->order.out_trade_no.empty();
    if (record_now) {
      if (p->before_record) {
        if (auto r = p->before_record(txn, p->order); !r) {
          return r;
        }
      }
      if (auto r = book.record(txn, p->order, d.kind, d.reason, offline, p->payment_method,
                               json::serialize(p->detail));
          !r) {
        return r;
      }
    } else if (p->recorded) {
      if (auto r = store.set_decision(txn, p->order.out_trade_no, d.kind, d.reason, offline); !r) {
        return r;
      }
    }
    if (p->learn_binding &&
        (online == OnlineOutcome::kAccepted || online == OnlineOutcome::kRefused)) {
      // What the provider said about this account, for its next offline ride.
      const BindingState learned =
          online == OnlineOutcome::kAccepted ? BindingState::kNormal : BindingState::kBlocked;
      if (auto r = store.put_binding(txn, p->binding_key, learned, clock.now()); !r) {
        return r;
      }
    }
    if (p->in_commit) {
      if (auto r = p->in_commit(txn, d); !r) {
        return r;
      }
    }
    const auto latency =
        std::chrono::duration_cast<std::chrono::microseconds>(clock.steady_now() - p->started)
            .count();
    const std::string out = p->recorded || record_now ? p->order.out_trade_no : std::string();
    if (p->passage) {
      auto pid = store.insert_passage(txn, ls.cfg.id, p->order.plate, to_string(d.kind), d.reason,
                                      out, latency);
      if (!pid) {
        return std::unexpected(pid.error());
      }
      passage = *pid;
      if (auto r = passage_evidence(txn, passage, p->camera_event, p->images, p->entered_by,
                                   p->entered_reason); !r) {
        return r;
      }
    }
    json::object detail = p->detail;
    detail["reason"] = d.reason;
    detail["latency_us"] = latency;
    return append_ledger(txn, ledger::Kind::kDecision, ls.cfg.id, p->order.plate, out,
                         p->order.amount, std::string(to_string(d.kind)), "system", detail);
  };
  auto s = commit(body);
  if (!s && s.error().code == Errc::kQueueFull) {
    // The outbox refused the offline charge: no offline pass.
    d = Decision{DecisionKind::kFallback, "queue_full"};
    s = commit(body);
  }
  if (!s) {
    log::error("decision not recorded; nothing opens or counts as paid",
               {{"LANE", ls.cfg.id},
                {"PLATE", log::mask_plate(p->order.plate)},
                {"ERROR", s.error().message}});
    if (p->not_decided) {
      p->not_decided();
    }
    return;
  }
  decisions_counter(ls.cfg.id, to_string(d.kind)).inc();
  log::info("decision", {{"LANE", ls.cfg.id},
                         {"PLATE", log::mask_plate(p->order.plate)},
                         {"DECISION", to_string(d.kind)},
                         {"REASON", d.reason},
                         {"FEE", p->order.amount.to_string()}});
  if (p->after) {
    p->after(d, passage);
  }
}

void Site::Impl::barrier_actions(LaneState& ls, const lane::PlateRead& read, Pending& p) {
  p.camera_event = read.camera_event;
  p.images = read.images;
  p.entered_by = read.entered_by;
  p.entered_reason = read.entered_reason;
  if (read.camera_event != 0) {
    p.detail["camera_event"] = read.camera_event;
  }
  if (!read.images.empty()) {
    json::array list;
    for (const auto& i : read.images) {
      list.push_back(json::object{{"kind", i.kind}, {"sha256", i.sha256}});
    }
    p.detail["images"] = std::move(list);
  }
  if (!read.entered_by.empty()) {
    p.detail["entered_by"] = read.entered_by;
    p.detail["entered_reason"] = read.entered_reason;
  }
  // Raw pointer: the step that calls `after` holds the Pending alive (no cycle).
  p.after = [this, lane_id = ls.cfg.id, read, pr = &p](const Decision& d, std::int64_t passage) {
    if (LaneState* l = lane_of(lane_id)) {
      barrier_after(*l, read, d, pr->order.amount, passage);
    }
  };
  p.not_decided = [this, lane_id = ls.cfg.id] {
    if (LaneState* l = lane_of(lane_id)) {
      display(*l, "请联系管理员");
      next(*l);
    }
  };
}

void Site::Impl::barrier_after(LaneState& ls, const lane::PlateRead& read, const Decision& d,
                               Money fee, std::int64_t passage_id) {
  ls.last_decision = std::string(to_string(d.kind));
  if (read.on_decided) {
    (*read.on_decided)(d.opens_barrier());
  }
  ls.no_plate.reset();
  if (d.opens_barrier()) {
    open(ls, passage_id);
    display(ls, read.plate + " " + fee.to_string() + "元 一路顺风");
  } else {
    ls.phase = LanePhase::kIdle;
    display(ls, read.plate + " " + fee.to_string() + "元 请扫码缴费或联系管理员");
  }
  next(ls);
}

void Site::Impl::fallback_now(LaneState& ls, const lane::PlateRead& read, std::string_view reason,
                              Money fee) {
  auto s = commit([&](Transaction& txn) -> Status {
    const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(clock.steady_now() -
                                                                               read.received_steady)
                             .count();
    auto pid = store.insert_passage(txn, ls.cfg.id, read.plate, "fallback", reason, "", latency);
    if (!pid) {
      return std::unexpected(pid.error());
    }
    if (auto r = passage_evidence(txn, *pid, read.camera_event, read.images, read.entered_by,
                                   read.entered_reason); !r) {
      return r;
    }
    return append_ledger(txn, ledger::Kind::kDecision, ls.cfg.id, read.plate, "", fee, "fallback",
                         "system", json::object{{"reason", reason}});
  });
  (void)s;
  if (read.on_decided) {
    (*read.on_decided)(false);
  }
  decisions_counter(ls.cfg.id, "fallback").inc();
  ls.last_decision = "fallback";
  ls.phase = LanePhase::kIdle;
  log::info("decision", {{"LANE", ls.cfg.id},
                         {"PLATE", log::mask_plate(read.plate)},
                         {"DECISION", "fallback"},
                         {"REASON", reason}});
  display(ls, read.plate + " 请联系管理员");
  next(ls);
}

// ---------------- manual open ----------------

Result<std::int64_t> Site::Impl::manual_open(std::string_view lane_id, std::string_view actor,
                                             std::string_view reason) {
  LaneState* ls = lane_of(lane_id);
  if (ls == nullptr) {
    return fail(Errc::kNotFound, "no lane '" + std::string(lane_id) + "'", "lane");
  }
  if (ls->cfg.barrier.empty()) {
    return fail(Errc::kInvalidArgument, "lane '" + std::string(lane_id) + "' has no barrier",
                "lane");
  }
  if (reason.empty()) {
    return fail(Errc::kInvalidArgument, "a reason is required", "reason");
  }
  std::int64_t passage = 0;
  auto s = commit([&](Transaction& txn) -> Status {
    auto id = store.record_manual_open(txn, lane_id, actor, reason);
    if (!id) {
      return std::unexpected(id.error());
    }
    auto pid = store.insert_passage(txn, lane_id, "", "manual", std::string(reason), "", 0);
    if (!pid) {
      return std::unexpected(pid.error());
    }
    passage = *pid;
    if (ls->no_plate) {
      // The vehicle without a plate the attendant let through: its camera evidence.
      if (auto r = passage_evidence(txn, passage, ls->no_plate->camera_event,
                                    ls->no_plate->images, std::string(actor), std::string(reason));
          !r) {
        return r;
      }
    }
    return append_ledger(txn, ledger::Kind::kManualOpen, std::string(lane_id), "", "",
                         Money::zero(), "OPENED", "operator:" + std::string(actor),
                         json::object{{"reason", reason}});
  });
  if (!s) {
    return std::unexpected(s.error());
  }
  log::notice("barrier opened by hand", {{"LANE", std::string(lane_id)},
                                         {"ACTOR", std::string(actor)},
                                         {"REASON", std::string(reason)}});
  ls->no_plate.reset();
  open(*ls, passage);
  return passage;
}

Status Site::Impl::enter_plate(std::string_view lane_id, std::string_view plate,
                                             std::optional<lane::PlateColour> colour,
                                             std::string_view actor, std::string_view reason) {
  LaneState* ls = lane_of(lane_id);
  if (ls == nullptr) {
    return fail(Errc::kNotFound, "no lane '" + std::string(lane_id) + "'", "lane");
  }
  if (ls->cfg.mode == config::LaneMode::kTaxi) {
    return fail(Errc::kInvalidArgument, "a taxi lane takes no plates", "lane");
  }
  if (reason.empty()) {
    return fail(Errc::kInvalidArgument, "a reason is required", "reason");
  }
  auto info = lane::classify_plate(plate, colour, cfg.plates);
  if (!info) {
    return fail(Errc::kInvalidArgument,
                "the plate breaks the rule " + std::string(lane::reject_name(info.error().reason)) +
                    ": " + info.error().detail + " (open by hand with a reason instead)",
                "plate");
  }
  lane::PlateRead read;
  read.lane = ls->cfg.id;
  read.device = "attendant";
  read.plate = info->plate;
  read.colour = info->colour;
  read.device_time = clock.now();
  read.received_at = read.device_time;
  read.received_steady = clock.steady_now();
  read.entered_by = std::string(actor);
  read.entered_reason = std::string(reason);
  if (ls->no_plate) {
    read.camera_event = ls->no_plate->camera_event;
    read.images = ls->no_plate->images;
  }
  ls->no_plate.reset();
  ls->read_seen = true;
  ls->no_plate_timer->cancel();
  log::notice("plate entered by an attendant", {{"LANE", ls->cfg.id},
                                               {"ACTOR", std::string(actor)},
                                               {"PLATE", log::mask_plate(read.plate)},
                                               {"REASON", std::string(reason)}});
  lane_event(*ls, "plate_entered",
             json::object{{"by", actor}, {"plate", log::mask_plate(read.plate)}, {"reason", reason}});
  handle(read);
  return {};
}

std::string Site::Impl::lanes_json() const {
  json::array out;
  for (const auto& [id, ls] : lanes) {
    json::array events;
    for (const auto& e : ls.events) {
      events.push_back(e);
    }
    out.push_back(json::object{{"id", id},
                               {"mode", config::to_string(ls.cfg.mode)},
                               {"phase", to_string(ls.phase)},
                               {"busy", ls.busy},
                               {"waiting", ls.waiting.size() + ls.toll_work.size()},
                               {"last_plate", ls.last_plate},
                               {"last_decision", ls.last_decision},
                               {"no_plate", ls.no_plate
                                                ? json::value(json::object{
                                                      {"reason", ls.no_plate->reason},
                                                      {"since", format_rfc3339(ls.no_plate->since,
                                                                               offset())},
                                                      {"camera_event", ls.no_plate->camera_event}})
                                                : json::value(nullptr)},
                               {"events", std::move(events)}});
  }
  return json::serialize(out);
}

// ---------------- Site ----------------

Site::Site(asio::io_context& io, const config::Config& config, Store& store, queue::Outbox& outbox,
           const Clock& clock, LaneActuator& actuator, ChargeGate& gate)
    : impl_(std::make_unique<Impl>(io, config, store, outbox, clock, actuator, gate)) {}

Site::~Site() = default;

void Site::on_event(const lane::LaneEvent& event) { impl_->on_event(event); }

void Site::set_screen(ScreenBoard* board, ClaimLookup claims) {
  impl_->screens = board;
  impl_->claim_lookup = std::move(claims);
}

void Site::recover() { impl_->recover_trips(); }

void Site::pay_item(const queue::Item& item, std::function<void(queue::Outcome)> done) {
  impl_->pay_item(item, std::move(done));
}

Status Site::apply_payment(Transaction& txn, const Payment& payment, AnswerSource source) {
  auto s = impl_->apply_payment(txn, payment, source, nullptr);
  if (s) {
    // The lane and the screen follow once the caller's transaction committed.
    boost::asio::post(impl_->io, [impl = impl_.get(), alive = std::weak_ptr<bool>(impl_->alive),
                                  out = payment.out_trade_no] {
      if (alive.expired()) return;
      auto tx = impl->store.find_transaction(out);
      if (!tx || !*tx) return;
      const bool paid_trip = (*tx)->state == ChargeState::kSuccess && !(*tx)->fell_back();
      impl->after_payment(out, paid_trip);
    });
  }
  return s;
}

Result<std::int64_t> Site::manual_open(std::string_view lane_id, std::string_view actor,
                                       std::string_view reason) {
  return impl_->manual_open(lane_id, actor, reason);
}

Status Site::enter_plate(std::string_view lane_id, std::string_view plate,
                         std::optional<lane::PlateColour> colour, std::string_view actor,
                         std::string_view reason) {
  return impl_->enter_plate(lane_id, plate, colour, actor, reason);
}

void Site::set_camera_feedback(std::function<void(std::string_view, bool)> feedback) {
  impl_->camera_feedback = std::move(feedback);
}

bool Site::attendant_mode() const { return impl_->attendant; }
std::string Site::lanes_json() const { return impl_->lanes_json(); }

void Site::set_config(const config::Config& config) {
  impl_->cfg = config;
  for (const auto& l : config.lanes) {
    if (auto* ls = impl_->lane_of(l.id)) {
      ls->cfg = l;
    }
  }
}

}  // namespace lanegate::gateway
