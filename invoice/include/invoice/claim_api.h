#pragma once
// The passenger-facing claim API as pure request -> reply functions, so the gateway's
// Beast server can mount them without this module knowing about HTTP servers.
//
// Routes (target may carry a query string, which is ignored):
//   GET  /claim/{token}              the claim page (HTML, zh with an English switch)
//   GET  /claim                      the same page, asking for the typed human code
//   GET  /api/v1/claims/{token}      the claim and its invoice status (JSON)
//   POST /api/v1/claims/{token}      submit the buyer: {"kind":"person"|"company",
//                                    "title","tax_id","email","phone"} (JSON)
//   POST /api/v1/claim-codes         {"code":"7KQ4-M2XA"} -> {"token": ...}; rate-limited
//                                    per client_key (429 + Retry-After when locked)
// Errors are JSON {"error":{"code":..., "field":..., "message":...}} with 400 (bad JSON),
// 404 (unknown), 405, 409 (code "refunded"; or code "toll": a toll claim from before tolls
// were refused, whose invoice the national toll e-bill platform issues), 410 (window
// closed), 413 (too large), 422 (field rule).
// The claim view carries "issuer": "invoicing_platform", or "national_toll_platform" for
// such a toll claim (the page then points the passenger to www.txffp.com / 票根).
//
// Threading: same as the ClaimStore it uses (one thread at a time).

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "invoice/claims.h"
#include "invoice/model.h"

namespace lanegate::invoice {

struct ApiReply {
  int status = 200;
  std::string content_type = "application/json; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. Retry-After
};

// Largest accepted request body.
inline constexpr std::size_t kMaxClaimBodyBytes = 8 * 1024;

// Parses the claim submission body. Strict: an object with string members only, known
// keys only (kind, title, tax_id, email, phone, and the traveller members below), kind
// required. Errors: kParse (not
// JSON, field "body"), kInvalidArgument naming the member. Does not apply the buyer
// rules (validate_buyer does). Never throws.
[[nodiscard]] Result<Buyer> parse_claim_body(std::string_view body);
// The passenger's identity for a 09 invoice from the same body: traveller_name,
// traveller_card_no, travel_place, arrive_place; nullopt when none is given (a plain
// invoice). Shape rules are make_traveller()'s, applied at submission.
[[nodiscard]] Result<std::optional<TravellerInput>> parse_traveller(std::string_view body);

// Handles one request. `client_key` identifies the caller for rate limits (the peer IP
// as the gateway sees it, after trusted-proxy handling).
ApiReply handle_claim_api(ClaimStore& store, std::string_view method, std::string_view target,
                          std::string_view body, std::string_view client_key);

// The claim page (self-contained HTML with inline CSS and script, no external assets).
std::string_view claim_page_html();

// JSON view of a claim as GET /api/v1/claims/{token} returns it (e-mail and phone masked):
// the trip, its stay period (parking) and whether the page may ask for the traveller's
// identity (a taxi trip without an invoice, when `traveller_offered`), and the invoice with
// its specific business ("06", "09" or "").
std::string claim_view_json(const Claim& claim, const InvoiceRecord* invoice,
                            bool traveller_offered = false);

}  // namespace lanegate::invoice
