// libFuzzer target: camera plate records (register bytes from the lane LAN) and plate text
// as HTTP cameras push it (any bytes, any separators).
// Properties: no crash/UB decoding UTF-8 or GBK text and classifying it; an accepted
// plate is normalised valid UTF-8 of 7 or 8 characters, representable in GBK, that
// classifies again to the same plate and form (idempotence); a refusal's detail never
// contains the plate.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lane/plate.h"

using namespace lanegate::lane;

namespace {

// The region rules a byte selects: defaults, a narrowed region, new energy off.
lanegate::config::PlateRules rules_of(std::uint8_t selector) {
  lanegate::config::PlateRules rules;
  switch (selector % 3) {
    case 1:
      rules.provinces = {"粤", "京"};
      rules.forms = {"ordinary", "hong_kong", "embassy", "new_energy_large"};
      rules.new_energy_letters = "DF";
      break;
    case 2:
      rules.allow_new_energy = false;
      break;
    default:
      break;
  }
  return rules;
}

std::size_t code_point_count(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) {
    n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }
  return n;
}

void check_classify(std::string_view text, std::optional<PlateColour> colour,
                    const lanegate::config::PlateRules& rules) {
  auto info = classify_plate(text, colour, rules);
  if (!info) {
    const std::string normalised = normalise_plate(text);
    if (normalised.size() >= 7 && info.error().detail.find(normalised) != std::string::npos) {
      std::abort();  // the plate would reach the logs
    }
    return;
  }
  const std::string& plate = info->plate;
  const std::size_t n = code_point_count(plate);
  if (!decode_text(plate, TextEncoding::kUtf8) || (n != 7 && n != 8) ||
      normalise_plate(plate) != plate || (colour && info->colour != *colour)) {
    std::abort();
  }
  // Every accepted plate is representable in GBK (cameras and displays use it).
  if (!encode_text(plate, TextEncoding::kGbk)) {
    std::abort();
  }
  for (std::optional<PlateColour> again_colour : {colour, std::optional(info->colour)}) {
    auto again = classify_plate(plate, again_colour, rules);
    if (!again || again->plate != plate || again->form != info->form ||
        again->colour != info->colour) {
      std::abort();
    }
  }
  // form_name and parse_form agree.
  auto form = parse_form(form_name(info->form));
  if (!form || *form != info->form) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) {
    return 0;
  }
  const std::uint16_t length = data[0];
  const std::uint16_t colour_code = data[1] % 8;  // 7: outside 0..6, or no colour at all
  const TextEncoding enc = (data[2] & 1) ? TextEncoding::kGbk : TextEncoding::kUtf8;
  const lanegate::config::PlateRules rules = rules_of(static_cast<std::uint8_t>(data[2] >> 1));
  auto colour = colour_from_code(colour_code);
  const std::optional<PlateColour> pushed =
      colour ? std::optional<PlateColour>(*colour) : std::nullopt;

  // Text as an HTTP camera pushes it: the raw bytes, at most 64 (kMaxPlateRawBytes).
  const std::string_view raw(reinterpret_cast<const char*>(data + 3),
                             std::min<std::size_t>(size - 3, 64));
  check_classify(raw, pushed, rules);

  // Text as a Modbus camera's registers hold it.
  std::vector<std::uint16_t> regs(8, 0);
  for (std::size_t i = 3; i < size && (i - 3) / 2 < regs.size(); ++i) {
    const std::size_t k = i - 3;
    regs[k / 2] |= (k % 2 == 0) ? static_cast<std::uint16_t>(data[i] << 8) : data[i];
  }
  auto text = decode_plate_text(regs, length, enc);
  if (!text) {
    return 0;
  }
  check_classify(*text, pushed, rules);
  if (!colour) {
    return 0;
  }
  auto plate = validate_plate(*text, *colour, rules);
  if (plate) {
    auto again = validate_plate(*plate, *colour, rules);
    if (!again || *again != *plate) {
      std::abort();
    }
  }
  return 0;
}
