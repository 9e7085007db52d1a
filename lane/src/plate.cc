#include "lane/plate.h"

#include <iconv.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

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

bool is_plate_letter(std::string_view cp) {
  return cp.size() == 1 && cp[0] >= 'A' && cp[0] <= 'Z' && cp[0] != 'I' && cp[0] != 'O';
}
bool is_digit(std::string_view cp) { return cp.size() == 1 && cp[0] >= '0' && cp[0] <= '9'; }
bool is_plate_alnum(std::string_view cp) { return is_plate_letter(cp) || is_digit(cp); }
bool is_d_or_f(std::string_view cp) { return cp == "D" || cp == "F"; }

bool is_new_energy_colour(PlateColour c) {
  return c == PlateColour::kGreen || c == PlateColour::kYellowGreen || c == PlateColour::kLimeGreen;
}

std::unexpected<PlateError> reject(PlateReject r, std::string detail) {
  return std::unexpected(PlateError{r, std::move(detail)});
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

std::expected<std::string, PlateError> validate_plate(std::string_view plate, PlateColour colour,
                                                      const config::PlateRules& rules) {
  if (!decode_text(plate, TextEncoding::kUtf8)) {
    return reject(PlateReject::kBadEncoding, "plate is not valid UTF-8");
  }
  const auto cps = code_points(plate);
  if (cps.size() != 7 && cps.size() != 8) {
    return reject(PlateReject::kBadLength,
                  "plate has " + std::to_string(cps.size()) + " characters, want 7 or 8");
  }
  bool province_ok = false;
  if (rules.provinces.empty()) {
    province_ok = std::ranges::find(kProvinces, cps[0]) != kProvinces.end();
  } else {
    province_ok = std::ranges::find(rules.provinces, cps[0]) != rules.provinces.end();
  }
  if (!province_ok) {
    return reject(PlateReject::kBadProvince, "first character is not a configured province");
  }
  if (!is_plate_letter(cps[1])) {
    return reject(PlateReject::kBadCharacter,
                  "second character must be a letter A-Z other than I and O");
  }
  if (cps.size() == 7) {
    for (size_t i = 2; i < 7; ++i) {
      if (!is_plate_alnum(cps[i])) {
        return reject(PlateReject::kBadCharacter,
                      "character " + std::to_string(i + 1) +
                          " must be a digit or a letter other than I and O");
      }
    }
    if (colour == PlateColour::kGreen) {
      return reject(PlateReject::kColourMismatch, "7-character plate reported as green");
    }
    return std::string(plate);
  }
  // 8 characters: new-energy plate. Small: [DF][A-HJ-NP-Z0-9]\d{4}; large: \d{5}[DF].
  if (!rules.allow_new_energy) {
    return reject(PlateReject::kNewEnergyDisabled, "new-energy plates are disabled");
  }
  const std::span<const std::string_view> tail(cps.data() + 2, 6);
  const bool small = is_d_or_f(tail[0]) && is_plate_alnum(tail[1]) &&
                     std::all_of(tail.begin() + 2, tail.end(), is_digit);
  const bool large = std::all_of(tail.begin(), tail.begin() + 5, is_digit) && is_d_or_f(tail[5]);
  if (!small && !large) {
    return reject(PlateReject::kBadCharacter,
                  "new-energy plate must be D/F + 5 characters or 5 digits + D/F");
  }
  if (!is_new_energy_colour(colour)) {
    return reject(PlateReject::kColourMismatch, "8-character plate on a non-green colour");
  }
  return std::string(plate);
}

}  // namespace lanegate::lane
