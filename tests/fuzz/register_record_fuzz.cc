// Fuzz target: whole Modbus register records from the lane LAN (camera plate record and
// roadside-unit record), laid out by the default register maps of lane/register_map.h
// and decoded with the public steps the bus driver uses: byte-order normalisation,
// colour code, plate text (UTF-8 or GBK), plate validation, 32-bit joins in either word
// order.
//   byte 0: bit 0 byte order, bit 1 word order, bit 2 text encoding;
//   rest:   the registers, big-endian pairs (camera record first, then roadside record).
// Properties: never crashes (no read outside a record, whatever text_length says);
// normalising twice restores the registers; split_u32 inverts join_u32; an accepted plate
// re-validates to itself.
// The record-to-event decode itself (ModbusBus::handle_camera_record / poll_roadside) is
// private to lane/src; see the report for the seam that would let this target call it.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "config/config.h"
#include "lane/plate.h"
#include "lane/register_map.h"

using namespace lanegate::lane;
namespace config = lanegate::config;

namespace {

std::vector<std::uint16_t> take(const std::uint8_t*& p, const std::uint8_t* end, int count) {
  std::vector<std::uint16_t> regs(static_cast<std::size_t>(count), 0);
  for (auto& r : regs) {
    if (end - p >= 2) {
      r = static_cast<std::uint16_t>(p[0] << 8 | p[1]);
      p += 2;
    } else if (p < end) {
      r = static_cast<std::uint16_t>(p[0] << 8);
      ++p;
    }
  }
  return regs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) {
    return 0;
  }
  const auto byte_order = (data[0] & 1) ? config::ByteOrder::kLittle : config::ByteOrder::kBig;
  const auto word_order = (data[0] & 2) ? config::ByteOrder::kLittle : config::ByteOrder::kBig;
  const TextEncoding encoding = (data[0] & 4) ? TextEncoding::kGbk : TextEncoding::kUtf8;
  const std::uint8_t* p = data + 1;
  const std::uint8_t* const end = data + size;

  // Camera record.
  const CameraMap cam;
  auto regs = take(p, end, cam.record_count);
  const auto sent = regs;
  normalize_byte_order(regs, byte_order);
  {
    auto twice = regs;
    normalize_byte_order(twice, byte_order);
    if (twice != sent) {
      __builtin_trap();
    }
  }
  auto at = [&](int addr) { return regs[static_cast<std::size_t>(addr - cam.record_start)]; };
  const std::uint32_t device_time = join_u32(at(cam.time), at(cam.time + 1), word_order);
  std::uint16_t first = 0;
  std::uint16_t second = 0;
  split_u32(device_time, word_order, first, second);
  if (first != at(cam.time) || second != at(cam.time + 1)) {
    __builtin_trap();
  }
  auto colour = colour_from_code(at(cam.colour));
  auto text = decode_plate_text(
      std::span<const std::uint16_t>(regs).subspan(
          static_cast<std::size_t>(cam.plate_text - cam.record_start), CameraMap::kTextRegisters),
      at(cam.text_length), encoding);
  if (colour && text) {
    config::PlateRules rules;
    if (auto plate = validate_plate(*text, *colour, rules)) {
      auto again = validate_plate(*plate, *colour, rules);
      if (!again || *again != *plate) {
        __builtin_trap();
      }
    }
  }

  // Roadside-unit record.
  const RoadsideMap rsu;
  auto rec = take(p, end, rsu.record_count);
  normalize_byte_order(rec, byte_order);
  auto rat = [&](int addr) { return rec[static_cast<std::size_t>(addr - rsu.record_start)]; };
  const std::uint32_t station =
      join_u32(rat(rsu.entry_station), rat(rsu.entry_station + 1), word_order);
  split_u32(station, word_order, first, second);
  if (first != rat(rsu.entry_station) || second != rat(rsu.entry_station + 1)) {
    __builtin_trap();
  }
  (void)join_u32(rat(rsu.entry_time), rat(rsu.entry_time + 1), word_order);
  return 0;
}
