#pragma once
// Buyer taxpayer id: the unified social credit code of GB 32100-2015.
//
//   position 1      registration authority
//   position 2      organisation type
//   positions 3-8   administrative region code (6 digits)
//   positions 9-17  organisation code
//   position 18     check character
//
// Alphabet (values 0..30): 0123456789ABCDEFGHJKLMNPQRTUWXY  (no I, O, S, V, Z).
// Weights for positions 1..17: 3^(i-1) mod 31. Check value c = 31 - (sum mod 31), 31 -> 0.
//
// Pure functions; any thread may call.

#include <span>
#include <string>
#include <string_view>

#include "core/error.h"

namespace lanegate::invoice {

inline constexpr std::string_view kCreditCodeAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY";

// Strips ASCII spaces and tabs and upper-cases ASCII letters, then checks, in order:
//   1. length: exactly 18 characters
//   2. alphabet: every character is in kCreditCodeAlphabet ("position N")
//   3. region code: positions 3-8 are digits
//   4. check character: position 18 equals the computed one ("expected X, got Y")
// A code on `allow_list` (compared after the same normalisation) skips rule 4 only:
// some early pilot-area codes fail the check legitimately.
// Returns the normalised code, or kInvalidArgument with field "buyer_tax_id" and a
// message naming the failed rule.
[[nodiscard]] Result<std::string> validate_buyer_id(std::string_view input,
                                                    std::span<const std::string> allow_list = {});

// The check character for the first 17 characters.
// REQUIRES: `first17` has 17 characters, all in kCreditCodeAlphabet.
char credit_code_check_char(std::string_view first17);

}  // namespace lanegate::invoice
