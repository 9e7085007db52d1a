#include "config/config.h"

namespace lanegate::config {

const BusSection* Config::find_bus(std::string_view id) const {
  for (const auto& b : buses) {
    if (b.id == id) {
      return &b;
    }
  }
  return nullptr;
}

const DeviceSection* Config::find_device(std::string_view id) const {
  for (const auto& d : devices) {
    if (d.id == id) {
      return &d;
    }
  }
  return nullptr;
}

const LaneSection* Config::find_lane(std::string_view id) const {
  for (const auto& l : lanes) {
    if (l.id == id) {
      return &l;
    }
  }
  return nullptr;
}

const Station* Config::find_station(std::uint32_t id) const {
  for (const auto& s : stations) {
    if (s.id == id) {
      return &s;
    }
  }
  return nullptr;
}

std::string_view to_string(LaneMode mode) {
  switch (mode) {
    case LaneMode::kParkingEntry:
      return "parking-entry";
    case LaneMode::kParkingExit:
      return "parking-exit";
    case LaneMode::kTollExit:
      return "toll-exit";
    case LaneMode::kTaxi:
      return "taxi";
  }
  return "?";
}

std::string_view to_string(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kCamera:
      return "camera";
    case DeviceKind::kLoop:
      return "loop";
    case DeviceKind::kBarrier:
      return "barrier";
    case DeviceKind::kDisplay:
      return "display";
    case DeviceKind::kRoadsideUnit:
      return "roadside_unit";
  }
  return "?";
}

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += rule;
  return out;
}

}  // namespace lanegate::config
