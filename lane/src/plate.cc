#include "lane/plate.h"

#include <iconv.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/metrics.h"

namespace lanegate::lane {
namespace {

constexpr std::array<std::string_view, 31> kProvinces = {
    "京", "津", "沪", "渝", "冀", "豫", "云", "辽", "黑", "湘", "皖", "鲁", "新", "苏", "浙", "赣",
    "鄂", "桂", "甘", "晋", "蒙", "陕", "吉", "闽", "贵", "粤", "青", "藏", "川", "宁", "琼"};

// One iconv descriptor per thread and direction: iconv_open loads gconv modules and is
// too slow for a 50 ms poll loop, and a descriptor is not safe to share between threads.
class Converter {
 public:
  Converter(const char* to, const char* from) : cd_(iconv_open(to, from)) {}
  ~Converter() {
    if (cd_ != reinterpret_cast<iconv_t>(-1)) {
      iconv_close(cd_);
    }
  }
  Converter(const Converter&) = delete;
  Converter& operator=(const Converter&) = delete;

  Result<std::string> convert(std::string_view in) {
    if (cd_ == reinterpret_cast<iconv_t>(-1)) {
      return fail(Errc::kInternal, std::string("iconv_open: ") + std::strerror(errno));
    }
    iconv(cd_, nullptr, nullptr, nullptr, nullptr);  // reset shift state
    std::string out(in.size() * 4 + 4, '\0');
    char* inp = const_cast<char*>(in.data());
    size_t inleft = in.size();
    char* outp = out.data();
    size_t outleft = out.size();
    if (iconv(cd_, &inp, &inleft, &outp, &outleft) == static_cast<size_t>(-1)) {
      return fail(Errc::kParse, errno == EILSEQ ? "invalid byte sequence" : "incomplete sequence");
    }
    if (iconv(cd_, nullptr, nullptr, &outp, &outleft) == static_cast<size_t>(-1)) {
      return fail(Errc::kParse, "incomplete sequence");
    }
    out.resize(out.size() - outleft);
    return out;
  }

 private:
  iconv_t cd_;
};

Converter& converter(TextEncoding from, TextEncoding to) {
  // GB18030 is a superset of GBK and what cameras actually emit for rare characters.
  thread_local Converter utf8_check("UTF-8", "UTF-8");
  thread_local Converter gbk_to_utf8("UTF-8", "GB18030");
  thread_local Converter utf8_to_gbk("GB18030", "UTF-8");
  if (from == TextEncoding::kGbk) {
    return gbk_to_utf8;
  }
  if (to == TextEncoding::kGbk) {
    return utf8_to_gbk;
  }
  return utf8_check;
}

// Splits UTF-8 into code points (as byte strings). Precondition: valid UTF-8.
std::vector<std::string_view> code_points(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : 4;
    n = std::min(n, s.size() - i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

bool is_upper(std::string_view cp) { return cp.size() == 1 && cp[0] >= 'A' && cp[0] <= 'Z'; }
bool is_digit(std::string_view cp) { return cp.size() == 1 && cp[0] >= '0' && cp[0] <= '9'; }
// `L`: the issuing authority. I is never issued; O is (police and government vehicles).
bool is_authority_letter(std::string_view cp) { return is_upper(cp) && cp[0] != 'I'; }
// `S`: a serial character, digit or letter except I and O (they read as 1 and 0).
bool is_serial(std::string_view cp) {
  return is_digit(cp) || (is_upper(cp) && cp[0] != 'I' && cp[0] != 'O');
}
// `C`: every new-energy class letter any validator accepts; the region narrows it.
constexpr std::string_view kClassLetters = "ABCDEFGHJK";
bool is_class_letter(std::string_view cp) {
  return is_upper(cp) && kClassLetters.find(cp[0]) != std::string_view::npos;
}

// Separators cameras and people put into plates (UTF-8), removed by normalise_plate.
constexpr std::array<std::string_view, 7> kSeparators = {"\u00B7", "\u2022", "\u30FB", " ",
                                                         "\u3000", "-",      "."};

// Plates that are recognised but never charged automatically (spec: route to manual).
constexpr std::array<std::string_view, 5> kManualMarks = {"试", "超", "临", "应急", "民航"};

struct FormInfo {
  PlateForm form;
  std::string_view name;
  std::string_view suffix;  // last character of the 7-character suffixed forms
  std::array<std::optional<PlateColour>, 3> colours;
};

constexpr std::array<FormInfo, 10> kForms = {{
    {PlateForm::kOrdinary,
     "ordinary",
     "",
     {PlateColour::kBlue, PlateColour::kYellow, PlateColour::kBlack}},
    {PlateForm::kCoach, "coach", "学", {PlateColour::kYellow}},
    {PlateForm::kTrailer, "trailer", "挂", {PlateColour::kYellow}},
    {PlateForm::kPolice, "police", "警", {PlateColour::kWhite}},
    {PlateForm::kHongKong, "hong_kong", "港", {PlateColour::kBlack}},
    {PlateForm::kMacau, "macau", "澳", {PlateColour::kBlack}},
    {PlateForm::kConsulate, "consulate", "领", {PlateColour::kBlack}},
    {PlateForm::kEmbassy, "embassy", "使", {PlateColour::kBlack}},
    {PlateForm::kNewEnergySmall, "new_energy_small", "", {PlateColour::kGreen}},
    // Yellow-green first: it is the colour taken when the camera sent none.
    {PlateForm::kNewEnergyLarge,
     "new_energy_large",
     "",
     {PlateColour::kYellowGreen, PlateColour::kLimeGreen}},
}};

const FormInfo& info_of(PlateForm form) {
  for (const FormInfo& f : kForms) {
    if (f.form == form) {
      return f;
    }
  }
  return kForms[0];
}

// The 7-character form whose last character is `cp` (kOrdinary when none is).
PlateForm suffixed_form(std::string_view cp) {
  for (const FormInfo& f : kForms) {
    if (!f.suffix.empty() && f.suffix == cp && f.form != PlateForm::kEmbassy) {
      return f.form;
    }
  }
  return PlateForm::kOrdinary;
}

bool is_suffix_character(std::string_view cp) {
  return !cp.empty() &&
         std::ranges::any_of(kForms, [&](const FormInfo& f) { return f.suffix == cp; });
}

std::unexpected<PlateError> reject(PlateReject r, std::string detail) {
  return std::unexpected(PlateError{r, std::move(detail)});
}

std::unexpected<PlateError> bad_serial(std::string_view cp, std::size_t index) {
  if (is_suffix_character(cp)) {
    return reject(PlateReject::kBadCharacter,
                  std::string(cp) + " is allowed only as the last character (found at " +
                      std::to_string(index + 1) + ")");
  }
  return reject(PlateReject::kBadCharacter, "character " + std::to_string(index + 1) +
                                                " must be a digit or a letter other than I and O");
}

bool province_configured(std::string_view cp, const config::PlateRules& rules) {
  if (rules.provinces.empty()) {
    return std::ranges::find(kProvinces, cp) != kProvinces.end();
  }
  return std::ranges::find(rules.provinces, cp) != rules.provinces.end();
}

// Embassy plates: 使 and six digits, in either order (readers differ, spec *unconfirmed*).
std::expected<std::string, PlateError> embassy_plate(std::span<const std::string_view> cps) {
  const bool first = cps[0] == "使";
  const auto digits = first ? cps.subspan(1) : cps.first(6);
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (!is_digit(digits[i])) {
      return reject(PlateReject::kBadCharacter, "embassy plates are 使 and six digits");
    }
  }
  std::string out = "使";
  for (std::string_view d : digits) {
    out += d;
  }
  return out;
}

// Decides the form of 7 or 8 code points that start with a province character. Checks
// only the shape (the rules apply afterwards).
std::expected<PlateForm, PlateError> provincial_form(std::span<const std::string_view> cps) {
  if (!is_authority_letter(cps[1])) {
    return reject(PlateReject::kBadCharacter, "second character must be a letter A-Z other than I");
  }
  if (cps.size() == 7) {
    const PlateForm form = suffixed_form(cps[6]);
    const std::size_t serial_end = form == PlateForm::kOrdinary ? 7 : 6;
    for (std::size_t i = 2; i < serial_end; ++i) {
      if (!is_serial(cps[i])) {
        return bad_serial(cps[i], i);
      }
    }
    if (form == PlateForm::kHongKong || form == PlateForm::kMacau) {
      if (cps[0] != "粤") {
        return reject(PlateReject::kBadProvince, "港/澳 plates are issued only as 粤Z");
      }
      if (cps[1] != "Z") {
        return reject(PlateReject::kBadCharacter, "港/澳 plates are issued only as 粤Z");
      }
    }
    return form;
  }
  // 8 characters: new energy. Small: C S D D D D; large: D D D D D C.
  const auto tail = cps.subspan(2);
  if (is_class_letter(tail[0]) && is_serial(tail[1]) &&
      std::all_of(tail.begin() + 2, tail.end(), is_digit)) {
    return PlateForm::kNewEnergySmall;
  }
  if (std::all_of(tail.begin(), tail.begin() + 5, is_digit) && is_class_letter(tail[5])) {
    return PlateForm::kNewEnergyLarge;
  }
  return reject(PlateReject::kBadCharacter,
                "new-energy plate must be class letter + 5 characters or 5 digits + class letter");
}

}  // namespace

std::string_view provider_colour_name(PlateColour colour) {
  switch (colour) {
    case PlateColour::kBlue:
      return "BLUE";
    case PlateColour::kYellow:
      return "YELLOW";
    case PlateColour::kBlack:
      return "BLACK";
    case PlateColour::kWhite:
      return "WHITE";
    case PlateColour::kGreen:
      return "GREEN";
    case PlateColour::kYellowGreen:
      return "LIMEGREEN";
    case PlateColour::kLimeGreen:
      return "LIMEGREEN";
  }
  return "BLUE";
}

std::string_view colour_name(PlateColour colour) {
  switch (colour) {
    case PlateColour::kBlue:
      return "blue";
    case PlateColour::kYellow:
      return "yellow";
    case PlateColour::kBlack:
      return "black";
    case PlateColour::kWhite:
      return "white";
    case PlateColour::kGreen:
      return "green";
    case PlateColour::kYellowGreen:
      return "yellow-green";
    case PlateColour::kLimeGreen:
      return "lime-green";
  }
  return "?";
}

Result<PlateColour> colour_from_code(std::uint16_t code) {
  if (code > 6) {
    return fail(Errc::kOutOfRange, "colour code " + std::to_string(code) + " is not 0..6",
                "colour");
  }
  return static_cast<PlateColour>(code);
}

std::string_view form_name(PlateForm form) { return info_of(form).name; }

Result<PlateForm> parse_form(std::string_view name) {
  for (const FormInfo& f : kForms) {
    if (f.name == name) {
      return f.form;
    }
  }
  std::string names;
  for (const FormInfo& f : kForms) {
    names += names.empty() ? "" : ", ";
    names += f.name;
  }
  return fail(Errc::kInvalidArgument, "must be one of: " + names, "form");
}

std::string_view reject_name(PlateReject reason) {
  switch (reason) {
    case PlateReject::kBadLengthField:
      return "bad_length_field";
    case PlateReject::kBadEncoding:
      return "bad_encoding";
    case PlateReject::kBadProvince:
      return "bad_province";
    case PlateReject::kBadLength:
      return "bad_length";
    case PlateReject::kBadCharacter:
      return "bad_character";
    case PlateReject::kNewEnergyDisabled:
      return "new_energy_disabled";
    case PlateReject::kColourMismatch:
      return "colour_mismatch";
    case PlateReject::kBadColour:
      return "bad_colour";
    case PlateReject::kLowConfidence:
      return "low_confidence";
    case PlateReject::kRepeat:
      return "repeat";
    case PlateReject::kManualOnly:
      return "manual_only";
    case PlateReject::kFormDisabled:
      return "form_disabled";
    case PlateReject::kUnknownColour:
      return "unknown_colour";
  }
  return "?";
}

Result<TextEncoding> parse_encoding(std::string_view name) {
  std::string lower(name);
  std::ranges::transform(lower, lower.begin(), [](char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  });
  if (lower == "utf-8" || lower == "utf8") {
    return TextEncoding::kUtf8;
  }
  if (lower == "gbk" || lower == "gb18030") {
    return TextEncoding::kGbk;
  }
  return fail(Errc::kInvalidArgument, "must be \"utf-8\" or \"gbk\"", "encoding");
}

Result<std::string> encode_text(std::string_view utf8, TextEncoding encoding) {
  auto out = converter(TextEncoding::kUtf8, encoding).convert(utf8);
  if (!out) {
    return fail(Errc::kInvalidArgument, "text is not representable: " + out.error().message,
                "text");
  }
  return out;
}

Result<std::string> decode_text(std::string_view bytes, TextEncoding encoding) {
  return converter(encoding, TextEncoding::kUtf8).convert(bytes);
}

void pack_text_registers(std::string_view bytes, std::span<std::uint16_t> out) {
  std::ranges::fill(out, 0);
  for (size_t i = 0; i < bytes.size() && i / 2 < out.size(); ++i) {
    const auto b = static_cast<std::uint16_t>(static_cast<unsigned char>(bytes[i]));
    out[i / 2] |= (i % 2 == 0) ? static_cast<std::uint16_t>(b << 8) : b;
  }
}

std::span<const std::string_view> default_provinces() { return kProvinces; }

std::expected<std::string, PlateError> decode_plate_text(
    std::span<const std::uint16_t> text_registers, std::uint16_t length, TextEncoding encoding) {
  if (length == 0 || length > text_registers.size() * 2) {
    return reject(PlateReject::kBadLengthField, "length register " + std::to_string(length) +
                                                    " is not 1.." +
                                                    std::to_string(text_registers.size() * 2));
  }
  std::string bytes;
  bytes.reserve(length);
  for (size_t i = 0; i < length; ++i) {
    const std::uint16_t r = text_registers[i / 2];
    bytes.push_back(static_cast<char>(i % 2 == 0 ? (r >> 8) : (r & 0xFF)));
  }
  while (!bytes.empty() && bytes.back() == '\0') {
    bytes.pop_back();
  }
  if (bytes.find('\0') != std::string::npos) {
    return reject(PlateReject::kBadEncoding, "NUL byte inside plate text");
  }
  auto text = decode_text(bytes, encoding);
  if (!text) {
    return reject(PlateReject::kBadEncoding, text.error().message);
  }
  return std::move(*text);
}

std::string normalise_plate(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    // Separators start with an ASCII or a UTF-8 lead byte, so in valid UTF-8 a match is
    // always a whole code point.
    const auto sep = std::ranges::find_if(
        kSeparators, [&](std::string_view s) { return text.substr(i).starts_with(s); });
    if (sep != kSeparators.end()) {
      i += sep->size();
      continue;
    }
    const char c = text[i];
    out.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
    ++i;
  }
  return out;
}

std::expected<PlateInfo, PlateError> classify_plate(std::string_view text,
                                                    std::optional<PlateColour> colour,
                                                    const config::PlateRules& rules) {
  // Checked before normalising: removing a separator must never join stray bytes into a
  // character.
  if (!decode_text(text, TextEncoding::kUtf8)) {
    return reject(PlateReject::kBadEncoding, "plate is not valid UTF-8");
  }
  const std::string normalised = normalise_plate(text);
  for (std::string_view mark : kManualMarks) {
    if (normalised.find(mark) != std::string::npos) {
      return reject(PlateReject::kManualOnly,
                    std::string(mark) + " plate: never charged automatically");
    }
  }
  if (normalised.starts_with("WJ")) {
    return reject(PlateReject::kManualOnly, "WJ (armed police) plate: never charged automatically");
  }
  const auto cps = code_points(normalised);  // views into `normalised`
  if (cps.size() != 7 && cps.size() != 8) {
    return reject(PlateReject::kBadLength,
                  "plate has " + std::to_string(cps.size()) + " characters, want 7 or 8");
  }

  std::string plate = normalised;
  PlateForm form = PlateForm::kEmbassy;
  if (cps.size() == 7 && (cps[0] == "使" || cps[6] == "使")) {
    auto embassy = embassy_plate(cps);
    if (!embassy) {
      return std::unexpected(std::move(embassy.error()));
    }
    plate = std::move(*embassy);
  } else {
    if (!province_configured(cps[0], rules)) {
      return reject(PlateReject::kBadProvince, "first character is not a configured province");
    }
    auto shape = provincial_form(cps);
    if (!shape) {
      return std::unexpected(std::move(shape.error()));
    }
    form = *shape;
  }

  const bool new_energy = form == PlateForm::kNewEnergySmall || form == PlateForm::kNewEnergyLarge;
  if (new_energy && !rules.allow_new_energy) {
    return reject(PlateReject::kNewEnergyDisabled, "new-energy plates are disabled");
  }
  const FormInfo& info = info_of(form);
  if (std::ranges::find(rules.forms, info.name) == rules.forms.end()) {
    return reject(PlateReject::kFormDisabled,
                  std::string(info.name) + " plates are disabled (plates.forms)");
  }
  if (new_energy) {
    const std::string_view letter = form == PlateForm::kNewEnergySmall ? cps[2] : cps[7];
    if (rules.new_energy_letters.find(letter) == std::string::npos) {
      return reject(PlateReject::kBadCharacter, "new-energy class letter " + std::string(letter) +
                                                    " is not accepted (plates.new_energy_letters)");
    }
  }

  if (!colour) {
    // Yellow-green and lime-green are one physical plate (both LIMEGREEN): only the
    // ordinary form has plates of several colours.
    if (info.colours[1] &&
        provider_colour_name(*info.colours[1]) != provider_colour_name(*info.colours[0])) {
      return reject(PlateReject::kUnknownColour,
                    std::string(info.name) + " plates come in several colours; none was given");
    }
    colour = *info.colours[0];
  } else if (std::ranges::find(info.colours, colour) == info.colours.end()) {
    return reject(PlateReject::kColourMismatch, std::string(info.name) + " plate reported as " +
                                                    std::string(colour_name(*colour)));
  }
  return PlateInfo{std::move(plate), form, *colour};
}

std::expected<std::string, PlateError> validate_plate(std::string_view plate, PlateColour colour,
                                                      const config::PlateRules& rules) {
  auto info = classify_plate(plate, colour, rules);
  if (!info) {
    return std::unexpected(std::move(info.error()));
  }
  return std::move(info->plate);
}

void count_plate_rejection(std::string_view device, PlateReject reason) {
  // Same family as ModbusBus::reject_plate (name and help must match).
  metrics::Registry::global()
      .counter("lanegate_plate_rejected_total", "Plate reads not delivered, by reason",
               {{"device", std::string(device)}, {"reason", std::string(reject_name(reason))}})
      .inc();
}

}  // namespace lanegate::lane
