#include <cstdio>
#include <string>
#include <vector>

#include "sim/invoicing_pdf.h"

namespace lanegate::sim {
namespace {

// A PDF literal string with (, ) and \ escaped; bytes outside printable ASCII become '?'.
std::string pdf_text(std::string_view s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if ((c & 0xC0) != 0x80) {
        out += '?';  // one '?' per code point
      }
      continue;
    }
    if (c == '(' || c == ')' || c == '\\') {
      out += '\\';
    }
    out += (c >= 0x20 && c < 0x7F) ? static_cast<char>(c) : '?';
  }
  return out + ")";
}

// UTF-8 -> UTF-16BE hex string with BOM, for the information dictionary.
std::string pdf_unicode_hex(std::string_view s) {
  std::vector<std::uint32_t> cps;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::uint32_t cp = 0xFFFD;
    std::size_t len = 1;
    if (c < 0x80) {
      cp = c;
    } else if ((c >> 5) == 0x6 && i + 1 < s.size()) {
      cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
      len = 2;
    } else if ((c >> 4) == 0xE && i + 2 < s.size()) {
      cp = ((c & 0x0Fu) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6) |
           (static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
      len = 3;
    } else if ((c >> 3) == 0x1E && i + 3 < s.size()) {
      cp = ((c & 0x07u) << 18) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 12) |
           ((static_cast<unsigned char>(s[i + 2]) & 0x3Fu) << 6) |
           (static_cast<unsigned char>(s[i + 3]) & 0x3Fu);
      len = 4;
    }
    cps.push_back(cp);
    i += len;
  }
  std::string out = "<FEFF";
  char buf[16];
  for (std::uint32_t cp : cps) {
    if (cp >= 0x10000) {
      const std::uint32_t v = cp - 0x10000;
      std::snprintf(buf, sizeof buf, "%04X%04X", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
    } else {
      std::snprintf(buf, sizeof buf, "%04X", cp);
    }
    out += buf;
  }
  return out + ">";
}

}  // namespace

std::string render_invoice_pdf(const InvoicePdfData& d) {
  // Page content: one text line per entry, 14 pt leading, from the top of an A4 page.
  std::vector<std::string> text = {
      d.kind == "red" ? "Electronic invoice (red letter) - SANDBOX, not valid for tax"
                      : "Electronic invoice - SANDBOX, not valid for tax",
      "Invoice number: " + d.invoice_number,
      "Issue time: " + d.issue_time,
      "Seller: " + d.seller_name + "  tax id " + d.seller_tax_id,
      "Buyer: " + d.buyer_name + (d.buyer_tax_id.empty() ? "" : "  tax id " + d.buyer_tax_id),
  };
  if (d.kind == "red") {
    text.push_back("Reverses invoice: " + d.original_number);
  }
  for (const auto& line : d.specific_lines) {
    text.push_back(line);
  }
  text.push_back("");
  text.push_back("Code                 Rate   Excl tax      Tax    Incl tax");
  for (const auto& l : d.lines) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%-20s %-6s %10s %8s %11s", l.goods_code.c_str(),
                  l.rate.c_str(), l.excl.c_str(), l.tax.c_str(), l.incl.c_str());
    text.push_back(buf);
  }
  text.push_back("");
  text.push_back("Total excl tax: " + d.total_excl + "   Tax: " + d.total_tax +
                 "   Total: " + d.total_incl);

  std::string content = "BT\n/F1 10 Tf\n14 TL\n50 790 Td\n/F2 14 Tf\n";
  bool first = true;
  for (const auto& line : text) {
    content += pdf_text(line) + " Tj T*\n";
    if (first) {
      content += "/F2 10 Tf\n";
      first = false;
    }
  }
  content += "ET\n";

  std::vector<std::string> objects = {
      "<< /Type /Catalog /Pages 2 0 R >>",
      "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
      "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R "
      "/F2 5 0 R >> >> /Contents 6 0 R >>",
      "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
      "<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>",
      "<< /Length " + std::to_string(content.size()) + " >>\nstream\n" + content + "endstream",
      "<< /Title " + pdf_unicode_hex("Invoice " + d.invoice_number + " " + d.buyer_name) +
          " /Subject " + pdf_text(d.invoice_number) + " /Producer (lanegate-sim invoicing) >>",
  };
  std::string pdf = "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n";  // binary marker line
  std::vector<std::size_t> offsets;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    offsets.push_back(pdf.size());
    pdf += std::to_string(i + 1) + " 0 obj\n" + objects[i] + "\nendobj\n";
  }
  const std::size_t xref = pdf.size();
  pdf += "xref\n0 " + std::to_string(objects.size() + 1) + "\n0000000000 65535 f \n";
  char entry[32];
  for (std::size_t off : offsets) {
    std::snprintf(entry, sizeof entry, "%010zu 00000 n \n", off);
    pdf += entry;
  }
  pdf += "trailer\n<< /Size " + std::to_string(objects.size() + 1) +
         " /Root 1 0 R /Info 7 0 R >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
  return pdf;
}

}  // namespace lanegate::sim
