#pragma once
// Specific business (特定业务) on 数电 invoices (specs/e-invoice.md "Specific business"):
// parking is issued as 06 不动产经营租赁 with the lot's address and the stay as the lease
// period; a taxi fare is a plain invoice, or 09 旅客运输 when the passenger supplies
// identity. The block is built once, when the invoice is created, and frozen with it.
//
// Pure values and functions; any thread.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/error.h"

namespace lanegate::invoice {

enum class SpecificFactor { kNone, kRealPropertyLease, kPassengerTransport };
// The platform's specificFactor: "0" | "6" | "9".
std::string_view platform_code(SpecificFactor factor);
// The tax bureau's code, shown to people: "" | "06" | "09".
std::string_view bureau_code(SpecificFactor factor);
[[nodiscard]] Result<SpecificFactor> parse_platform_code(std::string_view code);

// realPropertyRentInfo (06). Dates are YYYY-MM-DD in China Standard Time: Nuonuo documents
// dates; whether it takes a time is *unconfirmed*, so the times go in the remark.
struct LeaseInfo {
  std::string property_address;  // realPropertyAddress
  std::string detail_address;    // detailAddress
  std::string start_date;        // rentStartDate: the entry date
  std::string end_date;          // rentEndDate: the exit date
  bool cross_city = false;       // crossCityFlag
  std::string certificate;       // realPropertyCertificate, optional
  int area_unit = 0;             // unit, 1..7
};

// One row of the traveller list (09). Only the resident ID (201) is offered: the spec
// names no other card type.
struct Traveller {
  std::string name;          // traveller
  std::string card_type = "201";
  std::string card_no;       // travellerCardNo
  std::string travel_date;   // YYYY-MM-DD (CST): the boarding date
  std::string travel_place;  // travelPlace
  std::string arrive_place;  // arrivePlace
  int vehicle_type = 5;      // 5 taxi
};

struct SpecificBusiness {
  SpecificFactor factor = SpecificFactor::kNone;
  std::optional<LeaseInfo> lease;    // factor 06
  std::vector<Traveller> travellers; // factor 09
  std::string remark;                // order remark, <= 200 characters
};

// The 06 block of one stay. kRejected (field "trip") when the stay has no entry or exit
// time: the lease period cannot be invented.
[[nodiscard]] Result<LeaseInfo> lease_for_parking(const config::ParkingLeaseSite& site,
                                                  std::optional<SystemTime> entry,
                                                  std::optional<SystemTime> exit);

// "车牌 粤B12345 入场 2026-11-22 11:29 出场 2026-11-22 13:29" (CST), at most 200 characters.
std::string parking_remark(std::string_view plate, std::optional<SystemTime> entry,
                           std::optional<SystemTime> exit);

// What a passenger types on the claim page for 09.
struct TravellerInput {
  std::string name;
  std::string card_no;
  std::string travel_place;
  std::string arrive_place;
};
// Checks the input (field names are the claim API's: traveller_name, traveller_card_no,
// travel_place, arrive_place) and builds the row for a trip that began at `boarding`.
// The ID number is checked for shape only (17 digits + digit or X): the spec gives no
// check rule.
[[nodiscard]] Result<Traveller> make_traveller(const TravellerInput& input, SystemTime boarding);

// lanegate's own stored form (not the wire form), and back.
std::string to_json(const SpecificBusiness& business);
[[nodiscard]] Result<SpecificBusiness> specific_business_from_json(std::string_view text);

}  // namespace lanegate::invoice
