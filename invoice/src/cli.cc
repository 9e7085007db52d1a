#include "invoice/cli.h"

#include <charconv>

#include "invoice/buyer_id.h"
#include "invoice/model.h"
#include "invoice/tax.h"

namespace lanegate::invoice {
namespace {

constexpr std::string_view kUsage =
    "usage: lanegate invoice split --total AMOUNT (--rate PERCENT | --service taxi|parking)\n"
    "       lanegate invoice check-buyer-id CODE\n";

int split_command(std::span<const std::string> args, const config::InvoicingSection& section,
                  std::ostream& out, std::ostream& err) {
  std::string total_text;
  std::string rate_text;
  std::string service;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "--total" || a == "--rate" || a == "--service") && i + 1 < args.size()) {
      (a == "--total" ? total_text : a == "--rate" ? rate_text : service) = args[++i];
    } else {
      err << "unknown or incomplete argument: " << a << "\n" << kUsage;
      return 2;
    }
  }
  if (total_text.empty() || (rate_text.empty() == service.empty())) {
    err << kUsage;
    return 2;
  }
  auto total = Money::parse(total_text);
  if (!total) {
    err << "--total: " << total.error().message << "\n";
    return 1;
  }
  int rate = 0;
  std::string label;
  if (!service.empty()) {
    auto rules = effective_tax_rules(section);
    auto rule = find_tax_rule(rules, service);
    if (!rule) {
      err << "--service: " << rule.error().message << "\n";
      return 1;
    }
    rate = rule->rate_percent;
    label = rule->item_name + " " + rule->code;
  } else {
    const char* b = rate_text.data();
    const char* e = b + rate_text.size();
    auto [p, ec] = std::from_chars(b, e, rate);
    if (ec != std::errc() || p != e || rate < 0 || rate > 17) {
      err << "--rate: a whole percent 0..17, got '" << rate_text << "'\n";
      return 1;
    }
  }
  const TaxSplit s = split_tax(*total, rate);
  auto capitals = chinese_capital_amount(*total);
  if (!label.empty()) {
    out << "rule:     " << label << "\n";
  }
  out << "rate:     " << rate << "%\n"
      << "excl:     " << s.excl.to_string() << "\n"
      << "tax:      " << s.tax.to_string() << "\n"
      << "total:    " << total->to_string() << "\n"
      << "capitals: " << (capitals ? *capitals : capitals.error().message) << "\n";
  return 0;
}

}  // namespace

int invoice_command(std::span<const std::string> args, const config::InvoicingSection& section,
                    std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << kUsage;
    return 2;
  }
  if (args[0] == "split") {
    return split_command(args.subspan(1), section, out, err);
  }
  if (args[0] == "check-buyer-id") {
    if (args.size() < 2) {
      err << kUsage;
      return 2;
    }
    // A code typed with spaces may arrive as several arguments.
    std::string code;
    for (std::size_t i = 1; i < args.size(); ++i) {
      code += args[i];
    }
    auto r = validate_buyer_id(code, section.buyer_id_allow_list);
    if (!r) {
      err << "invalid: " << r.error().message << "\n";
      return 1;
    }
    out << *r << "\n";
    return 0;
  }
  err << "unknown invoice command: " << args[0] << "\n" << kUsage;
  return 2;
}

}  // namespace lanegate::invoice
