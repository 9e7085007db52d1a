#pragma once
// Provider notifications (spec "Notifications"): verify, decrypt, deduplicate, apply.
// Transport-independent: the gateway's Beast server collects the headers and the raw
// body into a NotificationRequest and writes back the NotificationReply.
//
// handle() order of checks and replies:
//   1. platform signature (ResponseVerifier: key id, ±300 s, SIGNTEST)  -> 401 FAIL
//   2. envelope JSON, resource_type/algorithm                           -> 400 FAIL
//   3. AES-256-GCM decrypt with the APIv3 key, resource JSON            -> 400 FAIL
//   4. dedup + apply in ONE SQLite transaction:
//        event id already stored                       -> 204, event.duplicate = true
//        same out_trade_no + event/state already stored -> stored, 204, duplicate = true
//        new: row inserted, `apply` runs inside the same transaction, commit -> 204
//        apply or the database failed -> rolled back, 500 FAIL (the provider retries)
// Invariants:
//   1. 204 is answered only after the event row (and whatever `apply` wrote) committed.
//   2. A non-duplicate event is applied exactly once, however often it is delivered.
//   3. Rows of provider_notifications are never deleted (they are money records).
//
// Threading: one handler serialises its calls with a mutex; its Database must not be
// used by another thread meanwhile (open a dedicated Database on the gateway's file).

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "core/clock.h"
#include "core/sqlite.h"
#include "gateway/provider.h"
#include "gateway/provider_wechatpay.h"

namespace lanegate::gateway {

// Schema steps for the gateway's database (composed into its migration list).
std::span<const std::string_view> provider_schema_steps();

struct NotificationRequest {
  std::string timestamp;       // Wechatpay-Timestamp
  std::string nonce;           // Wechatpay-Nonce
  std::string signature;       // Wechatpay-Signature
  std::string serial;          // Wechatpay-Serial
  std::string signature_type;  // Wechatpay-Signature-Type
  std::string body;            // raw bytes
};

struct TransactionEvent {
  ProviderTransaction transaction;
  bool pay_back = false;  // TRANSACTION.PAY_BACK: the user repaid an advance
};

struct EntranceStateEvent {
  std::string sp_mchid;
  std::string parking_id;
  std::string out_parking_no;
  std::string plate_number;
  std::string plate_color;
  std::string parking_state;                             // NORMAL | BLOCKED
  std::optional<std::string> blocked_state_description;  // PAUSE | OVERDUE | REMOVE
  std::string state_update_time;
};

// VEHICLE.USER_STATE_CHANGE (spec "ETC highway deduction"): the user paused or deleted
// ETC deduction, or left 车主服务. Decrypted resource, as the spec lists it: appid,
// sp_mchid, sp_openid, sub_openid?, sub_mchid?, contract_id, bind_state, plate_number.
// There is no time field: the statement's time is the envelope's create_time.
struct ContractStateEvent {
  std::string appid;
  std::string sp_mchid;      // required
  std::string sp_openid;     // required
  std::string sub_openid;    // optional
  std::string sub_mchid;     // optional
  std::string contract_id;   // required
  std::string bind_state;    // required; value set unconfirmed ([provider.etc] bound_state)
  std::string plate_number;  // required: the binding cache is keyed by plate
  SystemTime stated_at{};    // the envelope's create_time
};

// TRANSACTION.SUCCESS for an in-cab payment (spec "Native"): sent only on success. Told
// from a parking transaction by its resource: no trade_scene and no parking_info, and a
// payment trade_type (NATIVE; MICROPAY/FACEPAY are read the same way should one come).
// Deduplicated like a transaction on (out_trade_no, event type and state).
struct PaymentEvent {
  Payment payment;
};

struct NotificationEvent {
  std::string event_id;
  std::string event_type;
  std::string create_time;
  // Unknown event types are stored and acknowledged with an empty EntranceStateEvent
  // (out_parking_no and plate_number empty): appliers must ignore such a payload.
  std::variant<TransactionEvent, EntranceStateEvent, ContractStateEvent, PaymentEvent> payload;
  bool duplicate = false;  // already seen: do not apply again
};

struct NotificationReply {
  int status = 204;
  std::string body;  // empty on success, {"code":"FAIL","message":…} otherwise
  std::optional<NotificationEvent> event;
};

// Runs inside the dedup transaction for a new event; an error rolls everything back
// and the provider is asked to retry.
using ApplyNotification = std::function<Status(Transaction& db_txn, const NotificationEvent&)>;

class NotificationHandler {
 public:
  // REQUIRES: `db` has provider_schema_steps() applied; `db` and `clock` outlive this.
  NotificationHandler(Database& db, std::shared_ptr<const PlatformKeySet> keys,
                      std::string apiv3_key, const Clock& clock);

  NotificationReply handle(const NotificationRequest& request, const ApplyNotification& apply = {});

 private:
  NotificationReply fail_reply(int status, std::string message);
  Database* db_;
  std::shared_ptr<const PlatformKeySet> keys_;
  std::string apiv3_key_;
  const Clock* clock_;
  std::mutex mu_;
};

}  // namespace lanegate::gateway
