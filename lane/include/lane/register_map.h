#pragma once
// Register maps of the lane devices: the defaults of lane-devices.md, each address
// overridable by name in the device's config (`registers = { sequence = 10 }`).
// The names and defaults are config/registers.h (the config loader validates them):
//   camera:        sequence, colour, confidence, time, text_length, plate_text,
//                  vehicle_class                     (holding registers)
//   loop:          present                           (discrete input)
//   barrier:       open_command (coil), opened, closed (discrete inputs)
//   display:       text_length, text (holding registers; text is 32 registers)
//   roadside_unit: sequence, entry_station, entry_time, vehicle_class, contract_id
//                  (holding registers; entry_station and entry_time are 2 registers,
//                  contract_id 16: 32 ASCII bytes, NUL-padded)
// Pure values; callable from any thread.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/error.h"

namespace lanegate::lane {

struct CameraMap {
  int sequence = 0;
  int colour = 1;
  int confidence = 2;
  int time = 3;  // 2 registers
  int text_length = 5;
  int plate_text = 6;  // 8 registers, 16 bytes
  int vehicle_class = 14;
  static constexpr int kTextRegisters = 8;
  // The one request that reads the whole record: [record_start, record_start+record_count).
  int record_start = 0;
  int record_count = 15;
};

struct LoopMap {
  int present = 0;
};

struct BarrierMap {
  int open_command = 0;  // coil
  int opened = 1;        // discrete input
  int closed = 2;        // discrete input
};

struct DisplayMap {
  int text_length = 99;
  int text = 100;
  int text_registers = 32;  // 64 bytes of GBK text (config's `text` count)
};

struct RoadsideMap {
  int sequence = 200;
  int entry_station = 201;
  int entry_time = 203;
  int vehicle_class = 205;
  int contract_id = 206;
  static constexpr int kContractRegisters = 16;  // 32 bytes: a WeChat ETC contract id is 31-32
  int record_start = 200;
  int record_count = 22;
};

// Each returns the defaults with the device's overrides applied, or kInvalidArgument
// naming `devices.<id>.registers.<name>` for an unknown name, an address outside
// 0..65535, or a record that no longer fits one Modbus read (125 registers). The config
// loader already enforces this; the check is repeated for configs built in code.
[[nodiscard]] Result<CameraMap> camera_map(const config::DeviceSection& d);
[[nodiscard]] Result<LoopMap> loop_map(const config::DeviceSection& d);
[[nodiscard]] Result<BarrierMap> barrier_map(const config::DeviceSection& d);
[[nodiscard]] Result<DisplayMap> display_map(const config::DeviceSection& d);
[[nodiscard]] Result<RoadsideMap> roadside_map(const config::DeviceSection& d);

// Registers as the device sent them -> registers in big-endian meaning (swaps the two
// bytes of each register when the device's byte order is little).
void normalize_byte_order(std::span<std::uint16_t> regs, config::ByteOrder byte_order);
// Two registers -> u32 honouring the word order (kBig: high word first).
std::uint32_t join_u32(std::uint16_t first, std::uint16_t second, config::ByteOrder word_order);
// Inverse of the two above, for the simulator: value -> registers as the device sends them.
void split_u32(std::uint32_t v, config::ByteOrder word_order, std::uint16_t& first,
               std::uint16_t& second);

}  // namespace lanegate::lane
