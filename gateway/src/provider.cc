// Classification of provider replies (the spec's error table) and enum names.
#include "gateway/provider.h"

namespace lanegate::gateway {

std::string_view outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kRetryLater:
      return "retry_later";
    case Outcome::kQueryFirst:
      return "query_first";
    case Outcome::kPark:
      return "park";
    case Outcome::kNotFound:
      return "not_found";
  }
  return "unknown";
}

Outcome classify_reply(CallKind kind, int http_status, std::string_view code) {
  if (http_status >= 200 && http_status < 300) {
    return Outcome::kOk;
  }
  // 404 ORDER_NOT_EXIST: on a query the charge never arrived (safe to submit it).
  if (http_status == 404 || code == "ORDER_NOT_EXIST") {
    return Outcome::kNotFound;
  }
  // 429 RATELIMIT_EXCEEDED: the request was refused as a whole; slow down and retry.
  if (http_status == 429 || code == "RATELIMIT_EXCEEDED") {
    return Outcome::kRetryLater;
  }
  // 500 SYSTEM_ERROR, 502/503 SERVICE_UNAVAILABLE: retry with the same parameters. For a
  // charge the provider may have committed it: query the out_trade_no before resending.
  if (http_status >= 500 || code == "SYSTEM_ERROR" || code == "SERVICE_UNAVAILABLE") {
    return kind == CallKind::kCharge ? Outcome::kQueryFirst : Outcome::kRetryLater;
  }
  // 401 SIGN_ERROR: the provider refused the request as a whole (nothing was committed), for
  // a wrong merchant key or a clock more than 300 s off. The spec calls it permanent until
  // the config is fixed, but parking the item would need an operator to unpark it once the
  // clock or key is fixed, and would let a parked parking entry's exit charge overtake it.
  // Retrying with backoff recovers by itself; the uplink alarms (log + metric) meanwhile.
  if (http_status == 401 || code == "SIGN_ERROR") {
    return Outcome::kRetryLater;
  }
  // 400 PARAM_ERROR / INVALID_REQUEST, 403 NO_AUTH and any other 4xx: permanent until the
  // request or the config is fixed.
  return Outcome::kPark;
}

std::string_view product_name(Product product) {
  switch (product) {
    case Product::kParking:
      return "PARKING";
    case Product::kHighway:
      return "HIGHWAY";
    case Product::kTaxi:
      return "TAXI";
  }
  return "PARKING";
}

std::string_view trade_state_name(TradeState state) {
  switch (state) {
    case TradeState::kAccepted:
      return "ACCEPTED";
    case TradeState::kSuccess:
      return "SUCCESS";
    case TradeState::kPayFail:
      return "PAY_FAIL";
    case TradeState::kRefund:
      return "REFUND";
  }
  return "UNKNOWN";
}

Result<TradeState> parse_trade_state(std::string_view text) {
  if (text == "ACCEPTED") {
    return TradeState::kAccepted;
  }
  if (text == "SUCCESS") {
    return TradeState::kSuccess;
  }
  // The spec's enum says PAY_FAIL; one published failure sample says FAIL.
  if (text == "PAY_FAIL" || text == "FAIL") {
    return TradeState::kPayFail;
  }
  if (text == "REFUND") {
    return TradeState::kRefund;
  }
  return fail(Errc::kProtocol, "not one of ACCEPTED, SUCCESS, PAY_FAIL, REFUND", "trade_state");
}

bool is_plate_color(std::string_view c) {
  return c == "BLUE" || c == "GREEN" || c == "YELLOW" || c == "BLACK" || c == "WHITE" ||
         c == "LIMEGREEN";
}

}  // namespace lanegate::gateway
