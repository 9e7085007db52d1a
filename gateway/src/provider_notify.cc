// Provider notification handling (see gateway/provider_notify.h).
#include "gateway/provider_notify.h"

#include <boost/json.hpp>
#include <exception>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/pki.h"
#include "core/time_format.h"

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

std::optional<std::string> get_string(const json::object& o, std::string_view key) {
  if (const json::value* v = o.if_contains(key); v != nullptr && v->is_string()) {
    return std::string(v->as_string());
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
  if (event.event_type.starts_with("TRANSACTION.")) {
    TransactionEvent t;
    t.pay_back = event.event_type == "TRANSACTION.PAY_BACK";
    t.transaction.raw_json = *plain;
    t.transaction.out_trade_no = get_string(ro, "out_trade_no").value_or("");
    // Spec "Parking Transaction": sp_mchid; "ETC Transaction": mchid. The same-money check
    // (gateway/charge.h invariant 4) compares it with ours when the answer names it.
    t.transaction.merchant_id = get_string(ro, "sp_mchid").value_or(get_string(ro, "mchid").value_or(""));
    t.transaction.transaction_id = get_string(ro, "transaction_id").value_or("");
    const std::string scene = get_string(ro, "trade_scene").value_or("PARKING");
    t.transaction.product = scene == "HIGHWAY" ? Product::kHighway
                            : scene == "TAXI"  ? Product::kTaxi
                                               : Product::kParking;
    auto state = parse_trade_state(get_string(ro, "trade_state").value_or(""));
    const json::value* amount = ro.if_contains("amount");
    const json::value* total = amount != nullptr && amount->is_object()
                                   ? amount->as_object().if_contains("total")
                                   : nullptr;
    if (t.transaction.out_trade_no.empty() || !state || total == nullptr || !total->is_int64()) {
      return fail_reply(400,
                        "transaction resource lacks out_trade_no, trade_state or amount.total");
    }
    t.transaction.state = *state;
    t.transaction.amount = Money::from_fen(total->as_int64());
    if (const json::value* pt = amount->as_object().if_contains("payer_total");
        pt != nullptr && pt->is_int64()) {
      t.transaction.payer_total = Money::from_fen(pt->as_int64());
    }
    t.transaction.trade_state_description = get_string(ro, "trade_state_description").value_or("");
    t.transaction.success_time = get_string(ro, "success_time");
    t.transaction.bank_type = get_string(ro, "bank_type").value_or("");
    t.transaction.user_repaid = get_string(ro, "user_repaid").value_or("");
    if (const json::value* p = ro.if_contains("payer"); p != nullptr && p->is_object()) {
      t.transaction.openid = get_string(p->as_object(), "openid").value_or("");
    }
    out_trade_no = t.transaction.out_trade_no;
    dedup_state = event.event_type + ":" + std::string(trade_state_name(*state));
    event.payload = std::move(t);
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
    // Fields unconfirmed (spec): modelled on ENTRANCE_STATE_CHANGE, see the header.
    ContractStateEvent c;
    c.sp_mchid = get_string(ro, "sp_mchid").value_or("");
    c.contract_id = get_string(ro, "contract_id").value_or("");
    c.plate_number = get_string(ro, "plate_number").value_or("");
    c.plate_color = get_string(ro, "plate_color").value_or("");
    c.state = get_string(ro, "user_state")
                  .or_else([&] { return get_string(ro, "contract_state"); })
                  .or_else([&] { return get_string(ro, "state"); })
                  .value_or("");
    c.state_update_time = get_string(ro, "state_update_time").value_or(event.create_time);
    auto when = parse_rfc3339(c.state_update_time);
    if (!when) {
      when = parse_rfc3339(event.create_time);
    }
    if (c.contract_id.empty() || c.plate_number.empty() || c.state.empty() || !when) {
      return fail_reply(400,
                        "contract state resource lacks contract_id, plate_number, user_state or "
                        "a valid state_update_time");
    }
    c.updated_at = *when;
    event.payload = std::move(c);
  } else {
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
