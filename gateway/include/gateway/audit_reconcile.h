#pragma once
// Reconciliation of one local day of the audit ledger against the payment provider's
// trade bill (specs/payment-provider-wechatpay-v3.md, "Trade bill").
//
// The bill is CSV text: a header row, data rows whose fields are prefixed with a
// backtick, then a summary header row "总交易单数,应结订单总金额,退款总金额" and one summary
// row. The production column list is unconfirmed, so the parser is table-driven by
// header name: columns are found by name (with aliases), unknown columns are ignored,
// and a missing required column is an error naming it.
//
// Comparison, by out_trade_no, of the ledger's charge_settled / charge_failed / refund
// records of the day against the bill's rows (docs/AUDIT.md, "Reconciliation"):
//   matched | missing_at_lanegate | missing_at_provider | amount_mismatch | state_mismatch
// charge_settled records with a state other than SUCCESS (CASH) never went through the
// provider and are only counted.
// Ledger state → expected bill state: refund → REFUND, charge_settled → SUCCESS,
// charge_failed → PAY_FAIL (a failed charge absent from the bill is matched: it moved no
// money).
//
// Threading: parse_trade_bill is pure; reconcile() runs on the thread owning the Database.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/money.h"
#include "core/sqlite.h"
#include "core/time_format.h"

namespace lanegate::gateway::audit {

struct BillRow {
  std::size_t line = 0;  // 1-based line in the bill text
  std::string trade_time;
  std::string appid;
  std::string mchid;
  std::string device_id;
  std::string transaction_id;
  std::string out_trade_no;
  std::string openid;
  std::string trade_type;
  std::string trade_state;  // SUCCESS | REFUND | PAY_FAIL | NOTPAY | CLOSED | ...
  std::string bank;
  std::string currency;
  Money amount;  // 应结订单总金额(元)
  Money refund;  // 退款金额(元), zero when the column is absent
};

struct BillSummary {
  std::int64_t trade_count = 0;
  Money total_amount;
  Money total_refund;
};

struct TradeBill {
  std::vector<BillRow> rows;
  std::optional<BillSummary> summary;
};

// Errors (Errc::kParse) name the line and the column (`field` = the header name), and
// count in lanegate_audit_bill_rejected_total.
[[nodiscard]] Result<TradeBill> parse_trade_bill(std::string_view csv);

enum class Category {
  kMatched,
  kMissingAtLanegate,  // the provider lists the trade, the ledger has no final record
  kMissingAtProvider,  // the ledger settled or refunded it, the bill does not list it
  kAmountMismatch,     // same state, different amount
  kStateMismatch,      // e.g. SUCCESS at the provider, charge_failed in the ledger
};
std::string_view category_name(Category c);  // "matched", "missing_at_lanegate", ...

struct ReconcileItem {
  Category category = Category::kMatched;
  std::string out_trade_no;
  std::int64_t ledger_seq = 0;         // the ledger record compared, 0 if none
  std::string ledger_state;            // expected bill state from the ledger, "" if none
  std::optional<Money> ledger_amount;  // charge amount
  std::optional<Money> ledger_refund;
  std::size_t bill_line = 0;  // 0 if not in the bill
  std::string bill_state;
  std::optional<Money> bill_amount;
  std::optional<Money> bill_refund;
  std::string note;  // what else the ledger knows (e.g. the record on another day)
};

struct ReconcileReport {
  std::string date;
  std::vector<ReconcileItem> items;          // sorted by out_trade_no
  std::int64_t counts[5] = {0, 0, 0, 0, 0};  // indexed by Category
  Money ledger_settled_total;
  Money ledger_refund_total;
  Money bill_success_total;
  Money bill_refund_total;
  // charge_settled records whose state is not SUCCESS (e.g. taxi fares paid in CASH) were
  // settled outside the provider: they are not compared, only counted here.
  std::int64_t settled_outside_provider_count = 0;
  Money settled_outside_provider_total;
  std::vector<std::string> bill_warnings;  // e.g. the summary disagrees with the rows

  std::int64_t count(Category c) const { return counts[static_cast<int>(c)]; }
  // True when every item matched and the bill is self-consistent.
  bool clean() const;
  std::string to_text() const;
  std::string to_json() const;
};

// REQUIRES: db holds the ledger schema.
[[nodiscard]] Result<ReconcileReport> reconcile(Database& db, std::string_view date,
                                                UtcOffset offset, const TradeBill& bill);

}  // namespace lanegate::gateway::audit
