// ETC highway deduction (spec "ETC highway deduction (service-provider API only)"): the
// synchronous deduction, its two queries, the contract queries and the contract state
// change with its VEHICLE.USER_STATE_CHANGE notification.
#include "provider_sandbox_impl.h"

namespace lanegate::sim {
using namespace sandbox;
using Impl = ProviderSandbox::Impl;

namespace {

Reply no_auth_direct() {
  return error_reply(403, "NO_AUTH", "the ETC API is for service providers only", "mchid",
                     "not a service provider", "authorization");
}

// An etc_contracts row. sub_mchid empty: a contract from an older seed, usable by any
// service provider (there was no owner then).
struct ContractRow {
  std::string contract_id, plate_number, openid, bind_state, sub_mchid;
  std::optional<std::string> sub_openid;
};

constexpr std::string_view kContractColumns =
    "contract_id, plate_number, openid, state, sub_mchid, sub_openid";

ContractRow read_contract(const Statement& st) {
  return ContractRow{st.column_text(0), st.column_text(1), st.column_text(2),
                     st.column_text(3), st.column_text(4), st.column_opt_text(5)};
}

// Spec "Contract": appid, sp_mchid, sp_openid, sub_appid?, sub_mchid?, sub_openid?,
// contract_id, bind_state, plate_number.
json::object contract_json(const ContractRow& c, const Merchant& sp, const SubMerchant& sub) {
  json::object o;
  o["appid"] = sp.appid;
  o["sp_mchid"] = sp.mchid;
  o["sp_openid"] = c.openid;
  if (!sub.sub_appid.empty()) {
    o["sub_appid"] = sub.sub_appid;
  }
  o["sub_mchid"] = sub.sub_mchid;
  if (c.sub_openid) {
    o["sub_openid"] = *c.sub_openid;
  }
  o["contract_id"] = c.contract_id;
  o["bind_state"] = c.bind_state;
  o["plate_number"] = c.plate_number;
  return o;
}

}  // namespace

Reply Impl::charge_highway(const httplib::Request& req, const Merchant& m) {
  if (!m.partner() || !m.has_product("HIGHWAY")) {
    return no_auth_direct();
  }
  Reply error;
  auto body = parse_body(req, error);
  if (!body) {
    return error;
  }
  if (auto bad = check_fields(*body, highway_charge_fields()); bad) {
    return *bad;
  }
  const auto out_trade_no = *get_string(*body, "out_trade_no");
  const auto appid = *get_string(*body, "appid");
  const auto contract_id = *get_string(*body, "contract_id");
  const auto description = *get_string(*body, "description");
  const auto attach = get_string(*body, "attach");
  const auto& info = body->at("highway_info").as_object();
  const auto& amount = body->at("amount").as_object();
  if (appid != m.appid) {
    return error_reply(400, "INVALID_REQUEST", "appid is not bound to this mchid", "appid",
                       "appid/mchid mismatch");
  }
  if (!is_out_trade_no(out_trade_no)) {
    return param_error("out_trade_no", "1..32 of [0-9A-Za-z_*-]");
  }
  if (utf8_length(description) > 128) {
    return param_error("description", "at most 128 characters");
  }
  auto start = parse_rfc3339(*get_string(info, "start_time"));
  if (!start) {
    return param_error("highway_info.start_time", "RFC 3339 with offset");
  }
  auto end = parse_rfc3339(*get_string(info, "end_time"));
  if (!end) {
    return param_error("highway_info.end_time", "RFC 3339 with offset");
  }
  if (*start > *end) {
    return param_error("highway_info.start_time", "after end_time");
  }
  if (auto seats = get_int(info, "carrying_capacity");
      info.contains("carrying_capacity") && (!seats || *seats < 0)) {
    return param_error("highway_info.carrying_capacity", "integer >= 0");
  }
  auto total = get_int(amount, "total");
  if (!total || *total <= 0) {
    return param_error("amount.total", "integer fen > 0");
  }
  if (get_string(amount, "currency").value_or("CNY") != "CNY") {
    return param_error("amount.currency", "must be CNY");
  }
  auto sub_v =
      resolve_sub(m, get_string(*body, "sub_mchid"), get_string(*body, "sub_appid"), "body");
  if (auto* refused = std::get_if<Reply>(&sub_v)) {
    return *refused;
  }
  const SubMerchant& sub = *std::get<const SubMerchant*>(sub_v);
  const std::string plate = *get_string(info, "plate_number");

  std::lock_guard lock(db_mu);
  // Invariant 2, as for parking.
  {
    auto st = db().prepare(
        "SELECT amount, product, sub_mchid FROM transactions WHERE mchid=? AND out_trade_no=?");
    if (!st) {
      return system_error(st.error());
    }
    st->bind_all(m.mchid, out_trade_no);
    if (auto row = st->step(); row && *row) {
      if (st->column_int64(0) != *total || st->column_text(1) != "HIGHWAY" ||
          st->column_text(2) != sub.sub_mchid) {
        return error_reply(400, "INVALID_REQUEST",
                           "out_trade_no already used with a different amount or product",
                           "out_trade_no", "duplicate out_trade_no, different content");
      }
      auto bump = db().prepare(
          "UPDATE transactions SET submissions = submissions + 1 WHERE mchid=? AND "
          "out_trade_no=?");
      if (bump) {
        (void)bump->bind_all(m.mchid, out_trade_no).run();
      }
      auto t = load_tx_locked(m.mchid, out_trade_no, {"HIGHWAY"}, sub.sub_mchid);
      if (!t) {
        return error_reply(500, "SYSTEM_ERROR", "cannot reload transaction");
      }
      return Reply{200, json::serialize(etc_transaction_json(*t)), lose_reply()};
    }
  }
  auto st = db().prepare("SELECT " + std::string(kContractColumns) +
                         " FROM etc_contracts WHERE contract_id=? AND (sub_mchid=? OR "
                         "sub_mchid='')");
  if (!st) {
    return system_error(st.error());
  }
  st->bind_all(contract_id, sub.sub_mchid);
  auto row = st->step();
  if (!row || !*row) {
    json::value shown(contract_id);
    return param_error("contract_id", "no such ETC contract for this sub merchant", "body", &shown);
  }
  const ContractRow contract = read_contract(*st);
  if (contract.plate_number != plate) {
    return param_error("highway_info.plate_number", "does not match the contract's plate");
  }
  if (contract.bind_state != etc_bound_state) {
    // The provider's answer for a contract that is not bound is not in the spec; NO_AUTH
    // (permanent) is the conservative reading (docs/PROVIDER.md).
    return error_reply(403, "NO_AUTH",
                       "ETC contract is not bound (bind_state " + contract.bind_state + ")",
                       "contract_id", "contract not bound");
  }
  bool overdue = false;
  if (auto a = db().prepare("SELECT overdue FROM accounts WHERE openid=?")) {
    a->bind_all(contract.openid);
    if (auto r = a->step(); r && *r) {
      overdue = a->column_int64(0) != 0;
    }
  }
  std::optional<std::string> device_json;
  std::string device_id;
  if (const auto* d = body->if_contains("device_info"); d != nullptr) {
    device_json = json::serialize(*d);
    device_id = get_string(d->as_object(), "device_id").value_or("");
  }
  const std::string now = now_text();
  auto ins = db().prepare(
      "INSERT INTO transactions(mchid, appid, out_trade_no, transaction_id, product, "
      "description, amount, trade_state, trade_state_description, openid, notify_url, "
      "create_time, success_time, due_ms, info_json, attach, device_id, sub_mchid, sub_appid, "
      "sub_openid, device_json) VALUES(?,?,?,?,'HIGHWAY',?,?,?,?,?,'',?,?,0,?,?,?,?,?,?,?)");
  if (!ins) {
    return system_error(ins.error());
  }
  if (auto r =
          ins->bind_all(m.mchid, appid, out_trade_no, "4200" + digits(24), description, *total,
                        std::string(overdue ? "PAY_FAIL" : "SUCCESS"),
                        overdue ? std::optional<std::string>("用户账户欠费，扣款失败")
                                : std::optional<std::string>("支付成功"),
                        contract.openid, now,
                        overdue ? std::optional<std::string>() : std::optional<std::string>(now),
                        json::serialize(info), attach, device_id, sub.sub_mchid,
                        get_string(*body, "sub_appid").value_or(sub.sub_appid), contract.sub_openid,
                        device_json)
              .run();
      !r) {
    return system_error(r.error());
  }
  auto t = load_tx_locked(m.mchid, out_trade_no, {"HIGHWAY"}, sub.sub_mchid);
  if (!t) {
    return error_reply(500, "SYSTEM_ERROR", "cannot reload transaction");
  }
  return Reply{200, json::serialize(etc_transaction_json(*t)), lose_reply()};
}

Reply Impl::query_highway(const httplib::Request& req, const Merchant& m, bool by_transaction_id) {
  if (!m.partner()) {
    return no_auth_direct();
  }
  if (auto bad = check_query(req, partner_query_params(true)); bad) {
    return *bad;
  }
  auto sub_v = resolve_sub(m, req.get_param_value("sub_mchid"), std::nullopt, "query");
  if (auto* refused = std::get_if<Reply>(&sub_v)) {
    return *refused;
  }
  const std::string sub_mchid = std::get<const SubMerchant*>(sub_v)->sub_mchid;
  const std::string key = req.matches[1];
  std::lock_guard lock(db_mu);
  std::string out_trade_no = key;
  if (by_transaction_id) {
    auto st = db().prepare(
        "SELECT out_trade_no FROM transactions WHERE mchid=? AND transaction_id=? AND "
        "product='HIGHWAY'");
    if (!st) {
      return system_error(st.error());
    }
    st->bind_all(m.mchid, key);
    auto row = st->step();
    if (!row || !*row) {
      return error_reply(404, "ORDER_NOT_EXIST", "订单不存在", "transaction_id", "not found",
                         "path");
    }
    out_trade_no = st->column_text(0);
  }
  auto t = load_tx_locked(m.mchid, out_trade_no, {"HIGHWAY"}, sub_mchid);
  if (!t) {
    return error_reply(404, "ORDER_NOT_EXIST", "订单不存在",
                       by_transaction_id ? "transaction_id" : "out_trade_no", "not found", "path");
  }
  return Reply{200, json::serialize(etc_transaction_json(*t)), false};
}

// 404 for an unknown contract: the spec names no code for it; RESOURCE_NOT_EXISTS is
// deliberately not ORDER_NOT_EXIST, which a client reads as "safe to submit".
Reply Impl::contract_by_id(const httplib::Request& req, const Merchant& m) {
  if (!m.partner()) {
    return no_auth_direct();
  }
  if (auto bad = check_query(req, partner_query_params(true)); bad) {
    return *bad;
  }
  auto sub_v = resolve_sub(m, req.get_param_value("sub_mchid"), std::nullopt, "query");
  if (auto* refused = std::get_if<Reply>(&sub_v)) {
    return *refused;
  }
  const SubMerchant& sub = *std::get<const SubMerchant*>(sub_v);
  std::lock_guard lock(db_mu);
  auto st = db().prepare("SELECT " + std::string(kContractColumns) +
                         " FROM etc_contracts WHERE contract_id=? AND (sub_mchid=? OR "
                         "sub_mchid='')");
  if (!st) {
    return system_error(st.error());
  }
  st->bind_all(std::string(req.matches[1]), sub.sub_mchid);
  auto row = st->step();
  if (!row || !*row) {
    return error_reply(404, "RESOURCE_NOT_EXISTS", "签约不存在", "contract_id", "not found",
                       "path");
  }
  return Reply{200, json::serialize(contract_json(read_contract(*st), m, sub)), false};
}

Reply Impl::contract_by_user(const httplib::Request& req, const Merchant& m) {
  if (!m.partner()) {
    return no_auth_direct();
  }
  if (auto bad = check_query(req, contract_by_user_params()); bad) {
    return *bad;
  }
  auto sub_v = resolve_sub(m, req.get_param_value("sub_mchid"), std::nullopt, "query");
  if (auto* refused = std::get_if<Reply>(&sub_v)) {
    return *refused;
  }
  const SubMerchant& sub = *std::get<const SubMerchant*>(sub_v);
  // plan_id is required by the spec but the sandbox models no plans: any value matches.
  std::lock_guard lock(db_mu);
  auto st = db().prepare("SELECT " + std::string(kContractColumns) +
                         " FROM etc_contracts WHERE openid=? AND plate_number=? AND "
                         "(sub_mchid=? OR sub_mchid='') ORDER BY contract_id LIMIT 1");
  if (!st) {
    return system_error(st.error());
  }
  st->bind_all(std::string(req.matches[1]), req.get_param_value("plate_number"), sub.sub_mchid);
  auto row = st->step();
  if (!row || !*row) {
    return error_reply(404, "RESOURCE_NOT_EXISTS", "签约不存在", "openid", "not found", "path");
  }
  return Reply{200, json::serialize(contract_json(read_contract(*st), m, sub)), false};
}

// Sets bind_state and queues VEHICLE.USER_STATE_CHANGE to the owning service provider's
// registered callback (and `extra_url`), in the same commit.
Status Impl::set_contract_state(const std::string& contract_id, const std::string& bind_state,
                                const std::string& extra_url) {
  if (bind_state.empty() || bind_state.size() > 64) {
    return fail(Errc::kInvalidArgument, "a non-empty string of at most 64 bytes", "bind_state");
  }
  if (!extra_url.empty() && !extra_url.starts_with("https://")) {
    return fail(Errc::kInvalidArgument, "an https URL", "notify_url");
  }
  std::lock_guard lock(db_mu);
  auto txn = db().begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  auto st = db().prepare("UPDATE etc_contracts SET state=? WHERE contract_id=? RETURNING " +
                         std::string(kContractColumns));
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind_all(bind_state, contract_id);
  auto row = st->step();
  if (!row) {
    return std::unexpected(row.error());
  }
  if (!*row) {
    return fail(Errc::kNotFound, "no such ETC contract", "contract_id");
  }
  const ContractRow contract = read_contract(*st);
  (void)st->step();
  // The owner: the service provider that lists the contract's sub merchant. A contract
  // without one (older seeds) is reported with the first service provider's identity
  // (or the first merchant's), and only to extra_url.
  std::optional<std::string> owner;
  {
    auto q = db().prepare(
        contract.sub_mchid.empty()
            ? "SELECT mchid FROM merchants ORDER BY (SELECT COUNT(*) FROM sub_merchants s WHERE "
              "s.sp_mchid = merchants.mchid) = 0, mchid LIMIT 1"
            : "SELECT sp_mchid FROM sub_merchants WHERE sub_mchid=? ORDER BY sp_mchid LIMIT 1");
    if (!q) {
      return std::unexpected(q.error());
    }
    if (!contract.sub_mchid.empty()) {
      q->bind_all(contract.sub_mchid);
    }
    if (auto r = q->step(); r && *r) {
      owner = q->column_text(0);
    }
  }
  std::optional<Merchant> sp;
  if (owner) {
    sp = find_merchant(*owner);
  }
  if (sp) {
    std::vector<std::string> urls;
    if (!contract.sub_mchid.empty() && !sp->contract_notify_url.empty()) {
      urls.push_back(sp->contract_notify_url);
    }
    if (!extra_url.empty() && (urls.empty() || urls.front() != extra_url)) {
      urls.push_back(extra_url);
    }
    // Exactly the spec's keys: appid, sp_mchid, sp_openid, sub_openid?, sub_mchid?,
    // contract_id, bind_state, plate_number.
    json::object resource;
    resource["appid"] = sp->appid;
    resource["sp_mchid"] = sp->mchid;
    resource["sp_openid"] = contract.openid;
    if (contract.sub_openid) {
      resource["sub_openid"] = *contract.sub_openid;
    }
    if (!contract.sub_mchid.empty()) {
      resource["sub_mchid"] = contract.sub_mchid;
    }
    resource["contract_id"] = contract.contract_id;
    resource["bind_state"] = bind_state;
    resource["plate_number"] = contract.plate_number;
    const std::string sealed = json::serialize(resource);
    for (const auto& url : urls) {
      if (auto q = queue_notification(*sp, url, "VEHICLE.USER_STATE_CHANGE", "用户状态变更",
                                      "contract", sealed);
          !q) {
        return std::unexpected(q.error());
      }
    }
  }
  if (auto c = txn->commit(); !c) {
    return c;
  }
  worker_cv.notify_one();
  return {};
}

}  // namespace lanegate::sim
