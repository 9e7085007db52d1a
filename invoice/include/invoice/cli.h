#pragma once
// Operator commands under `lanegate invoice ...`. The gateway's CLI dispatches here with
// the arguments after "invoice".
//
//   split --total 19.19 --rate 3      excl, tax, total and the total in capital numerals
//   split --total 9.00 --service parking   rate from the configured (or default) rule;
//                                     --service toll exits 1: the national toll e-bill
//                                     platform issues tolls (specs/e-invoice.md "Tolls")
//   check-buyer-id CODE               the normalised code, or the failed rule (exit 1)
//
// Exit codes: 0 ok, 1 the input broke a rule, 2 usage error.

#include <ostream>
#include <span>
#include <string>

#include "config/config.h"

namespace lanegate::invoice {

int invoice_command(std::span<const std::string> args, const config::InvoicingSection& section,
                    std::ostream& out, std::ostream& err);

}  // namespace lanegate::invoice
