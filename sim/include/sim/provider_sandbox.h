#pragma once
// lanegate-sim provider: a local WeChat Pay API v3 (vehicle services) sandbox that speaks
// the real protocol — HTTPS, merchant request signatures checked, every reply signed with
// the platform key (certificate mode, or public-key-id mode when the client sends
// `Wechatpay-Serial: PUB_KEY_ID_…`), asynchronous parking deduction, synchronous ETC
// highway deduction, in-cab payments (payment code and Native, with query, reverse and
// close, direct and partner), encrypted notifications with the provider's retry schedule, the
// trade bill — so the gateway's client, the demo and any independent client (curl +
// openssl, see docs/PROVIDER.md) can run the real protocol on one machine. Its checks are
// written from the spec (/work/shared/specs/payment-provider-wechatpay-v3.md),
// independently of the gateway's client code, so that a mistake in one is caught by the
// other: every request body and query is checked against its call's field list (unknown
// field → 400 PARAM_ERROR naming it).
//
// Merchants (seed "merchants"): one that lists "sub_merchants" is a service provider
// (partner): its parking calls name one of them in sub_mchid, it alone may use the ETC
// API, and its ETC contract changes go to its "contract_notify_url". One without is a
// direct merchant. Seed layout: docs/PROVIDER.md.
//
// Endpoints (HTTPS, 127.0.0.1): see docs/PROVIDER.md. Admin (plain HTTP, loopback only):
//   POST /admin/faults        {"refuse_connections":b,"latency_ms":n,"error_5xx_share":x,
//                              "unavailable_share":x,"ratelimit_share":x,
//                              "lost_reply_share":x,"notifications_paused":b}  (partial)
//   GET  /admin/faults
//   POST /admin/time_factor   {"time_factor":x}
//   POST /admin/plates        {"plate_number","plate_color","service_state"}
//   POST /admin/contracts     {"contract_id","bind_state" (or "state"),"notify_url"?}
//   POST /admin/refunds       {"out_trade_no","amount","out_refund_no"?}
//   GET  /admin/transactions  [{mchid,sub_mchid,out_trade_no,transaction_id,product,
//                               trade_state,amount,refunded,openid,submissions}]
//   POST /admin/paycodes      {"code","openid"?,"issued_at"?,"userpaying_ms"?,"decline"?}
//   POST /admin/native/pay    {"out_trade_no","openid"?}   (409: closed or already paid)
//   POST /admin/quickpay      {"code_validity_ms"?,"auto_revoke_ms"?}  (partial)
//   GET  /admin/payments      [{mchid,sub_mchid,out_trade_no,transaction_id,trade_type,
//                               trade_state,amount,refunded,reversed,code_url,openid,
//                               submissions}]
//   GET  /admin/notifications [{event_id,event_type,url,attempts,state,last_status}]
//
// Transaction lifecycle in the sandbox (one row per (mchid, out_trade_no); mchid is the
// caller, the service provider in partner mode):
//   parking:      (none) --charge accepted--> ACCEPTED --deduction worker--> SUCCESS | PAY_FAIL
//   ETC highway:  (none) --charge--> SUCCESS | PAY_FAIL   (synchronous, in the reply)
//   SUCCESS | REFUND --refund()--> REFUND                 (full or partial, repeatable)
// Payments (one row per (mchid, out_trade_no) in their own table; the number may not
// also name a vehicle transaction of the same merchant):
//   codepay:  (none) --pay--> SUCCESS | USERPAYING | PAYERROR (code declined)
//             USERPAYING --passenger confirms (userpaying_ms)--> SUCCESS
//             USERPAYING --auto_revoke_ms after creation--> REVOKED
//             any but CLOSED --reverse--> REVOKED (a paid order is refunded in full)
//   Native:   (none) --native--> NOTPAY --passenger pays (pay_native)--> SUCCESS
//             NOTPAY --close | time_expire--> CLOSED;  SUCCESS cannot be closed
//   codepay USERPAYING | PAYERROR --close--> CLOSED
// Invariants:
//   1. A transaction row is committed before any reply to the charge is written, so a
//      lost reply (fault injection) never loses the charge.
//   2. A resent out_trade_no with the same amount returns the existing row (submissions+1);
//      a different amount under the same number is refused (400 INVALID_REQUEST) and
//      changes nothing.
//   3. Rows are never deleted; trade_state only moves forward as drawn above; the sum of
//      a row's refunds never exceeds its amount.
//   4. Every parking state change to SUCCESS/PAY_FAIL queues exactly one notification
//      (committed in the same SQLite transaction) to the charge's notify_url. ETC charges
//      and refunds queue none (the spec gives ETC no notify_url).
//   5. A Native payment's NOTPAY -> SUCCESS queues exactly one TRANSACTION.SUCCESS in the
//      same commit; payment-code orders queue none (the spec gives codepay no notify_url).
//   6. A payment code pays at most one order: it is marked used in the commit that
//      creates the order, and only its SHA-256 is stored.
//
// Threading: start() spawns the HTTPS server, the admin server and one worker thread
// (deduction + notification delivery). All public methods are thread-safe.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/error.h"

namespace lanegate::sim {

struct ProviderFaults {
  bool refuse_connections = false;  // listener closed: connect() is refused (uplink down)
  int latency_ms = 0;               // added before every API reply
  double error_5xx_share = 0;       // 500 SYSTEM_ERROR before any processing
  double unavailable_share = 0;     // 503 SERVICE_UNAVAILABLE before any processing
  double ratelimit_share = 0;       // 429 RATELIMIT_EXCEEDED before any processing
  double lost_reply_share = 0;      // charge committed, then the connection is dropped
  bool notifications_paused = false;
};

struct ProviderSandboxOptions {
  std::filesystem::path pki_dir;    // made by scripts/make-demo-pki
  std::filesystem::path seed_file;  // sim/seed/provider-demo.json layout
  std::filesystem::path db_file;    // sandbox state (created when missing)
  int port = 0;                     // 0: any free port
  int admin_port = 0;
  double time_factor = 1.0;  // scales the deduction delay and the notification schedule
  // Timestamps in replies, records and the request skew check. Not owned.
  const Clock* clock = &SystemClock::instance();
  // Deduction delay before time_factor (the "moment later" of the real service).
  int deduction_delay_ms = 1000;
  // Payment code validity after it was issued (spec: about one minute), and the time after
  // creation at which an unpaid quick-pay order is revoked (spec: about 45 s). Real time,
  // not scaled by time_factor; the seed's "quickpay" object overrides them.
  std::int64_t code_validity_ms = 60000;
  std::int64_t auto_revoke_ms = 45000;
};

// A payment code the passenger's app shows (admin: POST /admin/paycodes).
struct SandboxPaycode {
  std::string code;                // 18 digits, 10..15 prefix
  std::string openid;              // the payer; empty: an anonymous one is made up
  std::string issued_at;           // RFC 3339; empty: now
  std::int64_t userpaying_ms = 0;  // > 0: the order stays USERPAYING this long (password)
  std::string decline;             // not empty: the business failure code to answer (4xx)
};

struct SandboxPayment {
  std::string mchid;  // the caller: the merchant direct, the service provider partner
  std::string sub_mchid;
  std::string out_trade_no;
  std::string transaction_id;
  std::string trade_type;  // "MICROPAY" | "NATIVE"
  std::string trade_state;
  std::int64_t amount_fen = 0;
  std::int64_t refunded_fen = 0;  // a reverse of a paid order refunds all of it
  bool reversed = false;
  std::string code_url;  // Native only
  std::string openid;
  int submissions = 0;  // how many codepay/native calls carried this out_trade_no
};

struct SandboxTransaction {
  std::string mchid;
  std::string out_trade_no;
  std::string transaction_id;
  std::string product;  // "PARKING" | "HIGHWAY"
  std::string trade_state;
  std::int64_t amount_fen = 0;
  std::string openid;
  int submissions = 0;    // how many charge requests carried this out_trade_no
  std::string sub_mchid;  // partner calls: the sub merchant; direct: empty
  std::int64_t refunded_fen = 0;
};

struct SandboxRefund {
  std::string mchid;
  std::string out_trade_no;
  std::string transaction_id;
  std::string refund_id;  // 微信退款单号
  std::string out_refund_no;
  std::int64_t amount_fen = 0;
  std::string create_time;  // when the refund was accepted (RFC 3339, +08:00)
};

struct SandboxNotification {
  std::string event_id;
  std::string event_type;
  std::string url;
  int attempts = 0;
  std::string state;  // "pending" | "delivered" | "abandoned"
  int last_status = 0;
};

class ProviderSandbox {
 public:
  // Loads the PKI, opens/creates the DB, applies the seed (idempotent), binds both ports
  // and starts serving. Errors name the file or port that failed.
  [[nodiscard]] static Result<std::unique_ptr<ProviderSandbox>> start(
      const ProviderSandboxOptions& options);
  ~ProviderSandbox();  // stop()
  ProviderSandbox(const ProviderSandbox&) = delete;
  ProviderSandbox& operator=(const ProviderSandbox&) = delete;

  int port() const;
  int admin_port() const;
  std::string base_url() const;  // "https://127.0.0.1:PORT"

  void set_faults(const ProviderFaults& faults);
  ProviderFaults faults() const;
  void set_time_factor(double factor);
  // Changes a plate binding's service state (NORMAL/PAUSE/OUT_SERVICE); entries of the
  // plate whose state flips get a VEHICLE.ENTRANCE_STATE_CHANGE notification.
  [[nodiscard]] Status set_plate_state(const std::string& plate_number,
                                       const std::string& plate_color,
                                       const std::string& service_state);

  // Sets an ETC contract's bind_state to `bind_state` (any non-empty string, sent
  // verbatim; only the seed's "etc_bound_state" lets the contract be charged) and sends a
  // VEHICLE.USER_STATE_CHANGE to the owning service provider's contract_notify_url and to
  // `extra_notify_url` when not empty, sealed with that provider's APIv3 key.
  // Admin: POST /admin/contracts {"contract_id","bind_state","notify_url"?}.
  [[nodiscard]] Status set_contract_state(const std::string& contract_id,
                                          const std::string& bind_state,
                                          const std::string& extra_notify_url = {});
  // Refunds `amount_fen` of the SUCCESS (or partly refunded) transaction `out_trade_no`
  // (full or partial; refunds add up to at most the amount); its trade_state becomes
  // REFUND and the refund appears in the trade bill of today. No notification is sent.
  // `out_refund_no` empty: one is made up. A resent out_refund_no with the same amount
  // returns the existing refund. Fails when out_trade_no names no or several merchants'
  // transactions. Admin: POST /admin/refunds {"out_trade_no","amount","out_refund_no"?}.
  [[nodiscard]] Result<SandboxRefund> refund(const std::string& out_trade_no,
                                             std::int64_t amount_fen,
                                             const std::string& out_refund_no = {});
  [[nodiscard]] Result<std::vector<SandboxTransaction>> transactions() const;
  // Registers a payment code (see SandboxPaycode). An unregistered well-formed code is a
  // fresh code of an anonymous payer that pays at once.
  [[nodiscard]] Status register_paycode(const SandboxPaycode& code);
  // The passenger scans the Native order's QR and pays: NOTPAY -> SUCCESS and a
  // TRANSACTION.SUCCESS to its notify_url. `openid` empty: an anonymous payer. Fails
  // (kRejected) when the order is closed (expired) or already paid, kNotFound
  // when no Native order has the number.
  [[nodiscard]] Result<SandboxPayment> pay_native(const std::string& out_trade_no,
                                                  const std::string& openid = {});
  [[nodiscard]] Result<std::vector<SandboxPayment>> payments() const;
  [[nodiscard]] Result<std::vector<SandboxNotification>> notifications() const;
  // Count of API requests refused for a bad merchant signature (401 SIGN_ERROR).
  std::int64_t sign_errors() const;

  // Stops the servers and the worker; idempotent.
  void stop();

  struct Impl;

 private:
  explicit ProviderSandbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// `lanegate-sim provider --pki DIR --seed FILE --db FILE [--port N] [--admin-port N]
// [--time-factor F]`: prints "ready https://127.0.0.1:PORT admin http://127.0.0.1:PORT"
// and serves until SIGINT/SIGTERM. Returns the process exit code.
int run_provider_sandbox(std::span<const std::string> args);

}  // namespace lanegate::sim
