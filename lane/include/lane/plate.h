#pragma once
// Plate text from a camera record: decoding (UTF-8 or GBK), validation against the
// region's plate rules, and the colour codes of the camera register map.
//
// Pure functions, no state: callable from any thread. Every rejection carries a
// stable reason name used as the `reason` label of lanegate_plate_rejected_total.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "config/config.h"
#include "core/error.h"

namespace lanegate::lane {

// Camera colour codes (register `colour`): spec "Plate camera" table.
enum class PlateColour : std::uint8_t {
  kBlue = 0,
  kYellow = 1,
  kBlack = 2,
  kWhite = 3,
  kGreen = 4,        // small new-energy vehicle
  kYellowGreen = 5,  // large new-energy vehicle
  kLimeGreen = 6,
};

// The payment provider's colour name: BLUE, YELLOW, BLACK, WHITE, GREEN, LIMEGREEN.
// Yellow-green (large new energy) and lime-green are both LIMEGREEN for the provider.
std::string_view provider_colour_name(PlateColour colour);
// Lower-case name for logs and JSON ("blue", "yellow-green", ...).
std::string_view colour_name(PlateColour colour);

// Maps a register value; kOutOfRange for codes the spec does not define.
[[nodiscard]] Result<PlateColour> colour_from_code(std::uint16_t code);

// Why a read was not turned into a PlateRead. Names are metric label values.
enum class PlateReject {
  kBadLengthField,     // length register > 16 bytes or 0
  kBadEncoding,        // bytes are not valid in the configured encoding
  kBadProvince,        // first character not in the province set
  kBadLength,          // not 7 (or 8 for new energy) characters
  kBadCharacter,       // I, O, lower case, punctuation, or wrong position rules
  kNewEnergyDisabled,  // 8-character plate while rules.allow_new_energy is false
  kColourMismatch,     // 8-character plate on a non-green colour, or the reverse
  kBadColour,          // colour code outside 0..6
  kLowConfidence,      // confidence below the device's min_confidence
  kRepeat,             // same plate, same lane, within repeat_window_ms
};
std::string_view reject_name(PlateReject reason);

enum class TextEncoding { kUtf8, kGbk };
// "utf-8" / "utf8" / "gbk" (case-insensitive); kInvalidArgument otherwise.
[[nodiscard]] Result<TextEncoding> parse_encoding(std::string_view name);

struct PlateError {
  PlateReject reason;
  std::string detail;  // human-readable; never contains the full plate
};

// Decodes `length` bytes of register text (2 bytes per register, high byte first) into
// UTF-8. Trailing NUL bytes inside `length` are dropped.
[[nodiscard]] std::expected<std::string, PlateError> decode_plate_text(
    std::span<const std::uint16_t> text_registers, std::uint16_t length, TextEncoding encoding);

// Validates UTF-8 plate text against the rules (province set; default all 31 provinces
// when rules.provinces is empty). Returns the plate unchanged on success.
[[nodiscard]] std::expected<std::string, PlateError> validate_plate(
    std::string_view plate, PlateColour colour, const config::PlateRules& rules);

// The 31 province characters used when PlateRules::provinces is empty.
std::span<const std::string_view> default_provinces();

// Encodes UTF-8 text as `encoding` bytes (the simulator and tests write camera records
// and display text with it). kInvalidArgument when the text cannot be represented.
[[nodiscard]] Result<std::string> encode_text(std::string_view utf8, TextEncoding encoding);
// Decodes `encoding` bytes to UTF-8; kParse on invalid bytes.
[[nodiscard]] Result<std::string> decode_text(std::string_view bytes, TextEncoding encoding);

// Packs bytes into registers, 2 per register, high byte first, zero padded.
void pack_text_registers(std::string_view bytes, std::span<std::uint16_t> out);

}  // namespace lanegate::lane
