// Rules that relate several tables: duplicate ids, references between sections, device
// kinds per lane mode, serial ports claimed twice, the outbox lease against the provider's
// call deadlines, what invoicing needs for the lanes configured. They run after every
// section was read, and point at the line of the key that holds the offending id (positions
// remembered by the readers). References that are empty were already reported as missing.
#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "config/tax_rules.h"
#include "table_reader.h"
#include "value_rules.h"

namespace lanegate::config::detail {
namespace {

std::string indexed(std::string_view array, std::size_t i) {
  return std::string(array) + "[" + std::to_string(i) + "]";
}

// Position of `key`, else of the table that holds it.
Pos where_or_table(const Diagnostics& diag, const std::string& table, std::string_view key) {
  Pos pos = diag.where(table + "." + std::string(key));
  return pos.line > 0 ? pos : diag.where(table);
}

void report(Diagnostics& diag, const std::string& table, std::string_view key, std::string rule) {
  diag.add(where_or_table(diag, table, key), table + "." + std::string(key), std::move(rule));
}

// Index of the first element with each (valid) id; reports later duplicates.
template <typename T>
std::map<std::string, std::size_t> index_ids(const std::vector<T>& items, std::string_view array,
                                             Diagnostics& diag,
                                             std::map<std::string, std::string>* shared = nullptr) {
  std::map<std::string, std::size_t> first;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string& id = items[i].id;
    if (!id_rule(id).empty()) {
      continue;
    }
    std::string table = indexed(array, i);
    auto [it, fresh] = first.emplace(id, i);
    if (!fresh) {
      Pos at = diag.where(indexed(array, it->second) + ".id");
      report(diag, table, "id",
             "duplicate id \"" + id + "\" (first defined at line " + std::to_string(at.line) + ")");
      continue;
    }
    if (shared != nullptr) {
      std::string here = table + ".id";
      auto [other, unique] = shared->emplace(id, here);
      if (!unique) {
        report(diag, table, "id",
               "duplicate id \"" + id + "\": tariff ids are shared by [[tariff.parking]] and " +
                   "[[tariff.toll]] (first defined at line " +
                   std::to_string(diag.where(other->second).line) + ")");
      }
    }
  }
  return first;
}

DeviceKind kind_for_lane_key(std::string_view key) {
  if (key == "camera") {
    return DeviceKind::kCamera;
  }
  if (key == "loop") {
    return DeviceKind::kLoop;
  }
  if (key == "barrier") {
    return DeviceKind::kBarrier;
  }
  if (key == "display") {
    return DeviceKind::kDisplay;
  }
  return DeviceKind::kRoadsideUnit;
}

// Provider calls one charge work item of the outbox can make, one after another, each ending
// by connect_timeout_ms + request_timeout_ms: the longest sequence of WechatPayClient::charge
// after an ambiguous attempt (gateway/include/gateway/provider_wechatpay.h, "TIME BOUNDS"):
// the periodic certificate download, the query (404), the resent charge, and a certificate
// download (or the wait for one running) when the reply is signed with an unknown key.
constexpr int kProviderCallsPerWorkItem = 4;

// A lease shorter than one work item lets the drainer hand the item out again while its first
// request is still in flight: a second request for the same money. The drainer renews the
// leases it still holds; this rule keeps even an unrenewed lease (renewal failing on a busy
// database) long enough for the whole item.
void check_lease_covers_provider_calls(const Config& c, Diagnostics& diag) {
  const std::int64_t connect = c.provider.connect_timeout_ms;
  const std::int64_t request = c.provider.request_timeout_ms;
  const std::int64_t minimum = kProviderCallsPerWorkItem * (connect + request);
  if (c.queue.lease_ms >= minimum) {
    return;
  }
  // At the key when it is written; else at the provider key that raised the minimum.
  Pos pos = diag.where("queue.lease_ms");
  for (const char* key : {"provider.request_timeout_ms", "provider.connect_timeout_ms"}) {
    if (pos.line == 0) {
      pos = diag.where(key);
    }
  }
  if (pos.line == 0) {
    pos = diag.where("queue");
  }
  diag.add(pos, "queue.lease_ms",
           "must cover the worst case of one charge work item: " +
               std::to_string(kProviderCallsPerWorkItem) +
               " provider calls (certificate download, query, resent charge, certificate "
               "download for an unknown key), each ending by provider.connect_timeout_ms + "
               "provider.request_timeout_ms, so at least " +
               std::to_string(kProviderCallsPerWorkItem) + " x (" + std::to_string(connect) +
               " + " + std::to_string(request) + ") = " + std::to_string(minimum) + " ms; got " +
               std::to_string(c.queue.lease_ms));
}

// ETC highway deduction is a service-provider API that names stations (spec "ETC highway
// deduction"): a toll-exit lane needs partner mode, the bound bind_state, and a station
// name for its exit and for every entry its fares price.
void check_etc(const Config& c, Diagnostics& diag) {
  std::map<std::uint32_t, std::size_t> stations;
  for (std::size_t i = 0; i < c.stations.size(); ++i) {
    if (c.stations[i].id == 0) {
      continue;
    }
    auto [it, fresh] = stations.emplace(c.stations[i].id, i);
    if (!fresh) {
      report(diag, indexed("station", i), "id",
             "duplicate station id " + std::to_string(c.stations[i].id) + " (first defined at line " +
                 std::to_string(diag.where(indexed("station", it->second) + ".id").line) + ")");
    }
  }
  std::set<std::string> toll_tariffs;
  bool first_toll_lane = true;
  for (std::size_t i = 0; i < c.lanes.size(); ++i) {
    const LaneSection& l = c.lanes[i];
    if (l.mode != LaneMode::kTollExit) {
      continue;
    }
    const std::string table = indexed("lane", i);
    if (first_toll_lane) {
      first_toll_lane = false;
      if (!c.provider.partner()) {
        report(diag, table, "mode",
               "toll-exit charges ETC contracts, a service-provider API: [provider] needs "
               "mode = \"partner\" with sp_mchid, sp_appid and sub_mchid");
      }
      if (c.provider.etc.bound_state.empty()) {
        report(diag, "provider", "etc",
               "a toll-exit lane needs [provider.etc] bound_state: the bind_state value that "
               "means an ETC contract may be charged (the provider's value set is unconfirmed, "
               "so lanegate does not guess it)");
      }
    }
    if (l.station_id != 0 && !stations.contains(l.station_id)) {
      report(diag, table, "station_id",
             "no [[station]] with id " + std::to_string(l.station_id) +
                 ": the ETC deduction names the exit by station name");
    }
    toll_tariffs.insert(l.tariff);
  }
  for (std::size_t t = 0; t < c.toll_tariffs.size(); ++t) {
    if (!toll_tariffs.contains(c.toll_tariffs[t].id)) {
      continue;
    }
    const auto& fares = c.toll_tariffs[t].fares;
    for (std::size_t f = 0; f < fares.size(); ++f) {
      if (fares[f].entry_station != 0 && !stations.contains(fares[f].entry_station)) {
        report(diag, indexed("tariff.toll", t) + indexed(".fare", f), "entry_station",
               "no [[station]] with id " + std::to_string(fares[f].entry_station) +
                   ": the ETC deduction names the entrance by station name");
      }
    }
  }
}

// Invoicing rules that depend on the lanes: a parking-exit lane issues parking lines, which
// carry specific business 06 unless the site switched it off, and the built-in tax rules
// (config/defaults.h) are a general taxpayer's, which a small-scale seller may not use.
void check_invoicing(const Config& c, Diagnostics& diag) {
  const InvoicingSection& inv = c.invoicing;
  if (!inv.enabled) {
    return;
  }
  const auto has_lane = [&](LaneMode mode) {
    return std::any_of(c.lanes.begin(), c.lanes.end(),
                       [&](const LaneSection& l) { return l.mode == mode; });
  };
  const bool parking = has_lane(LaneMode::kParkingExit);
  const bool taxi = has_lane(LaneMode::kTaxi);
  if (parking && inv.parking.specific_business) {
    const std::string table = "invoicing.parking";
    const Pos at = diag.where(table).line > 0 ? diag.where(table) : diag.where("invoicing");
    const auto need = [&](std::string_view key, bool missing, std::string_view field) {
      if (missing) {
        diag.add(at, table + "." + std::string(key),
                 "required when invoicing is enabled and a lane is mode = \"parking-exit\": "
                 "parking is issued with specific business 06 (不动产经营租赁), whose " +
                     std::string(field) +
                     " is required (specs/e-invoice.md \"Parking → 06 不动产经营租赁\"); or set "
                     "specific_business = false");
      }
    };
    need("property_address", inv.parking.property_address.empty(), "realPropertyAddress");
    need("detail_address", inv.parking.detail_address.empty(), "detailAddress");
    need("area_unit", inv.parking.area_unit == 0, "area unit (1..7)");
  }
  for (std::size_t i = 0; i < inv.tax.size(); ++i) {
    const TaxRule& rule = inv.tax[i];
    // A written [[invoicing.tax]] (its table has a position) was judged by the loader.
    if (diag.where(indexed("invoicing.tax", i)).line > 0) {
      continue;
    }
    const bool used = (rule.service == "parking" && parking) || (rule.service == "taxi" && taxi);
    const std::vector<TaxRuleProblem> problems = tax_rule_problems(rule, inv.taxpayer);
    if (!used || problems.empty()) {
      continue;
    }
    const Pos at = diag.where("invoicing.taxpayer").line > 0 ? diag.where("invoicing.taxpayer")
                                                             : diag.where("invoicing");
    diag.add(at, "invoicing.taxpayer",
             std::string(to_string(inv.taxpayer)) + ": the built-in " + rule.service + " rule (" +
                 std::to_string(rule.rate_percent) +
                 "%) is a general taxpayer's and does not fit this seller: add an "
                 "[[invoicing.tax]] with service = \"" +
                 rule.service + "\" and set its " + problems.front().field + " (" +
                 problems.front().rule + ")");
  }
}

}  // namespace

void check_references(const Config& c, Diagnostics& diag) {
  auto buses = index_ids(c.buses, "bus", diag);
  auto devices = index_ids(c.devices, "device", diag);
  auto meters = index_ids(c.meters, "meter", diag);
  auto readers = index_ids(c.readers, "reader", diag);
  index_ids(c.lanes, "lane", diag);
  std::map<std::string, std::string> tariff_ids;
  auto parking = index_ids(c.parking_tariffs, "tariff.parking", diag, &tariff_ids);
  auto toll = index_ids(c.toll_tariffs, "tariff.toll", diag, &tariff_ids);

  // One master per serial line: an RS-485 bus, a meter link and a card reader cannot share
  // a device node.
  std::map<std::string, std::string> serial_owner;  // device path -> "bus[0].serial_device"
  auto claim_serial = [&](const std::string& path, const std::string& table, std::string_view key) {
    if (path.empty()) {
      return;
    }
    std::string here = table + "." + std::string(key);
    auto [it, fresh] = serial_owner.emplace(path, here);
    if (!fresh) {
      report(diag, table, key,
             "serial device \"" + path + "\" is already used by " + it->second + " (line " +
                 std::to_string(diag.where(it->second).line) + ")");
    }
  };
  for (std::size_t i = 0; i < c.buses.size(); ++i) {
    if (c.buses[i].transport == Transport::kRtu) {
      claim_serial(c.buses[i].serial_device, indexed("bus", i), "serial_device");
    }
  }
  for (std::size_t i = 0; i < c.meters.size(); ++i) {
    claim_serial(c.meters[i].device, indexed("meter", i), "device");
  }
  for (std::size_t i = 0; i < c.readers.size(); ++i) {
    claim_serial(c.readers[i].device, indexed("reader", i), "device");
  }

  // Devices: bus reference, unit id range per transport, one device per (bus, unit, kind);
  // push cameras: one device per serial and per token.
  std::map<std::tuple<std::string, int, DeviceKind>, std::size_t> slots;
  std::map<std::string, std::size_t> serials;
  std::map<std::string, std::size_t> tokens;
  for (std::size_t i = 0; i < c.devices.size(); ++i) {
    const DeviceSection& d = c.devices[i];
    std::string table = indexed("device", i);
    if (d.push()) {
      for (auto [seen, key, value] :
           {std::tuple(&serials, "serial", d.serial), std::tuple(&tokens, "token_sha256",
                                                                 d.token_sha256)}) {
        if (value.empty()) {
          continue;
        }
        auto [it, fresh] = seen->emplace(value, i);
        if (!fresh) {
          report(diag, table, key,
                 std::string("the same ") + key + " is already used by device \"" +
                     c.devices[it->second].id + "\"");
        }
      }
      continue;
    }
    if (d.bus.empty() || !id_rule(d.bus).empty()) {
      continue;
    }
    auto bus = buses.find(d.bus);
    if (bus == buses.end()) {
      report(diag, table, "bus", "no [[bus]] with id \"" + d.bus + "\"");
      continue;
    }
    const BusSection& b = c.buses[bus->second];
    if (b.transport == Transport::kRtu && (d.unit_id < 1 || d.unit_id > 247)) {
      report(diag, table, "unit_id",
             "must be in 1..247 on an RTU bus, got " + std::to_string(d.unit_id));
    }
    auto [it, fresh] = slots.emplace(std::tuple(d.bus, d.unit_id, d.kind), i);
    if (!fresh) {
      report(diag, table, "unit_id",
             "bus \"" + d.bus + "\" unit " + std::to_string(d.unit_id) + " already has a " +
                 std::string(to_string(d.kind)) + ": device \"" + c.devices[it->second].id +
                 "\" (line " + std::to_string(diag.where(indexed("device", it->second)).line) +
                 ")");
    }
  }

  // Lanes: every reference names an entity of the right kind, and no device or meter is
  // driven by two lanes.
  std::map<std::string, std::string> device_user;  // device id -> "lane[0].camera"
  std::map<std::string, std::string> meter_user;
  for (std::size_t i = 0; i < c.lanes.size(); ++i) {
    const LaneSection& l = c.lanes[i];
    std::string table = indexed("lane", i);
    auto use_once = [&](std::map<std::string, std::string>& users, const std::string& id,
                        std::string_view key, std::string_view what) {
      std::string here = table + "." + std::string(key);
      auto [it, fresh] = users.emplace(id, here);
      if (!fresh) {
        report(diag, table, key,
               std::string(what) + " \"" + id + "\" is already used by " + it->second + " (line " +
                   std::to_string(diag.where(it->second).line) + ")");
      }
    };
    for (std::string_view key : {"camera", "loop", "barrier", "display", "roadside_unit"}) {
      const std::string& id = key == "camera"    ? l.camera
                              : key == "loop"    ? l.loop
                              : key == "barrier" ? l.barrier
                              : key == "display" ? l.display
                                                 : l.roadside_unit;
      if (id.empty() || !id_rule(id).empty()) {
        continue;
      }
      auto dev = devices.find(id);
      if (dev == devices.end()) {
        report(diag, table, key, "no [[device]] with id \"" + id + "\"");
        continue;
      }
      DeviceKind want = kind_for_lane_key(key);
      DeviceKind have = c.devices[dev->second].kind;
      if (have != want) {
        report(diag, table, key,
               "device \"" + id + "\" has kind = \"" + std::string(to_string(have)) +
                   "\", but this key needs a device of kind = \"" + std::string(to_string(want)) +
                   "\"");
        continue;
      }
      use_once(device_user, id, key, "device");
    }
    if (!l.meter.empty() && id_rule(l.meter).empty()) {
      if (!meters.contains(l.meter)) {
        report(diag, table, "meter", "no [[meter]] with id \"" + l.meter + "\"");
      } else {
        use_once(meter_user, l.meter, "meter", "meter");
      }
    }
    if (!l.code_reader.empty() && id_rule(l.code_reader).empty() &&
        !readers.contains(l.code_reader)) {
      report(diag, table, "code_reader", "no [[reader]] with id \"" + l.code_reader + "\"");
    }
    if (l.mode == LaneMode::kTaxi && c.regulator.enabled && l.isu_id.empty()) {
      report(diag, table, "isu_id",
             "required when [regulator] enabled = true (the upload names the terminal)");
    }
    if (!l.tariff.empty() && id_rule(l.tariff).empty()) {
      bool is_parking = parking.contains(l.tariff);
      bool is_toll = toll.contains(l.tariff);
      bool wants_toll = l.mode == LaneMode::kTollExit;
      std::string mode = "mode = \"" + std::string(to_string(l.mode)) + "\"";
      if (!is_parking && !is_toll) {
        report(diag, table, "tariff",
               std::string("no [[") + (wants_toll ? "tariff.toll" : "tariff.parking") +
                   "]] with id \"" + l.tariff + "\"");
      } else if (wants_toll && !is_toll) {
        report(
            diag, table, "tariff",
            "\"" + l.tariff + "\" is a [[tariff.parking]]; " + mode + " needs a [[tariff.toll]]");
      } else if (!wants_toll && !is_parking) {
        report(
            diag, table, "tariff",
            "\"" + l.tariff + "\" is a [[tariff.toll]]; " + mode + " needs a [[tariff.parking]]");
      } else if (wants_toll && l.station_id != 0) {
        const TollTariff& t = c.toll_tariffs[toll.at(l.tariff)];
        bool has_exit = std::any_of(t.fares.begin(), t.fares.end(), [&](const TollFare& f) {
          return f.exit_station == l.station_id;
        });
        if (!has_exit) {
          report(diag, table, "tariff",
                 "toll tariff \"" + l.tariff + "\" has no fare with exit_station = " +
                     std::to_string(l.station_id) + " (this lane's station_id)");
        }
      }
    }
  }

  // The public key the provider is asked to sign with must be one we can verify.
  if (!c.provider.public_key_id.empty()) {
    bool found =
        std::any_of(c.provider.platform_keys.begin(), c.provider.platform_keys.end(),
                    [&](const PlatformKey& k) { return k.id == c.provider.public_key_id; });
    if (!found) {
      report(diag, "provider", "public_key_id",
             "no [[provider.platform_key]] with id \"" + c.provider.public_key_id +
                 "\": replies signed with it could not be verified");
    }
  }

  check_lease_covers_provider_calls(c, diag);
  check_etc(c, diag);
  check_invoicing(c, diag);
}

}  // namespace lanegate::config::detail
