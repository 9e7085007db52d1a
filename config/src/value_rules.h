#pragma once
// Private to the config module: pure predicates for the value rules of docs/CONFIG.md.
// Each returns an empty string when the value is fine, else the rule it broke (used
// verbatim in ConfigError::rule).

#include <cstdint>
#include <string>
#include <string_view>

namespace lanegate::config::detail {

// A value quoted for an error message: at most 64 bytes (cut at a UTF-8 boundary, "..."
// when cut), control bytes written as \u00XX and '"' / '\\' escaped, so a hostile value
// cannot act on the terminal or log viewer that shows the error.
std::string quoted(std::string_view text);

// Ids of buses, devices, lanes, tariffs, meters, readers: [A-Za-z0-9_-]{1,32}.
std::string id_rule(std::string_view id);

// Printable UTF-8 text without control characters, 1..max_bytes bytes.
std::string text_rule(std::string_view text, std::size_t max_bytes);

struct Url {
  std::string scheme;  // "https" or "http"
  std::string host;    // without brackets for IPv6 literals
  int port = 0;        // 0 = scheme default
  std::string path;    // "" or starting with '/'
};
// Parses scheme://host[:port][/path...]; returns false on anything else (user info,
// spaces, control characters, empty host, bad port).
bool parse_url(std::string_view text, Url& out);
// "" when `text` is an absolute URL with one of the allowed schemes.
std::string url_rule(std::string_view text, bool https_only);
bool is_loopback_host(std::string_view host);

// A host name or IP literal for a Modbus TCP bus.
std::string host_rule(std::string_view host);
// An IPv4 or IPv6 literal to bind to.
std::string ip_literal_rule(std::string_view address);
bool is_loopback_ip(std::string_view address);

// SHA-256 of an API token: exactly 64 lower-case hex digits.
std::string sha256_hex_rule(std::string_view text);

// Unified social credit code (GB 32100-2015): 18 characters, alphabet without I O S V Z,
// valid check character.
std::string uscc_rule(std::string_view text);
// 18 characters of the USCC alphabet, check character not verified (allow-list entries
// exist precisely because some legitimate codes fail the check).
std::string uscc_shape_rule(std::string_view text);

// Invoice item names are written "*category*name".
std::string item_name_rule(std::string_view text);
// n decimal digits exactly.
bool is_digits(std::string_view text, std::size_t n);

// A single CJK province abbreviation from the mainland list.
std::string province_rule(std::string_view text);

}  // namespace lanegate::config::detail
