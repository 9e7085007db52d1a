// In-cab payments (spec "Taxi: in-cab payment"): ordinary WeChat Pay v3 payments by the
// passenger's payment code (codepay) or by a Native QR, their query, reverse and close, in
// both modes (direct /v3/pay/transactions/…, partner /v3/pay/partner/transactions/…), and
// the admin side: payment codes, the passenger paying a Native QR, the order list.
//
// Business failures. The spec's Errors table names only the generic codes, and the stored
// provider pages (wechatpay-im/website: codepay, native, reverse, close, query) list no
// error codes at all. The codes below are the names WeChat's quick-pay API documents
// (the spec's source pay/QuickPay/chapter3_3); their HTTP status in v3 is unconfirmed, so
// each is answered as a 4xx, which the client reads as definitive:
//   400 AUTHCODEEXPIRE     the code expired (about 60 s after issue) or was already used
//   400 OUT_TRADE_NO_USED  the out_trade_no names another order (other code, amount, type)
//   400 ORDERPAID          close (or a Native resend) of a paid order
//   400 ORDERCLOSED        a codepay/Native resend or reverse target that is closed
//   400 ORDERREVERSED      close of a reversed order
//   403 <decline>          the business failure a registered code declines with (NOTENOUGH…)
// USERPAYING at pay time: how v3 signals it is *unconfirmed* (spec); the sandbox answers
// 202 {"code":"USERPAYING",…}: not a 200 SUCCESS order and not a 4xx, so a client that
// follows the spec's rule ("anything else: unknown -> query") queries, which is the
// provider's published quick-pay rule.
#include <chrono>

#include "core/crypto.h"
#include "provider_sandbox_impl.h"

namespace lanegate::sim {
using namespace sandbox;
using Impl = ProviderSandbox::Impl;

namespace {

constexpr std::string_view kMicropay = "MICROPAY";
constexpr std::string_view kNative = "NATIVE";

std::int64_t to_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

Reply business(int status, std::string_view code, std::string_view message,
               std::string_view field = {}) {
  return error_reply(status, code, message, field, field.empty() ? "" : message,
                     field.empty() ? "" : "body");
}

Reply out_trade_no_used() {
  return business(400, "OUT_TRADE_NO_USED",
                  "商户订单号重复: out_trade_no already names another order (other payment code, "
                  "amount, type or sub merchant)",
                  "out_trade_no");
}

// The reply a codepay call (first or resent) gets for the order's state.
Reply codepay_reply(const PayRow& p) {
  if (p.trade_state == "SUCCESS") {
    return Reply{200, json::serialize(payment_json(p)), false};
  }
  if (p.trade_state == "USERPAYING") {
    return error_reply(202, "USERPAYING", "用户支付中，需要输入密码");
  }
  if (p.trade_state == "PAYERROR") {
    return business(403, p.fail_code.value_or("TRADE_ERROR"),
                    p.trade_state_desc.value_or("支付失败"));
  }
  if (p.trade_state == "REVOKED") {
    return business(400, "ORDERREVERSED", "订单已撤销");
  }
  return business(400, "ORDERCLOSED", "订单已关闭");
}

// out_trade_no is unique per merchant across its products: a vehicle transaction's
// number cannot name a payment too.
bool vehicle_number_taken(Database& db, const std::string& mchid, const std::string& no) {
  auto st = db.prepare("SELECT 1 FROM transactions WHERE mchid=? AND out_trade_no=?");
  if (!st) {
    return false;
  }
  st->bind_all(mchid, no);
  auto row = st->step();
  return row && *row;
}

std::string anonymous_openid(Impl& impl) { return "oANON" + impl.digits(20); }

// The payer's id under the sub merchant's app: derived, so one payer keeps one sub_openid.
std::optional<std::string> sub_openid_for(const std::string& openid, const std::string& sub_appid) {
  if (sub_appid.empty()) {
    return std::nullopt;
  }
  return "oSUB" + crypto::sha256_hex(openid + "/" + sub_appid).substr(0, 24);
}

}  // namespace

PayRow sandbox::read_pay(const Statement& st) {
  PayRow p;
  p.seq = st.column_int64(0);
  p.mchid = st.column_text(1);
  p.sub_mchid = st.column_text(2);
  p.appid = st.column_text(3);
  p.sub_appid = st.column_text(4);
  p.out_trade_no = st.column_text(5);
  p.transaction_id = st.column_text(6);
  p.trade_type = st.column_text(7);
  p.description = st.column_text(8);
  p.attach = st.column_opt_text(9);
  p.amount = st.column_int64(10);
  p.trade_state = st.column_text(11);
  p.trade_state_desc = st.column_opt_text(12);
  p.openid = st.column_text(13);
  p.sub_openid = st.column_opt_text(14);
  p.code_hash = st.column_text(15);
  p.notify_url = st.column_text(16);
  p.code_url = st.column_text(17);
  p.device_id = st.column_text(18);
  p.create_time = st.column_text(19);
  p.success_time = st.column_opt_text(20);
  p.refunded = st.column_int64(21);
  p.reversed = st.column_int64(22) != 0;
  p.submissions = static_cast<int>(st.column_int64(23));
  p.fail_code = st.column_opt_text(24);
  return p;
}

json::object sandbox::payment_json(const PayRow& p, bool attach_always) {
  const bool partner = !p.sub_mchid.empty();
  // Paid at some point: a reversed paid order keeps its transaction and success time.
  const bool paid = p.success_time.has_value();
  json::object o;
  if (partner) {
    o["sp_appid"] = p.appid;
    o["sp_mchid"] = p.mchid;
    if (!p.sub_appid.empty()) {
      o["sub_appid"] = p.sub_appid;
    }
    o["sub_mchid"] = p.sub_mchid;
  } else {
    o["appid"] = p.appid;
    o["mchid"] = p.mchid;
  }
  o["out_trade_no"] = p.out_trade_no;
  if (paid) {
    o["transaction_id"] = p.transaction_id;
  }
  o["trade_type"] = p.trade_type;
  o["trade_state"] = p.trade_state;
  o["trade_state_desc"] = p.trade_state_desc.value_or("");
  if (paid) {
    o["bank_type"] = "OTHERS";
    o["success_time"] = *p.success_time;
  }
  if (p.attach || attach_always) {
    o["attach"] = p.attach.value_or("");
  }
  if (!p.openid.empty()) {
    json::object payer;
    if (partner) {
      payer["sp_openid"] = p.openid;
      if (p.sub_openid) {
        payer["sub_openid"] = *p.sub_openid;
      }
    } else {
      payer["openid"] = p.openid;
    }
    o["payer"] = std::move(payer);
  }
  json::object amount;
  amount["total"] = p.amount;
  if (paid) {
    amount["payer_total"] = p.amount;
  }
  amount["currency"] = "CNY";
  if (paid) {
    amount["payer_currency"] = "CNY";
  }
  o["amount"] = std::move(amount);
  return o;
}

std::variant<const SubMerchant*, Reply> Impl::pay_caller(const Merchant& m, bool partner,
                                                         const json_object& ids,
                                                         std::string_view location) {
  // The Authorization mchid is the caller (spec): the merchant on the direct path, the
  // service provider on the partner path. The sandbox's merchants are one or the other.
  if (partner && !m.partner()) {
    return error_reply(403, "NO_AUTH",
                       "mchid " + m.mchid + " is not a service provider: use /v3/pay/transactions/",
                       "mchid", "not a service provider", "authorization");
  }
  if (!partner && m.partner()) {
    return error_reply(
        403, "NO_AUTH",
        "mchid " + m.mchid + " is a service provider: use /v3/pay/partner/transactions/", "mchid",
        "service provider on the direct path", "authorization");
  }
  const std::string mchid_key = partner ? "sp_mchid" : "mchid";
  const std::string appid_key = partner ? "sp_appid" : "appid";
  if (auto v = get_string(ids, mchid_key); v && *v != m.mchid) {
    return error_reply(400, "INVALID_REQUEST", mchid_key + " is not the Authorization mchid",
                       mchid_key, "must be the calling merchant", location);
  }
  if (auto v = get_string(ids, appid_key); v && *v != m.appid) {
    return error_reply(400, "INVALID_REQUEST", appid_key + " is not bound to this mchid", appid_key,
                       "appid/mchid mismatch", location);
  }
  if (!partner) {
    return static_cast<const SubMerchant*>(nullptr);
  }
  return resolve_sub(m, get_string(ids, "sub_mchid"), get_string(ids, "sub_appid"), location);
}

std::optional<PayRow> Impl::load_payment_locked(const std::string& mchid,
                                                const std::string& out_trade_no) {
  auto st = db().prepare("SELECT " + std::string(kPayColumns) +
                         " FROM payments WHERE mchid=? AND out_trade_no=?");
  if (!st) {
    return std::nullopt;
  }
  st->bind_all(mchid, out_trade_no);
  auto row = st->step();
  if (!row || !*row) {
    return std::nullopt;
  }
  return read_pay(*st);
}

void Impl::advance_payments_locked() {
  const std::int64_t now = real_now_ms();
  const std::string now_rfc = now_text();
  // The passenger confirmed before the auto-revoke time: paid.
  if (auto st =
          db().prepare("UPDATE payments SET trade_state='SUCCESS', trade_state_desc='支付成功', "
                       "success_time=? WHERE trade_state='USERPAYING' AND pay_due_ms <= ? AND "
                       "pay_due_ms < revoke_due_ms")) {
    (void)st->bind_all(now_rfc, now).run();
  }
  if (auto st = db().prepare("UPDATE payments SET trade_state='REVOKED', "
                             "trade_state_desc='订单超时未支付，已自动撤销' "
                             "WHERE trade_state='USERPAYING' AND revoke_due_ms <= ?")) {
    (void)st->bind_all(now).run();
  }
  if (auto st = db().prepare(
          "UPDATE payments SET trade_state='CLOSED', trade_state_desc='订单已过期关闭' WHERE "
          "trade_state='NOTPAY' AND expire_ms IS NOT NULL AND expire_ms <= ?")) {
    (void)st->bind_all(options.clock->unix_millis()).run();
  }
}

void Impl::advance_payments() {
  std::lock_guard lock(db_mu);
  advance_payments_locked();
}

Reply Impl::codepay(const httplib::Request& req, const Merchant& m, bool partner) {
  Reply error;
  auto body = parse_body(req, error);
  if (!body) {
    return error;
  }
  if (auto bad = check_fields(*body, codepay_fields(partner)); bad) {
    return *bad;
  }
  auto who = pay_caller(m, partner, *body, "body");
  if (auto* refused = std::get_if<Reply>(&who)) {
    return *refused;
  }
  const SubMerchant* sub = std::get<const SubMerchant*>(who);
  const auto out_trade_no = *get_string(*body, "out_trade_no");
  const auto description = *get_string(*body, "description");
  const auto auth_code = *get_string(body->at("payer").as_object(), "auth_code");
  const auto& amount = body->at("amount").as_object();
  if (!is_out_trade_no(out_trade_no)) {
    return param_error("out_trade_no", "1..32 of [0-9A-Za-z_*-]");
  }
  if (utf8_length(description) > 127) {
    return param_error("description", "at most 127 characters");
  }
  // The code is the passenger's money key for a minute: never echoed back.
  if (!is_auth_code(auth_code)) {
    return param_error("payer.auth_code", "18 digits starting with 10..15");
  }
  auto total = get_int(amount, "total");
  if (!total || *total <= 0) {
    return param_error("amount.total", "integer fen > 0");
  }
  if (get_string(amount, "currency").value_or("CNY") != "CNY") {
    return param_error("amount.currency", "must be CNY");
  }
  const std::string sub_mchid = sub != nullptr ? sub->sub_mchid : "";
  const std::string sub_appid =
      sub != nullptr ? get_string(*body, "sub_appid").value_or(sub->sub_appid) : "";
  const std::string code_hash = crypto::sha256_hex(auth_code);
  const std::string device_id =
      get_string(body->at("scene_info").as_object(), "device_id").value_or("");

  std::lock_guard lock(db_mu);
  advance_payments_locked();
  auto txn = db().begin();
  if (!txn) {
    return system_error(txn.error());
  }
  if (auto old = load_payment_locked(m.mchid, out_trade_no)) {
    // The spec's rule is "never resubmit"; a resend of the same code and amount is
    // answered from the order (counted), anything else is another order's number.
    if (old->trade_type != kMicropay || old->amount != *total || old->code_hash != code_hash ||
        old->sub_mchid != sub_mchid) {
      return out_trade_no_used();
    }
    if (auto up = db().prepare("UPDATE payments SET submissions = submissions + 1 WHERE seq=?")) {
      (void)up->bind_all(old->seq).run();
    }
    if (auto c = txn->commit(); !c) {
      return system_error(c.error());
    }
    Reply r = codepay_reply(*old);
    r.lose_after_commit = lose_reply();
    return r;
  }
  if (vehicle_number_taken(db(), m.mchid, out_trade_no)) {
    return out_trade_no_used();
  }
  auto code = db().prepare(
      "SELECT openid, issued_ms, userpaying_ms, decline, used FROM paycodes WHERE code_hash=?");
  if (!code) {
    return system_error(code.error());
  }
  code->bind_all(code_hash);
  std::string openid;
  std::int64_t userpaying_ms = 0;
  std::optional<std::string> decline;
  if (auto row = code->step(); row && *row) {
    if (code->column_int64(4) != 0) {
      return business(400, "AUTHCODEEXPIRE", "付款码已使用，请用户刷新付款码后重试",
                      "payer.auth_code");
    }
    if (options.clock->unix_millis() - code->column_int64(1) > code_validity_ms.load()) {
      return business(400, "AUTHCODEEXPIRE", "付款码已过期，请用户刷新付款码后重试",
                      "payer.auth_code");
    }
    openid = code->column_text(0);
    userpaying_ms = code->column_int64(2);
    decline = code->column_opt_text(3);
  }
  if (openid.empty()) {
    openid = anonymous_openid(*this);
  }
  // Invariant 6: the code is spent in the commit that creates its order.
  if (auto use =
          db().prepare("INSERT INTO paycodes(code_hash, openid, issued_ms, used) VALUES(?,?,?,1) "
                       "ON CONFLICT(code_hash) DO UPDATE SET used=1")) {
    if (auto r = use->bind_all(code_hash, openid, options.clock->unix_millis()).run(); !r) {
      return system_error(r.error());
    }
  } else {
    return system_error(use.error());
  }
  const std::int64_t now = real_now_ms();
  std::string state = "SUCCESS";
  std::string desc = "支付成功";
  std::optional<std::string> success_time;
  std::optional<std::int64_t> pay_due;
  if (decline) {
    state = "PAYERROR";
    desc = "支付失败: " + *decline;
  } else if (userpaying_ms > 0) {
    state = "USERPAYING";
    desc = "用户支付中，需要输入密码";
    pay_due = now + userpaying_ms;
  } else {
    success_time = now_text();
  }
  auto ins = db().prepare(
      "INSERT INTO payments(mchid, sub_mchid, appid, sub_appid, out_trade_no, transaction_id, "
      "trade_type, description, attach, amount, trade_state, trade_state_desc, openid, "
      "sub_openid, code_hash, device_id, create_time, success_time, pay_due_ms, "
      "revoke_due_ms, fail_code) VALUES(?,?,?,?,?,?,'MICROPAY',?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!ins) {
    return system_error(ins.error());
  }
  if (auto r =
          ins->bind_all(m.mchid, sub_mchid, m.appid, sub_appid, out_trade_no, "4200" + digits(24),
                        description, get_string(*body, "attach"), *total, state, desc, openid,
                        sub != nullptr ? sub_openid_for(openid, sub_appid) : std::nullopt,
                        code_hash, device_id, now_text(), success_time, pay_due,
                        now + auto_revoke_ms.load(), decline)
              .run();
      !r) {
    return system_error(r.error());
  }
  auto created = load_payment_locked(m.mchid, out_trade_no);
  if (!created) {
    return error_reply(500, "SYSTEM_ERROR", "cannot reload the order");
  }
  if (auto c = txn->commit(); !c) {
    return system_error(c.error());
  }
  Reply r = codepay_reply(*created);
  r.lose_after_commit = lose_reply();
  return r;
}

Reply Impl::native(const httplib::Request& req, const Merchant& m, bool partner) {
  Reply error;
  auto body = parse_body(req, error);
  if (!body) {
    return error;
  }
  if (auto bad = check_fields(*body, native_fields(partner)); bad) {
    return *bad;
  }
  auto who = pay_caller(m, partner, *body, "body");
  if (auto* refused = std::get_if<Reply>(&who)) {
    return *refused;
  }
  const SubMerchant* sub = std::get<const SubMerchant*>(who);
  const auto out_trade_no = *get_string(*body, "out_trade_no");
  const auto description = *get_string(*body, "description");
  const auto notify_url = *get_string(*body, "notify_url");
  const auto& amount = body->at("amount").as_object();
  if (!is_out_trade_no(out_trade_no)) {
    return param_error("out_trade_no", "1..32 of [0-9A-Za-z_*-]");
  }
  if (utf8_length(description) > 127) {
    return param_error("description", "at most 127 characters");
  }
  if (!notify_url.starts_with("https://")) {
    return param_error("notify_url", "must be an https URL");
  }
  auto total = get_int(amount, "total");
  if (!total || *total <= 0) {
    return param_error("amount.total", "integer fen > 0");
  }
  if (*get_string(amount, "currency") != "CNY") {
    return param_error("amount.currency", "must be CNY");
  }
  std::optional<std::int64_t> expire_ms;
  if (auto te = get_string(*body, "time_expire")) {
    auto t = parse_rfc3339(*te);
    if (!t) {
      json::value shown(*te);
      return param_error("time_expire", "RFC 3339 with offset", "body", &shown);
    }
    if (*t <= options.clock->now()) {
      json::value shown(*te);
      return param_error("time_expire", "already passed", "body", &shown);
    }
    expire_ms = to_ms(*t);
  }
  const std::string sub_mchid = sub != nullptr ? sub->sub_mchid : "";
  const std::string sub_appid =
      sub != nullptr ? get_string(*body, "sub_appid").value_or(sub->sub_appid) : "";
  std::string device_id;
  if (const auto* scene = body->if_contains("scene_info"); scene != nullptr) {
    device_id = get_string(scene->as_object(), "device_id").value_or("");
  }

  std::lock_guard lock(db_mu);
  advance_payments_locked();
  auto txn = db().begin();
  if (!txn) {
    return system_error(txn.error());
  }
  auto code_url_reply = [](const std::string& url) {
    json::object o;
    o["code_url"] = url;
    return json::serialize(o);
  };
  if (auto old = load_payment_locked(m.mchid, out_trade_no)) {
    if (old->trade_type != kNative || old->amount != *total || old->sub_mchid != sub_mchid) {
      return out_trade_no_used();
    }
    if (auto up = db().prepare("UPDATE payments SET submissions = submissions + 1 WHERE seq=?")) {
      (void)up->bind_all(old->seq).run();
    }
    if (auto c = txn->commit(); !c) {
      return system_error(c.error());
    }
    // Spec: a closed order's number is never reused.
    if (old->trade_state == "CLOSED") {
      return business(400, "ORDERCLOSED", "订单已关闭", "out_trade_no");
    }
    if (old->trade_state != "NOTPAY") {
      return business(400, "ORDERPAID", "订单已支付", "out_trade_no");
    }
    return Reply{200, code_url_reply(old->code_url), lose_reply()};
  }
  if (vehicle_number_taken(db(), m.mchid, out_trade_no)) {
    return out_trade_no_used();
  }
  auto token = crypto::random_token(16);
  if (!token) {
    return system_error(token.error());
  }
  const std::string code_url = "weixin://wxpay/bizpayurl?pr=" + *token;
  auto ins = db().prepare(
      "INSERT INTO payments(mchid, sub_mchid, appid, sub_appid, out_trade_no, transaction_id, "
      "trade_type, description, attach, amount, trade_state, trade_state_desc, notify_url, "
      "code_url, device_id, create_time, expire_ms) "
      "VALUES(?,?,?,?,?,?,'NATIVE',?,?,?,'NOTPAY','订单未支付',?,?,?,?,?)");
  if (!ins) {
    return system_error(ins.error());
  }
  if (auto r = ins->bind_all(m.mchid, sub_mchid, m.appid, sub_appid, out_trade_no,
                             "4200" + digits(24), description, get_string(*body, "attach"), *total,
                             notify_url, code_url, device_id, now_text(), expire_ms)
                   .run();
      !r) {
    return system_error(r.error());
  }
  if (auto c = txn->commit(); !c) {
    return system_error(c.error());
  }
  return Reply{200, code_url_reply(code_url), lose_reply()};
}

Reply Impl::query_payment(const httplib::Request& req, const Merchant& m, bool partner) {
  if (auto bad = check_query(req, pay_query_params(partner)); bad) {
    return *bad;
  }
  json::object ids;
  for (const auto& [key, value] : req.params) {
    ids[key] = value;
  }
  auto who = pay_caller(m, partner, ids, "query");
  if (auto* refused = std::get_if<Reply>(&who)) {
    return *refused;
  }
  const SubMerchant* sub = std::get<const SubMerchant*>(who);
  std::string no = req.matches[1];
  if (!is_out_trade_no(no)) {
    return param_error("out_trade_no", "1..32 of [0-9A-Za-z_*-]", "path");
  }
  std::lock_guard lock(db_mu);
  advance_payments_locked();
  auto p = load_payment_locked(m.mchid, no);
  if (!p || p->sub_mchid != (sub != nullptr ? sub->sub_mchid : "")) {
    return error_reply(404, "ORDER_NOT_EXIST", "订单不存在", "out_trade_no", "not found", "path");
  }
  return Reply{200, json::serialize(payment_json(*p)), lose_reply()};
}

Reply Impl::reverse_payment(const httplib::Request& req, const Merchant& m, bool partner) {
  Reply error;
  auto body = parse_body(req, error);
  if (!body) {
    return error;
  }
  if (auto bad = check_fields(*body, reverse_fields(partner)); bad) {
    return *bad;
  }
  auto who = pay_caller(m, partner, *body, "body");
  if (auto* refused = std::get_if<Reply>(&who)) {
    return *refused;
  }
  const SubMerchant* sub = std::get<const SubMerchant*>(who);
  std::string no = req.matches[1];
  if (!is_out_trade_no(no)) {
    return param_error("out_trade_no", "1..32 of [0-9A-Za-z_*-]", "path");
  }
  std::lock_guard lock(db_mu);
  advance_payments_locked();
  auto txn = db().begin();
  if (!txn) {
    return system_error(txn.error());
  }
  auto p = load_payment_locked(m.mchid, no);
  if (!p || p->sub_mchid != (sub != nullptr ? sub->sub_mchid : "")) {
    return error_reply(404, "ORDER_NOT_EXIST", "订单不存在", "out_trade_no", "not found", "path");
  }
  if (p->trade_type != kMicropay) {
    // The spec gives reverse to the payment code only; a Native order is closed.
    return error_reply(400, "INVALID_REQUEST",
                       "reverse is for payment-code orders: close a Native order instead",
                       "out_trade_no", "not a payment-code order", "path");
  }
  // Repeated reverses are idempotent: REVOKED stays, CLOSED has nothing to undo.
  if (p->trade_state == "SUCCESS") {
    // Reverse refunds a paid order in full; the refund is a line of today's bill.
    auto ins = db().prepare(
        "INSERT INTO refunds(mchid, out_trade_no, refund_id, out_refund_no, amount, "
        "create_time) VALUES(?,?,?,?,?,?)");
    if (!ins) {
      return system_error(ins.error());
    }
    if (auto r = ins->bind_all(m.mchid, no, "5030" + digits(24), "RV" + digits(20), p->amount,
                               now_text())
                     .run();
        !r) {
      return system_error(r.error());
    }
  }
  if (p->trade_state != "REVOKED" && p->trade_state != "CLOSED") {
    auto up = db().prepare(
        "UPDATE payments SET trade_state='REVOKED', trade_state_desc='订单已撤销', reversed=1, "
        "refunded = CASE WHEN trade_state='SUCCESS' THEN amount ELSE refunded END WHERE seq=?");
    if (!up) {
      return system_error(up.error());
    }
    if (auto r = up->bind_all(p->seq).run(); !r) {
      return system_error(r.error());
    }
  }
  if (auto c = txn->commit(); !c) {
    return system_error(c.error());
  }
  json::object o;
  if (partner) {
    o["sp_appid"] = p->appid;
    o["sp_mchid"] = p->mchid;
    if (!p->sub_appid.empty()) {
      o["sub_appid"] = p->sub_appid;
    }
    o["sub_mchid"] = p->sub_mchid;
  } else {
    o["appid"] = p->appid;
    o["mchid"] = p->mchid;
  }
  o["out_trade_no"] = p->out_trade_no;
  return Reply{200, json::serialize(o), lose_reply()};
}

Reply Impl::close_payment(const httplib::Request& req, const Merchant& m, bool partner) {
  Reply error;
  auto body = parse_body(req, error);
  if (!body) {
    return error;
  }
  if (auto bad = check_fields(*body, close_fields(partner)); bad) {
    return *bad;
  }
  auto who = pay_caller(m, partner, *body, "body");
  if (auto* refused = std::get_if<Reply>(&who)) {
    return *refused;
  }
  const SubMerchant* sub = std::get<const SubMerchant*>(who);
  std::string no = req.matches[1];
  if (!is_out_trade_no(no)) {
    return param_error("out_trade_no", "1..32 of [0-9A-Za-z_*-]", "path");
  }
  std::lock_guard lock(db_mu);
  advance_payments_locked();
  auto p = load_payment_locked(m.mchid, no);
  if (!p || p->sub_mchid != (sub != nullptr ? sub->sub_mchid : "")) {
    return error_reply(404, "ORDER_NOT_EXIST", "订单不存在", "out_trade_no", "not found", "path");
  }
  if (p->trade_state == "SUCCESS") {
    return business(400, "ORDERPAID", "订单已支付，不能关闭", "out_trade_no");
  }
  if (p->trade_state == "REVOKED") {
    return business(400, "ORDERREVERSED", "订单已撤销", "out_trade_no");
  }
  if (p->trade_state != "CLOSED") {
    auto up = db().prepare(
        "UPDATE payments SET trade_state='CLOSED', trade_state_desc='订单已关闭' WHERE seq=?");
    if (!up) {
      return system_error(up.error());
    }
    if (auto r = up->bind_all(p->seq).run(); !r) {
      return system_error(r.error());
    }
  }
  return Reply{204, "", lose_reply()};
}

Status Impl::register_paycode(const SandboxPaycode& code) {
  if (!is_auth_code(code.code)) {
    return fail(Errc::kInvalidArgument, "18 digits starting with 10..15", "code");
  }
  if (code.userpaying_ms < 0) {
    return fail(Errc::kInvalidArgument, "milliseconds >= 0", "userpaying_ms");
  }
  std::int64_t issued = options.clock->unix_millis();
  if (!code.issued_at.empty()) {
    auto t = parse_rfc3339(code.issued_at);
    if (!t) {
      return fail(Errc::kInvalidArgument, "RFC 3339 with offset", "issued_at");
    }
    issued = to_ms(*t);
  }
  std::lock_guard lock(db_mu);
  // Registering a code again is a new issue of it (the app refreshes codes).
  auto st = db().prepare(
      "INSERT OR REPLACE INTO paycodes(code_hash, openid, issued_ms, userpaying_ms, decline, "
      "used) VALUES(?,?,?,?,?,0)");
  if (!st) {
    return std::unexpected(st.error());
  }
  return st
      ->bind_all(crypto::sha256_hex(code.code),
                 code.openid.empty() ? anonymous_openid(*this) : code.openid, issued,
                 code.userpaying_ms,
                 code.decline.empty() ? std::nullopt : std::optional<std::string>(code.decline))
      .run();
}

Result<SandboxPayment> Impl::pay_native(const std::string& out_trade_no,
                                        const std::string& openid) {
  std::lock_guard lock(db_mu);
  advance_payments_locked();
  auto txn = db().begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  auto st = db().prepare("SELECT " + std::string(kPayColumns) +
                         " FROM payments WHERE out_trade_no=? AND trade_type='NATIVE'");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind_all(out_trade_no);
  std::vector<PayRow> found;
  while (true) {
    auto row = st->step();
    if (!row) {
      return std::unexpected(row.error());
    }
    if (!*row) {
      break;
    }
    found.push_back(read_pay(*st));
  }
  if (found.empty()) {
    return fail(Errc::kNotFound, "no Native order has this number", "out_trade_no");
  }
  if (found.size() > 1) {
    return fail(Errc::kInvalidArgument, "names Native orders of several merchants", "out_trade_no");
  }
  PayRow p = found.front();
  if (p.trade_state == "CLOSED") {
    return fail(Errc::kRejected,
                "the order is closed: the passenger's app says the QR code has expired",
                "out_trade_no");
  }
  if (p.trade_state != "NOTPAY") {
    return fail(Errc::kRejected, "the order is already paid (" + p.trade_state + ")",
                "out_trade_no");
  }
  p.openid = openid.empty() ? anonymous_openid(*this) : openid;
  if (!p.sub_mchid.empty()) {
    p.sub_openid = sub_openid_for(p.openid, p.sub_appid);
  }
  p.trade_state = "SUCCESS";
  p.trade_state_desc = "支付成功";
  p.success_time = now_text();
  auto up = db().prepare(
      "UPDATE payments SET trade_state=?, trade_state_desc=?, success_time=?, openid=?, "
      "sub_openid=? WHERE seq=?");
  if (!up) {
    return std::unexpected(up.error());
  }
  if (auto r = up->bind_all(p.trade_state, p.trade_state_desc, p.success_time, p.openid,
                            p.sub_openid, p.seq)
                   .run();
      !r) {
    return std::unexpected(r.error());
  }
  auto merchant = find_merchant(p.mchid);
  if (!merchant) {
    return fail(Errc::kNotFound, "the order's merchant is no longer in the seed", "mchid");
  }
  // Invariant 5: the notification is queued in the commit that marks the order paid.
  auto queued = queue_notification(*merchant, p.notify_url, "TRANSACTION.SUCCESS", "支付成功",
                                   "transaction", json::serialize(payment_json(p, true)));
  if (!queued) {
    return std::unexpected(queued.error());
  }
  if (!*queued) {
    return fail(Errc::kCrypto, "cannot seal the notification", "apiv3_key");
  }
  if (auto c = txn->commit(); !c) {
    return std::unexpected(c.error());
  }
  worker_cv.notify_one();
  return SandboxPayment{p.mchid,      p.sub_mchid,   p.out_trade_no, p.transaction_id,
                        p.trade_type, p.trade_state, p.amount,       p.refunded,
                        p.reversed,   p.code_url,    p.openid,       p.submissions};
}

Result<std::vector<SandboxPayment>> Impl::list_payments() const {
  auto* self = const_cast<Impl*>(this);
  std::lock_guard lock(db_mu);
  self->advance_payments_locked();
  auto st =
      self->db().prepare("SELECT " + std::string(kPayColumns) + " FROM payments ORDER BY seq");
  if (!st) {
    return std::unexpected(st.error());
  }
  std::vector<SandboxPayment> out;
  while (true) {
    auto row = st->step();
    if (!row) {
      return std::unexpected(row.error());
    }
    if (!*row) {
      break;
    }
    PayRow p = read_pay(*st);
    out.push_back({p.mchid, p.sub_mchid, p.out_trade_no, p.transaction_id, p.trade_type,
                   p.trade_state, p.amount, p.refunded, p.reversed, p.code_url, p.openid,
                   p.submissions});
  }
  return out;
}

}  // namespace lanegate::sim
