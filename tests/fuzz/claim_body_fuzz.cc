// Fuzz target: the claim submission body (outside bytes from any phone on the internet).
// Properties: never crashes, never throws, and a parsed body either validates into a
// buyer with a normalised tax id or fails naming a field.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "invoice/claim_api.h"
#include "invoice/claims.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto buyer = lanegate::invoice::parse_claim_body(body);
  if (!buyer) {
    if (buyer.error().field.empty()) {
      std::abort();  // every refusal names the field or "body"
    }
    return 0;
  }
  auto valid = lanegate::invoice::validate_buyer(*buyer, {});
  if (valid) {
    if (valid->kind == lanegate::invoice::BuyerKind::kCompany && valid->tax_id.size() != 18) {
      std::abort();
    }
    if (valid->email.empty() && valid->phone.empty()) {
      std::abort();
    }
  } else if (valid.error().field.empty()) {
    std::abort();
  }
  return 0;
}
