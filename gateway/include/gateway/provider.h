#pragma once
// The payment provider seen by the gateway: typed calls with an outcome classification
// the outbox worker acts on. WechatPayClient (gateway/provider_wechatpay.h) implements it
// for WeChat Pay API v3 vehicle services; an Alipay adapter can implement it later.
//
// Charge lifecycle as the outbox drives it (one out_trade_no per money movement):
//
//   NEW --charge(req, kFirst)--> ok: ACCEPTED | SUCCESS | PAY_FAIL   (settled by reply or
//    |                                                                 notification)
//    |--> retry_later (connect refused, 429): nothing reached the provider; call
//    |      charge(req, kFirst) again later.
//    |--> query_first (timeout, 5xx, lost or unverifiable reply): AMBIGUOUS. From here
//    |      on only charge(req, kAfterAmbiguity) is allowed: it queries the same
//    |      out_trade_no first; found -> ok with its state; ORDER_NOT_EXIST -> resends the
//    |      same request (same out_trade_no, same amount); query failed -> query_first again.
//    '--> park (400/401/403, amount mismatch): permanent; an operator must look.
// Invariants:
//   1. A new out_trade_no is never invented for the same money: the caller keeps the
//      ChargeRequest it first sent and passes it unchanged on every attempt.
//   2. After query_first, a resend happens only after the provider said ORDER_NOT_EXIST
//      for that out_trade_no (kAfterAmbiguity enforces it).
//   3. A reply is used only after its platform signature verified; an unverifiable 2xx
//      reply to a charge is treated as ambiguous, never as a refusal.
//
// Threading: implementations are thread-safe; the outbox's worker threads share one.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/clock.h"
#include "core/error.h"
#include "core/money.h"

namespace lanegate::gateway {

// What the caller (outbox) does next.
enum class Outcome {
  kOk,          // the call succeeded; the value is valid
  kRetryLater,  // nothing changed at the provider (or a read): try again later, same request
  kQueryFirst,  // ambiguous (timeout/5xx/lost reply): query the same out_trade_no first
  kPark,        // permanent (400/401/403, mismatch): park the item, alarm
  kNotFound,    // the provider does not know the order (query: safe to submit it)
};
std::string_view outcome_name(Outcome outcome);

struct ProviderFailure {
  Outcome outcome = Outcome::kRetryLater;
  int http_status = 0;        // 0 when no HTTP reply was received
  std::string provider_code;  // e.g. "PARAM_ERROR", empty without a provider body
  Error error;                // human-readable, names the field/check
};

template <typename T>
using ProviderResult = std::expected<T, ProviderFailure>;

// Which kind of call a reply belongs to: the same HTTP status means different things.
enum class CallKind {
  kRead,        // state/order queries, certificates, bills: always safe to repeat
  kIdempotent,  // create parking entry: the provider locates it by out_parking_no
  kCharge,      // moves money: a lost reply is ambiguous
};

// The spec's error table: HTTP status + error code -> outcome. Codes unknown to the
// spec fall back on the status class (4xx -> park, 5xx -> ambiguous for a charge).
Outcome classify_reply(CallKind kind, int http_status, std::string_view code);

// The vehicle-service products (spec "Parking", "ETC highway deduction"). There is no
// vehicle taxi call: a fare is an ordinary payment (PayProduct below).
enum class Product { kParking, kHighway };
std::string_view product_name(Product product);  // "PARKING" | "HIGHWAY"

// Spec "trade_state values" for the vehicle products (parking reply, query and
// notification; ETC, whose value set is *unconfirmed*, is read with the same table).
enum class TradeState { kAccepted, kSuccess, kPayFail, kRefund };
std::string_view trade_state_name(TradeState state);
// Accepts SUCCESS, REFUND, both spellings of accepted (ACCEPTED in replies and queries,
// ACCEPT in notifications) and of failure (PAY_FAIL, the published sample's FAIL). Any
// other value is an error: the caller keeps the charge pending and alarms, never guesses.
[[nodiscard]] Result<TradeState> parse_trade_state(std::string_view text);
// ProviderFailure::provider_code of a reply whose trade_state is not in the spec's table:
// the item is parked for an operator (the money's state is unknown), never voided.
inline constexpr std::string_view kUnknownTradeState = "UNKNOWN_TRADE_STATE";

// Plate colours of the spec: BLUE, GREEN, YELLOW, BLACK, WHITE, LIMEGREEN.
bool is_plate_color(std::string_view color);

struct PlateServiceQuery {
  std::string appid;  // empty: the client's configured appid
  std::string plate_number;
  std::string plate_color;
  std::string openid;
};

struct PlateServiceState {
  std::string plate_number;
  std::string plate_color;
  std::string openid;
  std::optional<std::string> service_open_time;
  std::string service_state;  // NORMAL | PAUSE | OUT_SERVICE
};

struct ParkingEntryRequest {
  std::string out_parking_no;  // <= 64, unique per merchant
  std::string plate_number;
  std::string plate_color;
  SystemTime start_time{};
  std::string parking_name;  // <= 128 characters
  std::int64_t free_duration_s = 0;
  std::string notify_url;  // empty: the configured notify_url
};

struct ParkingEntry {
  std::string id;  // parking_id, used by the charge
  std::string out_parking_no;
  std::string state;                        // NORMAL | BLOCKED
  std::optional<std::string> block_reason;  // PAUSE | OVERDUE | OUT_SERVICE | ...
};

struct ParkingInfo {
  std::string parking_id;
  std::string plate_number;
  std::string plate_color;
  SystemTime start_time{};
  SystemTime end_time{};
  std::string parking_name;
  std::int64_t charging_duration_s = 0;
  std::string device_id;
};

// highway_info of the ETC deduction (spec "ETC highway deduction"). channel_type and
// car_type come from [provider.etc] (their value sets are *unconfirmed*): the client maps
// vehicle_class to car_type and sends none for a class without an entry. Not sent:
// carrying_capacity / carrying_range (lanegate does not know them) and device_info
// (its device_ip is required when sent, and the box's address seen by the provider is
// not known to it).
struct HighwayInfo {
  std::string plate_number;
  SystemTime start_time{};  // the entry time the roadside unit read
  SystemTime end_time{};    // the exit
  std::string entrance;     // entry station name ([[station]])
  std::string exit;         // exit station name
  int vehicle_class = 0;    // the roadside unit's class; 0 unknown
};

struct ChargeRequest {
  Product product = Product::kParking;
  std::string out_trade_no;  // <= 32 of [0-9A-Za-z_*-], unique per merchant
  std::string description;   // <= 128 characters
  Money amount = Money::zero();
  std::optional<std::string> attach;
  std::string notify_url;   // empty: the configured notify_url
  ParkingInfo parking;      // REQUIRES: product == kParking
  std::string contract_id;  // REQUIRES: product == kHighway
  HighwayInfo highway;      // REQUIRES: product == kHighway
};

// A provider transaction as replied or notified.
struct ProviderTransaction {
  Product product = Product::kParking;
  // The merchant the answer names (parking: sp_mchid, ETC: mchid); empty when not given.
  std::string merchant_id;
  // Partner mode: the special merchant the answer names (sub_mchid); empty when not given.
  std::string sub_merchant_id;
  std::string out_trade_no;
  std::string transaction_id;
  TradeState state = TradeState::kAccepted;
  std::string trade_state_description;
  Money amount = Money::zero();
  std::optional<Money> payer_total;
  std::optional<std::string> success_time;
  std::string openid;       // payer.openid (parking) or payer.sp_openid (ETC)
  std::string bank_type;    // "BPA": the provider advanced the money
  std::string user_repaid;  // "Y" | "N" when given
  std::string raw_json;     // the verified (or decrypted) JSON, for the audit ledger
};

enum class ChargeAttempt {
  kFirst,           // nothing ambiguous happened for this out_trade_no yet
  kAfterAmbiguity,  // an earlier attempt ended in query_first: query before any resend
};

// An ETC deduction contract (spec "Contract"; `VEHICLE.USER_STATE_CHANGE` carries the same
// fields). bind_state's value set is *unconfirmed*: compare it with [provider.etc]
// bound_state, nothing else.
struct EtcContract {
  std::string contract_id;
  std::string plate_number;
  std::string bind_state;
  std::string merchant_id;      // sp_mchid
  std::string sub_merchant_id;  // sub_mchid, when given
  std::string sp_openid;
  std::string raw_json;
};

struct TradeBill {
  std::string csv;  // the file exactly as downloaded (hash checked)
  std::string hash_value;
};

// A parking or ETC Transaction (reply, query or notification resource) as the spec names
// its fields in either product and mode. Malformed -> kRetryLater naming the field; a
// trade_state outside the spec's table -> kPark with provider_code kUnknownTradeState,
// counted in lanegate_provider_unknown_trade_state_total and logged (the alarm).
[[nodiscard]] ProviderResult<ProviderTransaction> read_transaction(Product product,
                                                                   std::string_view body);

// ---------------- in-cab payments (spec "Taxi: in-cab payment") ----------------
// A fare is an ordinary payment under /v3/pay/… (direct) or /v3/pay/partner/… (partner):
// the terminal scans the passenger's payment code (codepay) or shows a Native QR.

enum class PayProduct { kCodepay, kNative };
std::string_view pay_product_name(PayProduct product);  // "codepay" | "native"

// trade_state of a payment-code or Native order (spec "trade_state values"): SUCCESS,
// REFUND, NOTPAY, CLOSED; payment code only: REVOKED, USERPAYING, PAYERROR. Any other
// value is an error (the caller keeps the order unresolved and alarms; never guesses).
enum class PayState { kSuccess, kRefund, kNotPay, kClosed, kRevoked, kUserPaying, kPayError };
std::string_view pay_state_name(PayState state);
[[nodiscard]] Result<PayState> parse_pay_state(std::string_view text);

// A payment order as a reply, a query or a TRANSACTION.SUCCESS notification states it.
struct Payment {
  PayProduct product = PayProduct::kCodepay;
  std::string merchant_id;      // mchid (direct) or sp_mchid (partner)
  std::string sub_merchant_id;  // partner: sub_mchid
  std::string out_trade_no;
  std::string transaction_id;   // absent until paid
  std::string trade_type;       // MICROPAY, FACEPAY, NATIVE
  PayState state = PayState::kNotPay;
  std::string trade_state_description;
  Money amount = Money::zero();  // amount.total: the order's amount, compared with ours
  std::optional<Money> payer_total;
  std::optional<std::string> success_time;
  std::string openid;  // payer.openid (direct) or payer.sp_openid (partner), when given
  std::string raw_json;
  // Added with read_payment(): the rest of the spec's reply/notification fields.
  std::string appid;           // appid (direct) or sp_appid (partner), when given
  std::string sub_appid;       // partner: sub_appid, when given
  std::string sub_openid;      // partner: payer.sub_openid, when given
  std::string bank_type;       // when given (paid orders)
  std::string currency;        // amount.currency, when given ("CNY")
  std::string payer_currency;  // amount.payer_currency, when given
  std::optional<std::string> attach;
};

// A payment-code or Native order (codepay reply, query reply, TRANSACTION.SUCCESS resource)
// in either mode: direct appid, mchid; partner sp_appid, sp_mchid, sub_appid, sub_mchid;
// out_trade_no, transaction_id, trade_type, trade_state, trade_state_desc, bank_type,
// success_time, attach, payer{openid | sp_openid, sub_openid}, amount{total, payer_total,
// currency, payer_currency}. out_trade_no, trade_state and amount.total are required;
// missing or of the wrong type -> kRetryLater naming the field. A trade_state outside the
// spec's table -> kPark with provider_code kUnknownTradeState, counted in
// lanegate_provider_unknown_trade_state_total and logged (the alarm), as read_transaction.
// The money fields are returned as stated, not checked: the caller compares out_trade_no,
// amount and the merchant ids with its own order.
[[nodiscard]] ProviderResult<Payment> read_payment(PayProduct product, std::string_view json);

// POST …/codepay. auth_code is the passenger's code: SECRET, never logged or stored.
struct CodepayRequest {
  std::string out_trade_no;  // new for every code
  std::string description;   // <= 127 characters
  std::string auth_code;     // 18 digits
  Money amount = Money::zero();
  std::string device_id;     // scene_info.device_id: the terminal (meter id)
  std::string store_out_id;  // scene_info.store_info.out_id: the gateway id
  std::optional<std::string> attach;
};

// POST …/native.
struct NativeRequest {
  std::string out_trade_no;
  std::string description;
  Money amount = Money::zero();
  std::optional<SystemTime> time_expire;
  std::string notify_url;  // empty: the configured notify_url
  std::string device_id;   // scene_info.device_id
  std::optional<std::string> attach;
};

class PaymentProvider {
 public:
  virtual ~PaymentProvider() = default;

  [[nodiscard]] virtual ProviderResult<PlateServiceState> find_plate_service(
      const PlateServiceQuery& query) = 0;
  [[nodiscard]] virtual ProviderResult<ParkingEntry> create_parking_entry(
      const ParkingEntryRequest& request) = 0;
  // See the lifecycle above. ok carries the transaction in whatever state it is.
  [[nodiscard]] virtual ProviderResult<ProviderTransaction> charge(const ChargeRequest& request,
                                                                   ChargeAttempt attempt) = 0;
  // ORDER_NOT_EXIST -> failure with Outcome::kNotFound.
  [[nodiscard]] virtual ProviderResult<ProviderTransaction> query_transaction(
      Product product, std::string_view out_trade_no) = 0;
  // GET /v3/vehicle/etc/contracts/{contract_id} (partner only). An unknown contract is
  // a failure with Outcome::kNotFound.
  [[nodiscard]] virtual ProviderResult<EtcContract> query_etc_contract(
      std::string_view contract_id) = 0;
  // bill_date "YYYY-MM-DD" (local day); the file's SHA-1 is checked before returning.
  [[nodiscard]] virtual ProviderResult<TradeBill> download_trade_bill(
      std::string_view bill_date) = 0;

  // ---- in-cab payments. Defaults refuse (kPark): a provider without them takes cash only.
  // Codepay outcomes: ok -> the order as replied (SUCCESS paid; any other state: unknown,
  // query); kPark -> a documented business failure, nothing was taken (ask for another
  // payment); kRetryLater -> nothing reached the provider; kQueryFirst -> unknown (5xx,
  // timeout, unverifiable reply): never resubmit, query, then reverse.
  [[nodiscard]] virtual ProviderResult<Payment> codepay(const CodepayRequest& request);
  // ok -> code_url. kQueryFirst: the order may exist; query it before anything else.
  [[nodiscard]] virtual ProviderResult<std::string> create_native(const NativeRequest& request);
  // GET …/out-trade-no/{no}; unknown order -> kNotFound.
  [[nodiscard]] virtual ProviderResult<Payment> query_payment(PayProduct product,
                                                              std::string_view out_trade_no);
  // POST …/out-trade-no/{no}/reverse (payment code only). ok: reversed (refunded if paid,
  // closed if not: REVOKED).
  [[nodiscard]] virtual ProviderResult<std::monostate> reverse_payment(
      std::string_view out_trade_no);
  // POST …/out-trade-no/{no}/close (204). A refusal: query and follow the state.
  [[nodiscard]] virtual ProviderResult<std::monostate> close_payment(
      PayProduct product, std::string_view out_trade_no);
};

}  // namespace lanegate::gateway
