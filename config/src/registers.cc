#include "config/registers.h"

#include <array>

namespace lanegate::config {
namespace {

using enum RegisterTable;

// Default maps from specs/lane-devices.md ("Default register maps").
constexpr std::array<RegisterName, 7> kCamera = {{
    {"sequence", 0, 1, kHolding, "event sequence number, increments per recognition"},
    {"colour", 1, 1, kHolding, "plate colour code (0 blue .. 6 lime-green)"},
    {"confidence", 2, 1, kHolding, "recognition confidence 0..1000"},
    {"time", 3, 2, kHolding, "recognition time, unix seconds, high word first"},
    {"text_length", 5, 1, kHolding, "plate text length in bytes"},
    {"plate_text", 6, 8, kHolding, "plate text, 2 bytes per register, high byte first"},
    {"vehicle_class", 14, 1, kHolding, "vehicle class 1..16, 0 unknown"},
}};
constexpr std::array<RegisterName, 1> kLoop = {{
    {"present", 0, 1, kDiscreteInput, "vehicle present"},
}};
constexpr std::array<RegisterName, 3> kBarrier = {{
    {"open_command", 0, 1, kCoil, "write 1 to open; the controller resets it"},
    {"opened", 1, 1, kDiscreteInput, "barrier fully open"},
    {"closed", 2, 1, kDiscreteInput, "barrier closed"},
}};
constexpr std::array<RegisterName, 2> kDisplay = {{
    {"text_length", 99, 1, kHolding, "message length in bytes"},
    {"text", 100, 32, kHolding, "message text (GBK), 2 bytes per register"},
}};
constexpr std::array<RegisterName, 5> kRoadsideUnit = {{
    {"sequence", 200, 1, kHolding, "event sequence number"},
    {"entry_station", 201, 2, kHolding, "entry station id (u32, high word first)"},
    {"entry_time", 203, 2, kHolding, "entry time, unix seconds"},
    {"vehicle_class", 205, 1, kHolding, "vehicle class 1..16"},
    {"contract_id", 206, 16, kHolding, "ETC contract / OBU id (ASCII, up to 32 bytes, NUL-padded)"},
}};

}  // namespace

std::span<const RegisterName> register_names(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kCamera:
      return kCamera;
    case DeviceKind::kLoop:
      return kLoop;
    case DeviceKind::kBarrier:
      return kBarrier;
    case DeviceKind::kDisplay:
      return kDisplay;
    case DeviceKind::kRoadsideUnit:
      return kRoadsideUnit;
  }
  return {};
}

const RegisterName* find_register(DeviceKind kind, std::string_view name) {
  for (const RegisterName& r : register_names(kind)) {
    if (r.name == name) {
      return &r;
    }
  }
  return nullptr;
}

int register_address(const DeviceSection& device, std::string_view name) {
  const RegisterName* r = find_register(device.kind, name);
  if (r == nullptr) {
    return -1;
  }
  auto it = device.registers.find(std::string(name));
  return it != device.registers.end() ? it->second : r->default_address;
}

}  // namespace lanegate::config
