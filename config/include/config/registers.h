#pragma once
// Named Modbus registers per device kind, with the default map of
// specs/lane-devices.md. A [[device]] may override addresses by name:
//   registers = { sequence = 100, plate_text = 106 }
// The loader rejects names that do not exist for the device's kind and addresses outside
// 0..65535; drivers resolve addresses with register_address().
// All functions are pure and may be called from any thread.

#include <span>
#include <string_view>

#include "config/config.h"

namespace lanegate::config {

enum class RegisterTable { kHolding, kCoil, kDiscreteInput };

struct RegisterName {
  std::string_view name;  // key in `registers = {...}`
  int default_address;    // 0-based protocol address
  int count;              // number of 16-bit registers (1 for coils / inputs)
  RegisterTable table;
  std::string_view meaning;  // one line, for docs and check-config
};

// Every register name a device of `kind` has, in address order of the default map.
std::span<const RegisterName> register_names(DeviceKind kind);

// The register named `name` for this device kind, or nullptr when it has no such name.
const RegisterName* find_register(DeviceKind kind, std::string_view name);

// Address of a named register of `device`: its override from `registers` when present,
// else the default. Returns -1 when the kind has no register of that name (a caller bug).
int register_address(const DeviceSection& device, std::string_view name);

// Records read in one request (camera plate record, roadside-unit entry record) must fit
// one Modbus read: at most this many registers from the lowest to the end of the highest.
inline constexpr int kMaxRegistersPerRead = 125;

}  // namespace lanegate::config
