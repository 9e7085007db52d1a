#include "modbus_bus.h"

#include <algorithm>

#include "core/log.h"
#include "lane/health.h"

namespace lanegate::lane {
namespace {

constexpr int kFirstReconnectMs = 100;

metrics::Counter& request_counter(const std::string& bus, std::string_view result) {
  return metrics::Registry::global().counter("lanegate_modbus_requests_total",
                                             "Modbus requests by bus and result",
                                             {{"bus", bus}, {"result", std::string(result)}});
}

}  // namespace

ModbusBus::ModbusBus(const config::BusSection& bus, std::unique_ptr<ModbusLink> link,
                     std::vector<std::unique_ptr<ModbusDevice>> devices,
                     const config::PlateRules& rules, EventSink& sink, const Clock& clock)
    : bus_(bus),
      link_(std::move(link)),
      devices_(std::move(devices)),
      rules_(rules),
      sink_(sink),
      clock_(clock) {
  auto& reg = metrics::Registry::global();
  for (auto& d : devices_) {
    device_health_gauge(d->cfg.id).set(0);
    if (d->cfg.kind == config::DeviceKind::kCamera) {
      d->plate_reads = &reg.counter("lanegate_plate_reads_total", "Plate reads delivered",
                                    {{"device", d->cfg.id}});
    }
  }
}

ModbusBus::~ModbusBus() { stop(); }

void ModbusBus::start() {
  const auto now = Steady::now();
  for (auto& d : devices_) {
    d->next_poll = now;
  }
  thread_ = std::thread([this] { run(); });
}

void ModbusBus::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

bool ModbusBus::has_device(std::string_view id) const { return find(id) != nullptr; }

ModbusDevice* ModbusBus::find(std::string_view id) const {
  for (const auto& d : devices_) {
    if (d->cfg.id == id) {
      return d.get();
    }
  }
  return nullptr;
}

void ModbusBus::enqueue(Command c) {
  {
    std::lock_guard lock(mu_);
    commands_.push_back(std::move(c));
  }
  cv_.notify_all();
}

void ModbusBus::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    if (!ensure_connected()) {
      lock.lock();
      // Backoff wait; a stop wakes us at once.
      cv_.wait_for(lock, std::chrono::milliseconds(reconnect_backoff_ms_),
                   [this] { return stopping_; });
      continue;
    }
    run_commands();
    auto now = Steady::now();
    for (auto& d : devices_) {
      if (!link_->connected()) {
        break;
      }
      if (d->next_poll <= now) {
        poll(*d);
        now = Steady::now();
      }
    }
    auto wake = Steady::now() + std::chrono::seconds(1);
    for (auto& d : devices_) {
      wake = std::min(wake, d->next_poll);
    }
    lock.lock();
    cv_.wait_until(lock, wake, [this] { return stopping_ || !commands_.empty(); });
  }
  lock.unlock();
  link_->close();
}

bool ModbusBus::ensure_connected() {
  if (link_->connected()) {
    return true;
  }
  auto st = link_->connect();
  if (st) {
    if (reconnect_backoff_ms_ > 0) {
      log::info("modbus bus connected", {{"BUS", bus_.id}});
    }
    reconnect_backoff_ms_ = 0;
    request_counter(bus_.id, "connect").inc();
    return true;
  }
  request_counter(bus_.id, "connect_failed").inc();
  if (reconnect_backoff_ms_ == 0) {
    log::warn("modbus bus connect failed", {{"BUS", bus_.id}, {"ERROR", st.error().message}});
  }
  for (auto& d : devices_) {
    failed(*d, st.error());
  }
  reconnect_backoff_ms_ = std::clamp(reconnect_backoff_ms_ * 2, kFirstReconnectMs,
                                     std::max(kFirstReconnectMs, bus_.reconnect_max_ms));
  return false;
}

void ModbusBus::after_io(const Status& st) {
  request_counter(bus_.id, st ? "ok" : errc_name(st.error().code)).inc();
  if (!st && link_->link_broken()) {
    log::warn("modbus link lost, reconnecting", {{"BUS", bus_.id}, {"ERROR", st.error().message}});
    link_->close();
  }
}

void ModbusBus::run_commands() {
  std::deque<Command> todo;
  {
    std::lock_guard lock(mu_);
    todo.swap(commands_);
  }
  for (auto& c : todo) {
    if (auto* open = std::get_if<OpenBarrier>(&c)) {
      ModbusDevice* d = find(open->device);
      if (d == nullptr) {
        continue;
      }
      if (d->pending_open) {
        // A newer request supersedes: report the old one as failed, never silently.
        BarrierState s;
        s.lane = d->lane;
        s.device = d->cfg.id;
        s.position = d->position;
        s.command_result = BarrierState::CommandResult::kFailed;
        s.command_id = d->pending_open->id;
        s.attempts = d->pending_open->attempts;
        s.detail = "superseded by a newer open request";
        s.received_at = clock_.now();
        sink_.post(std::move(s));
      }
      d->pending_open = ModbusDevice::PendingOpen{open->id, 0, {}};
      write_open(*d);
    } else if (auto* seen = std::get_if<VehicleSeen>(&c)) {
      if (ModbusDevice* d = find(seen->device); d != nullptr) {
        vehicle_seen(*d, seen->missed);
      }
    } else if (auto* text = std::get_if<ShowText>(&c)) {
      ModbusDevice* d = find(text->device);
      if (d == nullptr) {
        continue;
      }
      const auto& m = std::get<DisplayMap>(d->map);
      Status st;
      if (m.text_length + 1 == m.text) {
        std::vector<std::uint16_t> all;
        all.push_back(text->length);
        all.insert(all.end(), text->registers.begin(), text->registers.end());
        st = link_->write_registers(d->cfg.unit_id, m.text_length, all);
      } else {
        st = link_->write_registers(d->cfg.unit_id, m.text, text->registers);
        after_io(st);
        if (st) {
          const std::uint16_t len[1] = {text->length};
          st = link_->write_registers(d->cfg.unit_id, m.text_length, len);
        }
      }
      after_io(st);
      if (st) {
        succeeded(*d);
      } else {
        metrics::Registry::global()
            .counter("lanegate_display_write_failures_total", "Display writes that failed",
                     {{"device", d->cfg.id}})
            .inc();
        log::warn("display write failed", {{"DEVICE", d->cfg.id}, {"ERROR", st.error().message}});
        failed(*d, st.error());
      }
    }
  }
}

void ModbusBus::write_open(ModbusDevice& d) {
  const auto& m = std::get<BarrierMap>(d.map);
  d.pending_open->attempts++;
  d.pending_open->deadline =
      Steady::now() + std::chrono::milliseconds(d.cfg.open_confirm_timeout_ms);
  auto st = link_->write_coil(d.cfg.unit_id, m.open_command, true);
  after_io(st);
  if (!st) {
    log::warn("barrier open write failed", {{"DEVICE", d.cfg.id},
                                            {"ATTEMPT", d.pending_open->attempts},
                                            {"ERROR", st.error().message}});
    failed(d, st.error());
  } else {
    succeeded(d);
  }
  // Poll the status inputs soon to see the barrier rise.
  d.next_poll =
      std::min(d.next_poll, Steady::now() + std::chrono::milliseconds(d.cfg.poll_interval_ms));
}

void ModbusBus::poll(ModbusDevice& d) {
  Status st = std::visit(
      [&](const auto& m) -> Status {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, CameraMap>) {
          return poll_camera(d, m);
        } else if constexpr (std::is_same_v<M, LoopMap>) {
          return poll_loop(d, m);
        } else if constexpr (std::is_same_v<M, BarrierMap>) {
          return poll_barrier(d, m);
        } else if constexpr (std::is_same_v<M, RoadsideMap>) {
          return poll_roadside(d, m);
        } else {
          // Display: read the length register as a liveness probe.
          std::uint16_t v[1];
          auto r = link_->read_holding(d.cfg.unit_id, m.text_length, v);
          after_io(r);
          return r;
        }
      },
      d.map);
  const auto now = Steady::now();
  if (st) {
    succeeded(d);
    d.next_poll = now + std::chrono::milliseconds(d.cfg.poll_interval_ms);
  } else {
    failed(d, st.error());
    if (d.health == Health::kDown) {
      // Probe a dead device with backoff so it costs the others little (invariant 2).
      d.probe_ms = std::clamp(d.probe_ms * 2, std::max(d.cfg.poll_interval_ms, 50),
                              std::max(bus_.reconnect_max_ms, d.cfg.poll_interval_ms));
      d.next_poll = now + std::chrono::milliseconds(d.probe_ms);
    } else {
      d.next_poll = now + std::chrono::milliseconds(d.cfg.poll_interval_ms);
    }
  }
  // Barrier confirmation deadline (checked whether or not this poll worked).
  if (d.pending_open && now >= d.pending_open->deadline) {
    if (d.pending_open->attempts <= d.cfg.open_retries) {
      log::warn("barrier did not confirm open, retrying",
                {{"DEVICE", d.cfg.id}, {"ATTEMPT", d.pending_open->attempts}});
      write_open(d);
    } else {
      BarrierState s;
      s.lane = d.lane;
      s.device = d.cfg.id;
      s.position = d.position;
      s.command_result = BarrierState::CommandResult::kAlarm;
      s.command_id = d.pending_open->id;
      s.attempts = d.pending_open->attempts;
      s.detail = "barrier did not report fully open after " + std::to_string(s.attempts) +
                 " open commands";
      s.received_at = clock_.now();
      log::error("barrier alarm: open not confirmed",
                 {{"DEVICE", d.cfg.id}, {"LANE", d.lane}, {"ATTEMPTS", s.attempts}});
      metrics::Registry::global()
          .counter("lanegate_barrier_alarms_total", "Barrier opens never confirmed",
                   {{"device", d.cfg.id}})
          .inc();
      d.pending_open.reset();
      sink_.post(std::move(s));
    }
  }
  if (d.pending_open) {
    d.next_poll = std::min(d.next_poll, d.pending_open->deadline);
  }
}

Result<std::vector<std::uint16_t>> ModbusBus::read_new_record(ModbusDevice& d, int sequence_addr,
                                                               int record_start, int record_count) {
  std::uint16_t seq[1];
  auto st = link_->read_holding(d.cfg.unit_id, sequence_addr, seq);
  after_io(st);
  if (!st) {
    return std::unexpected(st.error());
  }
  normalize_byte_order(seq, d.cfg.byte_order);
  if (!d.last_sequence) {
    // First answer: remember where the device is; do not replay an old record.
    d.last_sequence = seq[0];
    return std::vector<std::uint16_t>();
  }
  if (seq[0] == *d.last_sequence) {
    return std::vector<std::uint16_t>();
  }
  std::vector<std::uint16_t> regs(static_cast<size_t>(record_count));
  st = link_->read_holding(d.cfg.unit_id, record_start, regs);
  after_io(st);
  if (!st) {
    return std::unexpected(st.error());
  }
  normalize_byte_order(regs, d.cfg.byte_order);
  return regs;
}

Status ModbusBus::poll_camera(ModbusDevice& d, const CameraMap& m) {
  auto regs = read_new_record(d, m.sequence, m.record_start, m.record_count);
  if (!regs) {
    return std::unexpected(regs.error());
  }
  if (!regs->empty()) {
    handle_camera_record(d, m, *regs);
  }
  return {};
}

void ModbusBus::reject_plate(ModbusDevice& d, PlateReject reason, std::string_view detail,
                             std::string_view plate) {
  count_plate_rejection(d.cfg.id, reason);
  const auto level = reason == PlateReject::kRepeat ? log::Level::kDebug : log::Level::kInfo;
  log::write(level, "plate read rejected",
             {{"DEVICE", d.cfg.id},
              {"LANE", d.lane},
              {"REASON", reject_name(reason)},
              {"PLATE", log::mask_plate(plate)},
              {"DETAIL", std::string(detail)}});
}

void ModbusBus::handle_camera_record(ModbusDevice& d, const CameraMap& m,
                                     std::span<std::uint16_t> regs) {
  auto at = [&](int addr) { return regs[static_cast<size_t>(addr - m.record_start)]; };
  const std::uint16_t seq = at(m.sequence);
  if (d.last_sequence) {
    // Recognitions faster than the poll interval overwrite each other in the camera;
    // count the ones we never saw so a too-slow poll interval is visible.
    const int missed = static_cast<std::uint16_t>(seq - *d.last_sequence) - 1;
    if (missed > 0) {
      metrics::Registry::global()
          .counter("lanegate_plate_missed_total",
                   "Camera recognitions overwritten before they were polled",
                   {{"device", d.cfg.id}})
          .inc(missed);
    }
  }
  d.last_sequence = seq;
  const SystemTime received_at = clock_.now();
  const SteadyTime received_steady = clock_.steady_now();

  auto colour = colour_from_code(at(m.colour));
  if (!colour) {
    reject_plate(d, PlateReject::kBadColour, colour.error().message, "");
    return;
  }
  const int confidence = at(m.confidence);
  auto text = decode_plate_text(
      regs.subspan(static_cast<size_t>(m.plate_text - m.record_start), CameraMap::kTextRegisters),
      at(m.text_length), d.encoding);
  if (!text) {
    reject_plate(d, text.error().reason, text.error().detail, "");
    return;
  }
  if (confidence < d.cfg.min_confidence) {
    reject_plate(
        d, PlateReject::kLowConfidence,
        "confidence " + std::to_string(confidence) + " < " + std::to_string(d.cfg.min_confidence),
        *text);
    return;
  }
  auto plate = validate_plate(*text, *colour, rules_);
  if (!plate) {
    reject_plate(d, plate.error().reason, plate.error().detail, *text);
    return;
  }
  // Repeat suppression: same plate on the same camera (= lane) within the window.
  const auto window = std::chrono::milliseconds(d.cfg.repeat_window_ms);
  std::erase_if(d.recent_plates,
                [&](const auto& kv) { return received_steady - kv.second >= window; });
  if (auto it = d.recent_plates.find(*plate); it != d.recent_plates.end()) {
    reject_plate(d, PlateReject::kRepeat, "seen within repeat_window_ms", *plate);
    return;
  }
  d.recent_plates[*plate] = received_steady;

  PlateRead ev;
  ev.lane = d.lane;
  ev.device = d.cfg.id;
  ev.plate = std::move(*plate);
  ev.colour = *colour;
  ev.confidence = confidence;
  ev.vehicle_class = at(m.vehicle_class);
  ev.sequence = seq;
  ev.device_time =
      SystemTime(std::chrono::seconds(join_u32(at(m.time), at(m.time + 1), d.cfg.word_order)));
  ev.received_at = received_at;
  ev.received_steady = received_steady;
  d.plate_reads->inc();
  log::info("plate read", {{"DEVICE", d.cfg.id},
                           {"LANE", d.lane},
                           {"PLATE", log::mask_plate(ev.plate)},
                           {"COLOUR", colour_name(ev.colour)},
                           {"CONFIDENCE", confidence}});
  sink_.post(std::move(ev));
}

Status ModbusBus::poll_loop(ModbusDevice& d, const LoopMap& m) {
  std::uint8_t bit[1];
  auto st = link_->read_discrete(d.cfg.unit_id, m.present, bit);
  after_io(st);
  if (!st) {
    return st;
  }
  const bool present = bit[0] != 0;
  if (!d.present || *d.present != present) {
    d.present = present;
    VehiclePresent ev;
    ev.lane = d.lane;
    ev.device = d.cfg.id;
    ev.present = present;
    ev.received_at = clock_.now();
    sink_.post(std::move(ev));
  }
  return {};
}

Status ModbusBus::poll_barrier(ModbusDevice& d, const BarrierMap& m) {
  const int lo = std::min(m.opened, m.closed);
  const int hi = std::max(m.opened, m.closed);
  std::uint8_t open = 0;
  std::uint8_t closed = 0;
  if (hi - lo < 16) {
    std::uint8_t bits[16] = {};
    auto st =
        link_->read_discrete(d.cfg.unit_id, lo, std::span(bits, static_cast<size_t>(hi - lo + 1)));
    after_io(st);
    if (!st) {
      return st;
    }
    open = bits[m.opened - lo];
    closed = bits[m.closed - lo];
  } else {
    std::uint8_t b[1];
    auto st = link_->read_discrete(d.cfg.unit_id, m.opened, b);
    after_io(st);
    if (!st) {
      return st;
    }
    open = b[0];
    st = link_->read_discrete(d.cfg.unit_id, m.closed, b);
    after_io(st);
    if (!st) {
      return st;
    }
    closed = b[0];
  }
  using P = BarrierState::Position;
  const P pos = open && !closed    ? P::kOpen
                : closed && !open  ? P::kClosed
                : !open && !closed ? P::kMoving
                                   : P::kUnknown;
  const bool changed = pos != d.position;
  d.position = pos;
  BarrierState s;
  s.lane = d.lane;
  s.device = d.cfg.id;
  s.position = pos;
  s.received_at = clock_.now();
  if (d.pending_open && pos == P::kOpen) {
    s.command_result = BarrierState::CommandResult::kConfirmed;
    s.command_id = d.pending_open->id;
    s.attempts = d.pending_open->attempts;
    d.pending_open.reset();
    sink_.post(std::move(s));
  } else if (changed) {
    sink_.post(std::move(s));
  }
  return {};
}

Status ModbusBus::poll_roadside(ModbusDevice& d, const RoadsideMap& m) {
  auto record = read_new_record(d, m.sequence, m.record_start, m.record_count);
  if (!record) {
    return std::unexpected(record.error());
  }
  if (record->empty()) {
    return {};
  }
  const std::vector<std::uint16_t>& regs = *record;
  auto at = [&](int addr) { return regs[static_cast<size_t>(addr - m.record_start)]; };
  RoadsideRecord r;
  r.lane = d.lane;
  r.device = d.cfg.id;
  r.sequence = at(m.sequence);
  d.last_sequence = r.sequence;
  r.entry_station = join_u32(at(m.entry_station), at(m.entry_station + 1), d.cfg.word_order);
  r.entry_time = SystemTime(
      std::chrono::seconds(join_u32(at(m.entry_time), at(m.entry_time + 1), d.cfg.word_order)));
  r.vehicle_class = at(m.vehicle_class);
  for (int i = 0; i < RoadsideMap::kContractRegisters; ++i) {
    const std::uint16_t v = at(m.contract_id + i);
    for (char c : {static_cast<char>(v >> 8), static_cast<char>(v & 0xFF)}) {
      if (c == '\0') {
        continue;
      }
      r.obu_id.push_back(c >= 0x20 && c <= 0x7E ? c : '?');
    }
  }
  while (!r.obu_id.empty() && r.obu_id.back() == ' ') {
    r.obu_id.pop_back();
  }
  r.received_at = clock_.now();
  sink_.post(std::move(r));
  return {};
}

void ModbusBus::vehicle_seen(ModbusDevice& d, bool missed) {
  if (!missed) {
    d.missed_vehicles = 0;
    if (d.degraded_by_misses) {
      d.degraded_by_misses = false;
      if (d.health == Health::kDegraded && d.failures == 0) {
        transition(d, Health::kUp, "");
      }
    }
    return;
  }
  ++d.missed_vehicles;
  const std::string detail = count_missed_vehicle(d.cfg.id, d.missed_vehicles);
  if (!detail.empty() && d.health == Health::kUp) {
    d.degraded_by_misses = true;
    transition(d, Health::kDegraded, detail);
  }
}

void ModbusBus::succeeded(ModbusDevice& d) {
  d.failures = 0;
  d.probe_ms = 0;
  // A camera that answers polls but misses vehicles stays degraded until it reads one.
  const Health to = d.degraded_by_misses ? Health::kDegraded : Health::kUp;
  if (d.health != to) {
    transition(d, to, to == Health::kUp ? "" : "answers polls but misses vehicles");
  }
}

void ModbusBus::failed(ModbusDevice& d, const Error& e) {
  d.failures++;
  const Health to =
      d.failures >= std::max(1, d.cfg.down_after_failures) ? Health::kDown : Health::kDegraded;
  if (d.health == Health::kDown) {
    return;  // stays down until a good answer
  }
  if (to != d.health) {
    transition(d, to, e.to_string());
  }
}

void ModbusBus::transition(ModbusDevice& d, Health to, std::string detail) {
  const Health from = d.health;
  d.health = to;
  d.health_now = static_cast<int>(to);
  announce_health(d.cfg.id, "BUS", bus_.id, from, to, detail);
  DeviceHealth ev;
  ev.device = d.cfg.id;
  ev.from = from;
  ev.to = to;
  ev.detail = std::move(detail);
  ev.at = clock_.now();
  sink_.post(std::move(ev));
}

}  // namespace lanegate::lane
