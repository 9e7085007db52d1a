#pragma once
// WeChat Pay API v3 (vehicle services) client: request signing, reply verification,
// platform-key management and the calls of gateway/provider.h over HTTPS keep-alive.
//
// Threading: WechatPayClient is thread-safe. It keeps a small pool of keep-alive HTTPS
// connections (one per concurrently running call), so worker threads may share one
// client, and one watchdog thread of its own that ends calls at their deadlines. Calls
// block the calling thread. PlatformKeySet is thread-safe (shared by the client and the
// notification handler). ResponseVerifier is immutable after construction.
//
// TIME BOUNDS. Every HTTPS exchange -- TCP connect, TLS handshake, writing the request and
// reading the whole reply -- ends by its deadline D = connect_timeout_ms + request_timeout_ms
// after it starts, however slowly the peer sends: cpp-httplib 0.11 (Debian 12) only bounds
// each connect step, read and write, so the client's watchdog shuts the socket down at the
// deadline. The retry of a request that could not be written on a stale keep-alive
// connection shares its exchange's deadline. Not covered: resolving base_url's host name
// (glibc's resolver has its own timeouts; the provider's host is resolved before connect).
// The outcome classification is unchanged by a deadline: cut before the TLS handshake
// completed, the request never left (retry_later); cut later, a charge is ambiguous
// (query_first) and anything else is retry_later.
//
// A public call runs at most these exchanges, one after another:
//   1. the periodic certificate download, when certificate_refresh_s has passed (at most
//      once per call: the period is >= 3600 s and a call lasts at most 4 D <= 720 s);
//   2. the call's own request(s): one, or for charge(kAfterAmbiguity) the query of the same
//      out_trade_no and, when it answers 404 ORDER_NOT_EXIST, the resent charge;
//   3. when a 2xx reply names an unknown platform key: one certificate download, or the wait
//      for the download another thread is running (one D either way; error replies are not
//      verified, and the first verified 2xx ends the call).
// So charge(kAfterAmbiguity) is the longest: kMaxExchangesPerCall x D (download, query 404,
// resent charge, download for an unknown key). [queue] lease_ms must be at least that
// (config/src/cross_checks.cc), so an outbox item is not handed out again mid-call.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/pki.h"
#include "core/url.h"
#include "gateway/provider.h"

namespace lanegate::gateway {

// The most HTTPS exchanges one public call of WechatPayClient runs (TIME BOUNDS above).
inline constexpr int kMaxExchangesPerCall = 4;

// --- request signing (spec "Signing a request") ----------------------------------------

// "METHOD\nPATH_WITH_QUERY\nTIMESTAMP\nNONCE\nBODY\n".
std::string request_sign_message(std::string_view method, std::string_view target,
                                 std::string_view timestamp, std::string_view nonce,
                                 std::string_view body);
// `WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",timestamp="…",serial_no="…",signature="…"`.
[[nodiscard]] Result<std::string> authorization_header(
    const pki::PrivateKey& key, std::string_view mchid, std::string_view serial_no,
    std::string_view method, std::string_view target, std::string_view timestamp,
    std::string_view nonce, std::string_view body);
// Query values go on the request line percent-encoded (core/url.h), exactly as signed.
using lanegate::percent_encode;

// --- reply / notification verification (spec "Verifying a response") -------------------

// Platform keys by id: certificate serial or "PUB_KEY_ID_…". Both kinds may be live at
// once during a migration. Thread-safe.
class PlatformKeySet {
 public:
  void put(const std::string& id, const pki::PublicKey& key);
  std::optional<pki::PublicKey> find(std::string_view id) const;
  std::vector<std::string> ids() const;
  std::size_t size() const;

 private:
  mutable std::shared_mutex mu_;
  std::map<std::string, pki::PublicKey, std::less<>> keys_;
};

// The signed parts of a reply or a notification.
struct SignedMessage {
  std::string timestamp;       // Wechatpay-Timestamp
  std::string nonce;           // Wechatpay-Nonce
  std::string signature;       // Wechatpay-Signature
  std::string serial;          // Wechatpay-Serial
  std::string signature_type;  // Wechatpay-Signature-Type (empty: not sent)
  std::string body;            // raw body bytes
};

// Which check refused a message.
enum class VerifyCheck {
  kMissingHeader,  // a signature header is absent
  kSignatureType,  // not WECHATPAY2-SHA256-RSA2048
  kSignTestProbe,  // WECHATPAY/SIGNTEST/ probe traffic: must fail
  kBadTimestamp,   // not an integer
  kSkew,           // |now - timestamp| > 300 s
  kUnknownKey,     // no key with that id in the set
  kBadSignature,   // signature does not match
};
std::string_view verify_check_name(VerifyCheck check);

struct VerifyFailure {
  VerifyCheck check = VerifyCheck::kBadSignature;
  std::string key_id;
  std::int64_t skew_s = 0;
  std::string to_string() const;
};

inline constexpr std::int64_t kMaxSignatureSkewSeconds = 300;

// Verifies "TIMESTAMP\nNONCE\nBODY\n" with the key the serial names. Every failure is
// logged (key id, skew, failed check) and counted in
// lanegate_provider_verify_failures_total{check}.
class ResponseVerifier {
 public:
  ResponseVerifier(std::shared_ptr<const PlatformKeySet> keys, const Clock& clock)
      : keys_(std::move(keys)), clock_(&clock) {}
  [[nodiscard]] std::expected<void, VerifyFailure> verify(const SignedMessage& message,
                                                          std::string_view context) const;

 private:
  std::shared_ptr<const PlatformKeySet> keys_;
  const Clock* clock_;
};

// --- the client --------------------------------------------------------------------------

class WechatPayClient final : public PaymentProvider {
 public:
  // Reads the merchant key, the APIv3 key and the configured platform keys (PEM public
  // keys or certificates named in config). Errors name the file.
  // REQUIRES: `clock` outlives the client.
  [[nodiscard]] static Result<std::unique_ptr<WechatPayClient>> create(
      const config::ProviderSection& config, const Clock& clock = SystemClock::instance());
  ~WechatPayClient() override;

  ProviderResult<PlateServiceState> find_plate_service(const PlateServiceQuery& query) override;
  ProviderResult<ParkingEntry> create_parking_entry(const ParkingEntryRequest& request) override;
  ProviderResult<ProviderTransaction> charge(const ChargeRequest& request,
                                             ChargeAttempt attempt) override;
  ProviderResult<ProviderTransaction> query_transaction(Product product,
                                                        std::string_view out_trade_no) override;
  ProviderResult<EtcContract> query_etc_contract(std::string_view contract_id) override;
  ProviderResult<TradeBill> download_trade_bill(std::string_view bill_date) override;

  // In-cab payments (spec "Taxi: in-cab payment") under /v3/pay/transactions/… (direct:
  // appid, mchid) or /v3/pay/partner/transactions/… (partner: sp_appid, sp_mchid,
  // sub_appid?, sub_mchid). Outcomes as PaymentProvider states them; in detail:
  //
  // codepay: exactly one exchange, never resent inside the client (a code is single-use; the
  // stale keep-alive retry of exchange() only repeats a request that could not be written).
  //   verified 2xx, trade_state known   -> ok with that state (only SUCCESS is paid; any other,
  //                                        USERPAYING included, means "unknown: query")
  //   verified 2xx, unreadable reply    -> kQueryFirst (the order may exist)
  //   verified 2xx, unknown trade_state -> kQueryFirst, provider_code kUnknownTradeState (the
  //                                        alarm moves; kPark would say "nothing was taken")
  //   400 PARAM_ERROR / INVALID_REQUEST, 401 SIGN_ERROR, 403 NO_AUTH (the spec's error table:
  //   refused as a whole)               -> kPark with provider_code
  //   429 RATELIMIT_EXCEEDED            -> kRetryLater (refused as a whole)
  //   USERPAYING as an error code, any other 4xx, 5xx, timeout, unverifiable reply
  //                                     -> kQueryFirst (spec: how v3 signals USERPAYING at pay
  //                                        time is unconfirmed: anything neither SUCCESS nor a
  //                                        documented refusal is unknown)
  //   connect failure (nothing sent)    -> kRetryLater
  //   bad request (checked before sending: auth_code 18 digits starting 10-15, out_trade_no,
  //   amount > 0, description, store_out_id) -> kPark naming the field; nothing sent.
  // The auth_code never appears in a log line, an error message or a metric.
  ProviderResult<Payment> codepay(const CodepayRequest& request) override;
  // POST …/native -> code_url. notify_url (the request's or the configured one) must be https.
  // 5xx, timeouts, unverifiable or unreadable 2xx -> kQueryFirst (the order may exist).
  ProviderResult<std::string> create_native(const NativeRequest& request) override;
  // GET …/out-trade-no/{no}?mchid= (partner ?sp_mchid=&sub_mchid=); 404 -> kNotFound.
  ProviderResult<Payment> query_payment(PayProduct product,
                                        std::string_view out_trade_no) override;
  // POST …/out-trade-no/{no}/reverse. Repeatable: a 5xx or a lost reply is kRetryLater.
  ProviderResult<std::monostate> reverse_payment(std::string_view out_trade_no) override;
  // POST …/out-trade-no/{no}/close (204). Repeatable like reverse_payment.
  ProviderResult<std::monostate> close_payment(PayProduct product,
                                               std::string_view out_trade_no) override;

  // GET /v3/certificates: decrypts the platform certificates and adds them to the key
  // set after the reply verified with one of them (or a key already known). Runs by
  // itself every certificate_refresh_s (checked at the start of each call) and when a
  // reply names an unknown serial (at most once per 60 s). One download at a time: a
  // caller that finds one running waits for it and gets its result. Returns the key count.
  ProviderResult<std::size_t> refresh_platform_keys();

  // Shared with the notification handler.
  std::shared_ptr<PlatformKeySet> key_set() const { return keys_; }
  const std::string& apiv3_key() const { return apiv3_key_; }

  // Test hook: how many HTTPS connections were opened (keep-alive reuse check).
  std::int64_t TEST_connections_opened() const;

  struct Impl;

 private:
  explicit WechatPayClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<PlatformKeySet> keys_;
  std::string apiv3_key_;
};

}  // namespace lanegate::gateway
