#include "lane/cli.h"

#include <cctype>
#include <charconv>
#include <optional>
#include <ostream>
#include <vector>

#include "lane/meter_frame.h"
#include "modbus_link.h"

namespace lanegate::lane {
namespace {

std::optional<std::vector<std::uint8_t>> parse_hex(std::span<const std::string> args,
                                                   std::string& problem) {
  std::string digits;
  for (const auto& a : args) {
    std::string_view s = a;
    for (size_t i = 0; i < s.size(); ++i) {
      const char c = s[i];
      if (c == '0' && i + 1 < s.size() && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
        ++i;
        continue;
      }
      if (c == ' ' || c == ':' || c == '-' || c == ',') {
        continue;
      }
      if (!std::isxdigit(static_cast<unsigned char>(c))) {
        problem = std::string("'") + c + "' is not a hex digit";
        return std::nullopt;
      }
      digits.push_back(c);
    }
  }
  if (digits.empty()) {
    problem = "no hex digits given";
    return std::nullopt;
  }
  if (digits.size() % 2 != 0) {
    problem = "odd number of hex digits (" + std::to_string(digits.size()) + ")";
    return std::nullopt;
  }
  std::vector<std::uint8_t> out;
  for (size_t i = 0; i < digits.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  }
  return out;
}

bool parse_int(const std::string& s, int lo, int hi, int& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && v >= lo && v <= hi;
}

}  // namespace

int meter_decode_command(std::span<const std::string> args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << "usage: lanegate meter decode HEX...\n";
    return 2;
  }
  std::string problem;
  auto bytes = parse_hex(args, problem);
  if (!bytes) {
    err << "lanegate meter decode: " << problem << "\n";
    return 2;
  }
  auto single = decode_meter_frame(*bytes);
  if (single) {
    out << meter_frame_json(*single) << "\n";
    // A well-framed frame whose body does not decode (a trip record with an impossible
    // date, a status reply cut short) is still a bad frame.
    return check_meter_frame_body(*single) ? 0 : 1;
  }
  MeterStreamDecoder dec;
  dec.feed(*bytes);
  std::string frames;
  std::string faults;
  int n_frames = 0;
  int n_faults = 0;
  auto add_fault = [&](const FrameFaultReport& f) {
    faults += (n_faults++ ? "," : "");
    faults += "{\"fault\":\"" + std::string(fault_name(f.fault)) +
              "\",\"bytes\":" + std::to_string(f.bytes_dropped) + "}";
  };
  while (auto item = dec.next()) {
    if (auto* f = std::get_if<MeterFrame>(&*item)) {
      frames += (n_frames++ ? "," : "") + meter_frame_json(*f);
    } else {
      add_fault(std::get<FrameFaultReport>(*item));
    }
  }
  if (auto rest = dec.flush_partial()) {
    add_fault(*rest);
  }
  if (n_frames == 0) {
    out << "{\"error\":\"" << json_escape(single.error().message) << "\",\"field\":\""
        << json_escape(single.error().field) << "\",\"faults\":[" << faults << "]}\n";
    return 1;
  }
  out << "{\"frames\":[" << frames << "],\"faults\":[" << faults << "]}\n";
  return n_faults == 0 ? 0 : 1;
}

int modbus_read_command(const config::Config& cfg, std::span<const std::string> args,
                        std::ostream& out, std::ostream& err) {
  static constexpr const char* kUsage =
      "usage: lanegate modbus read DEVICE_ID [--holding|--input|--coils|--discrete] ADDRESS "
      "COUNT\n";
  std::vector<std::string> pos;
  std::string table = "holding";
  for (const auto& a : args) {
    if (a == "--holding" || a == "--input" || a == "--coils" || a == "--discrete") {
      table = a.substr(2);
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() != 3) {
    err << kUsage;
    return 2;
  }
  const config::DeviceSection* dev = cfg.find_device(pos[0]);
  if (dev == nullptr) {
    err << "lanegate modbus read: no [[device]] with id \"" << pos[0] << "\"\n";
    return 2;
  }
  const config::BusSection* bus = cfg.find_bus(dev->bus);
  if (bus == nullptr) {
    err << "lanegate modbus read: device \"" << dev->id << "\" names bus \"" << dev->bus
        << "\" which is not configured\n";
    return 2;
  }
  const bool bits = table == "coils" || table == "discrete";
  int address = 0;
  int count = 0;
  if (!parse_int(pos[1], 0, 65535, address)) {
    err << "lanegate modbus read: ADDRESS must be 0..65535, got \"" << pos[1] << "\"\n";
    return 2;
  }
  const int max = bits ? 2000 : 125;
  if (!parse_int(pos[2], 1, max, count) || address + count > 65536) {
    err << "lanegate modbus read: COUNT must be 1.." << max << " within the address space, got \""
        << pos[2] << "\"\n";
    return 2;
  }
  auto link = ModbusLink::create(*bus);
  if (!link) {
    err << "lanegate modbus read: " << link.error().to_string() << "\n";
    return 1;
  }
  if (auto st = (*link)->connect(); !st) {
    err << "lanegate modbus read: " << st.error().to_string() << "\n";
    return 1;
  }
  std::vector<std::uint16_t> regs;
  std::vector<std::uint8_t> bitv;
  Status st;
  if (table == "holding") {
    regs.resize(static_cast<size_t>(count));
    st = (*link)->read_holding(dev->unit_id, address, regs);
  } else if (table == "input") {
    regs.resize(static_cast<size_t>(count));
    st = (*link)->read_input_registers(dev->unit_id, address, regs);
  } else if (table == "coils") {
    bitv.resize(static_cast<size_t>(count));
    st = (*link)->read_coils(dev->unit_id, address, bitv);
  } else {
    bitv.resize(static_cast<size_t>(count));
    st = (*link)->read_discrete(dev->unit_id, address, bitv);
  }
  if (!st) {
    err << "lanegate modbus read: device \"" << dev->id << "\" (unit " << dev->unit_id
        << " on bus \"" << bus->id << "\"): " << st.error().message << "\n";
    return 1;
  }
  out << "{\"device\":\"" << json_escape(dev->id) << "\",\"bus\":\"" << json_escape(bus->id)
      << "\",\"unit_id\":" << dev->unit_id << ",\"table\":\"" << table
      << "\",\"address\":" << address << ",\"values\":[";
  for (int i = 0; i < count; ++i) {
    out << (i ? "," : "")
        << (bits ? static_cast<int>(bitv[static_cast<size_t>(i)])
                 : static_cast<int>(regs[static_cast<size_t>(i)]));
  }
  out << "]}\n";
  return 0;
}

}  // namespace lanegate::lane
