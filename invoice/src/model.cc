#include "invoice/model.h"

#include <array>
#include <string>

#include "invoice/tax.h"

namespace lanegate::invoice {

std::string_view to_string(BuyerKind kind) {
  return kind == BuyerKind::kCompany ? "company" : "person";
}

std::string_view to_string(InvoiceKind kind) { return kind == InvoiceKind::kRed ? "red" : "blue"; }

Seller seller_from_config(const config::InvoicingSection& section) {
  return Seller{section.seller_name, section.seller_tax_id};
}

InvoiceLine make_line(const config::TaxRule& rule, std::string transaction_id, Money incl) {
  const TaxSplit split = split_tax(incl, rule.rate_percent);
  InvoiceLine line;
  line.transaction_id = std::move(transaction_id);
  line.service = rule.service;
  line.item_name = rule.item_name;
  line.tax_code = rule.code;
  line.rate_percent = rule.rate_percent;
  line.favoured_policy_flag = rule.favoured_policy_flag;
  line.excl = split.excl;
  line.tax = split.tax;
  line.incl = incl;
  return line;
}

Result<InvoiceTotals> sum_lines(std::span<const InvoiceLine> lines) {
  InvoiceTotals t;
  for (const InvoiceLine& l : lines) {
    auto e = t.excl.add(l.excl);
    auto x = t.tax.add(l.tax);
    auto i = t.incl.add(l.incl);
    if (!e || !x || !i) {
      return fail(Errc::kOverflow, "invoice total overflows", "lines");
    }
    t.excl = *e;
    t.tax = *x;
    t.incl = *i;
  }
  return t;
}

Result<std::vector<InvoiceLine>> red_letter_lines(std::span<const InvoiceLine> blue) {
  std::vector<InvoiceLine> red;
  red.reserve(blue.size());
  for (const InvoiceLine& l : blue) {
    InvoiceLine r = l;
    auto e = l.excl.negate();
    auto x = l.tax.negate();
    auto i = l.incl.negate();
    if (!e || !x || !i) {
      return fail(Errc::kOverflow, "line amount cannot be negated", "lines");
    }
    r.excl = *e;
    r.tax = *x;
    r.incl = *i;
    red.push_back(std::move(r));
  }
  return red;
}

namespace {

constexpr std::array<std::string_view, 10> kDigits = {"零", "壹", "贰", "叁", "肆",
                                                      "伍", "陆", "柒", "捌", "玖"};
constexpr std::array<std::string_view, 4> kPlaceInGroup = {"", "拾", "佰", "仟"};
constexpr std::array<std::string_view, 3> kGroupUnit = {"", "万", "亿"};

// Integer yuan in capitals (value > 0, < 10^12). Zero runs between non-zero digits
// collapse to one 零; trailing zeros of the number and of a group write nothing; a
// group unit (万, 亿) is written when its group has a non-zero digit.
std::string yuan_capitals(std::int64_t value) {
  std::array<int, 12> digits{};
  int count = 0;
  for (std::int64_t v = value; v > 0; v /= 10) {
    digits[static_cast<std::size_t>(count++)] = static_cast<int>(v % 10);
  }
  std::string out;
  bool pending_zero = false;
  for (int pos = count - 1; pos >= 0; --pos) {
    const int d = digits[static_cast<std::size_t>(pos)];
    if (d == 0) {
      if (!out.empty()) {
        pending_zero = true;
      }
    } else {
      if (pending_zero) {
        out += kDigits[0];
        pending_zero = false;
      }
      out += kDigits[static_cast<std::size_t>(d)];
      out += kPlaceInGroup[static_cast<std::size_t>(pos % 4)];
    }
    if (pos % 4 == 0 && pos > 0) {
      const int base = pos;
      const bool group_nonzero = digits[static_cast<std::size_t>(base)] != 0 ||
                                 digits[static_cast<std::size_t>(base + 1)] != 0 ||
                                 digits[static_cast<std::size_t>(base + 2)] != 0 ||
                                 digits[static_cast<std::size_t>(base + 3)] != 0;
      if (group_nonzero) {
        out += kGroupUnit[static_cast<std::size_t>(pos / 4)];
      }
    }
  }
  return out;
}

}  // namespace

Result<std::string> chinese_capital_amount(Money amount) {
  constexpr std::int64_t kLimitFen = 100'000'000'000'000;  // 10^12 yuan
  std::int64_t fen = amount.fen();
  if (fen <= -kLimitFen || fen >= kLimitFen) {
    return fail(Errc::kOutOfRange, "amount too large for capital numerals (limit 10^12 yuan)",
                "amount");
  }
  std::string out;
  if (fen < 0) {
    out += "负";
    fen = -fen;
  }
  const std::int64_t yuan = fen / 100;
  const int jiao = static_cast<int>(fen / 10 % 10);
  const int fen_digit = static_cast<int>(fen % 10);
  if (yuan > 0) {
    out += yuan_capitals(yuan);
    out += "元";
  }
  if (jiao == 0 && fen_digit == 0) {
    if (yuan == 0) {
      out += "零元";
    }
    out += "整";
    return out;
  }
  if (jiao > 0) {
    out += kDigits[static_cast<std::size_t>(jiao)];
    out += "角";
    if (fen_digit > 0) {
      out += kDigits[static_cast<std::size_t>(fen_digit)];
      out += "分";
    } else {
      out += "整";
    }
    return out;
  }
  if (yuan > 0) {
    out += kDigits[0];  // 壹元零伍分: the empty 角 is spoken
  }
  out += kDigits[static_cast<std::size_t>(fen_digit)];
  out += "分";
  return out;
}

}  // namespace lanegate::invoice
