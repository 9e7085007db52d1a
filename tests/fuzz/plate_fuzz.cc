// libFuzzer target: camera plate records (register bytes from the lane LAN).
// Properties: no crash/UB decoding UTF-8 or GBK text and validating it; an accepted
// plate is valid UTF-8 of 7 or 8 characters that re-validates identically.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "lane/plate.h"

using namespace lanegate::lane;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) {
    return 0;
  }
  const std::uint16_t length = data[0];
  const std::uint16_t colour_code = data[1] % 8;
  const TextEncoding enc = (data[2] & 1) ? TextEncoding::kGbk : TextEncoding::kUtf8;
  std::vector<std::uint16_t> regs(8, 0);
  for (std::size_t i = 3; i < size && (i - 3) / 2 < regs.size(); ++i) {
    const std::size_t k = i - 3;
    regs[k / 2] |= (k % 2 == 0) ? static_cast<std::uint16_t>(data[i] << 8) : data[i];
  }
  auto colour = colour_from_code(colour_code);
  auto text = decode_plate_text(regs, length, enc);
  if (!text || !colour) {
    return 0;
  }
  lanegate::config::PlateRules rules;
  auto plate = validate_plate(*text, *colour, rules);
  if (plate) {
    auto again = validate_plate(*plate, *colour, rules);
    if (!again || *again != *plate || !decode_text(*plate, TextEncoding::kUtf8)) {
      std::abort();
    }
    // Every accepted plate is representable in GBK (cameras and displays use it).
    if (!encode_text(*plate, TextEncoding::kGbk)) {
      std::abort();
    }
  }
  return 0;
}
