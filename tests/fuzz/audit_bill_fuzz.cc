// Fuzz target: the provider's trade bill (CSV from outside, bill_type=ALL in the spec's
// layout) and seal JSON (from a package an authority receives). Properties: parsing never
// crashes; a parsed bill holds only what the parser promises (non-negative amounts, the
// required columns non-empty, CNY, lines in order before the summary) and its fees print
// and parse back unchanged; a seal survives encode/parse unchanged.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "audit/audit.h"
#include "audit/audit_reconcile.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  namespace audit = lanegate::audit;
  if (auto bill = audit::parse_trade_bill(text)) {
    std::size_t last_line = 1;  // the header
    for (const auto& row : bill->rows) {
      if (row.settlement_amount.is_negative() || row.coupon_amount.is_negative() ||
          row.refund_amount.is_negative() || row.coupon_refund_amount.is_negative() ||
          row.order_amount.is_negative() || row.requested_refund.is_negative()) {
        __builtin_trap();
      }
      if (row.out_trade_no.empty() || row.mchid.empty() || row.trade_state.empty() ||
          row.currency != "CNY" || row.trade_time.size() != 19) {
        __builtin_trap();
      }
      if (row.line <= last_line) __builtin_trap();
      last_line = row.line;
      auto fee = audit::BillFee::parse(row.fee.to_string());
      if (!fee || *fee != row.fee) __builtin_trap();
    }
    if (bill->summary.line <= last_line + 1 || bill->summary.trade_count < 0) __builtin_trap();
    auto total = audit::BillFee::parse(bill->summary.fee_total.to_string());
    if (!total || *total != bill->summary.fee_total) __builtin_trap();
  }
  if (auto seal = audit::parse_seal(text)) {
    auto again = audit::parse_seal(audit::encode_seal(*seal));
    if (!again || !(again->totals == seal->totals)) __builtin_trap();
  }
  return 0;
}
