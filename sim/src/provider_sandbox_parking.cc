// Parking (spec "Parking"): plate service state, parking entries, charge acceptance and
// its query, and the plate-state admin that flips entries. (A taxi fare is an ordinary
// payment: provider_sandbox_pay.cc.)
#include "provider_sandbox_impl.h"

namespace lanegate::sim {
using namespace sandbox;
using Impl = ProviderSandbox::Impl;

namespace {
std::string sub_or_empty(const SubMerchant* s) { return s != nullptr ? s->sub_mchid : ""; }
}  // namespace

Reply Impl::find_service(const httplib::Request& req, const Merchant& m) {
  if (auto bad = check_query(req, find_service_params(m.partner())); bad) {
    return *bad;
  }
  std::string appid = req.get_param_value("appid");
  std::string number = req.get_param_value("plate_number");
  std::string color = req.get_param_value("plate_color");
  std::string openid = req.get_param_value("openid");
  if (appid != m.appid) {
    return error_reply(400, "INVALID_REQUEST", "appid is not bound to this mchid", "appid",
                       "appid/mchid mismatch", "query");
  }
  if (!is_plate_color(color)) {
    json::value shown(color);
    return param_error("plate_color", "not one of BLUE, GREEN, YELLOW, BLACK, WHITE, LIMEGREEN",
                       "query", &shown);
  }
  std::optional<std::string> sub_mchid;
  if (m.partner()) {
    sub_mchid = req.get_param_value("sub_mchid");
  }
  auto sub = resolve_sub(m, sub_mchid, std::nullopt, "query");
  if (auto* refused = std::get_if<Reply>(&sub)) {
    return *refused;
  }
  std::lock_guard lock(db_mu);
  auto st = db().prepare(
      "SELECT service_state, service_open_time FROM plates WHERE plate_number=? AND "
      "plate_color=? AND openid=?");
  if (!st) {
    return system_error(st.error());
  }
  st->bind_all(number, color, openid);
  auto row = st->step();
  json::object o;
  o["plate_number"] = number;
  o["plate_color"] = color;
  o["openid"] = openid;
  if (row && *row) {
    o["service_open_time"] = st->column_text(1);
    o["service_state"] = st->column_text(0);
  } else {
    o["service_state"] = "OUT_SERVICE";
  }
  return Reply{200, json::serialize(o), false};
}

Reply Impl::create_parking(const httplib::Request& req, const Merchant& m) {
  Reply error;
  auto body = parse_body(req, error);
  if (!body) {
    return error;
  }
  if (auto bad = check_fields(*body, parking_entry_fields(m.partner())); bad) {
    return *bad;
  }
  auto out_parking_no = *get_string(*body, "out_parking_no");
  auto number = *get_string(*body, "plate_number");
  auto color = *get_string(*body, "plate_color");
  auto notify_url = *get_string(*body, "notify_url");
  auto start_time = *get_string(*body, "start_time");
  auto parking_name = *get_string(*body, "parking_name");
  auto free_duration = get_int(*body, "free_duration");
  if (out_parking_no.size() > 64) {
    return param_error("out_parking_no", "at most 64 characters");
  }
  if (!is_plate_color(color)) {
    return param_error("plate_color", "not one of BLUE, GREEN, YELLOW, BLACK, WHITE, LIMEGREEN");
  }
  if (!notify_url.starts_with("https://")) {
    return param_error("notify_url", "must be an https URL");
  }
  if (!parse_rfc3339(start_time)) {
    return param_error("start_time", "RFC 3339 with offset");
  }
  if (utf8_length(parking_name) > 128) {
    return param_error("parking_name", "at most 128 characters");
  }
  if (!free_duration || *free_duration < 0) {
    return param_error("free_duration", "seconds >= 0");
  }
  if (!m.has_product("PARKING")) {
    return error_reply(403, "NO_AUTH", "merchant has no parking product", "mchid", "no auth");
  }
  auto sub = resolve_sub(m, get_string(*body, "sub_mchid"), std::nullopt, "body");
  if (auto* refused = std::get_if<Reply>(&sub)) {
    return *refused;
  }
  const std::string sub_mchid = sub_or_empty(std::get<const SubMerchant*>(sub));
  std::lock_guard lock(db_mu);
  // An entry is located only by out_parking_no: a resend returns the same entry.
  auto existing = db().prepare(
      "SELECT id, state, block_reason FROM parkings WHERE mchid=? AND out_parking_no=? AND "
      "sub_mchid=?");
  if (!existing) {
    return system_error(existing.error());
  }
  existing->bind_all(m.mchid, out_parking_no, sub_mchid);
  std::string id;
  std::string state = "NORMAL";
  std::optional<std::string> block_reason;
  if (auto row = existing->step(); row && *row) {
    id = existing->column_text(0);
    state = existing->column_text(1);
    block_reason = existing->column_opt_text(2);
  } else {
    auto plate = db().prepare(
        "SELECT p.service_state, a.overdue FROM plates p LEFT JOIN accounts a ON "
        "a.openid = p.openid WHERE p.plate_number=? AND p.plate_color=?");
    if (!plate) {
      return system_error(plate.error());
    }
    plate->bind_all(number, color);
    auto prow = plate->step();
    if (!prow || !*prow) {
      state = "BLOCKED";
      block_reason = "OUT_SERVICE";
    } else if (plate->column_text(0) != "NORMAL") {
      state = "BLOCKED";
      block_reason = plate->column_text(0);
    } else if (plate->column_int64(1) != 0) {
      state = "BLOCKED";
      block_reason = "OVERDUE";
    }
    id = "PK" + digits(20);
    auto ins = db().prepare(
        "INSERT INTO parkings(id, mchid, out_parking_no, plate_number, plate_color, "
        "request_json, state, block_reason, sub_mchid) VALUES(?,?,?,?,?,?,?,?,?)");
    if (!ins) {
      return system_error(ins.error());
    }
    if (auto r = ins->bind_all(id, m.mchid, out_parking_no, number, color, req.body, state,
                               block_reason, sub_mchid)
                     .run();
        !r) {
      if (r.error().code == Errc::kAlreadyExists) {
        // UNIQUE(mchid, out_parking_no): the number is taken by another sub merchant.
        return error_reply(400, "INVALID_REQUEST", "out_parking_no already used", "out_parking_no",
                           "duplicate out_parking_no");
      }
      return system_error(r.error());
    }
  }
  json::object o = *body;
  o["id"] = id;
  o["state"] = state;
  if (block_reason) {
    o["block_reason"] = *block_reason;
  }
  return Reply{200, json::serialize(o), false};
}

std::optional<TxRow> Impl::load_tx_locked(const std::string& mchid, const std::string& out_trade_no,
                                          std::initializer_list<std::string_view> products,
                                          const std::string& sub_mchid) {
  auto st = db().prepare("SELECT " + std::string(kTxColumns) +
                         " FROM transactions WHERE mchid=? AND out_trade_no=? AND sub_mchid=?");
  if (!st) {
    return std::nullopt;
  }
  st->bind_all(mchid, out_trade_no, sub_mchid);
  auto row = st->step();
  if (!row || !*row) {
    return std::nullopt;
  }
  TxRow t = read_tx(*st);
  for (auto p : products) {
    if (t.product == p) {
      return t;
    }
  }
  return std::nullopt;
}

// Accepted now, settled by the worker (settle_due) a moment later.
Reply Impl::charge_parking(const httplib::Request& req, const Merchant& m) {
  constexpr std::string_view product = "PARKING";
  Reply error;
  auto body = parse_body(req, error);
  if (!body) {
    return error;
  }
  const std::string info_name = "parking_info";
  if (auto bad = check_fields(*body, parking_charge_fields(m.partner())); bad) {
    return *bad;
  }
  auto appid = *get_string(*body, "appid");
  auto description = *get_string(*body, "description");
  auto out_trade_no = *get_string(*body, "out_trade_no");
  auto notify_url = *get_string(*body, "notify_url");
  auto attach = get_string(*body, "attach");
  const auto& amount = body->at("amount").as_object();
  const auto& info = body->at(info_name).as_object();
  if (appid != m.appid) {
    return error_reply(400, "INVALID_REQUEST", "appid is not bound to this mchid", "appid",
                       "appid/mchid mismatch");
  }
  if (utf8_length(description) > 128) {
    return param_error("description", "at most 128 characters");
  }
  if (!is_out_trade_no(out_trade_no)) {
    return param_error("out_trade_no", "1..32 of [0-9A-Za-z_*-]");
  }
  if (get_string(*body, "trade_scene") != std::optional<std::string>(product)) {
    return param_error("trade_scene", "must be " + std::string(product));
  }
  if (!notify_url.starts_with("https://")) {
    return param_error("notify_url", "must be an https URL");
  }
  auto total = get_int(amount, "total");
  if (!total || *total <= 0) {
    return param_error("amount.total", "integer fen > 0");
  }
  if (get_string(amount, "currency").value_or("CNY") != "CNY") {
    return param_error("amount.currency", "must be CNY");
  }
  if (auto p = get_string(*body, "profit_sharing"); p && *p != "Y" && *p != "N") {
    return param_error("profit_sharing", "Y or N");
  }
  auto plate = get_string(info, "plate_number");
  if (!plate || plate->empty()) {
    return param_error(info_name + ".plate_number", "required field missing");
  }
  for (const char* t : {"start_time", "end_time"}) {
    if (!parse_rfc3339(*get_string(info, t))) {
      return param_error("parking_info." + std::string(t), "RFC 3339 with offset");
    }
  }
  if (!is_plate_color(*get_string(info, "plate_color"))) {
    return param_error("parking_info.plate_color",
                       "not one of BLUE, GREEN, YELLOW, BLACK, WHITE, LIMEGREEN");
  }
  if (!m.has_product(product)) {
    return error_reply(403, "NO_AUTH", "merchant has no authority for this product", "mchid",
                       "no auth");
  }
  auto sub_v =
      resolve_sub(m, get_string(*body, "sub_mchid"), get_string(*body, "sub_appid"), "body");
  if (auto* refused = std::get_if<Reply>(&sub_v)) {
    return *refused;
  }
  const SubMerchant* sub = std::get<const SubMerchant*>(sub_v);
  const std::string sub_mchid = sub_or_empty(sub);
  std::lock_guard lock(db_mu);
  // Invariant 2: the same out_trade_no returns the same transaction.
  {
    auto st = db().prepare(
        "SELECT amount, product, sub_mchid FROM transactions WHERE mchid=? AND out_trade_no=?");
    if (!st) {
      return system_error(st.error());
    }
    st->bind_all(m.mchid, out_trade_no);
    if (auto row = st->step(); row && *row) {
      if (st->column_int64(0) != *total || st->column_text(1) != product ||
          st->column_text(2) != sub_mchid) {
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
      auto t = load_tx_locked(m.mchid, out_trade_no, {product}, sub_mchid);
      if (!t) {
        return error_reply(500, "SYSTEM_ERROR", "cannot reload transaction");
      }
      return Reply{200, json::serialize(parking_transaction_json(*t)), lose_reply()};
    }
  }
  std::string openid;
  std::optional<std::string> sub_openid;
  std::string device_id = get_string(info, "device_id").value_or("");
  // out_trade_no is unique per merchant across products: an in-cab payment's number too.
  if (auto taken = db().prepare("SELECT 1 FROM payments WHERE mchid=? AND out_trade_no=?")) {
    taken->bind_all(m.mchid, out_trade_no);
    if (auto row = taken->step(); row && *row) {
      return error_reply(400, "INVALID_REQUEST", "out_trade_no already names a payment",
                         "out_trade_no", "duplicate out_trade_no, different product");
    }
  }
  auto parking_id = *get_string(info, "parking_id");
  auto st = db().prepare(
      "SELECT p.plate_number, b.openid, b.service_state, b.sub_openid FROM parkings p LEFT "
      "JOIN plates b ON b.plate_number = p.plate_number AND b.plate_color = p.plate_color "
      "WHERE p.id=? AND p.mchid=? AND p.sub_mchid=?");
  if (!st) {
    return system_error(st.error());
  }
  st->bind_all(parking_id, m.mchid, sub_mchid);
  auto row = st->step();
  if (!row || !*row) {
    return param_error("parking_info.parking_id", "no such parking entry for this merchant");
  }
  if (st->column_text(0) != *plate) {
    return param_error("parking_info.plate_number", "does not match the parking entry");
  }
  if (st->column_is_null(1) || st->column_text(2) != "NORMAL") {
    return error_reply(400, "INVALID_REQUEST", "plate has no active deduction service",
                       "parking_info.plate_number", "service not NORMAL");
  }
  openid = st->column_text(1);
  sub_openid = st->column_opt_text(3);
  std::string transaction_id = "4200" + digits(24);
  std::int64_t due =
      real_now_ms() + static_cast<std::int64_t>(options.deduction_delay_ms * time_factor.load());
  // The reply names the sub_appid the call gave, else the one registered for the sub
  // merchant.
  std::string sub_appid =
      sub == nullptr ? "" : get_string(*body, "sub_appid").value_or(sub->sub_appid);
  auto ins = db().prepare(
      "INSERT INTO transactions(mchid, appid, out_trade_no, transaction_id, product, "
      "description, amount, trade_state, openid, notify_url, create_time, due_ms, info_json, "
      "attach, device_id, sub_mchid, sub_appid, sub_openid) "
      "VALUES(?,?,?,?,?,?,?,'ACCEPTED',?,?,?,?,?,?,?,?,?,?)");
  if (!ins) {
    return system_error(ins.error());
  }
  if (auto r = ins->bind_all(m.mchid, appid, out_trade_no, transaction_id, std::string(product),
                             description, *total, openid, notify_url, now_text(), due,
                             json::serialize(info), attach, device_id, sub_mchid, sub_appid,
                             sub == nullptr ? std::nullopt : sub_openid)
                   .run();
      !r) {
    return system_error(r.error());
  }
  worker_cv.notify_one();
  auto t = load_tx_locked(m.mchid, out_trade_no, {product}, sub_mchid);
  if (!t) {
    return error_reply(500, "SYSTEM_ERROR", "cannot reload transaction");
  }
  return Reply{200, json::serialize(parking_transaction_json(*t)), lose_reply()};
}

Reply Impl::query_vehicle(const httplib::Request& req, const Merchant& m) {
  if (auto bad = check_query(req, partner_query_params(m.partner())); bad) {
    return *bad;
  }
  std::string no = req.matches[1];
  if (!is_out_trade_no(no)) {
    return param_error("out_trade_no", "1..32 of [0-9A-Za-z_*-]", "path");
  }
  std::optional<std::string> sub_mchid;
  if (m.partner()) {
    sub_mchid = req.get_param_value("sub_mchid");
  }
  auto sub = resolve_sub(m, sub_mchid, std::nullopt, "query");
  if (auto* refused = std::get_if<Reply>(&sub)) {
    return *refused;
  }
  std::lock_guard lock(db_mu);
  auto t =
      load_tx_locked(m.mchid, no, {"PARKING"}, sub_or_empty(std::get<const SubMerchant*>(sub)));
  if (!t) {
    return error_reply(404, "ORDER_NOT_EXIST", "订单不存在", "out_trade_no", "not found", "path");
  }
  return Reply{200, json::serialize(parking_transaction_json(*t)), false};
}

Status Impl::set_plate_state(const std::string& number, const std::string& color,
                             const std::string& state) {
  if (state != "NORMAL" && state != "PAUSE" && state != "OUT_SERVICE") {
    return fail(Errc::kInvalidArgument, "NORMAL, PAUSE or OUT_SERVICE", "service_state");
  }
  std::lock_guard lock(db_mu);
  auto txn = db().begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  auto st =
      db().prepare("UPDATE plates SET service_state=? WHERE plate_number=? AND plate_color=?");
  if (!st) {
    return std::unexpected(st.error());
  }
  if (auto r = st->bind_all(state, number, color).run(); !r) {
    return r;
  }
  if (db().changes() == 0) {
    return fail(Errc::kNotFound, "no such plate binding", "plate_number");
  }
  // Entries of this plate whose state flips get a VEHICLE.ENTRANCE_STATE_CHANGE, queued
  // in the same commit (OUT_SERVICE is reported as REMOVE, per the spec's enum).
  std::string parking_state = state == "NORMAL" ? "NORMAL" : "BLOCKED";
  std::optional<std::string> reason;
  if (state == "PAUSE") {
    reason = "PAUSE";
  } else if (state == "OUT_SERVICE") {
    reason = "REMOVE";
  }
  auto entries = db().prepare(
      "SELECT id, mchid, out_parking_no, request_json, sub_mchid FROM parkings WHERE "
      "plate_number=? AND plate_color=? AND state<>?");
  if (!entries) {
    return std::unexpected(entries.error());
  }
  entries->bind_all(number, color, parking_state);
  struct Flip {
    std::string id, mchid, out_parking_no, request_json, sub_mchid;
  };
  std::vector<Flip> flips;
  while (true) {
    auto row = entries->step();
    if (!row) {
      return std::unexpected(row.error());
    }
    if (!*row) {
      break;
    }
    flips.push_back({entries->column_text(0), entries->column_text(1), entries->column_text(2),
                     entries->column_text(3), entries->column_text(4)});
  }
  for (const auto& f : flips) {
    auto up = db().prepare("UPDATE parkings SET state=?, block_reason=? WHERE id=?");
    if (!up) {
      return std::unexpected(up.error());
    }
    if (auto r = up->bind_all(parking_state, reason, f.id).run(); !r) {
      return r;
    }
    boost::system::error_code ec;
    json::value request = json::parse(f.request_json, ec);
    if (ec || !request.is_object()) {
      continue;
    }
    const auto& ro = request.as_object();
    auto url = get_string(ro, "notify_url").value_or("");
    auto merchant = find_merchant(f.mchid);
    if (url.empty() || !merchant) {
      continue;
    }
    // Spec: sp_mchid, sub_mchid, parking_id, ... (a direct merchant is its own sp_mchid
    // and has no sub_mchid).
    json::object resource;
    resource["sp_mchid"] = f.mchid;
    if (!f.sub_mchid.empty()) {
      resource["sub_mchid"] = f.sub_mchid;
    }
    resource["parking_id"] = f.id;
    resource["out_parking_no"] = f.out_parking_no;
    resource["plate_number"] = number;
    resource["plate_color"] = color;
    resource["start_time"] = get_string(ro, "start_time").value_or("");
    resource["parking_name"] = get_string(ro, "parking_name").value_or("");
    resource["free_duration"] = get_int(ro, "free_duration").value_or(0);
    resource["parking_state"] = parking_state;
    if (reason) {
      resource["blocked_state_description"] = *reason;
    }
    resource["state_update_time"] = now_text();
    if (auto q = queue_notification(*merchant, url, "VEHICLE.ENTRANCE_STATE_CHANGE",
                                    "车辆入场状态变更", "parking", json::serialize(resource));
        !q) {
      return std::unexpected(q.error());
    }
  }
  if (auto c = txn->commit(); !c) {
    return c;
  }
  worker_cv.notify_one();
  return {};
}

}  // namespace lanegate::sim
