// Fuzz target: the provider's trade bill (CSV from outside) and seal JSON (from a
// package an authority receives). Properties: parsing never crashes; a parsed bill has
// no negative amounts or empty order numbers; a seal survives encode/parse unchanged.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gateway/audit.h"
#include "gateway/audit_reconcile.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  namespace audit = lanegate::gateway::audit;
  if (auto bill = audit::parse_trade_bill(text)) {
    for (const auto& row : bill->rows) {
      if (row.amount.is_negative() || row.out_trade_no.empty()) __builtin_trap();
    }
  }
  if (auto seal = audit::parse_seal(text)) {
    auto again = audit::parse_seal(audit::encode_seal(*seal));
    if (!again || !(again->totals == seal->totals)) __builtin_trap();
  }
  return 0;
}
