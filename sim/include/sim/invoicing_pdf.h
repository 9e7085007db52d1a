#pragma once
// A minimal, valid PDF 1.4 for a sandbox invoice, written by hand: one A4 page, the
// standard Helvetica font, an uncompressed content stream, exact xref offsets. Text the
// base-14 font cannot show (Chinese titles) is written as '?' on the page and kept
// exactly in the document information dictionary (/Title, UTF-16BE).
//
// Pure function; any thread may call.

#include <string>
#include <vector>

namespace lanegate::sim {

struct InvoicePdfLine {
  std::string goods_code;
  std::string rate;  // "0.03"
  std::string excl;  // "18.63"
  std::string tax;
  std::string incl;
};

struct InvoicePdfData {
  std::string invoice_number;  // 20 digits
  std::string issue_time;      // "2026-11-22 13:29:35"
  std::string kind;            // "blue" | "red"
  std::string original_number; // red only
  std::string seller_name;
  std::string seller_tax_id;
  std::string buyer_name;      // UTF-8
  std::string buyer_tax_id;
  std::vector<std::string> specific_lines;  // the specific-business block, as printed
  std::vector<InvoicePdfLine> lines;
  std::string total_excl;
  std::string total_tax;
  std::string total_incl;
};

std::string render_invoice_pdf(const InvoicePdfData& data);

}  // namespace lanegate::sim
