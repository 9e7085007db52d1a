#pragma once
// Field readers and failures shared by the provider client (provider.cc,
// provider_wechatpay.cc) and the notification handler (provider_notify.cc). Internal to
// gateway/src: no protocol logic, just how a provider's JSON is read.

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/provider.h"

namespace lanegate::gateway::provider_json {

namespace json = boost::json;

inline std::optional<std::string> get_string(const json::object& o, std::string_view key) {
  if (const json::value* v = o.if_contains(key); v != nullptr && v->is_string()) {
    return std::string(v->as_string());
  }
  return std::nullopt;
}

inline std::optional<std::int64_t> get_int(const json::object& o, std::string_view key) {
  if (const json::value* v = o.if_contains(key); v != nullptr) {
    if (v->is_int64()) {
      return v->as_int64();
    }
    if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
      return static_cast<std::int64_t>(v->as_uint64());
    }
  }
  return std::nullopt;
}

inline ProviderFailure failure(Outcome outcome, Errc code, std::string message,
                               std::string field = {}, int http_status = 0,
                               std::string provider_code = {}) {
  return ProviderFailure{outcome, http_status, std::move(provider_code),
                         Error{code, std::move(message), std::move(field)}};
}

// A verified 2xx reply's body as a JSON object; anything else is retried later.
inline ProviderResult<json::object> reply_object(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    return std::unexpected(failure(Outcome::kRetryLater, Errc::kParse, "reply is not JSON"));
  }
  return std::move(v.as_object());
}

}  // namespace lanegate::gateway::provider_json
