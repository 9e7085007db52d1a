#pragma once
// The operator's view of one invoice (GET /api/v1/invoices/{id}, `lanegate invoice show`):
// its state, amounts, buyer (tax id shown; it is a company's public number), and for a red
// invoice the reason in both numberings and every confirmation form with its deadline.
// Pure JSON building; the HTTP route lives in the gateway.

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "core/time_format.h"
#include "invoice/claims.h"

namespace lanegate::invoice {

// kNotFound (field invoice_id) when there is no such invoice.
[[nodiscard]] Result<boost::json::object> invoice_view_json(ClaimStore& store, std::int64_t id,
                                                            UtcOffset offset);

// The invoices of one settled transaction: its invoice and, once requested, the red one
// reversing it. Empty when the claim has no invoice; kNotFound when there is no claim.
[[nodiscard]] Result<boost::json::array> transaction_invoices_json(ClaimStore& store,
                                                                   std::string_view transaction_id,
                                                                   UtcOffset offset);

}  // namespace lanegate::invoice
