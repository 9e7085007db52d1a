#pragma once
// The invoice as the gateway keeps it: seller, buyer, lines, totals. Plain values; the
// claim store (claims.h) owns the persisted copies and their lifecycle.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "core/money.h"

namespace lanegate::invoice {

enum class BuyerKind { kPerson, kCompany };
std::string_view to_string(BuyerKind kind);  // "person" | "company"

struct Buyer {
  BuyerKind kind = BuyerKind::kPerson;
  std::string title;   // company name, or the person's name or 个人
  std::string tax_id;  // normalised unified social credit code; empty for a person
  std::string email;   // where the platform pushes the invoice (one of email/phone)
  std::string phone;
};

struct Seller {
  std::string name;
  std::string tax_id;
};
Seller seller_from_config(const config::InvoicingSection& section);

// Blue = an ordinary invoice; red = the credit note reversing a blue one.
enum class InvoiceKind { kBlue, kRed };
std::string_view to_string(InvoiceKind kind);  // "blue" | "red"

struct InvoiceLine {
  std::string transaction_id;  // the settled transaction this line bills
  std::string service;         // "taxi" | "parking" | "toll"
  std::string item_name;       // "*经营租赁*停车费"
  std::string tax_code;        // 19 digits
  int rate_percent = 0;
  std::string favoured_policy_flag;  // "" | "08" | "09"
  Money excl;                  // negative on a red invoice
  Money tax;
  Money incl;                  // excl + tax
};

// Builds a line by splitting the tax-inclusive amount under `rule` (split_tax).
InvoiceLine make_line(const config::TaxRule& rule, std::string transaction_id, Money incl);

struct InvoiceTotals {
  Money excl;
  Money tax;
  Money incl;
};
// Sum of the lines (each split separately, then summed: the spec's rule).
[[nodiscard]] Result<InvoiceTotals> sum_lines(std::span<const InvoiceLine> lines);

// The red-letter lines for a blue invoice: every amount negated, the original order kept.
[[nodiscard]] Result<std::vector<InvoiceLine>> red_letter_lines(std::span<const InvoiceLine> blue);

// Chinese capital numerals for an amount (大写), as printed in 价税合计:
//   19.19 -> 壹拾玖元壹角玖分, 100.00 -> 壹佰元整, 1.05 -> 壹元零伍分, 0.50 -> 伍角整,
//   0.00 -> 零元整, 100100.00 -> 壹拾万零壹佰元整; a negative amount is prefixed 负.
// Supports |amount| < 10^12 yuan (up to 仟亿); larger is kOutOfRange.
[[nodiscard]] Result<std::string> chinese_capital_amount(Money amount);

}  // namespace lanegate::invoice
