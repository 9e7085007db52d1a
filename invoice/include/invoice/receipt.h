#pragma once
// The passenger's receipt: text for a thermal printer or the meter screen, and a QR code
// (SVG for the display) that opens the claim page. A toll trip's receipt has no claim and
// no QR: it shows the trip and where the driver gets the invoice (spec "Tolls").
// Pure functions; any thread may call.

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/money.h"
#include "core/time_format.h"
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
  std::string url;     // the claim URL encoded in the QR code; empty for a toll trip
  std::string text;    // lines of at most `columns` display cells (any non-ASCII counts 2);
                       // a long line breaks at a space, a word longer than a line anywhere
  std::string qr_svg;  // empty for a toll trip
};

// REQUIRES: `columns` >= 24.
[[nodiscard]] Result<Receipt> make_receipt(const Claim& claim, std::string_view site_name,
                                           std::string_view public_base_url, int columns = 32);

// The receipt as a printable page (an operator prints it, or shows it on a phone): the
// text in a <pre>, the QR inline as SVG when there is one, no script, no external asset,
// no link. Everything from `receipt` is HTML-escaped except qr_svg, which qr_svg() made.
std::string receipt_html(const Receipt& receipt, std::string_view title);
// The page's Content-Security-Policy: no script at all, inline styles only.
inline constexpr std::string_view kReceiptPageCsp =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'";

// A toll exit as the passenger's receipt shows it. Station names are the ones the lane
// charged with (the gateway falls back to its [[station]] table for older rows).
struct TollTrip {
  std::string transaction_id;  // out_trade_no
  std::string plate;           // full plate; the receipt masks it as every receipt does
  std::string entry_station;   // name
  SystemTime entry_time{};
  std::string exit_station;    // name
  SystemTime exit_time{};
  Money amount;                // what the ETC deduction charged
};

// The toll trip's receipt: the trip, then where the invoice comes from -- the national
// toll e-bill platform (www.txffp.com / 票根 app), from the 7th natural day after the
// trip. lanegate never issues toll invoices, so `url` and `qr_svg` are empty (no claim,
// no invented QR). Times are printed at `offset` (the gateway's utc_offset_minutes).
// REQUIRES: `columns` >= 24.
[[nodiscard]] Result<Receipt> make_toll_receipt(const TollTrip& trip, std::string_view site_name,
                                                int columns = 32, UtcOffset offset = {});

}  // namespace lanegate::invoice
