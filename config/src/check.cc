#include "config/check.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/secrets.h"
#include "config/tax_rules.h"

namespace lanegate::config {
namespace {

// " (2 parking-entry, 1 taxi)" from counts per enum value, in enum order.
template <typename Key, typename Name>
std::string breakdown(const std::map<Key, int>& counts, Name&& name) {
  std::string out;
  for (const auto& [key, n] : counts) {
    out += out.empty() ? "" : ", ";
    out += std::to_string(n) + " " + std::string(name(key));
  }
  return out.empty() ? "" : " (" + out + ")";
}

bool has_lane(const Config& c, LaneMode mode) {
  return std::any_of(c.lanes.begin(), c.lanes.end(),
                     [&](const LaneSection& l) { return l.mode == mode; });
}

// One line per invoice rule this site issues with (a parking-exit lane issues parking, a
// taxi lane taxi; the built-in rule of a service without lanes is never used), then what
// will likely go wrong with them: an operator reads the rates and flags the platform will
// receive before the first invoice is refused.
void print_invoice_lines(const Config& c, std::ostream& out) {
  const InvoicingSection& inv = c.invoicing;
  if (!inv.enabled) {
    return;
  }
  const bool parking = has_lane(c, LaneMode::kParkingExit);
  const bool taxi = has_lane(c, LaneMode::kTaxi);
  std::vector<const TaxRule*> issued;
  for (const TaxRule& rule : inv.tax) {
    if ((rule.service == "parking" && parking) || (rule.service == "taxi" && taxi)) {
      issued.push_back(&rule);
    }
  }
  for (const TaxRule* rule : issued) {
    out << "invoice line " << rule->service << ": " << rule->rate_percent << "% flag "
        << (rule->favoured_policy_flag.empty() ? "-" : rule->favoured_policy_flag);
    if (rule->service == "parking" && inv.parking.specific_business) {
      out << " (06 lease)";
    }
    if (!rule->survey_answer_type.empty()) {
      out << " survey " << rule->survey_answer_type;
    }
    out << '\n';
  }
  for (const TaxRule* rule : issued) {
    if (rule->rate_percent == 1) {
      out << "warning: invoice line " << rule->service << ": the 1% reduction runs to "
          << kOnePercentEnds
          << " per specs/e-invoice.md \"Tax classification codes and rates\"; change "
             "rate_percent when it ends\n";
    }
  }
  if (parking && inv.parking.specific_business && inv.parking.certificate.empty()) {
    out << "warning: invoice line parking: specific business 06 without "
           "[invoicing.parking] certificate: the tax bureau lists it as required for 06; expect "
           "refusal (specs/e-invoice.md \"Parking → 06 不动产经营租赁\")\n";
  }
}

}  // namespace

int check_config_command(const std::filesystem::path& file, std::ostream& out, std::ostream& err) {
  LoadResult loaded = load_file(file);
  if (!loaded) {
    for (const ConfigError& e : loaded.error()) {
      err << e.to_string() << '\n';
    }
    err.flush();
    return 1;
  }
  const Config& c = *loaded;
  // Secret files readable by group or others (issue #9): lanegated would refuse to start.
  const std::vector<Error> secrets = check_secret_files(c, /*missing_ok=*/true);
  for (const Error& e : secrets) {
    err << file.string() << ": " << e.field << ": " << e.message << '\n';
  }
  if (!secrets.empty()) {
    err.flush();
    return 1;
  }
  std::map<LaneMode, int> modes;
  for (const LaneSection& l : c.lanes) {
    ++modes[l.mode];
  }
  std::map<DeviceKind, int> kinds;
  for (const DeviceSection& d : c.devices) {
    ++kinds[d.kind];
  }
  std::map<Transport, int> transports;
  for (const BusSection& b : c.buses) {
    ++transports[b.transport];
  }
  out << file.string() << ": OK\n";
  out << "gateway: " << c.gateway.id << " (" << c.gateway.site_name << ")\n";
  out << "lanes: " << c.lanes.size() << breakdown(modes, [](LaneMode m) { return to_string(m); })
      << '\n';
  out << "devices: " << c.devices.size()
      << breakdown(kinds, [](DeviceKind k) { return to_string(k); }) << '\n';
  out << "buses: " << c.buses.size()
      << breakdown(transports, [](Transport t) { return t == Transport::kTcp ? "tcp" : "rtu"; })
      << '\n';
  out << "meters: " << c.meters.size() << ", readers: " << c.readers.size() << '\n';
  out << "tariffs: " << c.parking_tariffs.size() << " parking, " << c.toll_tariffs.size()
      << " toll\n";
  out << "api tokens: " << c.api.tokens.size()
      << ", invoicing: " << (c.invoicing.enabled ? "enabled" : "disabled") << '\n';
  print_invoice_lines(c, out);
  out.flush();
  return 0;
}

}  // namespace lanegate::config
