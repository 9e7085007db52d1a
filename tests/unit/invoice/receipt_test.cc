// Receipt text and the claim QR code.
#include "invoice/receipt.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <sstream>

#include "core/time_format.h"
#include "test_db.h"

namespace lanegate::invoice {
namespace {

int cells(std::string_view s) {
  int n = 0;
  for (unsigned char c : s) {
    if (c < 0x80) {
      ++n;
    } else if ((c & 0xC0) != 0x80) {
      n += 2;
    }
  }
  return n;
}

// The 7x7 finder pattern: dark ring, light ring, dark 3x3 core.
bool finder_at(const QrMatrix& q, int ox, int oy) {
  for (int y = 0; y < 7; ++y) {
    for (int x = 0; x < 7; ++x) {
      const bool ring = x == 0 || y == 0 || x == 6 || y == 6;
      const bool core = x >= 2 && x <= 4 && y >= 2 && y <= 4;
      if (q.at(ox + x, oy + y) != (ring || core)) {
        return false;
      }
    }
  }
  return true;
}

TEST(Receipt, ClaimUrlJoinsWithOneSlash) {
  EXPECT_EQ(claim_url("https://lot7.example.cn/", "abc"), "https://lot7.example.cn/claim/abc");
  EXPECT_EQ(claim_url("https://lot7.example.cn", "abc"), "https://lot7.example.cn/claim/abc");
  EXPECT_EQ(format_human_code("7KQ4M2XA"), "7KQ4-M2XA");
}

TEST(Receipt, QrHasFinderPatternsAndVersionWidth) {
  const std::string url = "https://lot7.example.cn/claim/" + std::string(22, 'x');
  auto q = encode_qr(url);
  ASSERT_TRUE(q) << q.error().to_string();
  EXPECT_GE(q->version, 1);
  EXPECT_EQ(q->width, 17 + 4 * q->version);
  // 52 bytes in 8-bit mode at level M need version 4 (62 bytes capacity) at most.
  EXPECT_LE(q->version, 4);
  EXPECT_TRUE(finder_at(*q, 0, 0));
  EXPECT_TRUE(finder_at(*q, q->width - 7, 0));
  EXPECT_TRUE(finder_at(*q, 0, q->width - 7));
  EXPECT_FALSE(finder_at(*q, q->width - 7, q->width - 7));  // no finder bottom-right
  // Timing pattern on row 6 alternates between the finders.
  for (int x = 8; x < q->width - 8; ++x) {
    EXPECT_EQ(q->at(x, 6), x % 2 == 0) << x;
  }
  EXPECT_FALSE(encode_qr(""));
  EXPECT_FALSE(encode_qr(std::string(5000, 'a')));
}

TEST(Receipt, SvgIsWellFormedAndDrawsEveryDarkModule) {
  auto q = encode_qr("http://127.0.0.1:8080/claim/AbCdEfGhIjKlMnOpQrStUv");
  ASSERT_TRUE(q);
  const std::string svg = qr_svg(*q, 4);
  EXPECT_EQ(svg.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg ", 0), 0u);
  EXPECT_TRUE(svg.ends_with("</svg>\n"));
  const int size = q->width + 8;
  EXPECT_NE(svg.find("viewBox=\"0 0 " + std::to_string(size) + " " + std::to_string(size) + "\""),
            std::string::npos);
  EXPECT_NE(svg.find("width=\"" + std::to_string(size * 4) + "\""), std::string::npos);
  // Every element is closed: <svg>...</svg> with self-closing children only.
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '<'), std::count(svg.begin(), svg.end(), '>'));
  EXPECT_EQ(svg.find("<svg", svg.find("<svg") + 1), std::string::npos);
  // Re-rasterise the path runs and compare with the matrix, module by module.
  std::vector<bool> drawn(q->dark.size(), false);
  std::regex run(R"(M(\d+) (\d+)h(\d+)v1h-(\d+)z)");
  const auto d_begin = svg.find(" d=\"") + 4;
  const std::string d = svg.substr(d_begin, svg.find('"', d_begin) - d_begin);
  std::size_t consumed = 0;
  for (auto it = std::sregex_iterator(d.begin(), d.end(), run); it != std::sregex_iterator(); ++it) {
    const int x = std::stoi((*it)[1]) - 4;
    const int y = std::stoi((*it)[2]) - 4;
    const int n = std::stoi((*it)[3]);
    ASSERT_EQ(n, std::stoi((*it)[4]));
    for (int i = 0; i < n; ++i) {
      ASSERT_LT(x + i, q->width);
      drawn[static_cast<std::size_t>(y * q->width + x + i)] = true;
    }
    consumed += static_cast<std::size_t>(it->length());
  }
  EXPECT_EQ(consumed, d.size()) << "path has only run commands";
  EXPECT_EQ(drawn, q->dark);
}

TEST(Receipt, TextFitsPrinterWidthAndCarriesCodeAndUrl) {
  testing::TempDir dir;
  Database db = testing::open_migrated(dir.path() / "gw.db");
  FakeClock clock;
  auto section = testing::test_section();
  ClaimStore store(db, section, clock);
  auto claim = store.create_claim(testing::trip("taxi-20261122-0042", "19.19", clock));
  ASSERT_TRUE(claim);
  auto r = make_receipt(*claim, "深圳市某某出租汽车有限公司 粤B·D12345", "https://taxi.example.cn/", 32);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->url, "https://taxi.example.cn/claim/" + claim->token);
  EXPECT_NE(r->text.find("19.19"), std::string::npos);
  EXPECT_NE(r->text.find(format_human_code(claim->human_code)), std::string::npos);
  // The URL may wrap; joined lines contain it.
  std::string joined;
  std::istringstream lines(r->text);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_LE(cells(line), 32) << line;
    joined += line;
  }
  EXPECT_NE(joined.find(r->url), std::string::npos);
  EXPECT_NE(r->qr_svg.find("<svg"), std::string::npos);
  EXPECT_FALSE(make_receipt(*claim, "x", "http://a", 10));
}

// Issue 17: a toll trip's receipt. The driver needs the trip as the national platform
// lists it (stations, times, plate) and where to go; lanegate has nothing to claim.
TollTrip toll_trip() {
  TollTrip t;
  t.transaction_id = "LGTOLL20261122000042";
  t.plate = "粤B12345";
  t.entry_station = "广州北";
  t.entry_time = *parse_rfc3339("2026-11-22T07:05:00+08:00");
  t.exit_station = "深圳南";
  t.exit_time = *parse_rfc3339("2026-11-22T08:41:30+08:00");
  t.amount = Money::from_fen(4500);
  return t;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    out.push_back(line);
  }
  return out;
}

bool some_line_has(const std::vector<std::string>& lines, std::string_view what) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(what) != std::string::npos; });
}

TEST(TollReceipt, ShowsTheTripAndSendsTheDriverToTheNationalPlatform) {
  for (int columns : {32, 24, 48}) {
    SCOPED_TRACE("columns " + std::to_string(columns));
    auto r = make_toll_receipt(toll_trip(), "深圳南收费站 出口1", columns, UtcOffset{480});
    ASSERT_TRUE(r) << r.error().to_string();
    const auto lines = lines_of(r->text);
    for (const auto& l : lines) {
      EXPECT_LE(cells(l), columns) << l;
    }
    // Each piece on one line, never cut: the driver reads and types them.
    EXPECT_TRUE(some_line_has(lines, "LGTOLL20261122000042"));
    EXPECT_TRUE(some_line_has(lines, "广州北"));
    EXPECT_TRUE(some_line_has(lines, "深圳南"));
    EXPECT_TRUE(some_line_has(lines, "2026-11-22T07:05")) << r->text;
    EXPECT_TRUE(some_line_has(lines, "2026-11-22T08:41")) << r->text;
    EXPECT_TRUE(some_line_has(lines, "粤B***45")) << r->text;  // masked as on every receipt
    EXPECT_EQ(r->text.find("粤B12345"), std::string::npos);
    EXPECT_TRUE(some_line_has(lines, "45.00"));
    EXPECT_TRUE(some_line_has(lines, "www.txffp.com")) << r->text;
    EXPECT_TRUE(some_line_has(lines, "票根"));
    EXPECT_TRUE(some_line_has(lines, "platform")) << r->text;  // broken at a space
    // Wrapped lines read on: CJK text continues without a space, English after one.
    std::string joined, spaced;
    for (const auto& l : lines) {
      joined += l;
      spaced += l + " ";
    }
    EXPECT_NE(joined.find("通行费发票由全国收费公路联网收费平台开具"), std::string::npos);
    EXPECT_NE(joined.find("行程后第7个自然日起可开具"), std::string::npos);
    EXPECT_NE(spaced.find("Toll invoices: national toll e-bill platform"), std::string::npos);
    EXPECT_NE(spaced.find("available from the 7th day after the trip"), std::string::npos)
        << r->text;
    // No claim: no URL, no QR, no claim code, nothing that looks like an invoice offer.
    EXPECT_TRUE(r->url.empty());
    EXPECT_TRUE(r->qr_svg.empty());
    EXPECT_EQ(r->text.find("/claim"), std::string::npos);
    EXPECT_EQ(r->text.find("开票码"), std::string::npos);
  }
  EXPECT_FALSE(make_toll_receipt(toll_trip(), "x", 10));
}

// The printable page: the receipt's text as printed, the QR when there is one, nothing
// that could run (the site name comes from config, the plate from a camera).
TEST(ReceiptPage, PrintsTheTextEscapedWithTheQrAndNoScript) {
  testing::TempDir dir;
  Database db = testing::open_migrated(dir.path() / "gw.db");
  FakeClock clock;
  auto section = testing::test_section();
  ClaimStore store(db, section, clock);
  auto claim = store.create_claim(testing::trip("park-1", "6.00", clock, "", "parking"));
  ASSERT_TRUE(claim);
  auto r = make_receipt(*claim, "<script>x()</script> & Co", "https://lot.example.cn", 32);
  ASSERT_TRUE(r);
  const std::string page = receipt_html(*r, "Lot <b>");
  EXPECT_TRUE(page.starts_with("<!DOCTYPE html>"));
  EXPECT_NE(page.find("<meta charset=\"utf-8\">"), std::string::npos);
  EXPECT_NE(page.find("name=\"viewport\""), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos) << page;
  EXPECT_NE(page.find("&lt;script&gt;x()&lt;/script&gt; &amp; Co"), std::string::npos) << page;
  EXPECT_NE(page.find("<title>Lot &lt;b&gt;</title>"), std::string::npos);
  EXPECT_NE(page.find("<svg"), std::string::npos);
  EXPECT_EQ(page.find("<?xml"), std::string::npos);  // the SVG's declaration is dropped
  EXPECT_NE(page.find(format_human_code(claim->human_code)), std::string::npos);
  EXPECT_EQ(std::string(kReceiptPageCsp).find("script-src"), std::string::npos);
  EXPECT_NE(std::string(kReceiptPageCsp).find("default-src 'none'"), std::string::npos);

  auto toll = make_toll_receipt(toll_trip(), "深圳南收费站", 32, UtcOffset{480});
  ASSERT_TRUE(toll);
  const std::string toll_page = receipt_html(*toll, "toll");
  EXPECT_EQ(toll_page.find("<svg"), std::string::npos);
  EXPECT_EQ(toll_page.find("id=\"qr\""), std::string::npos);
  EXPECT_NE(toll_page.find("www.txffp.com"), std::string::npos);
  EXPECT_NE(toll_page.find("&quot;票根&quot;"), std::string::npos);
}

TEST(TollReceipt, TimesAreTheGatewaysLocalTime) {
  auto r = make_toll_receipt(toll_trip(), "site", 32, UtcOffset{420});
  ASSERT_TRUE(r);
  EXPECT_NE(r->text.find("2026-11-22T06:05"), std::string::npos) << r->text;
  EXPECT_NE(r->text.find("2026-11-22T07:41"), std::string::npos) << r->text;
}

}  // namespace
}  // namespace lanegate::invoice
