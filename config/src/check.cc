#include "config/check.h"

#include <map>
#include <string>

#include "config/config.h"
#include "config/secrets.h"

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
  out.flush();
  return 0;
}

}  // namespace lanegate::config
