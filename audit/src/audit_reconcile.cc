#include "audit/audit_reconcile.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <limits>
#include <map>
#include <span>

#include "core/ledger.h"
#include "core/metrics.h"

namespace lanegate::audit {
namespace {

namespace json = boost::json;

// How a column's text becomes a BillRow member.
enum class ColumnKind {
  kText,    // kept verbatim (after the backtick)
  kTime,    // "YYYY-MM-DD hh:mm:ss"
  kAmount,  // yuan, at most 2 decimals, not negative; "0" or empty is zero
  kFee,     // yuan, at most 5 decimals, may be negative
  kRate,    // "0.60%", or empty
};

struct BillColumn {
  std::string_view name;  // exactly as in the spec's header
  ColumnKind kind = ColumnKind::kText;
  std::string BillRow::* text = nullptr;
  Money BillRow::* money = nullptr;
  bool required = false;  // must not be empty
};

// The spec's ALL header, in order (specs/payment-provider-wechatpay-v3.md). The file's
// header must equal it: a renamed or reordered column would change what a value means.
const std::array<BillColumn, 27> kBillColumns{{
    {"交易时间", ColumnKind::kTime, &BillRow::trade_time, nullptr, true},
    {"公众账号ID", ColumnKind::kText, &BillRow::appid},
    {"商户号", ColumnKind::kText, &BillRow::mchid, nullptr, true},
    {"特约商户号", ColumnKind::kText, &BillRow::sub_mchid},
    {"设备号", ColumnKind::kText, &BillRow::device_id},
    {"微信订单号", ColumnKind::kText, &BillRow::transaction_id},
    {"商户订单号", ColumnKind::kText, &BillRow::out_trade_no, nullptr, true},
    {"用户标识", ColumnKind::kText, &BillRow::openid},
    {"交易类型", ColumnKind::kText, &BillRow::trade_type},
    {"交易状态", ColumnKind::kText, &BillRow::trade_state, nullptr, true},
    {"付款银行", ColumnKind::kText, &BillRow::bank},
    {"货币种类", ColumnKind::kText, &BillRow::currency, nullptr, true},
    {"应结订单金额", ColumnKind::kAmount, nullptr, &BillRow::settlement_amount},
    {"代金券金额", ColumnKind::kAmount, nullptr, &BillRow::coupon_amount},
    {"微信退款单号", ColumnKind::kText, &BillRow::refund_id},
    {"商户退款单号", ColumnKind::kText, &BillRow::out_refund_no},
    {"退款金额", ColumnKind::kAmount, nullptr, &BillRow::refund_amount},
    {"充值券退款金额", ColumnKind::kAmount, nullptr, &BillRow::coupon_refund_amount},
    {"退款类型", ColumnKind::kText, &BillRow::refund_type},
    {"退款状态", ColumnKind::kText, &BillRow::refund_state},
    {"商品名称", ColumnKind::kText, &BillRow::description},
    {"商户数据包", ColumnKind::kText, &BillRow::attach},
    {"手续费", ColumnKind::kFee},
    {"费率", ColumnKind::kRate, &BillRow::rate},
    {"订单金额", ColumnKind::kAmount, nullptr, &BillRow::order_amount},
    {"申请退款金额", ColumnKind::kAmount, nullptr, &BillRow::requested_refund},
    {"费率备注", ColumnKind::kText, &BillRow::rate_note},
}};

constexpr std::array<std::string_view, 7> kSummaryColumns{
    "总交易单数",   "应结订单总金额", "退款总金额",     "充值券退款总金额",
    "手续费总金额", "订单总金额",     "申请退款总金额",
};

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::unexpected<Error> bill_error(std::size_t line, std::string_view column, std::string rule) {
  metrics::Registry::global()
      .counter("lanegate_audit_bill_rejected_total", "Trade bills refused as malformed")
      .inc();
  return fail(Errc::kParse,
              "trade bill line " + std::to_string(line) +
                  (column.empty() ? "" : ", column " + std::string(column)) + ": " + rule,
              std::string(column));
}

// The bill does not quote fields. Public bill parsers report that the provider escapes a
// comma inside free text (商品名称, 商户数据包, 设备号) as "\ " (the spec does not say); a
// raw comma would shift the columns, and the field count or a missing backtick refuses
// the line rather than misreading it.
std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> out;
  while (true) {
    const std::size_t comma = line.find(',');
    out.push_back(line.substr(0, comma));
    if (comma == std::string_view::npos) {
      return out;
    }
    line.remove_prefix(comma + 1);
  }
}

// A header line (no backticks) must equal `expected`; the error names the first column
// that differs or is missing.
Status check_header(std::size_t line_no, std::string_view line,
                    std::span<const std::string_view> expected, std::string_view what_view) {
  const std::string what(what_view);
  const auto names = split_fields(line);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (i >= names.size()) {
      return bill_error(line_no, expected[i],
                        what + " lacks column " + std::to_string(i + 1) + " " +
                            in_quotes(expected[i]) + " (the spec's bill_type=ALL layout)");
    }
    if (names[i] != expected[i]) {
      return bill_error(line_no, expected[i],
                        what + " column " + std::to_string(i + 1) + " is " + in_quotes(names[i]) +
                            ", expected " + in_quotes(expected[i]) +
                            " (the spec's bill_type=ALL layout)");
    }
  }
  if (names.size() > expected.size()) {
    return bill_error(line_no, names[expected.size()],
                      what + " has an unexpected column " + std::to_string(expected.size() + 1) +
                          " " + in_quotes(names[expected.size()]) + " after " +
                          in_quotes(expected.back()));
  }
  return {};
}

// A data or summary line: `expected.size()` fields, each prefixed with a backtick, which
// is removed.
Result<std::vector<std::string_view>> backticked_fields(std::size_t line_no, std::string_view line,
                                                        std::span<const std::string_view> names) {
  auto fields = split_fields(line);
  if (fields.size() < names.size()) {
    return bill_error(line_no, names[fields.size()],
                      "has " + std::to_string(fields.size()) + " fields, the header has " +
                          std::to_string(names.size()) + ": column " +
                          in_quotes(names[fields.size()]) + " is missing");
  }
  if (fields.size() > names.size()) {
    return bill_error(line_no, "",
                      "has " + std::to_string(fields.size()) + " fields, the header has " +
                          std::to_string(names.size()));
  }
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (!fields[i].starts_with('`')) {
      return bill_error(line_no, names[i],
                        "value " + in_quotes(fields[i]) +
                            " is not prefixed with a backtick (every bill field is)");
    }
    fields[i].remove_prefix(1);
  }
  return fields;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_digit);
}

// "YYYY-MM-DD hh:mm:ss" with plausible ranges (the calendar is not checked further: the
// time is shown, not computed with).
bool is_bill_time(std::string_view s) {
  if (s.size() != 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' ||
      s[16] != ':') {
    return false;
  }
  for (std::size_t i : {0u, 1u, 2u, 3u, 5u, 6u, 8u, 9u, 11u, 12u, 14u, 15u, 17u, 18u}) {
    if (!is_digit(s[i])) {
      return false;
    }
  }
  auto num = [&](std::size_t at) { return (s[at] - '0') * 10 + (s[at + 1] - '0'); };
  return num(5) >= 1 && num(5) <= 12 && num(8) >= 1 && num(8) <= 31 && num(11) <= 23 &&
         num(14) <= 59 && num(17) <= 59;
}

// "0.60%": digits, optional decimals, a percent sign.
bool is_rate(std::string_view s) {
  if (!s.ends_with('%')) {
    return false;
  }
  s.remove_suffix(1);
  const std::size_t dot = s.find('.');
  if (dot == std::string_view::npos) {
    return all_digits(s);
  }
  return all_digits(s.substr(0, dot)) && all_digits(s.substr(dot + 1));
}

// Yuan with at most 2 decimals via Money::parse (exact, no floating point); not negative.
Result<Money> parse_yuan(std::size_t line_no, std::string_view column, std::string_view text) {
  auto m = Money::parse(text);
  if (!m) {
    return bill_error(line_no, column,
                      m.error().message + " (yuan with at most 2 decimals, e.g. 12.34)");
  }
  if (m->is_negative()) {
    return bill_error(line_no, column, in_quotes(text) + " must not be negative");
  }
  return m;
}

Result<std::int64_t> parse_count(std::size_t line_no, std::string_view column,
                                 std::string_view text) {
  if (!all_digits(text) || text.size() > 15) {
    return bill_error(line_no, column, in_quotes(text) + " is not a count");
  }
  std::int64_t n = 0;
  for (char c : text) {
    n = n * 10 + (c - '0');
  }
  return n;
}

Status parse_row_value(BillRow& row, const BillColumn& col, std::string_view value) {
  if (col.required && value.empty()) {
    return bill_error(row.line, col.name, "is empty");
  }
  switch (col.kind) {
    case ColumnKind::kText:
      row.*(col.text) = std::string(value);
      return {};
    case ColumnKind::kTime:
      if (!is_bill_time(value)) {
        return bill_error(row.line, col.name,
                          in_quotes(value) + " is not a time YYYY-MM-DD hh:mm:ss");
      }
      row.*(col.text) = std::string(value);
      return {};
    case ColumnKind::kRate:
      if (!value.empty() && !is_rate(value)) {
        return bill_error(row.line, col.name, in_quotes(value) + " is not a rate like 0.60%");
      }
      row.*(col.text) = std::string(value);
      return {};
    case ColumnKind::kFee: {
      auto fee = BillFee::parse(value.empty() ? std::string_view("0") : value);
      if (!fee) {
        return bill_error(row.line, col.name, fee.error().message);
      }
      row.fee = *fee;
      return {};
    }
    case ColumnKind::kAmount: {
      if (value.empty()) {
        // Unused refund (or coupon) fields may be empty; the compared amounts are checked
        // per line kind below.
        row.*(col.money) = Money::zero();
        return {};
      }
      auto m = parse_yuan(row.line, col.name, value);
      if (!m) {
        return std::unexpected(m.error());
      }
      row.*(col.money) = *m;
      return {};
    }
  }
  return {};
}

std::vector<std::string_view> bill_column_names() {
  std::vector<std::string_view> names;
  for (const BillColumn& c : kBillColumns) {
    names.push_back(c.name);
  }
  return names;
}

Result<BillRow> parse_row(std::size_t line_no, std::string_view line,
                          std::span<const std::string_view> names) {
  auto fields = backticked_fields(line_no, line, names);
  if (!fields) {
    return std::unexpected(fields.error());
  }
  BillRow row;
  row.line = line_no;
  std::array<bool, kBillColumns.size()> empty{};
  for (std::size_t c = 0; c < kBillColumns.size(); ++c) {
    empty[c] = (*fields)[c].empty();
    if (auto s = parse_row_value(row, kBillColumns[c], (*fields)[c]); !s) {
      return std::unexpected(s.error());
    }
  }
  if (row.currency != "CNY") {
    // Amounts are read as yuan into fen; another currency would be misread.
    return bill_error(line_no, "货币种类", in_quotes(row.currency) + " is not CNY");
  }
  // The amounts compared with the ledger (and shown beside them) must be there: a blank
  // one is not "zero".
  std::array<std::string_view, 2> compared{};
  if (row.trade_state == "SUCCESS") {
    compared = {"应结订单金额", "订单金额"};
  } else if (row.trade_state == "REFUND") {
    compared = {"退款金额", "申请退款金额"};
  }
  for (std::size_t c = 0; c < kBillColumns.size(); ++c) {
    if (empty[c] &&
        std::find(compared.begin(), compared.end(), kBillColumns[c].name) != compared.end()) {
      return bill_error(line_no, kBillColumns[c].name,
                        "is empty on a " + row.trade_state + " line");
    }
  }
  return row;
}

Result<BillSummary> parse_summary(std::size_t line_no, std::string_view line) {
  auto fields = backticked_fields(line_no, line, kSummaryColumns);
  if (!fields) {
    return std::unexpected(fields.error());
  }
  BillSummary s;
  s.line = line_no;
  auto count = parse_count(line_no, kSummaryColumns[0], (*fields)[0]);
  if (!count) {
    return std::unexpected(count.error());
  }
  s.trade_count = *count;
  const std::array<std::pair<std::size_t, Money*>, 5> amounts{{
      {1, &s.settlement_total},
      {2, &s.refund_total},
      {3, &s.coupon_refund_total},
      {5, &s.order_total},
      {6, &s.requested_refund_total},
  }};
  for (const auto& [i, out] : amounts) {
    auto m = parse_yuan(line_no, kSummaryColumns[i], (*fields)[i]);
    if (!m) {
      return std::unexpected(m.error());
    }
    *out = *m;
  }
  auto fee = BillFee::parse((*fields)[4]);
  if (!fee) {
    return bill_error(line_no, kSummaryColumns[4], fee.error().message);
  }
  s.fee_total = *fee;
  return s;
}

std::string money_text(const std::optional<Money>& m) { return m ? m->to_string() : "-"; }

json::value money_json(const std::optional<Money>& m) {
  if (!m) {
    return nullptr;
  }
  return json::value(m->fen());
}

Status add_to(Money& total, Money m) {
  auto sum = total.add(m);
  if (!sum) {
    return std::unexpected(sum.error());
  }
  total = *sum;
  return {};
}

Status add_to(BillFee& total, BillFee f) {
  if (__builtin_add_overflow(total.e5, f.e5, &total.e5)) {
    return fail(Errc::kOverflow, "trade bill fee total overflows", "手续费");
  }
  return {};
}

}  // namespace

Result<BillFee> BillFee::parse(std::string_view text) {
  const std::string original(text);
  auto bad = [&](std::string rule) {
    return fail(Errc::kParse, in_quotes(original) + " is not a fee: " + std::move(rule) +
                                  " (yuan with at most 5 decimals, e.g. 0.06000)");
  };
  bool negative = false;
  if (text.starts_with('-')) {
    negative = true;
    text.remove_prefix(1);
  }
  const std::size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view frac =
      dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  if (!all_digits(whole)) {
    return bad("expected digits before the decimal point");
  }
  if (dot != std::string_view::npos && !all_digits(frac)) {
    return bad("expected digits after the decimal point");
  }
  if (frac.size() > 5) {
    return bad("more than 5 decimals");
  }
  if (whole.size() > 12) {
    return bad("too large");
  }
  std::int64_t v = 0;
  for (char c : whole) {
    v = v * 10 + (c - '0');
  }
  for (std::size_t i = 0; i < 5; ++i) {
    v = v * 10 + (i < frac.size() ? frac[i] - '0' : 0);
  }
  return BillFee{negative ? -v : v};
}

std::string BillFee::to_string() const {
  const std::uint64_t mag =
      e5 < 0 ? 0 - static_cast<std::uint64_t>(e5) : static_cast<std::uint64_t>(e5);
  std::string frac = std::to_string(mag % 100000);
  frac.insert(0, 5 - frac.size(), '0');
  return (e5 < 0 ? "-" : "") + std::to_string(mag / 100000) + "." + frac;
}

bool BillOwner::owns(const BillRow& row) const {
  if (row.mchid != mchid) {
    return false;
  }
  if (sub_mchid.empty()) {
    return row.sub_mchid == "0" || row.sub_mchid.empty();
  }
  return row.sub_mchid == sub_mchid;
}

std::string BillOwner::to_string() const {
  return sub_mchid.empty() ? mchid + " (direct)" : mchid + "/" + sub_mchid;
}

std::string_view category_name(Category c) {
  switch (c) {
    case Category::kMatched:
      return "matched";
    case Category::kMissingAtProvider:
      return "missing_at_provider";
    case Category::kMissingLocally:
      return "missing_locally";
    case Category::kAmountDiffers:
      return "amount_differs";
    case Category::kStateDiffers:
      return "state_differs";
    case Category::kFailedNotBilled:
      return "failed_not_billed";
    case Category::kRefundMatched:
      return "refund_matched";
    case Category::kRefundMissingAtProvider:
      return "refund_missing_at_provider";
    case Category::kRefundMissingLocally:
      return "refund_missing_locally";
    case Category::kRefundAmountDiffers:
      return "refund_amount_differs";
    case Category::kRefundNotSuccessful:
      return "refund_not_successful";
    case Category::kUnknownBillState:
      return "unknown_bill_state";
  }
  return "?";
}

std::string_view category_meaning(Category c) {
  switch (c) {
    case Category::kMatched:
      return "paid: in the ledger and the bill, same amount";
    case Category::kMissingAtProvider:
      return "paid in the ledger, no SUCCESS line in the bill";
    case Category::kMissingLocally:
      return "SUCCESS line in the bill, no settled or failed charge in the ledger that day";
    case Category::kAmountDiffers:
      return "paid on both sides, the amounts differ";
    case Category::kStateDiffers:
      return "SUCCESS line in the bill, but the ledger says the charge failed";
    case Category::kFailedNotBilled:
      return "failed in the ledger, not in the bill: no money moved";
    case Category::kRefundMatched:
      return "refund in the ledger and a REFUND line, same amount";
    case Category::kRefundMissingAtProvider:
      return "refund in the ledger, no REFUND line in the bill";
    case Category::kRefundMissingLocally:
      return "REFUND line in the bill, no refund record in the ledger that day";
    case Category::kRefundAmountDiffers:
      return "refund on both sides, the amounts differ";
    case Category::kRefundNotSuccessful:
      return "REFUND line whose refund state is FAIL or CHANGE: money not returned";
    case Category::kUnknownBillState:
      return "bill line whose trade state is neither SUCCESS nor REFUND: check by hand";
  }
  return "?";
}

bool category_is_clean(Category c) {
  return c == Category::kMatched || c == Category::kFailedNotBilled ||
         c == Category::kRefundMatched;
}

Result<TradeBill> parse_trade_bill(std::string_view csv) {
  if (csv.starts_with("\xEF\xBB\xBF")) {
    csv.remove_prefix(3);
  }
  std::vector<std::pair<std::size_t, std::string_view>> lines;
  std::size_t line_no = 0;
  while (!csv.empty()) {
    const std::size_t nl = csv.find('\n');
    std::string_view line = csv.substr(0, nl);
    csv = nl == std::string_view::npos ? std::string_view() : csv.substr(nl + 1);
    ++line_no;
    if (line.ends_with('\r')) {
      line.remove_suffix(1);
    }
    if (!line.empty()) {
      lines.emplace_back(line_no, line);
    }
  }
  if (lines.empty()) {
    return bill_error(0, "", "the bill is empty (expected the 27-column header)");
  }
  const auto names = bill_column_names();
  if (auto s = check_header(lines[0].first, lines[0].second, names, "the header"); !s) {
    return std::unexpected(s.error());
  }
  TradeBill bill;
  std::size_t i = 1;
  for (; i < lines.size(); ++i) {
    const auto& [no, text] = lines[i];
    // Data fields start with a backtick, the summary header does not.
    if (text.starts_with(kSummaryColumns[0])) {
      break;
    }
    auto row = parse_row(no, text, names);
    if (!row) {
      return std::unexpected(row.error());
    }
    bill.rows.push_back(std::move(*row));
  }
  if (i >= lines.size()) {
    return bill_error(lines.back().first + 1, kSummaryColumns[0],
                      "the bill ends without the summary header (truncated?)");
  }
  if (auto s = check_header(lines[i].first, lines[i].second, kSummaryColumns, "the summary header");
      !s) {
    return std::unexpected(s.error());
  }
  if (i + 1 >= lines.size()) {
    return bill_error(lines[i].first + 1, kSummaryColumns[0],
                      "the summary header is not followed by the summary line");
  }
  auto summary = parse_summary(lines[i + 1].first, lines[i + 1].second);
  if (!summary) {
    return std::unexpected(summary.error());
  }
  bill.summary = *summary;
  if (i + 2 < lines.size()) {
    return bill_error(lines[i + 2].first, "", "unexpected line after the summary line");
  }
  return bill;
}

bool ReconcileReport::clean() const {
  return bill_warnings.empty() && std::all_of(items.begin(), items.end(), [](const auto& i) {
           return category_is_clean(i.category);
         });
}

std::string ReconcileReport::to_text() const {
  std::string out =
      "Reconciliation of " + date + ": lanegate ledger vs the provider's trade bill\n";
  out += "Merchant " + owner.to_string() + "\n";
  for (int c = 0; c < kCategoryCount; ++c) {
    const auto cat = static_cast<Category>(c);
    std::string name(category_name(cat));
    name.resize(28, ' ');
    std::string n = std::to_string(counts[c]);
    n.insert(0, n.size() < 5 ? 5 - n.size() : 0, ' ');
    out += "  " + name + n + "  " + std::string(category_meaning(cat)) + "\n";
  }
  out += "Totals (yuan)\n";
  out += "  ledger   paid " + ledger_settled_total.to_string() + ", refunded " +
         ledger_refund_total.to_string() + "\n";
  out += "  bill     paid " + bill_order_total.to_string() + " (订单金额; settlement " +
         bill_settlement_total.to_string() + "), refunded " +
         bill_requested_refund_total.to_string() + " (申请退款金额; settlement " +
         bill_refund_total.to_string() + "), fee " + bill_fee_total.to_string() + "\n";
  if (settled_outside_provider_count > 0) {
    out += "  settled outside the provider (not compared): " +
           std::to_string(settled_outside_provider_count) + " records, " +
           settled_outside_provider_total.to_string() + "\n";
  }
  out += "Bill lines of other merchants (not compared): " + std::to_string(other_merchant_rows);
  if (!other_merchants.empty()) {
    std::string sep = " (";
    for (const auto& [who, n] : other_merchants) {
      out += sep + who + ": " + std::to_string(n);
      sep = ", ";
    }
    out += ")";
  }
  out += "\n";
  out += "Bill summary (line " + std::to_string(summary.line) +
         "): " + std::to_string(summary.trade_count) + " lines, settlement " +
         summary.settlement_total.to_string() + ", refunds " + summary.refund_total.to_string() +
         ", fee " + summary.fee_total.to_string() + ", orders " + summary.order_total.to_string() +
         ", requested refunds " + summary.requested_refund_total.to_string() + "\n";
  for (const std::string& w : bill_warnings) {
    out += "  bill warning: " + w + "\n";
  }
  bool any = false;
  for (const ReconcileItem& i : items) {
    if (category_is_clean(i.category)) {
      continue;
    }
    if (!any) {
      out += "Differences:\n";
      any = true;
    }
    out += "  " + std::string(category_name(i.category)) + " " + i.out_trade_no + ": ledger ";
    if (i.ledger_seq > 0) {
      out += i.ledger_kind + " " + money_text(i.ledger_amount) + " (seq " +
             std::to_string(i.ledger_seq) + ")";
    } else {
      out += "none";
    }
    out += "; bill ";
    if (!i.bill_lines.empty()) {
      out += i.bill_state + " " + money_text(i.bill_amount) + " (settlement " +
             money_text(i.bill_settlement);
      if (!i.out_refund_nos.empty()) {
        std::string sep = ", refund ";
        for (const auto& r : i.out_refund_nos) {
          out += sep + r;
          sep = " ";
        }
      }
      if (!i.refund_state.empty() && i.refund_state != "SUCCESS") {
        out += ", refund state " + i.refund_state;
      }
      std::string sep = i.bill_lines.size() == 1 ? ", line " : ", lines ";
      for (std::size_t l : i.bill_lines) {
        out += sep + std::to_string(l);
        sep = " ";
      }
      out += ")";
    } else {
      out += "none";
    }
    if (!i.note.empty()) {
      out += "; " + i.note;
    }
    out += "\n";
  }
  if (!any) {
    out += "Every trade matched.\n";
  }
  return out;
}

std::string ReconcileReport::to_json() const {
  json::object o;
  o["date"] = date;
  o["clean"] = clean();
  o["merchant"] = json::object{{"mchid", owner.mchid}, {"sub_mchid", owner.sub_mchid}};
  json::object counts_o;
  for (int c = 0; c < kCategoryCount; ++c) {
    counts_o[category_name(static_cast<Category>(c))] = counts[c];
  }
  o["counts"] = std::move(counts_o);
  o["totals_fen"] =
      json::object{{"ledger_settled", ledger_settled_total.fen()},
                   {"ledger_refunded", ledger_refund_total.fen()},
                   {"bill_order", bill_order_total.fen()},
                   {"bill_settlement", bill_settlement_total.fen()},
                   {"bill_requested_refund", bill_requested_refund_total.fen()},
                   {"bill_refund", bill_refund_total.fen()},
                   {"settled_outside_provider", settled_outside_provider_total.fen()}};
  // Fees have 5 decimals: a string keeps them exact.
  o["bill_fee_yuan"] = bill_fee_total.to_string();
  o["settled_outside_provider_count"] = settled_outside_provider_count;
  json::object others;
  for (const auto& [who, n] : other_merchants) {
    others[who] = n;
  }
  o["other_merchants"] = json::object{{"rows", other_merchant_rows}, {"by_merchant", others}};
  o["bill_summary"] = json::object{{"line", static_cast<std::int64_t>(summary.line)},
                                   {"trade_count", summary.trade_count},
                                   {"settlement_fen", summary.settlement_total.fen()},
                                   {"refund_fen", summary.refund_total.fen()},
                                   {"coupon_refund_fen", summary.coupon_refund_total.fen()},
                                   {"fee_yuan", summary.fee_total.to_string()},
                                   {"order_fen", summary.order_total.fen()},
                                   {"requested_refund_fen", summary.requested_refund_total.fen()}};
  json::array warnings;
  for (const auto& w : bill_warnings) {
    warnings.emplace_back(w);
  }
  o["bill_warnings"] = std::move(warnings);
  json::array arr;
  for (const ReconcileItem& i : items) {
    json::object it;
    it["category"] = category_name(i.category);
    it["out_trade_no"] = i.out_trade_no;
    it["ledger_seq"] = i.ledger_seq;
    it["ledger_kind"] = i.ledger_kind;
    it["ledger_amount_fen"] = money_json(i.ledger_amount);
    json::array lines;
    for (std::size_t l : i.bill_lines) {
      lines.emplace_back(static_cast<std::int64_t>(l));
    }
    it["bill_lines"] = std::move(lines);
    it["bill_state"] = i.bill_state;
    it["bill_amount_fen"] = money_json(i.bill_amount);
    it["bill_settlement_fen"] = money_json(i.bill_settlement);
    it["transaction_id"] = i.transaction_id;
    json::array refunds;
    for (const auto& r : i.out_refund_nos) {
      refunds.emplace_back(r);
    }
    it["out_refund_nos"] = std::move(refunds);
    it["refund_state"] = i.refund_state;
    it["note"] = i.note;
    arr.emplace_back(std::move(it));
  }
  o["items"] = std::move(arr);
  return json::serialize(o) + "\n";
}

Result<ReconcileReport> reconcile(Database& db, std::string_view date, UtcOffset offset,
                                  const TradeBill& bill, const BillOwner& owner) {
  if (owner.mchid.empty()) {
    return fail(Errc::kInvalidArgument, "the merchant whose bill lines to compare is not set",
                "mchid");
  }
  ReconcileReport report;
  report.date = std::string(date);
  report.owner = owner;
  report.summary = bill.summary;

  // Ledger side: the day's final money records per out_trade_no.
  struct LedgerTrade {
    std::int64_t charge_seq = 0;
    std::string charge_kind;  // charge_settled | charge_failed
    std::optional<Money> charge;
    std::int64_t refund_seq = 0;
    std::optional<Money> refund;  // sum of the day's refund records
  };
  std::map<std::string, LedgerTrade> ledger_trades;
  auto range = ledger::day_range(db, date, offset);
  if (!range) {
    return std::unexpected(range.error());
  }
  const auto day_start = parse_local_date(date, offset);
  if (!day_start) {
    return fail(day_start.error().code, day_start.error().message, "date");
  }
  const SystemTime day_end = *day_start + std::chrono::hours(24);
  if (range->has_value()) {
    auto s = ledger::for_each(db, **range, [&](const ledger::LedgerEntry& e) -> Status {
      if (e.event.time < *day_start || e.event.time >= day_end || e.event.out_trade_no.empty()) {
        return {};
      }
      switch (e.event.kind) {
        case ledger::Kind::kChargeSettled: {
          if (e.event.state != "SUCCESS") {
            // Paid outside the provider (taxi cash): nothing to find in its bill.
            ++report.settled_outside_provider_count;
            return add_to(report.settled_outside_provider_total, e.event.amount);
          }
          LedgerTrade& t = ledger_trades[e.event.out_trade_no];
          t.charge_seq = e.seq;
          t.charge_kind = std::string(ledger::kind_name(e.event.kind));
          t.charge = e.event.amount;
          return add_to(report.ledger_settled_total, e.event.amount);
        }
        case ledger::Kind::kChargeFailed: {
          LedgerTrade& t = ledger_trades[e.event.out_trade_no];
          // A settlement is final: a later failure record does not undo it here.
          if (t.charge_kind != "charge_settled") {
            t.charge_seq = e.seq;
            t.charge_kind = std::string(ledger::kind_name(e.event.kind));
            t.charge = e.event.amount;
          }
          return {};
        }
        case ledger::Kind::kRefund: {
          LedgerTrade& t = ledger_trades[e.event.out_trade_no];
          Money r = t.refund.value_or(Money());
          if (auto s2 = add_to(r, e.event.amount); !s2) return s2;
          t.refund = r;
          t.refund_seq = e.seq;
          return add_to(report.ledger_refund_total, e.event.amount);
        }
        default:
          return {};
      }
    });
    if (!s) {
      return std::unexpected(s.error());
    }
  }

  // Bill side: this merchant's lines per out_trade_no.
  struct BillTrade {
    const BillRow* payment = nullptr;  // the SUCCESS line
    std::vector<const BillRow*> refunds;
    std::vector<const BillRow*> unknown;  // neither SUCCESS nor REFUND
  };
  std::map<std::string, BillTrade> bill_trades;
  // The summary covers every line of the file, whoever's it is.
  BillSummary rows_total;
  auto overflow = [] { return fail(Errc::kOverflow, "trade bill amounts overflow", "bill"); };
  for (const BillRow& row : bill.rows) {
    ++rows_total.trade_count;
    if (!add_to(rows_total.settlement_total, row.settlement_amount) ||
        !add_to(rows_total.refund_total, row.refund_amount) ||
        !add_to(rows_total.coupon_refund_total, row.coupon_refund_amount) ||
        !add_to(rows_total.fee_total, row.fee) ||
        !add_to(rows_total.order_total, row.order_amount) ||
        !add_to(rows_total.requested_refund_total, row.requested_refund)) {
      return overflow();
    }
    if (!owner.owns(row)) {
      ++report.other_merchant_rows;
      ++report.other_merchants[row.mchid + "/" + (row.sub_mchid.empty() ? "0" : row.sub_mchid)];
      continue;
    }
    if (!add_to(report.bill_fee_total, row.fee)) {
      return overflow();
    }
    BillTrade& t = bill_trades[row.out_trade_no];
    if (row.trade_state == "SUCCESS") {
      if (t.payment != nullptr) {
        report.bill_warnings.push_back("order " + row.out_trade_no + " has two SUCCESS lines (" +
                                       std::to_string(t.payment->line) + " and " +
                                       std::to_string(row.line) + "); the first is compared");
        continue;
      }
      t.payment = &row;
      if (!add_to(report.bill_order_total, row.order_amount) ||
          !add_to(report.bill_settlement_total, row.settlement_amount)) {
        return overflow();
      }
    } else if (row.trade_state == "REFUND") {
      t.refunds.push_back(&row);
      if (!add_to(report.bill_requested_refund_total, row.requested_refund) ||
          !add_to(report.bill_refund_total, row.refund_amount)) {
        return overflow();
      }
    } else {
      t.unknown.push_back(&row);
    }
  }
  if (report.other_merchant_rows == static_cast<std::int64_t>(bill.rows.size()) &&
      !bill.rows.empty()) {
    report.bill_warnings.push_back("no bill line belongs to merchant " + owner.to_string() +
                                   ": is it this box's bill (provider mchid / sub_mchid)?");
  }
  const BillSummary& sm = bill.summary;
  auto compare = [&](std::string_view column, const std::string& stated, const std::string& sum) {
    if (stated != sum) {
      report.bill_warnings.push_back("the summary's " + std::string(column) + " is " + stated +
                                     ", the lines add up to " + sum);
    }
  };
  compare("总交易单数", std::to_string(sm.trade_count), std::to_string(rows_total.trade_count));
  compare("应结订单总金额", sm.settlement_total.to_string(),
          rows_total.settlement_total.to_string());
  compare("退款总金额", sm.refund_total.to_string(), rows_total.refund_total.to_string());
  compare("充值券退款总金额", sm.coupon_refund_total.to_string(),
          rows_total.coupon_refund_total.to_string());
  compare("手续费总金额", sm.fee_total.to_string(), rows_total.fee_total.to_string());
  compare("订单总金额", sm.order_total.to_string(), rows_total.order_total.to_string());
  compare("申请退款总金额", sm.requested_refund_total.to_string(),
          rows_total.requested_refund_total.to_string());

  // Compare over the union of out_trade_nos (both maps are sorted).
  std::map<std::string, int> keys;
  for (const auto& [k, v] : ledger_trades) keys[k] |= 1;
  for (const auto& [k, v] : bill_trades) keys[k] |= 2;
  auto push = [&](ReconcileItem item) {
    ++report.counts[static_cast<int>(item.category)];
    report.items.push_back(std::move(item));
  };
  for (const auto& [no, where] : keys) {
    static const LedgerTrade kNoLedger;
    static const BillTrade kNoBill;
    const LedgerTrade& l = (where & 1) ? ledger_trades.at(no) : kNoLedger;
    const BillTrade& b = (where & 2) ? bill_trades.at(no) : kNoBill;

    // The payment.
    if (!l.charge_kind.empty() || b.payment != nullptr) {
      ReconcileItem item;
      item.out_trade_no = no;
      item.ledger_seq = l.charge_seq;
      item.ledger_kind = l.charge_kind;
      item.ledger_amount = l.charge;
      if (b.payment != nullptr) {
        item.bill_lines.push_back(b.payment->line);
        item.bill_state = b.payment->trade_state;
        // 订单金额 is what was charged; 应结订单金额 is less by a no-recharge coupon the
        // merchant funds, which the ledger's charge amount does not know of.
        item.bill_amount = b.payment->order_amount;
        item.bill_settlement = b.payment->settlement_amount;
        item.transaction_id = b.payment->transaction_id;
      }
      const bool settled = l.charge_kind == "charge_settled";
      if (b.payment == nullptr) {
        item.category = settled ? Category::kMissingAtProvider : Category::kFailedNotBilled;
      } else if (l.charge_kind.empty()) {
        item.category = Category::kMissingLocally;
        // Explain what the ledger knows about it on other days or in other states.
        auto known = ledger::find_by_out_trade_no(db, no);
        if (!known) {
          return std::unexpected(known.error());
        }
        if (!known->empty()) {
          const ledger::LedgerEntry& last = known->back();
          item.note =
              "the ledger's latest record is " + std::string(ledger::kind_name(last.event.kind)) +
              " " + last.event.amount.to_string() + " at " +
              format_rfc3339(last.event.time, offset) + " (seq " + std::to_string(last.seq) + ")";
        } else {
          item.note = "the ledger has no record of this order";
        }
      } else if (!settled) {
        item.category = Category::kStateDiffers;
      } else {
        item.category =
            *l.charge == b.payment->order_amount ? Category::kMatched : Category::kAmountDiffers;
      }
      push(std::move(item));
    }

    // The refunds of the day, summed: the ledger's refund records carry no refund number
    // to pair them one by one.
    if (l.refund || !b.refunds.empty()) {
      ReconcileItem item;
      item.out_trade_no = no;
      item.ledger_seq = l.refund_seq;
      item.ledger_kind = l.refund ? "refund" : "";
      item.ledger_amount = l.refund;
      Money requested;
      Money settled;
      for (const BillRow* r : b.refunds) {
        item.bill_lines.push_back(r->line);
        item.out_refund_nos.push_back(r->out_refund_no);
        if (item.transaction_id.empty()) {
          item.transaction_id = r->transaction_id;
        }
        if (item.refund_state.empty() || item.refund_state == "SUCCESS") {
          item.refund_state = r->refund_state;
        }
        if (!add_to(requested, r->requested_refund) || !add_to(settled, r->refund_amount)) {
          return overflow();
        }
      }
      if (!b.refunds.empty()) {
        item.bill_state = "REFUND";
        item.bill_amount = requested;
        item.bill_settlement = settled;
      }
      // PROCESSING is a refund the provider accepted (the bill lists refunds on the day
      // they were accepted); FAIL and CHANGE (abnormal) never gave the money back.
      const bool failed = item.refund_state == "FAIL" || item.refund_state == "CHANGE";
      if (failed) {
        item.category = Category::kRefundNotSuccessful;
      } else if (b.refunds.empty()) {
        item.category = Category::kRefundMissingAtProvider;
      } else if (!l.refund) {
        item.category = Category::kRefundMissingLocally;
      } else {
        item.category =
            *l.refund == requested ? Category::kRefundMatched : Category::kRefundAmountDiffers;
      }
      push(std::move(item));
    }

    for (const BillRow* r : b.unknown) {
      ReconcileItem item;
      item.category = Category::kUnknownBillState;
      item.out_trade_no = no;
      item.bill_lines.push_back(r->line);
      item.bill_state = r->trade_state;
      item.bill_amount = r->order_amount;
      item.bill_settlement = r->settlement_amount;
      item.transaction_id = r->transaction_id;
      push(std::move(item));
    }
  }
  return report;
}

}  // namespace lanegate::audit
