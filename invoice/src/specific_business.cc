#include "invoice/specific_business.h"

#include <boost/json.hpp>
#include <tuple>

#include "core/text.h"
#include "core/time_format.h"

namespace lanegate::invoice {
namespace {

namespace json = boost::json;

constexpr UtcOffset kChinaStandardTime{480};
constexpr std::string_view kLeaseSpec = "specs/e-invoice.md \"Parking → 06 不动产经营租赁\"";
constexpr std::string_view kTravellerSpec = "specs/e-invoice.md \"Taxi → plain invoice; 09 旅客运输\"";

std::string cst_minute(SystemTime t) {
  std::string s = format_rfc3339(t, kChinaStandardTime);  // 2026-11-22T13:29:35+08:00
  s = s.substr(0, 16);
  s[10] = ' ';
  return s;
}

std::string str(const json::object& o, std::string_view key) {
  auto it = o.find(json::string_view(key.data(), key.size()));
  return it != o.end() && it->value().is_string() ? std::string(it->value().get_string()) : "";
}

}  // namespace

std::string_view platform_code(SpecificFactor factor) {
  switch (factor) {
    case SpecificFactor::kNone: return "0";
    case SpecificFactor::kRealPropertyLease: return "6";
    case SpecificFactor::kPassengerTransport: return "9";
  }
  return "0";
}

std::string_view bureau_code(SpecificFactor factor) {
  switch (factor) {
    case SpecificFactor::kNone: return "";
    case SpecificFactor::kRealPropertyLease: return "06";
    case SpecificFactor::kPassengerTransport: return "09";
  }
  return "";
}

Result<SpecificFactor> parse_platform_code(std::string_view code) {
  if (code == "0") return SpecificFactor::kNone;
  if (code == "6") return SpecificFactor::kRealPropertyLease;
  if (code == "9") return SpecificFactor::kPassengerTransport;
  return fail(Errc::kInvalidArgument, "unknown specific business '" + std::string(code) + "'",
              "specific_factor");
}

Result<LeaseInfo> lease_for_parking(const config::ParkingLeaseSite& site,
                                    std::optional<SystemTime> entry,
                                    std::optional<SystemTime> exit) {
  if (!entry || !exit) {
    return fail(Errc::kRejected,
                "this stay has no recorded " + std::string(!entry ? "entry" : "exit") +
                    " time; a parking invoice (specific business 06) needs the lease period (" +
                    std::string(kLeaseSpec) + ")",
                "trip");
  }
  if (*exit < *entry) {
    return fail(Errc::kRejected, "the stay's exit is before its entry; rentStartDate ≤ rentEndDate",
                "trip");
  }
  LeaseInfo l;
  l.property_address = site.property_address;
  l.detail_address = site.detail_address;
  l.start_date = format_local_date(*entry, kChinaStandardTime);
  l.end_date = format_local_date(*exit, kChinaStandardTime);
  l.cross_city = site.cross_city;
  l.certificate = site.certificate;
  l.area_unit = site.area_unit;
  return l;
}

std::string parking_remark(std::string_view plate, std::optional<SystemTime> entry,
                           std::optional<SystemTime> exit) {
  std::string r;
  if (!plate.empty()) {
    r += "车牌 ";
    r += plate;
  }
  if (entry) {
    r += r.empty() ? "" : " ";
    r += "入场 " + cst_minute(*entry);
  }
  if (exit) {
    r += r.empty() ? "" : " ";
    r += "出场 " + cst_minute(*exit);
  }
  // A plate is at most 8 characters and the times are fixed width: far below 200. Cut at a
  // code point anyway, so no input can make the order exceed the platform's limit.
  r.resize(first_code_points(r, 200).size());
  return r;
}

Result<Traveller> make_traveller(const TravellerInput& in, SystemTime boarding) {
  auto text = [](std::string_view value, std::string_view field,
                 std::string_view what) -> Status {
    if (value.empty()) {
      return fail(Errc::kInvalidArgument, std::string(what) + " is required for a 旅客运输 (09) invoice (" +
                                              std::string(kTravellerSpec) + ")",
                  std::string(field));
    }
    if (value.size() > 100 || has_control_chars(value)) {
      return fail(Errc::kInvalidArgument,
                  std::string(what) + " must be at most 100 bytes of text without control characters",
                  std::string(field));
    }
    return {};
  };
  for (auto [value, field, what] :
       {std::tuple{std::string_view(in.name), "traveller_name", "the traveller's name"},
        std::tuple{std::string_view(in.travel_place), "travel_place", "the place of departure"},
        std::tuple{std::string_view(in.arrive_place), "arrive_place", "the destination"}}) {
    if (auto s = text(value, field, what); !s) return std::unexpected(s.error());
  }
  std::string id;
  for (char c : in.card_no) {
    if (c != ' ') id.push_back(c == 'x' ? 'X' : c);
  }
  bool shape = id.size() == 18;
  for (std::size_t i = 0; shape && i < 17; ++i) shape = id[i] >= '0' && id[i] <= '9';
  shape = shape && ((id[17] >= '0' && id[17] <= '9') || id[17] == 'X');
  if (!shape) {
    return fail(Errc::kInvalidArgument,
                "a resident ID number (card type 201) is 17 digits and a digit or X", "traveller_card_no");
  }
  Traveller t;
  t.name = in.name;
  t.card_no = id;
  t.travel_date = format_local_date(boarding, kChinaStandardTime);
  t.travel_place = in.travel_place;
  t.arrive_place = in.arrive_place;
  return t;
}

std::string to_json(const SpecificBusiness& b) {
  json::object o;
  o["factor"] = platform_code(b.factor);
  o["remark"] = b.remark;
  if (b.lease) {
    const LeaseInfo& l = *b.lease;
    o["lease"] = json::object{{"property_address", l.property_address},
                              {"detail_address", l.detail_address},
                              {"start_date", l.start_date},
                              {"end_date", l.end_date},
                              {"cross_city", l.cross_city},
                              {"certificate", l.certificate},
                              {"area_unit", l.area_unit}};
  }
  json::array travellers;
  for (const Traveller& t : b.travellers) {
    travellers.push_back(json::object{{"name", t.name},
                                      {"card_type", t.card_type},
                                      {"card_no", t.card_no},
                                      {"travel_date", t.travel_date},
                                      {"travel_place", t.travel_place},
                                      {"arrive_place", t.arrive_place},
                                      {"vehicle_type", t.vehicle_type}});
  }
  if (!travellers.empty()) o["travellers"] = std::move(travellers);
  return json::serialize(o);
}

Result<SpecificBusiness> specific_business_from_json(std::string_view text) {
  SpecificBusiness b;
  if (text.empty()) {
    return b;  // invoices made before specific business existed
  }
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec || !v.is_object()) {
    return fail(Errc::kDatabase, "stored specific business is not a JSON object", "specific_json");
  }
  const json::object& o = v.as_object();
  auto factor = parse_platform_code(str(o, "factor"));
  if (!factor) return std::unexpected(factor.error());
  b.factor = *factor;
  b.remark = str(o, "remark");
  if (auto it = o.find("lease"); it != o.end() && it->value().is_object()) {
    const json::object& l = it->value().as_object();
    LeaseInfo lease;
    lease.property_address = str(l, "property_address");
    lease.detail_address = str(l, "detail_address");
    lease.start_date = str(l, "start_date");
    lease.end_date = str(l, "end_date");
    lease.cross_city = l.contains("cross_city") && l.at("cross_city").is_bool() && l.at("cross_city").as_bool();
    lease.certificate = str(l, "certificate");
    lease.area_unit = l.contains("area_unit") && l.at("area_unit").is_int64()
                          ? static_cast<int>(l.at("area_unit").as_int64())
                          : 0;
    b.lease = std::move(lease);
  }
  if (auto it = o.find("travellers"); it != o.end() && it->value().is_array()) {
    for (const auto& row : it->value().as_array()) {
      if (!row.is_object()) continue;
      const json::object& r = row.as_object();
      Traveller t;
      t.name = str(r, "name");
      t.card_type = str(r, "card_type");
      t.card_no = str(r, "card_no");
      t.travel_date = str(r, "travel_date");
      t.travel_place = str(r, "travel_place");
      t.arrive_place = str(r, "arrive_place");
      t.vehicle_type = r.contains("vehicle_type") && r.at("vehicle_type").is_int64()
                           ? static_cast<int>(r.at("vehicle_type").as_int64())
                           : 5;
      b.travellers.push_back(std::move(t));
    }
  }
  return b;
}

}  // namespace lanegate::invoice
