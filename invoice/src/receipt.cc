#include "invoice/receipt.h"

#include <qrencode.h>

#include <algorithm>
#include <memory>

#include "core/log.h"
#include "core/time_format.h"

namespace lanegate::invoice {

std::string claim_url(std::string_view public_base_url, std::string_view token) {
  std::string base(public_base_url);
  while (!base.empty() && base.back() == '/') {
    base.pop_back();
  }
  return base + "/claim/" + std::string(token);
}

std::string format_human_code(std::string_view code) {
  if (code.size() != 8) {
    return std::string(code);
  }
  return std::string(code.substr(0, 4)) + "-" + std::string(code.substr(4));
}

Result<QrMatrix> encode_qr(std::string_view text) {
  if (text.empty() || text.find('\0') != std::string_view::npos) {
    return fail(Errc::kInvalidArgument, "QR text must be non-empty without NUL", "text");
  }
  const std::string copy(text);
  std::unique_ptr<QRcode, decltype(&QRcode_free)> code(
      QRcode_encodeString8bit(copy.c_str(), 0, QR_ECLEVEL_M), &QRcode_free);
  if (!code) {
    return fail(Errc::kOutOfRange, "text does not fit in a QR code", "text");
  }
  QrMatrix m;
  m.version = code->version;
  m.width = code->width;
  m.dark.resize(static_cast<std::size_t>(m.width) * static_cast<std::size_t>(m.width));
  for (std::size_t i = 0; i < m.dark.size(); ++i) {
    m.dark[i] = (code->data[i] & 1) != 0;  // bit 0: dark module
  }
  return m;
}

std::string qr_svg(const QrMatrix& qr, int module_px) {
  constexpr int kQuiet = 4;
  const int size = qr.width + 2 * kQuiet;
  std::string path;
  for (int y = 0; y < qr.width; ++y) {
    int x = 0;
    while (x < qr.width) {
      if (!qr.at(x, y)) {
        ++x;
        continue;
      }
      int run = 0;
      while (x + run < qr.width && qr.at(x + run, y)) {
        ++run;
      }
      path += "M" + std::to_string(x + kQuiet) + " " + std::to_string(y + kQuiet) + "h" +
              std::to_string(run) + "v1h-" + std::to_string(run) + "z";
      x += run;
    }
  }
  const std::string px = std::to_string(size * module_px);
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + px +
         "\" height=\"" + px + "\" viewBox=\"0 0 " + std::to_string(size) + " " +
         std::to_string(size) +
         "\" shape-rendering=\"crispEdges\">\n"
         "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
         "<path fill=\"#000\" d=\"" + path + "\"/>\n"
         "</svg>\n";
}

namespace {

int cells_of(unsigned char lead) { return lead < 0x80 ? 1 : 2; }

std::size_t sequence_length(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t len = 1;
  if (c >= 0xF0) {
    len = 4;
  } else if (c >= 0xE0) {
    len = 3;
  } else if (c >= 0xC0) {
    len = 2;
  }
  return std::min(len, s.size() - i);
}

int cells(std::string_view s) {
  int n = 0;
  for (std::size_t i = 0; i < s.size(); i += sequence_length(s, i)) {
    n += cells_of(static_cast<unsigned char>(s[i]));
  }
  return n;
}

// Breaks `s` into lines of at most `columns` cells without splitting a UTF-8 sequence:
// at a space when the next word does not fit (a printed receipt stays readable), inside
// a word only when the word is longer than a whole line (a URL, a run of CJK text).
void wrap_into(std::string& out, std::string_view s, int columns) {
  std::string line;
  int used = 0;
  auto flush = [&] {
    out += line + "\n";
    line.clear();
    used = 0;
  };
  std::size_t start = 0;
  bool first = true;
  while (start <= s.size()) {
    const std::size_t end = std::min(s.find(' ', start), s.size());
    const std::string_view word = s.substr(start, end - start);
    const int w = cells(word);
    const int gap = first ? 0 : 1;
    first = false;
    if (used + gap + w <= columns) {
      if (gap != 0) {
        line.push_back(' ');
      }
      line.append(word);
      used += gap + w;
    } else {
      if (w <= columns) {
        flush();  // the word fits on a line of its own
      } else if (gap != 0 && used + gap < columns) {
        line.push_back(' ');  // a word longer than a line fills this one first
        ++used;
      }
      for (std::size_t i = 0; i < word.size();) {
        const std::size_t len = sequence_length(word, i);
        const int cw = cells_of(static_cast<unsigned char>(word[i]));
        if (used + cw > columns) {
          flush();
        }
        line.append(word.substr(i, len));
        used += cw;
        i += len;
      }
    }
    start = end + 1;
  }
  out += line + "\n";
}

std::string rule(int columns) { return std::string(static_cast<std::size_t>(columns), '-') + "\n"; }

// "2026-11-22T08:12", as receipts print times.
std::string minute(SystemTime t, UtcOffset offset) { return format_rfc3339(t, offset).substr(0, 16); }

}  // namespace

Result<Receipt> make_receipt(const Claim& claim, std::string_view site_name,
                             std::string_view public_base_url, int columns) {
  if (columns < 24) {
    return fail(Errc::kOutOfRange, "a receipt needs at least 24 columns", "columns");
  }
  Receipt r;
  r.url = claim_url(public_base_url, claim.token);
  auto qr = encode_qr(r.url);
  if (!qr) {
    return std::unexpected(qr.error());
  }
  r.qr_svg = qr_svg(*qr);
  const UtcOffset cst{480};
  std::string& t = r.text;
  wrap_into(t, site_name, columns);
  t += rule(columns);
  wrap_into(t, "交易 Txn: " + claim.transaction_id, columns);
  if (!claim.description.empty()) {
    wrap_into(t, claim.description, columns);
  }
  wrap_into(t, "时间 Paid: " + minute(claim.settled_at, cst), columns);
  wrap_into(t, "金额 Amount: ¥" + claim.amount.to_string(), columns);
  t += rule(columns);
  wrap_into(t, "扫码开具电子发票 Scan for e-invoice", columns);
  wrap_into(t, r.url, columns);
  wrap_into(t, "开票码 Code: " + format_human_code(claim.human_code), columns);
  wrap_into(t, "截止 Claim by: " + format_local_date(claim.expires_at, cst), columns);
  return r;
}

namespace {

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace

std::string receipt_html(const Receipt& receipt, std::string_view title) {
  std::string svg = receipt.qr_svg;
  if (const auto at = svg.find("<svg"); at != std::string::npos) {
    svg.erase(0, at);  // the XML declaration has no place inside an HTML body
  }
  std::string page =
      "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<meta name=\"referrer\" content=\"no-referrer\">\n"
      "<link rel=\"icon\" href=\"data:,\">\n<title>" +
      html_escape(title) +
      "</title>\n<style>\n"
      "  body { margin: 0; padding: 1rem; background: #fff; color: #000; }\n"
      "  main { max-width: 24rem; margin: 0 auto; }\n"
      "  pre { margin: 0 0 1rem; white-space: pre-wrap; overflow-wrap: anywhere;\n"
      "        font: 15px/1.45 ui-monospace, \"Noto Sans Mono CJK SC\", \"Sarasa Mono SC\", monospace; }\n"
      "  .qr svg { display: block; width: 12rem; max-width: 100%; height: auto; }\n"
      "  @media print { body { padding: 0; } }\n"
      "</style>\n</head>\n<body>\n<main>\n<pre id=\"receipt\">" +
      html_escape(receipt.text) + "</pre>\n";
  if (!svg.empty()) {
    page += "<div id=\"qr\" class=\"qr\" role=\"img\" aria-label=\"invoice claim QR\">" + svg +
            "</div>\n";
  }
  page += "</main>\n</body>\n</html>\n";
  return page;
}

Result<Receipt> make_toll_receipt(const TollTrip& trip, std::string_view site_name, int columns,
                                  UtcOffset offset) {
  if (columns < 24) {
    return fail(Errc::kOutOfRange, "a receipt needs at least 24 columns", "columns");
  }
  Receipt r;  // no url, no qr_svg: lanegate has nothing to claim for a toll (claims.h I10)
  std::string& t = r.text;
  wrap_into(t, site_name, columns);
  t += rule(columns);
  wrap_into(t, "交易 Txn: " + trip.transaction_id, columns);
  wrap_into(t, "车牌 Plate: " + log::mask_plate(trip.plate), columns);
  wrap_into(t, "入口 Entry: " + trip.entry_station, columns);
  wrap_into(t, "入口时间 In: " + minute(trip.entry_time, offset), columns);
  wrap_into(t, "出口 Exit: " + trip.exit_station, columns);
  wrap_into(t, "出口时间 Out: " + minute(trip.exit_time, offset), columns);
  wrap_into(t, "金额 Amount: ¥" + trip.amount.to_string(), columns);
  t += rule(columns);
  // Spec "Tolls": the national platform issues toll bills, from the 7th natural day after
  // the trip; the driver needs the plate or ETC card and these times to find the trip there.
  wrap_into(t, "通行费发票由全国收费公路联网收费平台开具", columns);
  wrap_into(t, "Toll invoices: national toll e-bill platform", columns);
  wrap_into(t, "www.txffp.com 或\"票根\"App", columns);
  wrap_into(t, "行程后第7个自然日起可开具", columns);
  wrap_into(t, "available from the 7th day after the trip", columns);
  return r;
}

}  // namespace lanegate::invoice
