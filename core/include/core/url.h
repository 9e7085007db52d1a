#pragma once
// Percent-encoding of URL query values and header values that remote protocols ask for.

#include <string>
#include <string_view>

namespace lanegate {

// Percent-encodes `value` as it goes in a query string or an encoded header (RFC 3986):
// UTF-8 bytes as %XX with upper-case hex; only the unreserved [A-Za-z0-9-_.~] stay literal.
std::string percent_encode(std::string_view value);

}  // namespace lanegate
