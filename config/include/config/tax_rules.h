#pragma once
// Which rates and favoured-policy flags a 数电 invoice line may carry, per service and kind
// of seller (specs/e-invoice.md "Tax classification codes and rates", "Favoured-policy
// flag"). One table, used by the config loader and by invoice::validate_tax_rule(), so a
// rule the loader accepts is one the invoicing module accepts and the other way round.
//
//   taxpayer     service  rate  flags allowed                 flag when the key is absent
//   general      parking  9     "" only                       ""
//   general      parking  5     09, 01                        09
//   general      taxi     9     "" only                       ""
//   general      taxi     3     08, 01                        08
//   small_scale  parking  5     "", 01, 09 (unconfirmed)      ""
//   small_scale  taxi     3     "", 01, 08 (unconfirmed)      ""
//   small_scale  taxi     1     "", 01                        ""
//   any          any      0     03 (免税) or 04 (不征税)       none: must be written
//
// A small-scale seller at 1 % or 3 % also states surveyAnswerType ("1", "2", "3"); no other
// line carries one. Tolls have no row: the national toll e-bill platform issues them
// (specs/e-invoice.md "Tolls").
//
// Pure functions; any thread.

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace lanegate::config {

// One broken rule of a TaxRule.
struct TaxRuleProblem {
  // The TaxRule member (and TOML key of [[invoicing.tax]]) at fault: "service",
  // "rate_percent", "favoured_policy_flag" or "survey_answer_type".
  std::string field;
  // What was expected, citing the spec section; used verbatim as ConfigError::rule.
  std::string rule;
  // The value is wrong whatever the other fields hold (a toll service, a flag no parking or
  // taxi line carries, a survey answer outside 1..3). Otherwise the problem is a pairing
  // (rate with service and seller, flag with rate, survey answer with rate), only
  // meaningful when every field it relates holds what was written.
  bool standalone = false;
};

// Every problem of `rule` against the table above for a seller of kind `taxpayer`; empty
// when the rule fits. Checks service, rate, flag and survey answer only: the item name and
// the code have rules of their own (loader, invoice::validate_tax_rule()).
[[nodiscard]] std::vector<TaxRuleProblem> tax_rule_problems(const TaxRule& rule, Taxpayer taxpayer);

// The flag a rule takes when [[invoicing.tax]] leaves favoured_policy_flag out: the table's
// last column ("" where the table has none, including rate 0, whose 03/04 must be written).
std::string default_favoured_policy_flag(std::string_view service, int rate_percent,
                                         Taxpayer taxpayer);

// "general" | "small_scale", as written in [invoicing] taxpayer.
std::string_view to_string(Taxpayer taxpayer);

// Tolls are never invoiced by lanegate; every refusal about a toll invoice says this.
inline constexpr std::string_view kTollInvoiceElsewhere =
    "toll invoices are issued by the national toll e-bill platform (www.txffp.com / the 票根 "
    "app), never by lanegate (specs/e-invoice.md \"Tolls\")";

// Last day of the small-scale 3 % -> 1 % reduction (specs/e-invoice.md "Tax classification
// codes and rates"); `lanegate check-config` warns about every rule at 1 %.
inline constexpr std::string_view kOnePercentEnds = "2027-12-31";

}  // namespace lanegate::config
