#include "invoice/tax.h"

#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/defaults.h"
#include "config/tax_rules.h"

namespace lanegate::invoice {
namespace {

using Wide = __int128;

Wide wide_abs(Wide v) { return v < 0 ? -v : v; }

}  // namespace

TaxSplit split_tax(Money total, int rate_percent) {
  if (rate_percent < 0 || rate_percent > kMaxRatePercent) {
    std::abort();  // REQUIRES violated: rates come from validated config
  }
  const bool negative = total.is_negative();
  const Wide t = wide_abs(static_cast<Wide>(total.fen()));
  const Wide denom = 100 + rate_percent;
  // round_half_up(t * 100 / denom) == floor((2 * t * 100 + denom) / (2 * denom)).
  const Wide excl = (2 * t * 100 + denom) / (2 * denom);
  // excl <= t, so both fit in int64 again.
  auto e = static_cast<std::int64_t>(excl);
  auto x = static_cast<std::int64_t>(t - excl);
  if (negative) {
    e = -e;
    x = -x;
  }
  return TaxSplit{Money::from_fen(e), Money::from_fen(x)};
}

bool tax_within_tolerance(Money excl, Money tax, int rate_percent) {
  // In units of 1/100 fen: excl * p versus tax * 100; tolerance 6 fen = 600.
  const Wide lhs = static_cast<Wide>(excl.fen()) * rate_percent;
  const Wide rhs = static_cast<Wide>(tax.fen()) * 100;
  return wide_abs(lhs - rhs) <= 600;
}

std::span<const config::TaxRule> default_tax_rules() {
  // config/defaults.h is the one source; kept here only so callers get a stable span.
  static const std::vector<config::TaxRule> kDefaults = config::default_tax_rules();
  return kDefaults;
}

std::vector<config::TaxRule> effective_tax_rules(const config::InvoicingSection& section) {
  if (!section.tax.empty()) {
    return section.tax;
  }
  auto d = default_tax_rules();
  return {d.begin(), d.end()};
}

Result<config::TaxRule> find_tax_rule(std::span<const config::TaxRule> rules,
                                      std::string_view service) {
  for (const auto& r : rules) {
    if (r.service == service) {
      return r;
    }
  }
  if (service == "toll") {
    return fail(Errc::kNotFound, "no tax rule for tolls: " + std::string(config::kTollInvoiceElsewhere),
                "service");
  }
  return fail(Errc::kNotFound,
              "no tax rule for service '" + std::string(service) +
                  "' (configure [[invoicing.tax]] with service = \"" + std::string(service) + "\")",
              "service");
}

Status validate_tax_rule(const config::TaxRule& rule, config::Taxpayer taxpayer) {
  if (rule.service.empty()) {
    return fail(Errc::kInvalidArgument, "must not be empty", "service");
  }
  const std::string& n = rule.item_name;
  if (n.size() < 4 || n.front() != '*' || n.find('*', 1) == std::string::npos ||
      n.find('*', 1) == 1 || n.find('*', 1) + 1 >= n.size()) {
    return fail(Errc::kInvalidArgument, "must be written *category*name, e.g. *经营租赁*停车费",
                "item_name");
  }
  if (rule.code.size() != 19 ||
      rule.code.find_first_not_of("0123456789") != std::string::npos) {
    return fail(Errc::kInvalidArgument, "tax classification code must be exactly 19 digits",
                "code");
  }
  if (rule.rate_percent < 0 || rule.rate_percent > 17) {
    return fail(Errc::kOutOfRange, "rate must be 0..17 percent", "rate_percent");
  }
  // The rate and flag table the config loader applies too (config/tax_rules.h).
  const std::vector<config::TaxRuleProblem> problems = config::tax_rule_problems(rule, taxpayer);
  if (!problems.empty()) {
    return fail(Errc::kInvalidArgument, problems.front().rule, problems.front().field);
  }
  return {};
}

}  // namespace lanegate::invoice
