#include "value_rules.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdio>

#include "config/defaults.h"

namespace lanegate::config::detail {
namespace {

bool is_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_printable_ascii(char c) { return c > 0x20 && c < 0x7f; }

constexpr std::string_view kUsccAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY";
constexpr std::array<int, 17> kUsccWeights = {1,  3,  9,  27, 19, 26, 16, 17, 20,
                                              29, 25, 13, 8,  24, 10, 30, 28};

}  // namespace

std::string quoted(std::string_view text) {
  constexpr std::size_t kMax = 64;
  std::size_t cut = std::min(kMax, text.size());
  // Never cut a UTF-8 sequence in half.
  while (cut < text.size() && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  std::string out = "\"";
  for (char c : text.substr(0, cut)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      // Control bytes (ESC, NUL, ...) would act on the operator's terminal or log viewer.
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", u);
      out += esc;
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  out += cut < text.size() ? "...\"" : "\"";
  return out;
}

std::string id_rule(std::string_view id) {
  if (id.empty() || id.size() > 32 || !std::all_of(id.begin(), id.end(), [](char c) {
        return is_alnum(c) || c == '_' || c == '-';
      })) {
    return "must be 1..32 characters of A-Z a-z 0-9 _ - (got " + quoted(id) + ")";
  }
  return {};
}

std::string text_rule(std::string_view text, std::size_t max_bytes) {
  if (text.empty() || text.size() > max_bytes) {
    return "must be 1.." + std::to_string(max_bytes) + " bytes of text (got " +
           std::to_string(text.size()) + " bytes)";
  }
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return "must not contain control characters";
    }
  }
  return {};
}

bool parse_url(std::string_view text, Url& out) {
  Url url;
  std::size_t sep = text.find("://");
  if (sep == std::string_view::npos) {
    return false;
  }
  url.scheme = std::string(text.substr(0, sep));
  if (url.scheme != "https" && url.scheme != "http") {
    return false;
  }
  std::string_view rest = text.substr(sep + 3);
  if (!std::all_of(rest.begin(), rest.end(), is_printable_ascii)) {
    return false;  // spaces, control characters or raw non-ASCII: must be percent-encoded
  }
  std::size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  if (authority.empty() || authority.find('@') != std::string_view::npos) {
    return false;
  }
  std::string_view port_text;
  if (authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return false;
    }
    url.host = std::string(authority.substr(1, close - 1));
    in6_addr v6{};
    if (inet_pton(AF_INET6, url.host.c_str(), &v6) != 1) {
      return false;
    }
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return false;
      }
      port_text = after.substr(1);
      if (port_text.empty()) {
        return false;
      }
    }
  } else {
    std::size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) {
        return false;
      }
    }
    if (url.host.empty() || !std::all_of(url.host.begin(), url.host.end(), [](char c) {
          return is_alnum(c) || c == '-' || c == '.';
        })) {
      return false;
    }
  }
  if (!port_text.empty()) {
    if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(),
                                             [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    url.port = std::stoi(std::string(port_text));
    if (url.port < 1 || url.port > 65535) {
      return false;
    }
  }
  if (!tail.empty() && tail.front() != '/') {
    return false;  // query or fragment without a path: not a base URL
  }
  url.path = std::string(tail);
  out = std::move(url);
  return true;
}

std::string url_rule(std::string_view text, bool https_only) {
  Url url;
  if (!parse_url(text, url)) {
    return std::string("must be an absolute ") + (https_only ? "https" : "http or https") +
           " URL like \"https://host[:port]/path\" (got " + quoted(text) + ")";
  }
  if (https_only && url.scheme != "https") {
    return "must use https (got " + quoted(text) + ")";
  }
  return {};
}

bool is_loopback_host(std::string_view host) { return host == "localhost" || is_loopback_ip(host); }

std::string ip_literal_rule(std::string_view address) {
  std::string s(address);
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1 || inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    return {};
  }
  return "must be an IPv4 or IPv6 address such as \"127.0.0.1\" or \"::\" (got " + quoted(address) +
         ")";
}

bool is_loopback_ip(std::string_view address) {
  std::string s(address);
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return false;
}

std::string host_rule(std::string_view host) {
  if (ip_literal_rule(host).empty()) {
    return {};
  }
  bool ok = !host.empty() && host.size() <= 253 && host.front() != '-' && host.front() != '.' &&
            std::all_of(host.begin(), host.end(),
                        [](char c) { return is_alnum(c) || c == '-' || c == '.'; });
  if (!ok) {
    return "must be a host name or an IP address (got " + quoted(host) + ")";
  }
  return {};
}

std::string sha256_hex_rule(std::string_view text) {
  bool ok = text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
              return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
            });
  if (!ok) {
    return "must be the SHA-256 of the token as 64 lower-case hex digits "
           "(e.g. printf %s TOKEN | sha256sum), got " +
           std::to_string(text.size()) + " characters";
  }
  return {};
}

std::string uscc_shape_rule(std::string_view text) {
  if (text.size() != 18 || !std::all_of(text.begin(), text.end(), [](char c) {
        return kUsccAlphabet.find(c) != std::string_view::npos;
      })) {
    return "must be an 18-character unified social credit code of 0-9 and upper-case A-Y "
           "without I, O, S, V, Z (got " +
           quoted(text) + ")";
  }
  return {};
}

std::string uscc_rule(std::string_view text) {
  if (std::string shape = uscc_shape_rule(text); !shape.empty()) {
    return shape;
  }
  int sum = 0;
  for (std::size_t i = 0; i < 17; ++i) {
    sum += static_cast<int>(kUsccAlphabet.find(text[i])) * kUsccWeights[i];
  }
  int check = 31 - sum % 31;
  if (check == 31) {
    check = 0;
  }
  if (text[17] != kUsccAlphabet[static_cast<std::size_t>(check)]) {
    return std::string("check character of the unified social credit code is wrong: expected '") +
           kUsccAlphabet[static_cast<std::size_t>(check)] + "', got '" + text[17] +
           "' (add the code to invoicing.buyer_id_allow_list if it is a legitimate pilot-area "
           "code)";
  }
  return {};
}

std::string item_name_rule(std::string_view text) {
  // "*category*name": a leading '*', a non-empty category, a second '*', a non-empty name.
  if (text.size() >= 4 && text.front() == '*') {
    std::size_t second = text.find('*', 1);
    if (second != std::string_view::npos && second > 1 && second + 1 < text.size()) {
      return text_rule(text, 200);
    }
  }
  return "must be written \"*category*name\", e.g. \"*经营租赁*停车费\" (got " + quoted(text) + ")";
}

bool is_digits(std::string_view text, std::size_t n) {
  return text.size() == n &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string province_rule(std::string_view text) {
  for (std::string_view p : mainland_provinces()) {
    if (p == text) {
      return {};
    }
  }
  std::string all;
  for (std::string_view p : mainland_provinces()) {
    all += p;
  }
  return "must be a single province character, one of " + all + " (got " + quoted(text) + ")";
}

}  // namespace lanegate::config::detail
