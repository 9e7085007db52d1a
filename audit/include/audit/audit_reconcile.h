#pragma once
// Reconciliation of one local day of the audit ledger against the payment provider's
// trade bill (specs/payment-provider-wechatpay-v3.md, "Trade bill (reconciliation)";
// docs/AUDIT.md, "Reconciliation").
//
// The bill is the WeChat Pay v3 trade bill of bill_type=ALL, the only type the provider
// client downloads: CSV, UTF-8 (an optional BOM, CRLF or LF), the spec's 27-column header,
// data lines whose every field is prefixed with a backtick, the 7-column summary header and
// one summary line. The SUCCESS and REFUND bill types have other headers in the real
// service; the spec gives only ALL's, so any other header is refused rather than guessed.
//
// Comparison, by out_trade_no, of the ledger's charge_settled / charge_failed / refund
// records stamped with the day against the bill rows of this box's merchant (BillOwner).
// A payment (SUCCESS line) and its refunds (REFUND lines carrying the original order
// numbers) are compared separately: an order paid and refunded the same day gives two
// items. charge_settled records whose state is not SUCCESS (CASH) never went through the
// provider and are only counted.
//
// Threading: parse_trade_bill is pure; reconcile() runs on the thread owning the Database.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/money.h"
#include "core/sqlite.h"
#include "core/time_format.h"

namespace lanegate::audit {

// The bill's 手续费 (fee) has 5 decimals: kept exact in units of 0.00001 yuan, never
// rounded into fen. Negative on refund lines (the fee given back).
struct BillFee {
  std::int64_t e5 = 0;  // 0.00001 yuan

  // "0.06000", "-0.01800", "0": optional '-', digits, at most 5 decimals.
  [[nodiscard]] static Result<BillFee> parse(std::string_view text);
  std::string to_string() const;  // always 5 decimals: "0.06000"
  auto operator<=>(const BillFee&) const = default;
};

// One data line. Amount columns the line does not use ("0" or empty) are zero.
struct BillRow {
  std::size_t line = 0;        // 1-based line in the bill text
  std::string trade_time;      // 交易时间 "YYYY-MM-DD hh:mm:ss" (China time)
  std::string appid;           // 公众账号ID
  std::string mchid;           // 商户号: the merchant, or the service provider (partner)
  std::string sub_mchid;       // 特约商户号: "0" (or empty) for a direct merchant
  std::string device_id;       // 设备号
  std::string transaction_id;  // 微信订单号
  std::string out_trade_no;    // 商户订单号 (on a REFUND line: the original order)
  std::string openid;          // 用户标识
  std::string trade_type;      // 交易类型 JSAPI | NATIVE | MICROPAY | ...
  std::string trade_state;     // 交易状态 SUCCESS | REFUND (others are reported)
  std::string bank;            // 付款银行
  std::string currency;        // 货币种类, CNY
  Money settlement_amount;     // 应结订单金额 (order amount less no-recharge coupons)
  Money coupon_amount;         // 代金券金额
  std::string refund_id;       // 微信退款单号
  std::string out_refund_no;   // 商户退款单号
  Money refund_amount;         // 退款金额 (settlement refund)
  Money coupon_refund_amount;  // 充值券退款金额
  std::string refund_type;     // 退款类型 e.g. ORIGINAL
  std::string refund_state;    // 退款状态 SUCCESS | PROCESSING | FAIL | CHANGE
  std::string description;     // 商品名称
  std::string attach;          // 商户数据包
  BillFee fee;                 // 手续费
  std::string rate;            // 费率 e.g. "0.60%"
  Money order_amount;          // 订单金额: what was charged (lanegate's amount)
  Money requested_refund;      // 申请退款金额: what was asked back (lanegate's refund)
  std::string rate_note;       // 费率备注
};

// The summary line: totals over every data line of the file (all merchants).
struct BillSummary {
  std::int64_t trade_count = 0;  // 总交易单数
  Money settlement_total;        // 应结订单总金额
  Money refund_total;            // 退款总金额
  Money coupon_refund_total;     // 充值券退款总金额
  BillFee fee_total;             // 手续费总金额
  Money order_total;             // 订单总金额
  Money requested_refund_total;  // 申请退款总金额
  std::size_t line = 0;
};

struct TradeBill {
  std::vector<BillRow> rows;
  BillSummary summary;
};

// Refuses (Errc::kParse) a header that differs from the spec's, a field without its
// backtick, a wrong field count, an amount that is not yuan with at most 2 decimals (or
// negative), a fee with more than 5 decimals, a malformed time or rate, a missing
// summary. The message names the line and the rule, `field` the column (header name);
// each refusal counts in lanegate_audit_bill_rejected_total.
[[nodiscard]] Result<TradeBill> parse_trade_bill(std::string_view csv);

// Whose rows this box reconciles. Direct mode: {provider.mchid, ""} — rows with 商户号 ==
// mchid and 特约商户号 "0" or empty. Partner mode: {provider.sp_mchid, provider.sub_mchid}
// — rows with 商户号 == sp_mchid and 特约商户号 == sub_mchid. Other rows belong to other
// merchants and are only counted.
struct BillOwner {
  std::string mchid;
  std::string sub_mchid;  // "" in direct mode

  bool owns(const BillRow& row) const;
  std::string to_string() const;  // "1900000100/1900000201", "1900000109 (direct)"
};

enum class Category {
  // Payments (SUCCESS lines vs charge_settled / charge_failed).
  kMatched,            // both, same amount
  kMissingAtProvider,  // the ledger settled it, the bill has no SUCCESS line
  kMissingLocally,     // a SUCCESS line, the ledger has no final record that day
  kAmountDiffers,      // both, the amounts differ
  kStateDiffers,       // a SUCCESS line, but the ledger says the charge failed
  kFailedNotBilled,    // the ledger says failed, the bill does not list it: no money moved
  // Refunds (REFUND lines vs refund records), per original out_trade_no.
  kRefundMatched,            // both, same refunded amount
  kRefundMissingAtProvider,  // the ledger refunded it, the bill has no REFUND line
  kRefundMissingLocally,     // a REFUND line, the ledger has no refund record that day
  kRefundAmountDiffers,      // both, the refunded amounts differ
  kRefundNotSuccessful,      // the provider's 退款状态 is FAIL or CHANGE (money not back)
  // A line whose 交易状态 is neither SUCCESS nor REFUND: not compared, shown.
  kUnknownBillState,
};
inline constexpr int kCategoryCount = 12;
std::string_view category_name(Category c);     // "matched", "missing_at_provider", ...
std::string_view category_meaning(Category c);  // one line for the auditor
// True for the categories that need no action (matched, failed_not_billed, refund_matched).
bool category_is_clean(Category c);

struct ReconcileItem {
  Category category = Category::kMatched;
  std::string out_trade_no;
  // Ledger side: the last record compared (0 if none), its kind, and the charge amount or
  // the day's refunded sum.
  std::int64_t ledger_seq = 0;
  std::string ledger_kind;  // "charge_settled" | "charge_failed" | "refund" | ""
  std::optional<Money> ledger_amount;
  // Bill side: the lines compared (empty if none). Charges: 订单金额 and 应结订单金额 of the
  // SUCCESS line; refunds: the sums of 申请退款金额 and 退款金额 of the REFUND lines.
  std::vector<std::size_t> bill_lines;
  std::string bill_state;                   // 交易状态
  std::optional<Money> bill_amount;         // compared with the ledger
  std::optional<Money> bill_settlement;     // informative (coupons make it smaller)
  std::string transaction_id;               // 微信订单号
  std::vector<std::string> out_refund_nos;  // 商户退款单号 of the REFUND lines
  std::string refund_state;                 // 退款状态 (the first that is not SUCCESS, if any)
  std::string note;                         // e.g. what the ledger knows on other days
};

struct ReconcileReport {
  std::string date;
  BillOwner owner;
  std::vector<ReconcileItem> items;  // sorted by out_trade_no, payment before refund
  std::int64_t counts[kCategoryCount] = {};

  // This merchant's money on both sides (fen).
  Money ledger_settled_total;         // charge_settled SUCCESS of the day
  Money ledger_refund_total;          // refund records of the day
  Money bill_order_total;             // 订单金额 of this merchant's SUCCESS lines
  Money bill_settlement_total;        // 应结订单金额 of those lines
  Money bill_requested_refund_total;  // 申请退款金额 of this merchant's REFUND lines
  Money bill_refund_total;            // 退款金额 of those lines
  BillFee bill_fee_total;             // 手续费 of this merchant's lines

  // Lines of other merchants (the partner bill lists every special merchant of the
  // service provider): not compared, counted per "mchid/sub_mchid".
  std::int64_t other_merchant_rows = 0;
  std::map<std::string, std::int64_t> other_merchants;

  // charge_settled records whose state is not SUCCESS (e.g. taxi fares paid in CASH) were
  // settled outside the provider: they are not compared, only counted here.
  std::int64_t settled_outside_provider_count = 0;
  Money settled_outside_provider_total;

  BillSummary summary;
  // The summary line disagrees with the lines; a SUCCESS line repeated; no line of ours.
  std::vector<std::string> bill_warnings;

  std::int64_t count(Category c) const { return counts[static_cast<int>(c)]; }
  // True when every item needs no action and the bill is self-consistent.
  bool clean() const;
  std::string to_text() const;
  std::string to_json() const;
};

// REQUIRES: db holds the ledger schema. Errors: owner.mchid empty (field "mchid"), ledger
// read failures, amount overflow.
[[nodiscard]] Result<ReconcileReport> reconcile(Database& db, std::string_view date,
                                                UtcOffset offset, const TradeBill& bill,
                                                const BillOwner& owner);

}  // namespace lanegate::audit
