#pragma once
// Plate text from a camera record: decoding (UTF-8 or GBK), classification against the
// region's plate rules (spec lane-devices.md "Plates (GA 36 civil plates)"), and the
// colour codes of the camera register map.
//
// Pure functions, no state: callable from any thread (count_plate_rejection() only touches
// the process-wide metrics registry). Every rejection carries a stable reason name used as
// the `reason` label of lanegate_plate_rejected_total.

#include <cstdint>
#include <expected>
#include <optional>
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

// The GA 36 civil plate forms a lane charges automatically. Every other plate (test,
// temporary, emergency, civil aviation, military, armed police) goes to manual handling.
//
//   form               chars  pattern (P province, L letter, S serial, D digit)  colours
//   kOrdinary          7      P L S S S S S                                    blue, yellow, black
//   kCoach             7      P L S S S S 学                                   yellow
//   kTrailer           7      P L S S S S 挂                                   yellow
//   kPolice            7      P L S S S S 警                                   white
//   kHongKong/kMacau   7      粤 Z S S S S 港 / 澳                             black
//   kConsulate         7      P L S S S S 领                                   black
//   kEmbassy           7      使 D D D D D D (readers may send D D D D D D 使)  black
//   kNewEnergySmall    8      P L C S D D D D  (C a class letter)              green
//   kNewEnergyLarge    8      P L D D D D D C                                  yellow-green,
//                                                                              lime-green
// S is a digit or a letter other than I and O. L is a letter other than I: O is issued
// (police and government vehicles), I never is. C is one of ABCDEFGHJK (GA 36-2018 has D
// and F; the other eight are *unconfirmed*), narrowed by PlateRules::new_energy_letters.
enum class PlateForm {
  kOrdinary,
  kCoach,
  kTrailer,
  kPolice,
  kHongKong,
  kMacau,
  kConsulate,
  kEmbassy,
  kNewEnergySmall,
  kNewEnergyLarge,
};
// Stable lower-case name used in config (`plates.forms`) and metrics: "ordinary", "coach",
// "trailer", "police", "hong_kong", "macau", "consulate", "embassy", "new_energy_small",
// "new_energy_large".
std::string_view form_name(PlateForm form);
// The inverse of form_name (exact, lower case); kInvalidArgument with field "form" otherwise.
[[nodiscard]] Result<PlateForm> parse_form(std::string_view name);

// Why a read was not turned into a PlateRead. Names are metric label values.
enum class PlateReject {
  kBadLengthField,     // length register > 16 bytes or 0
  kBadEncoding,        // bytes are not valid in the configured encoding
  kBadProvince,        // first character not in the province set (港/澳: not 粤)
  kBadLength,          // not 7 (or 8 for new energy) characters
  kBadCharacter,       // I, O, punctuation, wrong position, class letter not configured
  kNewEnergyDisabled,  // new-energy plate while rules.allow_new_energy is false
  kColourMismatch,     // a colour the plate's form does not have
  kBadColour,          // colour code outside 0..6
  kLowConfidence,      // confidence below the device's min_confidence
  kRepeat,             // same plate, same lane, within repeat_window_ms
  kManualOnly,         // 试 超 临 应急 民航 or WJ plates: recognised, never charged automatically
  kFormDisabled,       // a valid form that rules.forms switched off
  kUnknownColour,      // no colour given and the form has several (ordinary plates)
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

// The plate as providers want it: removes the separators · (U+00B7), • (U+2022),
// ・ (U+30FB), ASCII space, U+3000, '-' and '.', and upper-cases ASCII letters. Other bytes
// are copied unchanged (invalid UTF-8 is left for classify_plate to refuse).
std::string normalise_plate(std::string_view text);

struct PlateInfo {
  std::string plate;  // normalised; embassy plates in the order 使123456
  PlateForm form;
  PlateColour colour;  // the colour given, or the form's only colour when none was given
};

// Classifies UTF-8 plate text (any separators, any ASCII case) under the region's rules:
// normalises it, refuses the plates that are never charged automatically (kManualOnly),
// decides the form, checks the province (rules.provinces; all 31 when empty; embassy plates
// have none), the form switches (rules.forms, rules.allow_new_energy,
// rules.new_energy_letters) and the colour against the form. `colour` is nullopt when the
// camera sent none the gateway knows: the form's only colour is taken (yellow-green for
// large new energy), and an ordinary plate, which has three, is refused (kUnknownColour).
// Idempotent: classifying a returned plate again gives the same plate and form.
[[nodiscard]] std::expected<PlateInfo, PlateError> classify_plate(std::string_view text,
                                                                  std::optional<PlateColour> colour,
                                                                  const config::PlateRules& rules);

// classify_plate with a known colour; returns the normalised plate text.
[[nodiscard]] std::expected<std::string, PlateError> validate_plate(
    std::string_view plate, PlateColour colour, const config::PlateRules& rules);

// Counts one refused read: lanegate_plate_rejected_total{device, reason=reject_name()}.
void count_plate_rejection(std::string_view device, PlateReject reason);

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
