// Provider notification handling (see gateway/provider_notify.h).
#include "gateway/provider_notify.h"

#include <boost/json.hpp>
#include <exception>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/pki.h"
#include "core/time_format.h"
#include "provider_json.h"

namespace lanegate::gateway {
namespace json = boost::json;

namespace {

constexpr std::string_view kSchema[] = {
    R"sql(
CREATE TABLE provider_notifications(
  event_id TEXT PRIMARY KEY,
  event_type TEXT NOT NULL,
  received_at TEXT NOT NULL,
  out_trade_no TEXT,
  dedup_state TEXT,
  out_parking_no TEXT,
  duplicate_of_order INTEGER NOT NULL DEFAULT 0,
  resource_json TEXT NOT NULL);
CREATE UNIQUE INDEX provider_notifications_order
  ON provider_notifications(out_trade_no, dedup_state)
  WHERE out_trade_no IS NOT NULL AND duplicate_of_order = 0;
)sql"};

metrics::Counter& notifications_counter(std::string_view result) {
  return metrics::Registry::global().counter("lanegate_provider_notifications_total",
                                             "Provider notifications by result",
                                             {{"result", std::string(result)}});
}

using provider_json::get_string;

// Spec "Notifications": TRANSACTION.SUCCESS carries a parking Transaction (which always has
// trade_scene, and parking_info) or, for Native, the payment (trade_type NATIVE, neither of
// those). The payment-code trade types are taken too: the same resource shape.
std::optional<PayProduct> payment_resource(std::string_view event_type, const json::object& ro) {
  if (event_type != "TRANSACTION.SUCCESS" || ro.contains("trade_scene") ||
      ro.contains("parking_info")) {
    return std::nullopt;
  }
  const std::string trade_type = get_string(ro, "trade_type").value_or("");
  if (trade_type == "NATIVE") {
    return PayProduct::kNative;
  }
  if (trade_type == "MICROPAY" || trade_type == "FACEPAY") {
    return PayProduct::kCodepay;
  }
  return std::nullopt;
}

}  // namespace

std::span<const std::string_view> provider_schema_steps() { return kSchema; }

NotificationHandler::NotificationHandler(Database& db, std::shared_ptr<const PlatformKeySet> keys,
                                         std::string apiv3_key, const Clock& clock)
    : db_(&db), keys_(std::move(keys)), apiv3_key_(std::move(apiv3_key)), clock_(&clock) {}

NotificationReply NotificationHandler::fail_reply(int status, std::string message) {
  notifications_counter(status == 401   ? "refused_signature"
                        : status >= 500 ? "failed"
                                        : "refused_malformed")
      .inc();
  json::object o{{"code", "FAIL"}, {"message", message}};
  return NotificationReply{status, json::serialize(o), std::nullopt};
}

NotificationReply NotificationHandler::handle(const NotificationRequest& r,
                                              const ApplyNotification& apply) {
  // 1. Signature.
  ResponseVerifier verifier(keys_, *clock_);
  if (auto ok = verifier.verify(
          SignedMessage{r.timestamp, r.nonce, r.signature, r.serial, r.signature_type, r.body},
          "notification");
      !ok) {
    return fail_reply(401, ok.error().to_string());
  }
  // 2. Envelope.
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object()) {
    return fail_reply(400, "body is not a JSON object");
  }
  const auto& env = v.as_object();
  NotificationEvent event;
  event.event_id = get_string(env, "id").value_or("");
  event.event_type = get_string(env, "event_type").value_or("");
  event.create_time = get_string(env, "create_time").value_or("");
  const json::value* res = env.if_contains("resource");
  if (event.event_id.empty() || event.event_type.empty() || res == nullptr || !res->is_object()) {
    return fail_reply(400, "id, event_type and resource are required");
  }
  const auto& resource = res->as_object();
  if (get_string(resource, "algorithm").value_or("") != "AEAD_AES_256_GCM") {
    return fail_reply(400, "resource.algorithm: must be AEAD_AES_256_GCM");
  }
  // 3. Decrypt.
  auto sealed = crypto::base64_decode(get_string(resource, "ciphertext").value_or(""));
  if (!sealed) {
    return fail_reply(400, "resource.ciphertext: not Base64");
  }
  auto plain = pki::aes256gcm_decrypt(
      apiv3_key_, get_string(resource, "nonce").value_or(""),
      get_string(resource, "associated_data").value_or(""),
      std::string_view(reinterpret_cast<const char*>(sealed->data()), sealed->size()));
  if (!plain) {
    log::warn("notification does not decrypt (APIv3 key, nonce or associated_data)",
              {{"EVENT_ID", event.event_id}, {"EVENT_TYPE", event.event_type}});
    return fail_reply(400, "resource does not decrypt");
  }
  json::value rv = json::parse(*plain, ec);
  if (ec || !rv.is_object()) {
    return fail_reply(400, "decrypted resource is not a JSON object");
  }
  const auto& ro = rv.as_object();
  std::optional<std::string> out_trade_no;
  std::optional<std::string> dedup_state;
  std::optional<std::string> out_parking_no;
  bool unreadable_state = false;
  const std::optional<PayProduct> payment_product = payment_resource(event.event_type, ro);
  if (payment_product) {
    auto read = read_payment(*payment_product, *plain);
    if (!read && read.error().provider_code == kUnknownTradeState) {
      unreadable_state = true;  // as for a parking transaction below
    } else if (!read) {
      return fail_reply(400, "payment resource: " + read.error().error.message);
    } else {
      PaymentEvent p{std::move(*read)};
      out_trade_no = p.payment.out_trade_no;
      dedup_state = event.event_type + ":" + std::string(pay_state_name(p.payment.state));
      event.payload = std::move(p);
    }
  } else if (event.event_type.starts_with("TRANSACTION.")) {
    const std::string scene = get_string(ro, "trade_scene").value_or("PARKING");
    const Product product = scene == "HIGHWAY" ? Product::kHighway : Product::kParking;
    auto read = read_transaction(product, *plain);
    if (!read && read.error().provider_code == kUnknownTradeState) {
      // A trade_state outside the spec's table (counted and logged by read_transaction):
      // stored and acknowledged so nothing is lost, applied to nothing. The charge stays
      // where it was and its item keeps querying; an operator decides.
      unreadable_state = true;
    } else if (!read) {
      return fail_reply(400, "transaction resource: " + read.error().error.message);
    } else {
      TransactionEvent t;
      t.pay_back = event.event_type == "TRANSACTION.PAY_BACK";
      t.transaction = std::move(*read);
      out_trade_no = t.transaction.out_trade_no;
      dedup_state = event.event_type + ":" + std::string(trade_state_name(t.transaction.state));
      event.payload = std::move(t);
    }
  } else if (event.event_type == "VEHICLE.ENTRANCE_STATE_CHANGE") {
    EntranceStateEvent e{get_string(ro, "sp_mchid").value_or(""),
                         get_string(ro, "parking_id").value_or(""),
                         get_string(ro, "out_parking_no").value_or(""),
                         get_string(ro, "plate_number").value_or(""),
                         get_string(ro, "plate_color").value_or(""),
                         get_string(ro, "parking_state").value_or(""),
                         get_string(ro, "blocked_state_description"),
                         get_string(ro, "state_update_time").value_or("")};
    if (e.out_parking_no.empty() || (e.parking_state != "NORMAL" && e.parking_state != "BLOCKED")) {
      return fail_reply(400, "entrance resource lacks out_parking_no or a known parking_state");
    }
    out_parking_no = e.out_parking_no;
    event.payload = std::move(e);
  } else if (event.event_type == "VEHICLE.USER_STATE_CHANGE") {
    // Spec: appid, sp_mchid, sp_openid, sub_openid?, sub_mchid?, contract_id, bind_state,
    // plate_number; no time of its own, so the envelope's create_time dates it.
    ContractStateEvent c;
    c.appid = get_string(ro, "appid").value_or("");
    c.sp_mchid = get_string(ro, "sp_mchid").value_or("");
    c.sp_openid = get_string(ro, "sp_openid").value_or("");
    c.sub_openid = get_string(ro, "sub_openid").value_or("");
    c.sub_mchid = get_string(ro, "sub_mchid").value_or("");
    c.contract_id = get_string(ro, "contract_id").value_or("");
    c.bind_state = get_string(ro, "bind_state").value_or("");
    c.plate_number = get_string(ro, "plate_number").value_or("");
    for (auto [field, value] : {std::pair<const char*, const std::string*>{"sp_mchid", &c.sp_mchid},
                                {"contract_id", &c.contract_id},
                                {"bind_state", &c.bind_state},
                                {"plate_number", &c.plate_number}}) {
      if (value->empty()) {
        return fail_reply(400, std::string("contract state resource: ") + field + " is required");
      }
    }
    auto when = parse_rfc3339(event.create_time);
    if (!when) {
      return fail_reply(400, "create_time: not an RFC 3339 time (it dates the contract state)");
    }
    c.stated_at = *when;
    event.payload = std::move(c);
  }
  if (unreadable_state || !(event.event_type.starts_with("TRANSACTION.") ||
                            event.event_type == "VEHICLE.ENTRANCE_STATE_CHANGE" ||
                            event.event_type == "VEHICLE.USER_STATE_CHANGE")) {
    // Unknown event types (fields not known to this gateway)
    // are stored and acknowledged so that nothing is lost; the gateway can read them.
    log::notice("provider notification of an unhandled type stored",
                {{"EVENT_TYPE", event.event_type}});
    EntranceStateEvent none;
    event.payload = std::move(none);
  }

  // 4. Dedup and apply, one transaction.
  std::lock_guard lock(mu_);
  auto txn = db_->begin();
  if (!txn) {
    return fail_reply(500, "database: " + txn.error().to_string());
  }
  {
    auto seen = db_->prepare("SELECT 1 FROM provider_notifications WHERE event_id = ?");
    if (!seen) {
      return fail_reply(500, "database: " + seen.error().to_string());
    }
    seen->bind_all(event.event_id);
    auto row = seen->step();
    if (!row) {
      return fail_reply(500, "database: " + row.error().to_string());
    }
    if (*row) {
      notifications_counter("duplicate_event").inc();
      event.duplicate = true;
      return NotificationReply{204, "", std::move(event)};
    }
  }
  bool order_duplicate = false;
  if (out_trade_no) {
    auto seen = db_->prepare(
        "SELECT 1 FROM provider_notifications WHERE out_trade_no = ? AND dedup_state = ? AND "
        "duplicate_of_order = 0");
    if (!seen) {
      return fail_reply(500, "database: " + seen.error().to_string());
    }
    seen->bind_all(*out_trade_no, *dedup_state);
    auto row = seen->step();
    if (!row) {
      return fail_reply(500, "database: " + row.error().to_string());
    }
    order_duplicate = *row;
  }
  auto ins = db_->prepare(
      "INSERT INTO provider_notifications(event_id, event_type, received_at, out_trade_no, "
      "dedup_state, out_parking_no, duplicate_of_order, resource_json) VALUES(?,?,?,?,?,?,?,?)");
  if (!ins) {
    return fail_reply(500, "database: " + ins.error().to_string());
  }
  if (auto ok = ins->bind_all(event.event_id, event.event_type,
                              format_rfc3339(clock_->now(), UtcOffset{480}), out_trade_no,
                              dedup_state, out_parking_no, order_duplicate ? 1 : 0, *plain)
                    .run();
      !ok) {
    return fail_reply(500, "database: " + ok.error().to_string());
  }
  event.duplicate = order_duplicate;
  if (!order_duplicate && apply) {
    Status applied;
    try {
      applied = apply(*txn, event);
    } catch (const std::exception& e) {
      // An applier that does not know this payload (e.g. std::get on another
      // alternative) is a bug, but the event must not be lost: roll back, 500, and the
      // provider delivers it again once the gateway handles it.
      applied = fail(Errc::kInternal, std::string("applier threw: ") + e.what());
    }
    if (!applied) {
      log::warn("notification not applied; provider will retry",
                {{"EVENT_ID", event.event_id}, {"ERROR", applied.error().to_string()}});
      return fail_reply(500, "apply: " + applied.error().to_string());
    }
  }
  if (auto ok = txn->commit(); !ok) {
    return fail_reply(500, "database: " + ok.error().to_string());
  }
  notifications_counter(order_duplicate ? "duplicate_order" : "accepted").inc();
  return NotificationReply{204, "", std::move(event)};
}

}  // namespace lanegate::gateway
