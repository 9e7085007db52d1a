#pragma once
// The passenger's receipt: text for a thermal printer or the meter screen, and a QR code
// (SVG for the display) that opens the claim page. Pure functions; any thread may call.

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "invoice/claims.h"

namespace lanegate::invoice {

// public_base_url + "/claim/" + token (one slash, whatever the base ends with).
std::string claim_url(std::string_view public_base_url, std::string_view token);

// "7KQ4M2XA" -> "7KQ4-M2XA" (easier to read aloud and to type).
std::string format_human_code(std::string_view code);

// A QR symbol: width x width modules, row-major, true = dark. No quiet zone.
struct QrMatrix {
  int version = 0;
  int width = 0;
  std::vector<bool> dark;
  bool at(int x, int y) const { return dark[static_cast<std::size_t>(y * width + x)]; }
};

// Encodes `text` (8-bit mode, error correction level M) with libqrencode.
// Errors: kInvalidArgument (empty or with NUL), kOutOfRange (too long for a QR code).
[[nodiscard]] Result<QrMatrix> encode_qr(std::string_view text);

// SVG with a 4-module quiet zone; one path, one "M x y h n v1 h-n z" run per dark run.
// `module_px` scales the viewBox into width/height attributes.
std::string qr_svg(const QrMatrix& qr, int module_px = 4);

struct Receipt {
  std::string url;     // the claim URL encoded in the QR code
  std::string text;    // lines of at most `columns` display cells (CJK counts 2)
  std::string qr_svg;
};

// REQUIRES: `columns` >= 24.
[[nodiscard]] Result<Receipt> make_receipt(const Claim& claim, std::string_view site_name,
                                           std::string_view public_base_url, int columns = 32);

}  // namespace lanegate::invoice
