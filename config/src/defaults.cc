#include "config/defaults.h"

#include <array>

namespace lanegate::config {
namespace {

constexpr std::array<std::string_view, 31> kMainlandProvinces = {
    "京", "津", "沪", "渝", "冀", "豫", "云", "辽", "黑", "湘", "皖", "鲁", "新", "苏", "浙", "赣",
    "鄂", "桂", "甘", "晋", "蒙", "陕", "吉", "闽", "贵", "粤", "青", "藏", "川", "宁", "琼"};

}  // namespace

std::span<const std::string_view> mainland_provinces() { return kMainlandProvinces; }

std::optional<TaxRule> default_tax_rule(std::string_view service) {
  // Values from specs/e-invoice.md ("Tax classification codes and rates"), for a general
  // taxpayer (config/tax_rules.h): flag "08" marks the 3% simplified levy; the general 9%
  // rate carries no flag. Tolls have none: the national toll e-bill platform issues them
  // (specs/e-invoice.md "Tolls").
  if (service == "taxi") {
    return TaxRule{"taxi", "*运输服务*客运服务费", "3010101020203000000", 3, "08", ""};
  }
  if (service == "parking") {
    return TaxRule{"parking", "*经营租赁*停车费", "3040502020200000000", 9, "", ""};
  }
  return std::nullopt;
}

std::vector<TaxRule> default_tax_rules() {
  return {*default_tax_rule("taxi"), *default_tax_rule("parking")};
}

}  // namespace lanegate::config
