#include "gateway/audit_reconcile.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <map>

#include "core/ledger.h"
#include "core/metrics.h"

namespace lanegate::gateway::audit {
namespace {

namespace json = boost::json;

// One bill column: the header names it may carry, and where its value goes.
struct BillColumn {
  std::array<std::string_view, 3> names;  // first is the documented name; "" = unused
  std::string BillRow::*text = nullptr;   // text column, or
  Money BillRow::*money = nullptr;        // amount column in yuan "12.34"
  bool required = false;
};

const std::array<BillColumn, 13> kBillColumns{{
    {{"交易时间"}, &BillRow::trade_time, nullptr, false},
    {{"公众账号ID"}, &BillRow::appid, nullptr, false},
    {{"商户号"}, &BillRow::mchid, nullptr, false},
    {{"设备号"}, &BillRow::device_id, nullptr, false},
    {{"微信订单号"}, &BillRow::transaction_id, nullptr, false},
    {{"商户订单号"}, &BillRow::out_trade_no, nullptr, true},
    {{"用户标识"}, &BillRow::openid, nullptr, false},
    {{"交易类型"}, &BillRow::trade_type, nullptr, false},
    {{"交易状态"}, &BillRow::trade_state, nullptr, true},
    {{"付款银行"}, &BillRow::bank, nullptr, false},
    {{"货币种类"}, &BillRow::currency, nullptr, false},
    {{"应结订单总金额(元)", "应结订单总金额（元）", "订单金额(元)"},
     nullptr,
     &BillRow::amount,
     true},
    {{"退款金额(元)", "退款金额（元）", "申请退款金额(元)"}, nullptr, &BillRow::refund, false},
}};

constexpr std::string_view kSummaryFirstHeader = "总交易单数";

struct SummaryColumn {
  std::string_view name;
  int slot;  // 0 count, 1 total amount, 2 total refund
};
constexpr std::array<SummaryColumn, 3> kSummaryColumns{{
    {"总交易单数", 0},
    {"应结订单总金额", 1},
    {"退款总金额", 2},
}};

std::string_view strip(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  if (!s.empty() && s.front() == '`') {
    s.remove_prefix(1);
  }
  return s;
}

// Splits one CSV line; supports RFC 4180 double quotes although the bill does not use
// them, so that a quoted export opened and saved by a spreadsheet still parses.
std::vector<std::string> split_csv(std::string_view line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur.push_back('"');
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur.push_back(c);
      }
    } else if (c == '"' && strip(cur).empty()) {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back(strip(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.emplace_back(strip(cur));
  return out;
}

Result<TradeBill> bill_error(std::size_t line, std::string_view column, std::string rule) {
  metrics::Registry::global()
      .counter("lanegate_audit_bill_rejected_total", "Trade bills refused as malformed")
      .inc();
  return fail(Errc::kParse, "trade bill line " + std::to_string(line) + ": " + rule,
              std::string(column));
}

Result<Money> parse_yuan(std::string_view text) {
  auto m = Money::parse(text);
  if (!m) {
    return m;
  }
  if (m->is_negative()) {
    return fail(Errc::kOutOfRange, "must not be negative");
  }
  return m;
}

std::string money_text(const std::optional<Money>& m) { return m ? m->to_string() : "-"; }

json::value money_json(const std::optional<Money>& m) {
  if (!m) {
    return nullptr;
  }
  return json::value(m->fen());
}

}  // namespace

std::string_view category_name(Category c) {
  switch (c) {
    case Category::kMatched:
      return "matched";
    case Category::kMissingAtLanegate:
      return "missing_at_lanegate";
    case Category::kMissingAtProvider:
      return "missing_at_provider";
    case Category::kAmountMismatch:
      return "amount_mismatch";
    case Category::kStateMismatch:
      return "state_mismatch";
  }
  return "?";
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
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (!line.empty()) {
      lines.emplace_back(line_no, line);
    }
  }
  if (lines.empty()) {
    return bill_error(0, "", "the bill is empty (expected a header row)");
  }
  // Header: map each known column to its position.
  const auto header = split_csv(lines[0].second);
  std::vector<int> position(kBillColumns.size(), -1);
  for (std::size_t c = 0; c < kBillColumns.size(); ++c) {
    for (std::size_t h = 0; h < header.size(); ++h) {
      for (std::string_view name : kBillColumns[c].names) {
        if (!name.empty() && header[h] == name) {
          position[c] = static_cast<int>(h);
        }
      }
    }
    if (position[c] < 0 && kBillColumns[c].required) {
      return bill_error(lines[0].first, kBillColumns[c].names[0],
                        "required column \"" + std::string(kBillColumns[c].names[0]) +
                            "\" is missing from the header");
    }
  }
  TradeBill bill;
  std::size_t i = 1;
  for (; i < lines.size(); ++i) {
    const auto& [no, text] = lines[i];
    const auto fields = split_csv(text);
    if (!fields.empty() && fields[0] == kSummaryFirstHeader) {
      break;
    }
    if (fields.size() != header.size()) {
      return bill_error(no, "",
                        "has " + std::to_string(fields.size()) + " fields, the header has " +
                            std::to_string(header.size()));
    }
    BillRow row;
    row.line = no;
    for (std::size_t c = 0; c < kBillColumns.size(); ++c) {
      if (position[c] < 0) {
        continue;
      }
      const std::string& value = fields[static_cast<std::size_t>(position[c])];
      const BillColumn& col = kBillColumns[c];
      if (col.text != nullptr) {
        row.*(col.text) = value;
      } else {
        auto m = parse_yuan(value);
        if (!m) {
          return bill_error(no, col.names[0],
                            "\"" + value + "\" is not an amount in yuan: " + m.error().message);
        }
        row.*(col.money) = *m;
      }
    }
    if (row.out_trade_no.empty()) {
      return bill_error(no, "商户订单号", "out_trade_no is empty");
    }
    bill.rows.push_back(std::move(row));
  }
  if (i < lines.size()) {
    const auto names = split_csv(lines[i].second);
    if (i + 1 >= lines.size()) {
      return bill_error(lines[i].first, "", "summary header without a summary row");
    }
    const auto values = split_csv(lines[i + 1].second);
    if (values.size() != names.size()) {
      return bill_error(lines[i + 1].first, "",
                        "summary row has " + std::to_string(values.size()) +
                            " fields, its header has " + std::to_string(names.size()));
    }
    BillSummary summary;
    for (const SummaryColumn& sc : kSummaryColumns) {
      auto it = std::find(names.begin(), names.end(), sc.name);
      if (it == names.end()) {
        return bill_error(lines[i].first, sc.name,
                          "summary column \"" + std::string(sc.name) + "\" is missing");
      }
      const std::string& v = values[static_cast<std::size_t>(it - names.begin())];
      if (sc.slot == 0) {
        std::int64_t n = 0;
        const bool digits =
            !v.empty() && v.size() <= 15 &&
            std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits) {
          return bill_error(lines[i + 1].first, sc.name, "\"" + v + "\" is not a count");
        }
        for (char c : v) {
          n = n * 10 + (c - '0');
        }
        summary.trade_count = n;
      } else {
        auto m = parse_yuan(v);
        if (!m) {
          return bill_error(lines[i + 1].first, sc.name,
                            "\"" + v + "\" is not an amount in yuan: " + m.error().message);
        }
        (sc.slot == 1 ? summary.total_amount : summary.total_refund) = *m;
      }
    }
    if (i + 2 < lines.size()) {
      return bill_error(lines[i + 2].first, "", "unexpected line after the summary row");
    }
    bill.summary = summary;
  }
  return bill;
}

bool ReconcileReport::clean() const {
  return bill_warnings.empty() &&
         std::all_of(items.begin(), items.end(),
                     [](const ReconcileItem& i) { return i.category == Category::kMatched; });
}

std::string ReconcileReport::to_text() const {
  std::string out = "Reconciliation of " + date + ": lanegate ledger vs provider trade bill\n";
  for (int c = 0; c < 5; ++c) {
    std::string name(category_name(static_cast<Category>(c)));
    name.resize(22, ' ');
    out += "  " + name + std::to_string(counts[c]) + "\n";
  }
  out += "  lanegate settled " + ledger_settled_total.to_string() + " yuan, refunded " +
         ledger_refund_total.to_string() + " yuan\n";
  out += "  provider success " + bill_success_total.to_string() + " yuan, refunded " +
         bill_refund_total.to_string() + " yuan\n";
  if (settled_outside_provider_count > 0) {
    out += "  settled outside the provider (not compared): " +
           std::to_string(settled_outside_provider_count) + " records, " +
           settled_outside_provider_total.to_string() + " yuan\n";
  }
  for (const std::string& w : bill_warnings) {
    out += "  bill warning: " + w + "\n";
  }
  bool any = false;
  for (const ReconcileItem& i : items) {
    if (i.category == Category::kMatched) {
      continue;
    }
    if (!any) {
      out += "Differences:\n";
      any = true;
    }
    out += "  " + std::string(category_name(i.category)) + " " + i.out_trade_no + ": lanegate ";
    if (i.ledger_seq > 0) {
      out += i.ledger_state + " " + money_text(i.ledger_amount) +
             (i.ledger_refund ? " refund " + money_text(i.ledger_refund) : "") + " (seq " +
             std::to_string(i.ledger_seq) + ")";
    } else {
      out += "none";
    }
    out += "; provider ";
    if (i.bill_line > 0) {
      out += i.bill_state + " " + money_text(i.bill_amount) +
             (i.bill_refund && !i.bill_refund->is_zero() ? " refund " + money_text(i.bill_refund)
                                                         : "") +
             " (bill line " + std::to_string(i.bill_line) + ")";
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
  json::object counts_o;
  for (int c = 0; c < 5; ++c) {
    counts_o[category_name(static_cast<Category>(c))] = counts[c];
  }
  o["counts"] = std::move(counts_o);
  o["totals_fen"] =
      json::object{{"lanegate_settled", ledger_settled_total.fen()},
                   {"lanegate_refunded", ledger_refund_total.fen()},
                   {"provider_success", bill_success_total.fen()},
                   {"provider_refunded", bill_refund_total.fen()},
                   {"settled_outside_provider", settled_outside_provider_total.fen()}};
  o["settled_outside_provider_count"] = settled_outside_provider_count;
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
    it["ledger_state"] = i.ledger_state;
    it["ledger_amount_fen"] = money_json(i.ledger_amount);
    it["ledger_refund_fen"] = money_json(i.ledger_refund);
    it["bill_line"] = static_cast<std::int64_t>(i.bill_line);
    it["bill_state"] = i.bill_state;
    it["bill_amount_fen"] = money_json(i.bill_amount);
    it["bill_refund_fen"] = money_json(i.bill_refund);
    it["note"] = i.note;
    arr.emplace_back(std::move(it));
  }
  o["items"] = std::move(arr);
  return json::serialize(o) + "\n";
}

Result<ReconcileReport> reconcile(Database& db, std::string_view date, UtcOffset offset,
                                  const TradeBill& bill) {
  ReconcileReport report;
  report.date = std::string(date);

  // Ledger side: the day's final money records per out_trade_no.
  struct LedgerTrade {
    std::int64_t seq = 0;
    std::optional<Money> charge;
    std::optional<Money> refund;
    bool settled = false;
    bool failed = false;
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
      auto add = [&](Money& total, Money m) -> Status {
        auto sum = total.add(m);
        if (!sum) {
          return std::unexpected(sum.error());
        }
        total = *sum;
        return {};
      };
      LedgerTrade* t = nullptr;
      switch (e.event.kind) {
        case ledger::Kind::kChargeSettled:
          if (e.event.state != "SUCCESS") {
            // Paid outside the provider (taxi cash): nothing to find in its bill.
            ++report.settled_outside_provider_count;
            return add(report.settled_outside_provider_total, e.event.amount);
          }
          t = &ledger_trades[e.event.out_trade_no];
          t->settled = true;
          t->charge = e.event.amount;
          if (auto r = add(report.ledger_settled_total, e.event.amount); !r) return r;
          break;
        case ledger::Kind::kChargeFailed:
          t = &ledger_trades[e.event.out_trade_no];
          t->failed = true;
          if (!t->settled) {
            t->charge = e.event.amount;
          }
          break;
        case ledger::Kind::kRefund: {
          t = &ledger_trades[e.event.out_trade_no];
          Money r = t->refund.value_or(Money());
          if (auto s2 = add(r, e.event.amount); !s2) return s2;
          t->refund = r;
          if (auto r2 = add(report.ledger_refund_total, e.event.amount); !r2) return r2;
          break;
        }
        default:
          return {};
      }
      t->seq = e.seq;
      return {};
    });
    if (!s) {
      return std::unexpected(s.error());
    }
  }

  // Bill side: rows per out_trade_no (a refunded trade may have a SUCCESS and a REFUND row).
  struct BillTrade {
    std::size_t line = 0;
    std::string state;
    std::optional<Money> amount;
    Money refund;
  };
  std::map<std::string, BillTrade> bill_trades;
  Money rows_amount;
  Money rows_refund;
  for (const BillRow& row : bill.rows) {
    BillTrade& t = bill_trades[row.out_trade_no];
    auto sum = rows_amount.add(row.amount);
    auto rsum = rows_refund.add(row.refund);
    auto tref = t.refund.add(row.refund);
    if (!sum || !rsum || !tref) {
      return fail(Errc::kOverflow, "trade bill amounts overflow", "bill");
    }
    rows_amount = *sum;
    rows_refund = *rsum;
    t.refund = *tref;
    const bool stronger = t.line == 0 || row.trade_state == "REFUND" ||
                          (row.trade_state == "SUCCESS" && t.state != "REFUND");
    if (stronger) {
      t.state = row.trade_state;
      t.line = row.line;
    }
    if (row.trade_state == "SUCCESS" || !t.amount) {
      t.amount = row.amount;
    }
    if (row.trade_state == "SUCCESS") {
      auto s = report.bill_success_total.add(row.amount);
      if (!s) {
        return fail(Errc::kOverflow, "trade bill amounts overflow", "bill");
      }
      report.bill_success_total = *s;
    }
  }
  report.bill_refund_total = rows_refund;
  if (bill.summary) {
    if (bill.summary->trade_count != static_cast<std::int64_t>(bill.rows.size())) {
      report.bill_warnings.push_back("the summary counts " +
                                     std::to_string(bill.summary->trade_count) +
                                     " trades, the bill lists " + std::to_string(bill.rows.size()));
    }
    if (bill.summary->total_amount != rows_amount) {
      report.bill_warnings.push_back("the summary total " + bill.summary->total_amount.to_string() +
                                     " differs from the rows' sum " + rows_amount.to_string());
    }
    if (bill.summary->total_refund != rows_refund) {
      report.bill_warnings.push_back("the summary refund total " +
                                     bill.summary->total_refund.to_string() +
                                     " differs from the rows' sum " + rows_refund.to_string());
    }
  } else {
    report.bill_warnings.push_back("the bill has no summary block");
  }

  // Compare over the union of out_trade_nos (both maps are sorted).
  std::map<std::string, int> keys;
  for (const auto& [k, v] : ledger_trades) keys[k] |= 1;
  for (const auto& [k, v] : bill_trades) keys[k] |= 2;
  for (const auto& [no, where] : keys) {
    ReconcileItem item;
    item.out_trade_no = no;
    const LedgerTrade* l = (where & 1) ? &ledger_trades.at(no) : nullptr;
    const BillTrade* b = (where & 2) ? &bill_trades.at(no) : nullptr;
    if (l != nullptr) {
      item.ledger_seq = l->seq;
      item.ledger_state = l->refund ? "REFUND" : (l->settled ? "SUCCESS" : "PAY_FAIL");
      item.ledger_amount = l->charge;
      item.ledger_refund = l->refund;
    }
    if (b != nullptr) {
      item.bill_line = b->line;
      item.bill_state = b->state;
      item.bill_amount = b->amount;
      item.bill_refund = b->refund;
    }
    if (l != nullptr && b == nullptr) {
      if (item.ledger_state == "PAY_FAIL") {
        item.category = Category::kMatched;
        item.note = "failed charge, absent from the bill (no money moved)";
      } else {
        item.category = Category::kMissingAtProvider;
      }
    } else if (l == nullptr) {
      item.category = Category::kMissingAtLanegate;
      // Explain what the ledger knows about it on other days or in other states.
      auto known = ledger::find_by_out_trade_no(db, no);
      if (!known) {
        return std::unexpected(known.error());
      }
      if (!known->empty()) {
        const ledger::LedgerEntry& last = known->back();
        item.note =
            "the ledger's latest record is " + std::string(ledger::kind_name(last.event.kind)) +
            " " + last.event.amount.to_string() + " at " + format_rfc3339(last.event.time, offset) +
            " (seq " + std::to_string(last.seq) + ")";
      }
    } else if (item.ledger_state != b->state) {
      item.category = Category::kStateMismatch;
    } else {
      const bool charge_differs =
          l->charge && b->amount && *l->charge != *b->amount && item.ledger_state != "PAY_FAIL";
      const bool refund_differs = l->refund && *l->refund != b->refund;
      item.category =
          (charge_differs || refund_differs) ? Category::kAmountMismatch : Category::kMatched;
    }
    ++report.counts[static_cast<int>(item.category)];
    report.items.push_back(std::move(item));
  }
  return report;
}

}  // namespace lanegate::gateway::audit
