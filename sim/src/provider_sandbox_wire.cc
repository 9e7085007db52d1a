// The wire rules shared by every call: error bodies, the per-call field lists (from the
// spec's tables, nothing else) and their checks.
#include <chrono>

#include "provider_sandbox_impl.h"

namespace lanegate::sim::sandbox {

Reply error_reply(int status, std::string_view code, std::string_view message,
                  std::string_view field, std::string_view issue, std::string_view location,
                  const json::value* value) {
  json::object o;
  o["code"] = code;
  o["message"] = message;
  if (!field.empty() || !issue.empty()) {
    json::object d;
    d["field"] = field;
    if (value != nullptr) {
      d["value"] = *value;
    }
    d["issue"] = issue;
    d["location"] = location;
    o["detail"] = std::move(d);
  }
  return Reply{status, json::serialize(o), false};
}

Reply param_error(std::string_view field, std::string_view issue, std::string_view location,
                  const json::value* value) {
  return error_reply(400, "PARAM_ERROR",
                     "参数错误: " + std::string(field) + ": " + std::string(issue), field, issue,
                     location, value);
}

Reply system_error(const Error& e) { return error_reply(500, "SYSTEM_ERROR", e.to_string()); }

std::optional<std::string> get_string(const json::object& o, std::string_view key) {
  if (const json::value* v = o.if_contains(key); v != nullptr && v->is_string()) {
    return std::string(v->as_string());
  }
  return std::nullopt;
}

std::optional<std::int64_t> get_int(const json::object& o, std::string_view key) {
  if (const json::value* v = o.if_contains(key); v != nullptr) {
    if (v->is_int64()) {
      return v->as_int64();
    }
    if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
      return static_cast<std::int64_t>(v->as_uint64());
    }
  }
  return std::nullopt;
}

std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) {
      ++n;
    }
  }
  return n;
}

bool is_plate_color(std::string_view c) {
  return c == "BLUE" || c == "GREEN" || c == "YELLOW" || c == "BLACK" || c == "WHITE" ||
         c == "LIMEGREEN";
}

bool is_out_trade_no(std::string_view s) {
  if (s.empty() || s.size() > 32) {
    return false;
  }
  for (char c : s) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              c == '_' || c == '*' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::int64_t real_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

bool has_kind(const json::value& v, Kind kind) {
  switch (kind) {
    case Kind::kString:
      return v.is_string();
    case Kind::kInteger:
      return v.is_int64() || v.is_uint64();
    case Kind::kBoolean:
      return v.is_bool();
    case Kind::kObject:
    case Kind::kAnyObject:
      return v.is_object();
    case Kind::kArray:
      return v.is_array();
  }
  return false;
}

std::string_view kind_issue(Kind kind) {
  switch (kind) {
    case Kind::kString:
      return "must be a string";
    case Kind::kInteger:
      return "must be an integer";
    case Kind::kBoolean:
      return "must be a boolean";
    case Kind::kObject:
    case Kind::kAnyObject:
      return "must be an object";
    case Kind::kArray:
      return "must be an array";
  }
  return "wrong type";
}

Field str(std::string name, bool required = true) {
  return Field{std::move(name), Kind::kString, required, {}};
}
Field integer(std::string name, bool required = true) {
  return Field{std::move(name), Kind::kInteger, required, {}};
}
Field boolean(std::string name, bool required = true) {
  return Field{std::move(name), Kind::kBoolean, required, {}};
}
Field object(std::string name, bool required, Fields children) {
  return Field{std::move(name), Kind::kObject, required, std::move(children)};
}
// An array whose elements are objects with the given fields.
Field objects(std::string name, bool required, Fields children) {
  return Field{std::move(name), Kind::kArray, required, std::move(children)};
}

void add_partner(Fields& f, bool partner, bool with_sub_appid = true) {
  if (partner) {
    f.push_back(str("sub_mchid"));
    if (with_sub_appid) {
      f.push_back(str("sub_appid", false));
    }
  }
}

}  // namespace

std::optional<Reply> check_fields(const json::object& body, const Fields& fields,
                                  const std::string& prefix) {
  // Unknown first: a field the call does not have is refused whatever else is wrong,
  // as the provider's schema check does.
  for (const auto& [key, value] : body) {
    bool known = false;
    for (const auto& f : fields) {
      known = known || f.name == std::string_view(key);
    }
    if (!known) {
      const bool scalar = !value.is_object() && !value.is_array();
      return param_error(prefix + std::string(key), "unknown field: not in this call's field list",
                         "body", scalar ? &value : nullptr);
    }
  }
  for (const auto& f : fields) {
    const std::string path = prefix + f.name;
    const json::value* v = body.if_contains(f.name);
    if (v == nullptr || v->is_null()) {
      if (f.required) {
        return param_error(path, "required field missing");
      }
      continue;
    }
    if (!has_kind(*v, f.kind)) {
      return param_error(path, kind_issue(f.kind), "body", v->is_object() ? nullptr : v);
    }
    if (f.kind == Kind::kString && f.required && v->as_string().empty()) {
      return param_error(path, "required field is empty", "body", v);
    }
    if (f.kind == Kind::kObject) {
      if (auto r = check_fields(v->as_object(), f.children, path + "."); r) {
        return r;
      }
    }
    if (f.kind == Kind::kArray && !f.children.empty()) {
      const auto& elements = v->as_array();
      for (std::size_t i = 0; i < elements.size(); ++i) {
        const std::string at = path + "[" + std::to_string(i) + "]";
        if (!elements[i].is_object()) {
          return param_error(at, "must be an object");
        }
        if (auto r = check_fields(elements[i].as_object(), f.children, at + "."); r) {
          return r;
        }
      }
    }
  }
  return std::nullopt;
}

std::optional<Reply> check_query(const httplib::Request& req, const Params& params) {
  for (const auto& [key, value] : req.params) {
    bool known = false;
    for (const auto& p : params) {
      known = known || p.name == key;
    }
    json::value shown(value);
    if (!known) {
      return param_error(key, "unknown query parameter: not in this call's field list", "query",
                         &shown);
    }
    if (req.params.count(key) > 1) {
      return param_error(key, "given more than once", "query", &shown);
    }
  }
  for (const auto& p : params) {
    if (p.required && req.get_param_value(p.name).empty()) {
      return param_error(p.name, "required query parameter missing", "query");
    }
  }
  return std::nullopt;
}

// Spec "Parking", "create parking entry": every field required; sub_mchid for partners.
Fields parking_entry_fields(bool partner) {
  Fields f;
  add_partner(f, partner, false);  // the spec lists no sub_appid for entries
  for (const char* s : {"out_parking_no", "plate_number", "plate_color", "notify_url", "start_time",
                        "parking_name"}) {
    f.push_back(str(s));
  }
  f.push_back(integer("free_duration"));
  return f;
}

// Spec "Parking", "charge acceptance".
Fields parking_charge_fields(bool partner) {
  Fields f{str("appid")};
  add_partner(f, partner);
  for (const char* s : {"description", "out_trade_no", "trade_scene", "notify_url"}) {
    f.push_back(str(s));
  }
  f.push_back(object("amount", true, {integer("total"), str("currency")}));
  f.push_back(object(
      "parking_info", true,
      {str("parking_id"), str("plate_number"), str("plate_color"), str("start_time"),
       str("end_time"), str("parking_name"), integer("charging_duration"), str("device_id")}));
  f.push_back(str("attach", false));
  f.push_back(str("goods_tag", false));
  f.push_back(str("profit_sharing", false));
  return f;
}

// Spec "ETC highway deduction", "deduct". No notify_url: the result is in the reply.
Fields highway_charge_fields() {
  return Fields{
      str("out_trade_no"),
      str("appid"),
      str("sub_mchid"),
      str("sub_appid", false),
      str("contract_id"),
      str("description"),
      str("attach", false),
      str("goods_tag", false),
      object("highway_info", true,
             {str("plate_number"), str("start_time"), str("end_time"), str("channel_type"),
              str("car_type", false), str("entrance"), str("exit", false),
              integer("carrying_capacity", false), str("carrying_range", false)}),
      object("amount", true, {integer("total"), str("currency", false)}),
      object("device_info", false, {str("device_id", false), str("device_ip")}),
  };
}

Params find_service_params(bool partner) {
  Params p{{"appid"}, {"plate_number"}, {"plate_color"}, {"openid"}};
  if (partner) {
    p.push_back({"sub_mchid"});
  }
  return p;
}

Params partner_query_params(bool partner) { return partner ? Params{{"sub_mchid"}} : Params{}; }

// Spec "Taxi: in-cab payment": the ids of a /v3/pay call. Direct: appid, mchid. Partner:
// sp_appid, sp_mchid, sub_appid?, sub_mchid; the spec makes sp_appid required on pay and
// Native (the provider's pages mark it optional: the spec wins) and optional on reverse.
namespace {
void add_pay_ids(Fields& f, bool partner, bool sp_appid_required) {
  if (partner) {
    f.push_back(str("sp_appid", sp_appid_required));
    f.push_back(str("sp_mchid"));
    f.push_back(str("sub_appid", false));
    f.push_back(str("sub_mchid"));
  } else {
    f.push_back(str("appid"));
    f.push_back(str("mchid"));
  }
}
}  // namespace

// Spec "Payment code", pay request. Types from the provider's page: support_fapiao and
// settle_info.profit_sharing are booleans; detail is the page's 优惠功能 object (the spec
// names it without fields).
Fields codepay_fields(bool partner) {
  Fields f;
  add_pay_ids(f, partner, true);
  f.push_back(str("description"));
  f.push_back(str("out_trade_no"));
  f.push_back(str("attach", false));
  f.push_back(str("goods_tag", false));
  f.push_back(boolean("support_fapiao", false));
  f.push_back(object("payer", true, {str("auth_code")}));
  f.push_back(object("amount", true, {integer("total"), str("currency", false)}));
  f.push_back(object("scene_info", true,
                     {str("device_id", false), str("device_ip", false),
                      object("store_info", true, {str("id", false), str("out_id", false)})}));
  f.push_back(
      object("detail", false,
             {integer("cost_price", false), str("invoice_id", false),
              objects("goods_detail", true,
                      {str("merchant_goods_id"), str("wxpay_goods_id", false),
                       str("goods_name", false), integer("quantity"), integer("unit_price")})}));
  f.push_back(object("settle_info", false, {boolean("profit_sharing", false)}));
  return f;
}

// Spec "Native". Only the spec's fields: the provider's page also lists goods_tag,
// limit_pay, support_fapiao, detail and scene_info.store_info, which the spec leaves out,
// so they are refused like any unknown field. The spec writes amount{total, currency}
// without "?": currency is required here (the page marks it optional).
Fields native_fields(bool partner) {
  Fields f;
  add_pay_ids(f, partner, true);
  f.push_back(str("description"));
  f.push_back(str("out_trade_no"));
  f.push_back(str("time_expire", false));
  f.push_back(str("attach", false));
  f.push_back(str("notify_url"));
  f.push_back(object("amount", true, {integer("total"), str("currency")}));
  f.push_back(
      object("scene_info", false, {str("payer_client_ip", false), str("device_id", false)}));
  return f;
}

// Spec "Payment code", reverse: {appid, mchid} / {sp_appid?, sp_mchid, sub_appid?, sub_mchid}.
Fields reverse_fields(bool partner) {
  Fields f;
  add_pay_ids(f, partner, false);
  return f;
}

// Spec "Native", close: {mchid} / {sp_mchid, sub_mchid}.
Fields close_fields(bool partner) {
  return partner ? Fields{str("sp_mchid"), str("sub_mchid")} : Fields{str("mchid")};
}

// Spec "Payment code", query: ?mchid= / ?sp_mchid=&sub_mchid=.
Params pay_query_params(bool partner) {
  return partner ? Params{{"sp_mchid"}, {"sub_mchid"}} : Params{{"mchid"}};
}

bool is_auth_code(std::string_view s) {
  if (s.size() != 18 || s[0] != '1' || s[1] < '0' || s[1] > '5') {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

Params contract_by_user_params() { return Params{{"sub_mchid"}, {"plan_id"}, {"plate_number"}}; }

// Spec "Trade bill": bill_date, bill_type, tar_type; partners may narrow to a sub_mchid.
Params trade_bill_params(bool partner) {
  Params p{{"bill_date"}, {"bill_type", false}, {"tar_type", false}};
  if (partner) {
    p.push_back({"sub_mchid", false});
  }
  return p;
}

TxRow read_tx(const Statement& st) {
  TxRow t;
  t.seq = st.column_int64(0);
  t.mchid = st.column_text(1);
  t.appid = st.column_text(2);
  t.out_trade_no = st.column_text(3);
  t.transaction_id = st.column_text(4);
  t.product = st.column_text(5);
  t.description = st.column_text(6);
  t.amount = st.column_int64(7);
  t.trade_state = st.column_text(8);
  t.trade_state_description = st.column_opt_text(9);
  t.openid = st.column_text(10);
  t.notify_url = st.column_text(11);
  t.create_time = st.column_text(12);
  t.success_time = st.column_opt_text(13);
  t.info_json = st.column_text(14);
  t.attach = st.column_opt_text(15);
  t.device_id = st.column_text(16);
  t.sub_mchid = st.column_text(17);
  t.sub_appid = st.column_text(18);
  t.sub_openid = st.column_opt_text(19);
  t.device_json = st.column_opt_text(20);
  t.refunded = st.column_int64(21);
  t.submissions = static_cast<int>(st.column_int64(22));
  return t;
}

namespace {
bool paid(const TxRow& t) { return t.trade_state == "SUCCESS" || t.trade_state == "REFUND"; }

json::object amount_json(const TxRow& t) {
  json::object amount;
  amount["total"] = t.amount;
  amount["currency"] = "CNY";
  if (paid(t)) {
    amount["payer_total"] = t.amount;
    amount["discount_total"] = 0;
  }
  return amount;
}
}  // namespace

json::object parking_transaction_json(const TxRow& t) {
  json::object o;
  o["appid"] = t.appid;
  if (!t.sub_mchid.empty() && !t.sub_appid.empty()) {
    o["sub_appid"] = t.sub_appid;
  }
  o["sp_mchid"] = t.mchid;  // direct merchants: the merchant itself
  if (!t.sub_mchid.empty()) {
    o["sub_mchid"] = t.sub_mchid;
  }
  o["description"] = t.description;
  o["create_time"] = t.create_time;
  o["out_trade_no"] = t.out_trade_no;
  o["transaction_id"] = t.transaction_id;
  o["trade_state"] = t.trade_state;
  if (t.trade_state_description) {
    o["trade_state_description"] = *t.trade_state_description;
  }
  if (t.success_time) {
    o["success_time"] = *t.success_time;
  }
  if (paid(t)) {
    o["bank_type"] = "OTHERS";
    o["user_repaid"] = "N";
  }
  if (t.attach) {
    o["attach"] = *t.attach;
  }
  o["trade_scene"] = t.product;
  boost::system::error_code ec;
  json::value info = json::parse(t.info_json, ec);
  if (!ec) {
    o["parking_info"] = info;
  }
  json::object payer;
  payer["openid"] = t.openid;
  if (!t.sub_mchid.empty() && t.sub_openid) {
    payer["sub_openid"] = *t.sub_openid;
  }
  o["payer"] = std::move(payer);
  o["amount"] = amount_json(t);
  return o;
}

json::object etc_transaction_json(const TxRow& t) {
  json::object o;
  o["mchid"] = t.mchid;
  o["sub_mchid"] = t.sub_mchid;
  o["appid"] = t.appid;
  if (!t.sub_appid.empty()) {
    o["sub_appid"] = t.sub_appid;
  }
  o["out_trade_no"] = t.out_trade_no;
  o["transaction_id"] = t.transaction_id;
  if (t.attach) {
    o["attach"] = *t.attach;
  }
  o["trade_type"] = kVehicleTradeType;
  if (paid(t)) {
    o["bank_type"] = "OTHERS";
  }
  if (t.success_time) {
    o["success_time"] = *t.success_time;
  }
  o["trade_state"] = t.trade_state;
  if (t.trade_state_description) {
    o["trade_state_desc"] = *t.trade_state_description;
  }
  json::object payer;
  payer["sp_openid"] = t.openid;
  if (t.sub_openid) {
    payer["sub_openid"] = *t.sub_openid;
  }
  o["payer"] = std::move(payer);
  o["amount"] = amount_json(t);
  if (t.device_json) {
    boost::system::error_code ec;
    json::value d = json::parse(*t.device_json, ec);
    if (!ec) {
      o["device_info"] = d;
    }
  }
  return o;
}

}  // namespace lanegate::sim::sandbox
