// Classification of provider replies (the spec's error table) and enum names.
#include "gateway/provider.h"

#include <boost/json.hpp>

#include "core/log.h"
#include "core/metrics.h"
#include "provider_json.h"

namespace lanegate::gateway {
using provider_json::failure;
using provider_json::get_int;
using provider_json::get_string;
namespace json = boost::json;

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
  // The spec: replies and queries say ACCEPTED, the notification pages say ACCEPT, for
  // the same state ("accepted, deduction pending").
  if (text == "ACCEPTED" || text == "ACCEPT") {
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
  return fail(Errc::kProtocol,
              "\"" + std::string(text.substr(0, 32)) +
                  "\" is not one of ACCEPTED, ACCEPT, SUCCESS, PAY_FAIL, FAIL, REFUND",
              "trade_state");
}

bool is_plate_color(std::string_view c) {
  return c == "BLUE" || c == "GREEN" || c == "YELLOW" || c == "BLACK" || c == "WHITE" ||
         c == "LIMEGREEN";
}

namespace {
// An answer whose trade_state the spec's table does not list: counted and logged (the
// alarm), and a kPark failure with kUnknownTradeState so the caller keeps the money pending.
ProviderFailure unknown_trade_state(const std::string& out_trade_no, std::string_view product,
                                    const std::string& state_text, std::string message) {
  metrics::Registry::global()
      .counter("lanegate_provider_unknown_trade_state_total",
               "Provider answers whose trade_state is not in the spec's table (alarm)")
      .inc();
  log::error("provider answered a trade_state lanegate does not know: item kept for an operator",
             {{"OUT_TRADE_NO", out_trade_no}, {"PRODUCT", product}, {"TRADE_STATE", state_text.substr(0, 32)}});
  return failure(Outcome::kPark, Errc::kProtocol, std::move(message), "trade_state", 0,
                 std::string(kUnknownTradeState));
}
}  // namespace

ProviderResult<ProviderTransaction> read_transaction(Product product, std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    return std::unexpected(
        failure(Outcome::kRetryLater, Errc::kParse, "transaction reply is not JSON", "body"));
  }
  const auto& o = v.as_object();
  ProviderTransaction t;
  t.product = product;
  t.raw_json = std::string(body);
  t.out_trade_no = get_string(o, "out_trade_no").value_or("");
  // Spec "Parking Transaction": sp_mchid; "ETC Transaction": mchid. The same-money check
  // (gateway/charge.h invariant 4) compares them with ours when the answer names them.
  t.merchant_id = get_string(o, "sp_mchid").value_or(get_string(o, "mchid").value_or(""));
  t.sub_merchant_id = get_string(o, "sub_mchid").value_or("");
  t.transaction_id = get_string(o, "transaction_id").value_or("");
  const auto state_text = get_string(o, "trade_state");
  if (t.out_trade_no.empty() || !state_text) {
    return std::unexpected(failure(Outcome::kRetryLater, Errc::kProtocol,
                                   "transaction reply lacks out_trade_no or trade_state",
                                   "trade_state"));
  }
  auto state = parse_trade_state(*state_text);
  if (!state) {
    // Spec: "Unknown values: keep the item pending and alarm." The money's state is not
    // known, so nothing may act on it: parked for an operator, never guessed.
    return std::unexpected(unknown_trade_state(t.out_trade_no, product_name(product), *state_text,
                                               state.error().message));
  }
  t.state = *state;
  // Parking says trade_state_description, ETC trade_state_desc.
  t.trade_state_description = get_string(o, "trade_state_description")
                                  .or_else([&] { return get_string(o, "trade_state_desc"); })
                                  .value_or("");
  t.success_time = get_string(o, "success_time");
  t.bank_type = get_string(o, "bank_type").value_or("");
  t.user_repaid = get_string(o, "user_repaid").value_or("");
  if (const auto* p = o.if_contains("payer"); p != nullptr && p->is_object()) {
    // Parking: payer.openid (under appid); ETC: payer.sp_openid.
    t.openid = get_string(p->as_object(), "openid")
                   .or_else([&] { return get_string(p->as_object(), "sp_openid"); })
                   .value_or("");
  }
  const auto* a = o.if_contains("amount");
  auto total = a != nullptr && a->is_object() ? get_int(a->as_object(), "total") : std::nullopt;
  if (!total) {
    return std::unexpected(failure(Outcome::kRetryLater, Errc::kProtocol,
                                   "transaction reply lacks amount.total", "amount.total"));
  }
  t.amount = Money::from_fen(*total);
  if (auto pt = get_int(a->as_object(), "payer_total")) {
    t.payer_total = Money::from_fen(*pt);
  }
  return t;
}

std::string_view pay_product_name(PayProduct product) {
  return product == PayProduct::kCodepay ? "codepay" : "native";
}

std::string_view pay_state_name(PayState state) {
  switch (state) {
    case PayState::kSuccess: return "SUCCESS";
    case PayState::kRefund: return "REFUND";
    case PayState::kNotPay: return "NOTPAY";
    case PayState::kClosed: return "CLOSED";
    case PayState::kRevoked: return "REVOKED";
    case PayState::kUserPaying: return "USERPAYING";
    case PayState::kPayError: return "PAYERROR";
  }
  return "?";
}

Result<PayState> parse_pay_state(std::string_view text) {
  for (auto s : {PayState::kSuccess, PayState::kRefund, PayState::kNotPay, PayState::kClosed,
                 PayState::kRevoked, PayState::kUserPaying, PayState::kPayError}) {
    if (text == pay_state_name(s)) return s;
  }
  return fail(Errc::kParse, "trade_state \"" + std::string(text) + "\" is not a payment state of the spec",
              "trade_state");
}

ProviderResult<Payment> read_payment(PayProduct product, std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    return std::unexpected(
        failure(Outcome::kRetryLater, Errc::kParse, "payment reply is not JSON", "body"));
  }
  const auto& o = v.as_object();
  Payment p;
  p.product = product;
  p.raw_json = std::string(body);
  p.out_trade_no = get_string(o, "out_trade_no").value_or("");
  if (p.out_trade_no.empty()) {
    return std::unexpected(failure(Outcome::kRetryLater, Errc::kProtocol,
                                   "payment reply lacks out_trade_no (a string)", "out_trade_no"));
  }
  // Direct replies name appid/mchid, partner replies sp_appid/sp_mchid (spec "Direct merchant
  // vs service provider"); the caller compares them with its own merchant.
  p.merchant_id = get_string(o, "sp_mchid").or_else([&] { return get_string(o, "mchid"); })
                      .value_or("");
  p.appid = get_string(o, "sp_appid").or_else([&] { return get_string(o, "appid"); })
                .value_or("");
  p.sub_merchant_id = get_string(o, "sub_mchid").value_or("");
  p.sub_appid = get_string(o, "sub_appid").value_or("");
  const auto state_text = get_string(o, "trade_state");
  if (!state_text) {
    return std::unexpected(failure(Outcome::kRetryLater, Errc::kProtocol,
                                   "payment reply lacks trade_state (a string)", "trade_state"));
  }
  auto state = parse_pay_state(*state_text);
  if (!state) {
    // Spec "trade_state values": unknown values keep the order unresolved and alarm, with
    // the same counter and log as read_transaction (one alert covers both products).
    return std::unexpected(unknown_trade_state(p.out_trade_no, pay_product_name(product), *state_text,
                                               "trade_state \"" + state_text->substr(0, 32) +
                                                   "\" is not one of SUCCESS, REFUND, NOTPAY, CLOSED, "
                                                   "REVOKED, USERPAYING, PAYERROR"));
  }
  p.state = *state;
  p.transaction_id = get_string(o, "transaction_id").value_or("");
  p.trade_type = get_string(o, "trade_type").value_or("");
  p.trade_state_description = get_string(o, "trade_state_desc").value_or("");
  p.bank_type = get_string(o, "bank_type").value_or("");
  p.success_time = get_string(o, "success_time");
  p.attach = get_string(o, "attach");
  if (const auto* payer = o.if_contains("payer"); payer != nullptr && payer->is_object()) {
    const auto& po = payer->as_object();
    // Direct: payer.openid; partner: payer.sp_openid (under sp_appid) and sub_openid.
    p.openid = get_string(po, "openid").or_else([&] { return get_string(po, "sp_openid"); })
                   .value_or("");
    p.sub_openid = get_string(po, "sub_openid").value_or("");
  }
  const auto* a = o.if_contains("amount");
  auto total = a != nullptr && a->is_object() ? get_int(a->as_object(), "total") : std::nullopt;
  if (!total) {
    return std::unexpected(failure(Outcome::kRetryLater, Errc::kProtocol,
                                   "payment reply lacks amount.total (an integer number of fen)",
                                   "amount.total"));
  }
  p.amount = Money::from_fen(*total);
  const auto& ao = a->as_object();
  if (auto pt = get_int(ao, "payer_total")) {
    p.payer_total = Money::from_fen(*pt);
  }
  p.currency = get_string(ao, "currency").value_or("");
  p.payer_currency = get_string(ao, "payer_currency").value_or("");
  return p;
}

namespace {
ProviderFailure not_offered(std::string_view call) {
  return ProviderFailure{Outcome::kPark, 0, "", Error{Errc::kInvalidArgument,
                         "this provider adapter has no " + std::string(call) + " call", "provider"}};
}
}  // namespace

ProviderResult<Payment> PaymentProvider::codepay(const CodepayRequest&) {
  return std::unexpected(not_offered("codepay"));
}
ProviderResult<std::string> PaymentProvider::create_native(const NativeRequest&) {
  return std::unexpected(not_offered("native"));
}
ProviderResult<Payment> PaymentProvider::query_payment(PayProduct, std::string_view) {
  return std::unexpected(not_offered("payment query"));
}
ProviderResult<std::monostate> PaymentProvider::reverse_payment(std::string_view) {
  return std::unexpected(not_offered("reverse"));
}
ProviderResult<std::monostate> PaymentProvider::close_payment(PayProduct, std::string_view) {
  return std::unexpected(not_offered("close"));
}

}  // namespace lanegate::gateway
