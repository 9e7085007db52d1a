#include "lane/drivers.h"

#include <atomic>

#include "meter_port.h"
#include "modbus_bus.h"
#include "reader_port.h"

namespace lanegate::lane {
namespace {

std::atomic<std::uint64_t> g_next_command_id{1};

std::string lane_of(const config::Config& cfg, std::string_view device) {
  for (const auto& l : cfg.lanes) {
    if (l.camera == device || l.loop == device || l.barrier == device || l.display == device ||
        l.roadside_unit == device || l.meter == device || l.code_reader == device) {
      return l.id;
    }
  }
  return {};
}

Result<std::unique_ptr<ModbusDevice>> make_device(const config::Config& cfg,
                                                  const config::DeviceSection& d) {
  auto dev = std::make_unique<ModbusDevice>();
  dev->cfg = d;
  dev->lane = lane_of(cfg, d.id);
  const std::string field = "devices." + d.id;
  if (d.poll_interval_ms < 1) {
    return fail(Errc::kOutOfRange, "must be >= 1", field + ".poll_interval_ms");
  }
  if (d.unit_id < 0 || d.unit_id > 247) {
    return fail(Errc::kOutOfRange, "must be 0..247", field + ".unit_id");
  }
  switch (d.kind) {
    case config::DeviceKind::kCamera: {
      auto m = camera_map(d);
      if (!m) return std::unexpected(m.error());
      dev->map = *m;
      auto enc = parse_encoding(d.encoding);
      if (!enc) return fail(Errc::kInvalidArgument, enc.error().message, field + ".encoding");
      dev->encoding = *enc;
      break;
    }
    case config::DeviceKind::kLoop: {
      auto m = loop_map(d);
      if (!m) return std::unexpected(m.error());
      dev->map = *m;
      break;
    }
    case config::DeviceKind::kBarrier: {
      auto m = barrier_map(d);
      if (!m) return std::unexpected(m.error());
      dev->map = *m;
      break;
    }
    case config::DeviceKind::kDisplay: {
      auto m = display_map(d);
      if (!m) return std::unexpected(m.error());
      dev->map = *m;
      break;
    }
    case config::DeviceKind::kRoadsideUnit: {
      auto m = roadside_map(d);
      if (!m) return std::unexpected(m.error());
      dev->map = *m;
      break;
    }
  }
  return dev;
}

}  // namespace

Result<std::unique_ptr<LaneDrivers>> LaneDrivers::create(const config::Config& cfg, EventSink& sink,
                                                         const Clock& clock,
                                                         DriverOptions options) {
  std::unique_ptr<LaneDrivers> self(new LaneDrivers());
  for (const auto& d : cfg.devices) {
    if (d.push()) {
      continue;  // pushes over HTTP to the gateway's camera receiver: no driver here
    }
    if (cfg.find_bus(d.bus) == nullptr) {
      return fail(Errc::kInvalidArgument, "no [[bus]] with id \"" + d.bus + "\"",
                  "devices." + d.id + ".bus");
    }
  }
  for (const auto& b : cfg.buses) {
    std::vector<std::unique_ptr<ModbusDevice>> devices;
    for (const auto& d : cfg.devices) {
      if (d.bus != b.id || d.push()) {
        continue;
      }
      auto dev = make_device(cfg, d);
      if (!dev) {
        return std::unexpected(dev.error());
      }
      devices.push_back(std::move(*dev));
    }
    if (devices.empty()) {
      continue;  // a bus without devices costs nothing
    }
    auto link = ModbusLink::create(b);
    if (!link) {
      return std::unexpected(link.error());
    }
    self->buses_.push_back(std::make_unique<ModbusBus>(b, std::move(*link), std::move(devices),
                                                       cfg.plates, sink, clock));
  }
  for (const auto& m : cfg.meters) {
    self->meters_.push_back(
        std::make_unique<MeterPort>(m, lane_of(cfg, m.id), sink, clock, options));
  }
  for (const auto& r : cfg.readers) {
    self->readers_.push_back(
        std::make_unique<ReaderPort>(r, lane_of(cfg, r.id), sink, clock, options));
  }
  return self;
}

LaneDrivers::~LaneDrivers() { stop(); }

Status LaneDrivers::start() {
  if (state_ != State::kCreated) {
    return fail(Errc::kInternal, "LaneDrivers::start called twice");
  }
  state_ = State::kRunning;
  for (auto& b : buses_) {
    b->start();
  }
  for (auto& m : meters_) {
    m->start();
  }
  for (auto& r : readers_) {
    r->start();
  }
  return {};
}

void LaneDrivers::stop() {
  if (state_ != State::kRunning) {
    state_ = State::kStopped;
    return;
  }
  state_ = State::kStopped;
  for (auto& b : buses_) {
    b->stop();
  }
  for (auto& m : meters_) {
    m->stop();
  }
  for (auto& r : readers_) {
    r->stop();
  }
}

Result<std::uint64_t> LaneDrivers::open_barrier(std::string_view device) {
  for (auto& b : buses_) {
    if (ModbusDevice* d = b->find(device); d != nullptr) {
      if (d->cfg.kind != config::DeviceKind::kBarrier) {
        break;
      }
      const std::uint64_t id = g_next_command_id.fetch_add(1);
      b->enqueue(ModbusBus::OpenBarrier{std::string(device), id});
      return id;
    }
  }
  return fail(Errc::kNotFound, "no barrier device \"" + std::string(device) + "\"", "device");
}

Status LaneDrivers::show_text(std::string_view device, std::string_view utf8_text) {
  for (auto& b : buses_) {
    if (ModbusDevice* d = b->find(device); d != nullptr) {
      if (d->cfg.kind != config::DeviceKind::kDisplay) {
        break;
      }
      const auto& m = std::get<DisplayMap>(d->map);
      auto gbk = encode_text(utf8_text, TextEncoding::kGbk);
      if (!gbk) {
        return std::unexpected(gbk.error());
      }
      if (gbk->size() > static_cast<size_t>(m.text_registers) * 2) {
        return fail(Errc::kInvalidArgument,
                    "text is " + std::to_string(gbk->size()) + " GBK bytes, display holds " +
                        std::to_string(m.text_registers * 2),
                    "text");
      }
      ModbusBus::ShowText cmd;
      cmd.device = std::string(device);
      cmd.registers.resize(static_cast<size_t>(m.text_registers));
      pack_text_registers(*gbk, cmd.registers);
      cmd.length = static_cast<std::uint16_t>(gbk->size());
      b->enqueue(std::move(cmd));
      return {};
    }
  }
  return fail(Errc::kNotFound, "no display device \"" + std::string(device) + "\"", "device");
}

Status LaneDrivers::ack_trip(std::string_view meter, std::uint32_t trip_number,
                             const CivilTime& boarding) {
  for (auto& m : meters_) {
    if (m->id() == meter) {
      m->ack(trip_number, boarding);
      return {};
    }
  }
  return fail(Errc::kNotFound, "no meter \"" + std::string(meter) + "\"", "meter");
}

void LaneDrivers::vehicle_seen(std::string_view camera, bool missed) {
  for (auto& b : buses_) {
    if (b->has_device(camera)) {
      b->enqueue(ModbusBus::VehicleSeen{std::string(camera), missed});
      return;
    }
  }
}

Result<Health> LaneDrivers::health(std::string_view device) const {
  for (const auto& b : buses_) {
    if (const ModbusDevice* d = b->find(device); d != nullptr) {
      return static_cast<Health>(d->health_now.load());
    }
  }
  return fail(Errc::kNotFound, "no Modbus device \"" + std::string(device) + "\"", "device");
}

}  // namespace lanegate::lane
