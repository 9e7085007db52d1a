#pragma once
// Built-in defaults that are lists rather than single values. The loader applies them;
// they are public so that modules and tests can use the same values without a file.
// All functions are pure and may be called from any thread.

#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace lanegate::config {

// The 31 mainland province abbreviations accepted as a plate's first character
// (京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼), each one UTF-8 string.
// Embassy and consulate characters (使, 领) are not plate provinces here.
std::span<const std::string_view> mainland_provinces();

// The e-invoice spec's default tax rule for a service ("taxi", "parking"), or nullopt for
// any other service, "toll" included (the national toll e-bill platform issues tolls,
// specs/e-invoice.md "Tolls"). The defaults fit a general taxpayer (config/tax_rules.h):
//   taxi     *运输服务*客运服务费  3010101020203000000  3%  flag "08" (3% simplified levy)
//   parking  *经营租赁*停车费      3040502020200000000  9%  flag ""
// The loader adds the default for every service that [[invoicing.tax]] does not list; a
// small-scale seller whose lanes use a default that does not fit is told which rule to add.
std::optional<TaxRule> default_tax_rule(std::string_view service);
// Both defaults, taxi then parking.
std::vector<TaxRule> default_tax_rules();

}  // namespace lanegate::config
