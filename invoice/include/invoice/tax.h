#pragma once
// Exact tax split of a tax-inclusive price and the per-service tax rules.
//
// No floating point touches money: the split is integer arithmetic on fen with the rate
// as a rational p/100 (docs/INVOICE.md, specs/e-invoice.md "Splitting a tax-inclusive
// price"). Pure functions; any thread may call.

#include <span>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "core/money.h"

namespace lanegate::invoice {

struct TaxSplit {
  Money excl;  // amount excluding tax
  Money tax;   // tax amount; excl + tax == the total, always
};

// Highest rate accepted anywhere (config allows 0..17; 100 bounds the arithmetic).
inline constexpr int kMaxRatePercent = 100;

// excl = round_half_up(total / (1 + p/100)) to the fen, tax = total - excl.
// A negative total (red-letter line) splits as the negation of its absolute value, so a
// red line mirrors its blue line exactly.
// REQUIRES: 0 <= rate_percent <= kMaxRatePercent (checked; a violation is a bug: abort).
TaxSplit split_tax(Money total, int rate_percent);

// The platforms' acceptance rule for one line: |excl * r - tax| <= 0.06 yuan, evaluated
// exactly (in hundredths of a fen).
bool tax_within_tolerance(Money excl, Money tax, int rate_percent);

// The spec's defaults, as config/defaults.h holds them (one source): taxi 3%
// (3010101020203000000, flag 08) and parking 9% (3040502020200000000). No toll rule: the
// national toll e-bill platform issues toll invoices (specs/e-invoice.md "Tolls").
std::span<const config::TaxRule> default_tax_rules();

// The rules in force: the configured list when non-empty, otherwise the defaults.
std::vector<config::TaxRule> effective_tax_rules(const config::InvoicingSection& section);

// The rule for a service ("taxi" | "parking"); kNotFound names the service, and for "toll"
// says who issues toll invoices instead.
[[nodiscard]] Result<config::TaxRule> find_tax_rule(std::span<const config::TaxRule> rules,
                                                    std::string_view service);

// Checks one rule: service non-empty, item name "*category*name", 19-digit code, rate
// 0..17, then the rate / favoured-policy flag / survey answer table of config/tax_rules.h
// for a seller of kind `taxpayer` (the table the config loader applies, so the two agree).
// Errors name the field and carry the loader's rule text.
[[nodiscard]] Status validate_tax_rule(const config::TaxRule& rule,
                                       config::Taxpayer taxpayer = config::Taxpayer::kGeneral);

}  // namespace lanegate::invoice
