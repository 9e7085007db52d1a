// Plates are personal data: after a vehicle has passed (entry, exit, charge, settlement),
// lanegated's log holds only masked plates; the full plate is in the money records (the
// operator's API and the audit ledger) and nowhere else.

#include <gtest/gtest.h>

#include <string>

#include "hostile_site.h"

namespace lanegate::hostile {
namespace {

TEST_F(HostileTest, PlatesAreMaskedInTheLog) {
  const std::string plate = "粤B5M2Q8";
  // The sandbox does not know this plate: the gateway decides without a binding, which
  // logs the refusal path as well as the decision.
  sim::VehicleArrival v;
  v.lane = "entry-1";
  v.plate = plate;
  ASSERT_TRUE(site().devices().vehicle_arrives(v));
  // A bound plate through entry and exit (once per site), so every step up to
  // settlement ran.
  ASSERT_TRUE(site().ensure_settled_charge()) << site().stderr_text();
  const std::string log = site().stderr_text();
  ASSERT_NE(log.find("decision"), std::string::npos) << log;
  EXPECT_EQ(log.find(plate), std::string::npos) << log;
  EXPECT_EQ(log.find(kBoundPlate), std::string::npos) << log;
  // Nor the plate without its province character (what a lazy mask would leave).
  EXPECT_EQ(log.find("B7H3K9"), std::string::npos) << log;
  EXPECT_NE(log.find("粤B***K9"), std::string::npos) << "masked form not logged:\n" << log;
  // The money record has it in full.
  const HttpReply tx = site().get_as(kOperatorToken, "/api/v1/transactions?limit=1000");
  EXPECT_NE(tx.body.find(kBoundPlate), std::string::npos);
}

}  // namespace
}  // namespace lanegate::hostile
