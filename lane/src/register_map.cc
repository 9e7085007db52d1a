#include "lane/register_map.h"

#include <algorithm>
#include <map>

namespace lanegate::lane {
namespace {

// Applies overrides onto named fields; every override name must be known.
Status apply(const config::DeviceSection& d, const std::map<std::string_view, int*>& fields) {
  for (const auto& [name, value] : d.registers) {
    auto it = fields.find(name);
    const std::string field = "devices." + d.id + ".registers." + name;
    if (it == fields.end()) {
      std::string known;
      for (const auto& [n, _] : fields) {
        known += (known.empty() ? "" : ", ") + std::string(n);
      }
      return fail(Errc::kInvalidArgument,
                  "unknown register name for a " + std::string(config::to_string(d.kind)) +
                      " (known: " + known + ")",
                  field);
    }
    if (value < 0 || value > 65535) {
      return fail(Errc::kOutOfRange, "address must be 0..65535", field);
    }
    *it->second = value;
  }
  return {};
}

// Smallest span covering [addr, addr+count) for every pair; must fit one read.
Status record_span(const config::DeviceSection& d, std::initializer_list<std::pair<int, int>> parts,
                   int& start, int& count) {
  int lo = 65536;
  int hi = 0;
  for (auto [a, n] : parts) {
    lo = std::min(lo, a);
    hi = std::max(hi, a + n);
  }
  start = lo;
  count = hi - lo;
  if (count > 125 || hi > 65536) {
    return fail(
        Errc::kOutOfRange,
        "record spans " + std::to_string(count) + " registers; it must fit one read of at most 125",
        "devices." + d.id + ".registers");
  }
  return {};
}

}  // namespace

Result<CameraMap> camera_map(const config::DeviceSection& d) {
  CameraMap m;
  if (auto st = apply(d, {{"sequence", &m.sequence},
                          {"colour", &m.colour},
                          {"confidence", &m.confidence},
                          {"time", &m.time},
                          {"text_length", &m.text_length},
                          {"plate_text", &m.plate_text},
                          {"vehicle_class", &m.vehicle_class}});
      !st) {
    return std::unexpected(st.error());
  }
  if (auto st = record_span(d,
                            {{m.sequence, 1},
                             {m.colour, 1},
                             {m.confidence, 1},
                             {m.time, 2},
                             {m.text_length, 1},
                             {m.plate_text, CameraMap::kTextRegisters},
                             {m.vehicle_class, 1}},
                            m.record_start, m.record_count);
      !st) {
    return std::unexpected(st.error());
  }
  return m;
}

Result<LoopMap> loop_map(const config::DeviceSection& d) {
  LoopMap m;
  if (auto st = apply(d, {{"present", &m.present}}); !st) {
    return std::unexpected(st.error());
  }
  return m;
}

Result<BarrierMap> barrier_map(const config::DeviceSection& d) {
  BarrierMap m;
  if (auto st = apply(
          d, {{"open_command", &m.open_command}, {"opened", &m.opened}, {"closed", &m.closed}});
      !st) {
    return std::unexpected(st.error());
  }
  return m;
}

Result<DisplayMap> display_map(const config::DeviceSection& d) {
  DisplayMap m;
  if (auto st = apply(d, {{"text_length", &m.text_length}, {"text", &m.text}}); !st) {
    return std::unexpected(st.error());
  }
  return m;
}

Result<RoadsideMap> roadside_map(const config::DeviceSection& d) {
  RoadsideMap m;
  if (auto st = apply(d, {{"sequence", &m.sequence},
                          {"entry_station", &m.entry_station},
                          {"entry_time", &m.entry_time},
                          {"vehicle_class", &m.vehicle_class},
                          {"contract_id", &m.contract_id}});
      !st) {
    return std::unexpected(st.error());
  }
  if (auto st = record_span(d,
                            {{m.sequence, 1},
                             {m.entry_station, 2},
                             {m.entry_time, 2},
                             {m.vehicle_class, 1},
                             {m.contract_id, RoadsideMap::kContractRegisters}},
                            m.record_start, m.record_count);
      !st) {
    return std::unexpected(st.error());
  }
  return m;
}

void normalize_byte_order(std::span<std::uint16_t> regs, config::ByteOrder byte_order) {
  if (byte_order == config::ByteOrder::kBig) {
    return;
  }
  for (auto& r : regs) {
    r = static_cast<std::uint16_t>((r >> 8) | (r << 8));
  }
}

std::uint32_t join_u32(std::uint16_t first, std::uint16_t second, config::ByteOrder word_order) {
  return word_order == config::ByteOrder::kBig ? (static_cast<std::uint32_t>(first) << 16 | second)
                                               : (static_cast<std::uint32_t>(second) << 16 | first);
}

void split_u32(std::uint32_t v, config::ByteOrder word_order, std::uint16_t& first,
               std::uint16_t& second) {
  const auto hi = static_cast<std::uint16_t>(v >> 16);
  const auto lo = static_cast<std::uint16_t>(v & 0xFFFF);
  first = word_order == config::ByteOrder::kBig ? hi : lo;
  second = word_order == config::ByteOrder::kBig ? lo : hi;
}

}  // namespace lanegate::lane
