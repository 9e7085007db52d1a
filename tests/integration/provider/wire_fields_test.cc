// Contract tests of WechatPayClient's wire, in both modes (direct merchant and service
// provider). A recording HTTPS server stands in for the provider: it keeps every request
// exactly as it arrived and answers with canned replies it signs itself. Every expectation
// is transcribed from the spec, /work/shared/specs/payment-provider-wechatpay-v3.md (cited
// per table below as "spec: <section>, <row>"), never from the client's encoder: a field the
// spec does not list, a required field missing, a wrong type or a wrong merchant is what the
// real provider would refuse with PARAM_ERROR / SIGN_ERROR, and what a user would notice as
// parked charges and a barrier that does not open.
//
// The reply side is checked too: a signed canned reply must map to the fields the gateway
// acts on (merchant, sub-merchant, payer, trade_state).
#include <httplib.h>

#include <atomic>
#include <cctype>
#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <regex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "../../unit/provider/provider_test_support.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/pki.h"
#include "gateway/provider_wechatpay.h"

namespace provider_test {
namespace {

namespace json = boost::json;
using namespace lanegate;
using namespace lanegate::gateway;

// --- the configured merchants (both modes) -------------------------------------------------

constexpr const char* kDirectMchid = "1900000001";
constexpr const char* kDirectAppid = "wxd678efh567hg6787";
constexpr const char* kSpMchid = "1900000100";
constexpr const char* kSpAppid = "wx8888888888888888";
constexpr const char* kSubMchid = "1900000109";
constexpr const char* kSubAppid = "wxd678efh567hg6999";
constexpr const char* kNotifyUrl = "https://gw.example.cn/v1/provider/notify";
constexpr const char* kChannelType = "MTC";  // not the default "ETC": proves it is configured

constexpr const char* kPlate = "粤B12345";
constexpr const char* kPlateOnTheWire = "%E7%B2%A4B12345";  // spec: "Signing a request"
constexpr const char* kOpenid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";
constexpr const char* kContract = "ETC2026112200000000000000000001";

// Spec: "Times are RFC 3339 with offset, e.g. 2026-11-22T13:29:35+08:00".
const SystemTime kEntryTime{std::chrono::seconds(1795318175)};  // 2026-11-22T11:29:35+08:00
const SystemTime kExitTime{std::chrono::seconds(1795325375)};   // 2026-11-22T13:29:35+08:00
constexpr const char* kEntryRfc3339 = "2026-11-22T11:29:35+08:00";
constexpr const char* kExitRfc3339 = "2026-11-22T13:29:35+08:00";

enum class Mode { kDirect, kPartner };
const char* mode_name(Mode m) { return m == Mode::kDirect ? "direct" : "partner"; }
const char* caller_mchid(Mode m) { return m == Mode::kDirect ? kDirectMchid : kSpMchid; }
const char* caller_appid(Mode m) { return m == Mode::kDirect ? kDirectAppid : kSpAppid; }

// --- field tables ----------------------------------------------------------------------------

enum class Need {
  kRequired,
  kOptional,
  kWithParent,  // required whenever its parent object is sent
};
enum class In { kBoth, kPartnerOnly, kDirectOnly };
enum class Kind { kString, kInteger, kObject, kBoolean };

struct FieldRule {
  std::string_view path;  // dotted: "parking_info.start_time"
  Need need;
  In allowed_in;
  Kind kind;
};

// spec: Parking, "plate service state": GET …/services/find?appid=&plate_number=&plate_color=
// &openid= (+sub_mchid), "all required"; spec: Direct vs partner, parking: sub_mchid "required:
// … query of GETs".
constexpr FieldRule kPlateServiceQuery[] = {
    {"appid", Need::kRequired, In::kBoth, Kind::kString},
    {"plate_number", Need::kRequired, In::kBoth, Kind::kString},
    {"plate_color", Need::kRequired, In::kBoth, Kind::kString},
    {"openid", Need::kRequired, In::kBoth, Kind::kString},
    {"sub_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
};

// spec: Parking, "create parking entry": sub_mchid (partner), out_parking_no, plate_number,
// plate_color, notify_url (https only), start_time, parking_name, free_duration (s).
constexpr FieldRule kParkingEntryBody[] = {
    {"sub_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
    {"out_parking_no", Need::kRequired, In::kBoth, Kind::kString},
    {"plate_number", Need::kRequired, In::kBoth, Kind::kString},
    {"plate_color", Need::kRequired, In::kBoth, Kind::kString},
    {"notify_url", Need::kRequired, In::kBoth, Kind::kString},
    {"start_time", Need::kRequired, In::kBoth, Kind::kString},
    {"parking_name", Need::kRequired, In::kBoth, Kind::kString},
    {"free_duration", Need::kRequired, In::kBoth, Kind::kInteger},
};

// spec: Parking, "charge acceptance": appid, sub_appid?, sub_mchid (partner), description,
// out_trade_no, trade_scene=PARKING, notify_url (https), amount{total, currency="CNY"},
// parking_info{parking_id, plate_number, plate_color, start_time, end_time, parking_name,
// charging_duration (s), device_id}; optional attach, goods_tag, profit_sharing.
// spec: Direct vs partner, parking: "no sub_* fields" in direct mode.
constexpr FieldRule kParkingChargeBody[] = {
    {"appid", Need::kRequired, In::kBoth, Kind::kString},
    {"sub_appid", Need::kOptional, In::kPartnerOnly, Kind::kString},
    {"sub_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
    {"description", Need::kRequired, In::kBoth, Kind::kString},
    {"out_trade_no", Need::kRequired, In::kBoth, Kind::kString},
    {"trade_scene", Need::kRequired, In::kBoth, Kind::kString},
    {"notify_url", Need::kRequired, In::kBoth, Kind::kString},
    {"amount", Need::kRequired, In::kBoth, Kind::kObject},
    {"amount.total", Need::kRequired, In::kBoth, Kind::kInteger},
    {"amount.currency", Need::kRequired, In::kBoth, Kind::kString},
    {"parking_info", Need::kRequired, In::kBoth, Kind::kObject},
    {"parking_info.parking_id", Need::kRequired, In::kBoth, Kind::kString},
    {"parking_info.plate_number", Need::kRequired, In::kBoth, Kind::kString},
    {"parking_info.plate_color", Need::kRequired, In::kBoth, Kind::kString},
    {"parking_info.start_time", Need::kRequired, In::kBoth, Kind::kString},
    {"parking_info.end_time", Need::kRequired, In::kBoth, Kind::kString},
    {"parking_info.parking_name", Need::kRequired, In::kBoth, Kind::kString},
    {"parking_info.charging_duration", Need::kRequired, In::kBoth, Kind::kInteger},
    {"parking_info.device_id", Need::kRequired, In::kBoth, Kind::kString},
    {"attach", Need::kOptional, In::kBoth, Kind::kString},
    {"goods_tag", Need::kOptional, In::kBoth, Kind::kString},
    {"profit_sharing", Need::kOptional, In::kBoth, Kind::kString},
};

// spec: ETC highway deduction, "deduct": out_trade_no, appid, sub_mchid, sub_appid?,
// contract_id, description, attach?, goods_tag?, highway_info{plate_number, start_time
// (entry), end_time (exit), channel_type, car_type?, entrance, exit?, carrying_capacity?
// (integer), carrying_range? (string)}, amount{total, currency}, device_info?{device_id?,
// device_ip (required if object sent)}. "There is no notify_url"; no plate_color is listed.
constexpr FieldRule kEtcDeductBody[] = {
    {"out_trade_no", Need::kRequired, In::kBoth, Kind::kString},
    {"appid", Need::kRequired, In::kBoth, Kind::kString},
    {"sub_mchid", Need::kRequired, In::kBoth, Kind::kString},
    {"sub_appid", Need::kOptional, In::kBoth, Kind::kString},
    {"contract_id", Need::kRequired, In::kBoth, Kind::kString},
    {"description", Need::kRequired, In::kBoth, Kind::kString},
    {"attach", Need::kOptional, In::kBoth, Kind::kString},
    {"goods_tag", Need::kOptional, In::kBoth, Kind::kString},
    {"highway_info", Need::kRequired, In::kBoth, Kind::kObject},
    {"highway_info.plate_number", Need::kRequired, In::kBoth, Kind::kString},
    {"highway_info.start_time", Need::kRequired, In::kBoth, Kind::kString},
    {"highway_info.end_time", Need::kRequired, In::kBoth, Kind::kString},
    {"highway_info.channel_type", Need::kRequired, In::kBoth, Kind::kString},
    {"highway_info.car_type", Need::kOptional, In::kBoth, Kind::kString},
    {"highway_info.entrance", Need::kRequired, In::kBoth, Kind::kString},
    {"highway_info.exit", Need::kOptional, In::kBoth, Kind::kString},
    {"highway_info.carrying_capacity", Need::kOptional, In::kBoth, Kind::kInteger},
    {"highway_info.carrying_range", Need::kOptional, In::kBoth, Kind::kString},
    {"amount", Need::kRequired, In::kBoth, Kind::kObject},
    {"amount.total", Need::kRequired, In::kBoth, Kind::kInteger},
    {"amount.currency", Need::kRequired, In::kBoth, Kind::kString},
    {"device_info", Need::kOptional, In::kBoth, Kind::kObject},
    {"device_info.device_id", Need::kOptional, In::kBoth, Kind::kString},
    {"device_info.device_ip", Need::kWithParent, In::kBoth, Kind::kString},
};

// spec: Parking, "query order": GET /v3/vehicle/transactions/out-trade-no/{no} (+sub_mchid).
constexpr FieldRule kParkingQueryQuery[] = {
    {"sub_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
};

// spec: ETC, "query" …/etc/transactions/out-trade-no/{no}?sub_mchid= and "contract by id"
// …/etc/contracts/{contract_id}?sub_mchid= (partner-only API).
constexpr FieldRule kEtcGetQuery[] = {
    {"sub_mchid", Need::kRequired, In::kBoth, Kind::kString},
};

// spec: Trade bill, GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL (tar_type=GZIP
// optional); spec: Direct vs partner, trade bill: "optional sub_mchid query" (partner).
constexpr FieldRule kTradeBillQuery[] = {
    {"bill_date", Need::kRequired, In::kBoth, Kind::kString},
    {"bill_type", Need::kRequired, In::kBoth, Kind::kString},
    {"tar_type", Need::kOptional, In::kBoth, Kind::kString},
    {"sub_mchid", Need::kOptional, In::kPartnerOnly, Kind::kString},
};

// spec: Taxi: in-cab payment, "Payment code", pay request: appid, mchid (or the partner ids),
// description, out_trade_no, attach?, goods_tag?, support_fapiao?, payer{auth_code},
// amount{total, currency?}, scene_info{device_id?, device_ip?, store_info{id?, out_id?}}
// ("store_info required"), detail?, settle_info?{profit_sharing}. "No notify_url".
// spec: Direct vs partner, payment code: direct body appid, mchid; partner sp_appid, sp_mchid,
// sub_appid?, sub_mchid.
constexpr FieldRule kCodepayBody[] = {
    {"appid", Need::kRequired, In::kDirectOnly, Kind::kString},
    {"mchid", Need::kRequired, In::kDirectOnly, Kind::kString},
    {"sp_appid", Need::kRequired, In::kPartnerOnly, Kind::kString},
    {"sp_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
    {"sub_appid", Need::kOptional, In::kPartnerOnly, Kind::kString},
    {"sub_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
    {"description", Need::kRequired, In::kBoth, Kind::kString},
    {"out_trade_no", Need::kRequired, In::kBoth, Kind::kString},
    {"attach", Need::kOptional, In::kBoth, Kind::kString},
    {"goods_tag", Need::kOptional, In::kBoth, Kind::kString},
    {"support_fapiao", Need::kOptional, In::kBoth, Kind::kBoolean},
    {"payer", Need::kRequired, In::kBoth, Kind::kObject},
    {"payer.auth_code", Need::kRequired, In::kBoth, Kind::kString},
    {"amount", Need::kRequired, In::kBoth, Kind::kObject},
    {"amount.total", Need::kRequired, In::kBoth, Kind::kInteger},
    {"amount.currency", Need::kOptional, In::kBoth, Kind::kString},
    {"scene_info", Need::kRequired, In::kBoth, Kind::kObject},
    {"scene_info.device_id", Need::kOptional, In::kBoth, Kind::kString},
    {"scene_info.device_ip", Need::kOptional, In::kBoth, Kind::kString},
    {"scene_info.store_info", Need::kRequired, In::kBoth, Kind::kObject},
    {"scene_info.store_info.id", Need::kOptional, In::kBoth, Kind::kString},
    {"scene_info.store_info.out_id", Need::kOptional, In::kBoth, Kind::kString},
    {"detail", Need::kOptional, In::kBoth, Kind::kObject},
    {"settle_info", Need::kOptional, In::kBoth, Kind::kObject},
    {"settle_info.profit_sharing", Need::kOptional, In::kBoth, Kind::kBoolean},
};

// spec: Taxi: in-cab payment, "Native": appid, mchid (or partner ids), description,
// out_trade_no, time_expire?, attach?, notify_url (required, https), amount{total, currency},
// scene_info?{payer_client_ip?, device_id?}.
constexpr FieldRule kNativeBody[] = {
    {"appid", Need::kRequired, In::kDirectOnly, Kind::kString},
    {"mchid", Need::kRequired, In::kDirectOnly, Kind::kString},
    {"sp_appid", Need::kRequired, In::kPartnerOnly, Kind::kString},
    {"sp_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
    {"sub_appid", Need::kOptional, In::kPartnerOnly, Kind::kString},
    {"sub_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
    {"description", Need::kRequired, In::kBoth, Kind::kString},
    {"out_trade_no", Need::kRequired, In::kBoth, Kind::kString},
    {"time_expire", Need::kOptional, In::kBoth, Kind::kString},
    {"attach", Need::kOptional, In::kBoth, Kind::kString},
    {"notify_url", Need::kRequired, In::kBoth, Kind::kString},
    {"amount", Need::kRequired, In::kBoth, Kind::kObject},
    {"amount.total", Need::kRequired, In::kBoth, Kind::kInteger},
    {"amount.currency", Need::kRequired, In::kBoth, Kind::kString},
    {"scene_info", Need::kOptional, In::kBoth, Kind::kObject},
    {"scene_info.payer_client_ip", Need::kOptional, In::kBoth, Kind::kString},
    {"scene_info.device_id", Need::kOptional, In::kBoth, Kind::kString},
};

// spec: Taxi, "Payment code" table, query: …/out-trade-no/{no}?mchid= (partner
// ?sp_mchid=&sub_mchid=); Direct vs partner: "queries take sp_mchid and sub_mchid".
constexpr FieldRule kPaymentQueryQuery[] = {
    {"mchid", Need::kRequired, In::kDirectOnly, Kind::kString},
    {"sp_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
    {"sub_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
};

// spec: Taxi, "Payment code" table, reverse: body {appid, mchid} / partner {sp_appid?,
// sp_mchid, sub_appid?, sub_mchid}.
constexpr FieldRule kReverseBody[] = {
    {"appid", Need::kRequired, In::kDirectOnly, Kind::kString},
    {"mchid", Need::kRequired, In::kDirectOnly, Kind::kString},
    {"sp_appid", Need::kOptional, In::kPartnerOnly, Kind::kString},
    {"sp_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
    {"sub_appid", Need::kOptional, In::kPartnerOnly, Kind::kString},
    {"sub_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
};

// spec: Taxi, "Native", close: body {mchid} (partner {sp_mchid, sub_mchid}), reply 204.
constexpr FieldRule kCloseBody[] = {
    {"mchid", Need::kRequired, In::kDirectOnly, Kind::kString},
    {"sp_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
    {"sub_mchid", Need::kRequired, In::kPartnerOnly, Kind::kString},
};

void flatten(const json::object& o, const std::string& prefix,
             std::map<std::string, const json::value*>& out) {
  for (const auto& kv : o) {
    std::string path =
        prefix.empty() ? std::string(kv.key()) : prefix + "." + std::string(kv.key());
    out[path] = &kv.value();
    if (kv.value().is_object()) {
      flatten(kv.value().as_object(), path, out);
    }
  }
}

bool has_kind(const json::value& v, Kind kind) {
  switch (kind) {
    case Kind::kString:
      return v.is_string();
    case Kind::kInteger:
      return v.is_int64() || v.is_uint64();
    case Kind::kObject:
      return v.is_object();
    case Kind::kBoolean:
      return v.is_bool();
  }
  return false;
}

// Everything in `sent` that the spec's table for `call` would refuse in `mode`; empty = ok.
std::string field_violations(std::string_view call, const json::object& sent,
                             std::span<const FieldRule> rules, Mode mode) {
  std::map<std::string, const json::value*> fields;
  flatten(sent, "", fields);
  auto allowed = [&](const FieldRule& r) {
    return r.allowed_in == In::kBoth || (r.allowed_in == In::kPartnerOnly) == (mode == Mode::kPartner);
  };
  auto rule_of = [&](std::string_view path) -> const FieldRule* {
    for (const auto& r : rules) {
      if (r.path == path && allowed(r)) {
        return &r;
      }
    }
    return nullptr;
  };
  std::string out;
  for (const auto& [path, value] : fields) {
    const auto dot = path.rfind('.');
    if (dot != std::string::npos && rule_of(path.substr(0, dot)) == nullptr) {
      continue;  // its parent is already reported
    }
    const FieldRule* r = rule_of(path);
    if (r == nullptr) {
      out += "\n  `" + path + "` = " + json::serialize(*value) + " is not a field of " +
             std::string(call) + " in " + mode_name(mode) + " mode (the provider refuses it)";
    } else if (!has_kind(*value, r->kind)) {
      out += "\n  `" + path + "` = " + json::serialize(*value) + " has the wrong JSON type";
    }
  }
  for (const auto& r : rules) {
    if (!allowed(r)) {
      continue;
    }
    const std::string path(r.path);
    if (fields.contains(path)) {
      continue;
    }
    const auto dot = path.rfind('.');
    const bool parent_sent = dot != std::string::npos && fields.contains(path.substr(0, dot));
    if (r.need == Need::kRequired || (r.need == Need::kWithParent && parent_sent)) {
      out += "\n  required `" + path + "` is missing from " + std::string(call) + " in " +
             mode_name(mode) + " mode";
    }
  }
  return out;
}

// --- the wire as recorded --------------------------------------------------------------------

struct RecordedRequest {
  std::string method;
  std::string target;  // exactly as on the request line
  httplib::Headers headers;
  std::string body;

  std::string path() const { return target.substr(0, target.find('?')); }
  std::string raw_query() const {
    const auto q = target.find('?');
    return q == std::string::npos ? std::string() : target.substr(q + 1);
  }
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The query as a JSON object of decoded strings (so the field tables apply); a parameter
// sent twice is reported in `duplicates`.
json::object query_params(const RecordedRequest& r, std::string* duplicates) {
  json::object o;
  const std::string q = r.raw_query();
  std::size_t start = 0;
  while (start < q.size()) {
    std::size_t end = q.find('&', start);
    if (end == std::string::npos) {
      end = q.size();
    }
    const std::string pair = q.substr(start, end - start);
    const auto eq = pair.find('=');
    const std::string key = percent_decode(pair.substr(0, eq));
    const std::string value = eq == std::string::npos ? "" : percent_decode(pair.substr(eq + 1));
    if (o.contains(key)) {
      *duplicates += " " + key;
    }
    o[key] = value;
    start = end + 1;
  }
  return o;
}

json::object body_object(const RecordedRequest& r) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  EXPECT_FALSE(ec) << "body is not JSON: " << r.body;
  if (ec || !v.is_object()) {
    return {};
  }
  return v.as_object();
}

// "a.b.c" in `o`, as a string ("<absent>" / the JSON text when not a string).
std::string at(const json::object& o, std::string_view dotted) {
  const json::object* cur = &o;
  std::size_t start = 0;
  for (;;) {
    const auto dot = dotted.find('.', start);
    const auto key =
        dotted.substr(start, dot == std::string_view::npos ? dotted.npos : dot - start);
    const json::value* v = cur->if_contains(key);
    if (v == nullptr) {
      return "<absent>";
    }
    if (dot == std::string_view::npos) {
      return v->is_string() ? std::string(v->as_string()) : json::serialize(*v);
    }
    if (!v->is_object()) {
      return "<absent>";
    }
    cur = &v->as_object();
    start = dot + 1;
  }
}

// --- the recording provider ------------------------------------------------------------------

// HTTPS on 127.0.0.1 (demo server certificate, any port). Records every request and answers
// (method, path) with the reply set for it, signed as the spec's "Verifying a response"
// says: TIMESTAMP\nNONCE\nBODY\n, SHA256withRSA with the demo platform key, Wechatpay-Serial =
// the platform certificate's serial. Anything without a reply gets an unsigned 404.
class RecordingProvider {
 public:
  RecordingProvider()
      : server_((demo_pki() / "server.pem").c_str(), (demo_pki() / "server.key").c_str()) {
    auto key = pki::load_private_key(demo_pki() / "platform.key");
    EXPECT_TRUE(key) << key.error().to_string();
    if (key) {
      platform_key_ = *key;
    }
    platform_serial_ = trim(read_file(demo_pki() / "platform.serial"));
    auto handle = [this](const httplib::Request& req, httplib::Response& res) { answer(req, res); };
    server_.Get(".*", handle);
    server_.Post(".*", handle);
    port_ = server_.bind_to_any_port("127.0.0.1");
    EXPECT_GT(port_, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the listen loop runs is a no-op in cpp-httplib 0.11, and the join in
    // the destructor would then wait forever (a test that sends nothing is that quick).
    for (int i = 0; i < 5000 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_TRUE(server_.is_running());
  }
  ~RecordingProvider() {
    server_.stop();
    thread_.join();
  }
  RecordingProvider(const RecordingProvider&) = delete;
  RecordingProvider& operator=(const RecordingProvider&) = delete;

  std::string base_url() const { return "https://127.0.0.1:" + std::to_string(port_); }

  // `path` without the query. `signed_reply` false: sent as is (the bill file).
  void reply(const std::string& method, const std::string& path, std::string body,
             bool signed_reply = true) {
    std::lock_guard lock(mu_);
    replies_[method + " " + path] = Canned{std::move(body), signed_reply};
  }

  // Another status (error replies go unsigned, as the client does not verify them), a
  // reply held back for `delay`, or a 2xx whose signature does not match its body.
  struct Shape {
    int status = 200;
    std::chrono::milliseconds delay{0};
    bool bad_signature = false;
  };
  void reply_shaped(const std::string& method, const std::string& path, std::string body,
                    Shape shape) {
    std::lock_guard lock(mu_);
    replies_[method + " " + path] = Canned{std::move(body), shape.status < 300, shape};
  }

  std::vector<RecordedRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  struct Canned {
    std::string body;
    bool signed_reply = true;
    Shape shape;
  };

  void answer(const httplib::Request& req, httplib::Response& res) {
    RecordedRequest r{req.method, req.target, req.headers, req.body};
    Canned canned;
    bool found = false;
    {
      std::lock_guard lock(mu_);
      requests_.push_back(r);
      if (auto it = replies_.find(r.method + " " + r.path()); it != replies_.end()) {
        canned = it->second;
        found = true;
      }
    }
    if (!found) {
      res.status = 404;
      res.set_content(R"({"code":"NOT_FOUND","message":"no canned reply in the wire test"})",
                      "application/json");
      return;
    }
    if (canned.shape.delay.count() > 0) {
      std::this_thread::sleep_for(canned.shape.delay);
    }
    res.status = canned.shape.status;
    if (canned.signed_reply) {
      const std::string timestamp =
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count());
      const std::string nonce = "wirenonce" + std::to_string(++nonces_);
      auto signature = pki::sign_sha256_rsa_base64(
          platform_key_, timestamp + "\n" + nonce + "\n" + canned.body +
                             (canned.shape.bad_signature ? " \n" : "\n"));
      EXPECT_TRUE(signature);
      res.set_header("Wechatpay-Timestamp", timestamp);
      res.set_header("Wechatpay-Nonce", nonce);
      res.set_header("Wechatpay-Signature", signature.value_or(""));
      res.set_header("Wechatpay-Serial", platform_serial_);
      res.set_header("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048");
    }
    res.set_content(canned.body, canned.signed_reply || canned.shape.status != 200
                                     ? "application/json"
                                     : "text/plain");
  }

  httplib::SSLServer server_;
  pki::PrivateKey platform_key_;
  std::string platform_serial_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::map<std::string, Canned> replies_;
  std::vector<RecordedRequest> requests_;
  std::atomic<int> nonces_{0};
};

// --- canned replies (spec's reply field lists) ----------------------------------------------

// spec: "Parking Transaction".
std::string parking_transaction(Mode mode, const std::string& out_trade_no, std::int64_t fen,
                                const std::string& trade_state) {
  json::object o;
  o["appid"] = caller_appid(mode);
  o["sp_mchid"] = caller_mchid(mode);
  if (mode == Mode::kPartner) {
    o["sub_appid"] = kSubAppid;
    o["sub_mchid"] = kSubMchid;
  }
  o["description"] = "停车费";
  o["create_time"] = kExitRfc3339;
  o["out_trade_no"] = out_trade_no;
  o["transaction_id"] = "4200000000202611220000000001";
  o["trade_state"] = trade_state;
  o["trade_state_description"] = "扣款受理成功";
  o["trade_scene"] = "PARKING";
  json::object payer{{"openid", kOpenid}};
  if (mode == Mode::kPartner) {
    payer["sub_openid"] = "oSubOpenidUnderSubAppid0001";
  }
  o["payer"] = payer;
  o["amount"] = json::object{{"total", fen}, {"currency", "CNY"}};
  return json::serialize(o);
}

// spec: ETC highway deduction, "ETC Transaction" (mchid, trade_state_desc, payer{sp_openid}).
std::string etc_transaction(const std::string& out_trade_no, std::int64_t fen,
                            const std::string& trade_state) {
  json::object o;
  o["mchid"] = kSpMchid;
  o["sub_mchid"] = kSubMchid;
  o["appid"] = kSpAppid;
  o["sub_appid"] = kSubAppid;
  o["out_trade_no"] = out_trade_no;
  o["transaction_id"] = "4200000000202611220000000002";
  o["trade_type"] = "ETC";
  o["success_time"] = kExitRfc3339;
  o["trade_state"] = trade_state;
  o["trade_state_desc"] = "扣款成功";
  o["payer"] = json::object{{"sp_openid", kOpenid}, {"sub_openid", "oSubOpenid0002"}};
  o["amount"] = json::object{{"total", fen}, {"currency", "CNY"}};
  return json::serialize(o);
}

// --- fixture ---------------------------------------------------------------------------------

class WireFields : public ::testing::Test {
 protected:
  config::ProviderSection config(Mode mode) const {
    config::ProviderSection c;
    c.base_url = provider_.base_url();
    if (mode == Mode::kDirect) {
      c.mode = config::ProviderMode::kDirect;
      c.mchid = kDirectMchid;
      c.appid = kDirectAppid;
    } else {
      c.mode = config::ProviderMode::kPartner;
      c.sp_mchid = kSpMchid;
      c.sp_appid = kSpAppid;
      c.sub_mchid = kSubMchid;
      c.sub_appid = kSubAppid;
    }
    c.etc.channel_type = kChannelType;
    c.etc.channel_types = {"ETC", "MTC"};
    c.etc.car_types = {{1, "CAR"}};  // class 2 has no entry: no car_type is sent for it
    c.etc.bound_state = "NORMAL";
    c.merchant_serial_no = trim(read_file(demo_pki() / "merchant.serial"));
    c.merchant_private_key_file = demo_pki() / "merchant.key";
    c.apiv3_key_file = demo_pki() / "apiv3.key";
    c.platform_keys = {
        {trim(read_file(demo_pki() / "platform.serial")), demo_pki() / "platform.pem"}};
    c.notify_url = kNotifyUrl;
    c.ca_file = demo_pki() / "ca.pem";
    c.verify_tls = true;
    c.connect_timeout_ms = 1000;
    c.request_timeout_ms = 3000;
    return c;
  }

  std::unique_ptr<WechatPayClient> client(Mode mode) {
    auto made = WechatPayClient::create(config(mode), clock_);
    EXPECT_TRUE(made) << made.error().to_string();
    return made ? std::move(*made) : nullptr;
  }

  // The one request a call sent (fails the test when it sent another number).
  RecordedRequest only_request() {
    auto all = provider_.requests();
    EXPECT_EQ(all.size(), 1u) << "the call sent " << all.size() << " requests";
    return all.empty() ? RecordedRequest{} : all.front();
  }

  // spec: "Signing a request" and "Direct merchant vs service provider": the Authorization
  // header names the calling merchant (direct: mchid; partner: the service provider) and the
  // merchant certificate's serial, and its signature verifies with the merchant's public key
  // over METHOD\nPATH_WITH_QUERY\nTIMESTAMP\nNONCE\nBODY\n, the target exactly as sent.
  void expect_signed_by_caller(const RecordedRequest& r, Mode mode) {
    SCOPED_TRACE(r.method + " " + r.target);
    EXPECT_EQ(r.headers.count("Authorization"), 1u);
    const std::string auth = r.headers.count("Authorization") != 0
                                 ? r.headers.find("Authorization")->second
                                 : std::string();
    constexpr std::string_view kScheme = "WECHATPAY2-SHA256-RSA2048 ";
    ASSERT_TRUE(auth.starts_with(kScheme)) << auth;
    std::map<std::string, std::string> parts;
    static const std::regex kPart(R"re(^([a-z_]+)="([^"]*)"(,|$))re");
    std::string rest = auth.substr(kScheme.size());
    std::smatch m;
    while (!rest.empty() && std::regex_search(rest, m, kPart)) {
      EXPECT_FALSE(parts.contains(m[1])) << "Authorization repeats " << m[1];
      parts[m[1]] = m[2];
      rest = m.suffix();
    }
    EXPECT_TRUE(rest.empty()) << "unparsed Authorization tail: " << rest;
    for (const char* k : {"mchid", "nonce_str", "timestamp", "serial_no", "signature"}) {
      EXPECT_TRUE(parts.contains(k)) << "Authorization lacks " << k << ": " << auth;
    }
    EXPECT_EQ(parts.size(), 5u) << auth;
    EXPECT_EQ(parts["mchid"], caller_mchid(mode))
        << "the provider checks the signature against this merchant's certificate";
    EXPECT_EQ(parts["serial_no"], trim(read_file(demo_pki() / "merchant.serial")));
    EXPECT_FALSE(parts["nonce_str"].empty());
    char* end = nullptr;
    const long long ts = std::strtoll(parts["timestamp"].c_str(), &end, 10);
    EXPECT_TRUE(end != nullptr && *end == '\0' && !parts["timestamp"].empty()) << auth;
    EXPECT_LE(std::llabs(clock_.unix_seconds() - ts), 300) << "spec: skew beyond 300 s refused";
    auto merchant = pki::load_public_key(demo_pki() / "merchant.pem");
    ASSERT_TRUE(merchant) << merchant.error().to_string();
    const std::string message = r.method + "\n" + r.target + "\n" + parts["timestamp"] + "\n" +
                                parts["nonce_str"] + "\n" + r.body + "\n";
    EXPECT_TRUE(pki::verify_sha256_rsa_base64(*merchant, message, parts["signature"]))
        << "SIGN_ERROR: the signature does not cover the request as it went on the wire";
  }

  void expect_query(const RecordedRequest& r, std::string_view call,
                    std::span<const FieldRule> rules, Mode mode) {
    std::string duplicates;
    const json::object q = query_params(r, &duplicates);
    EXPECT_EQ(duplicates, "") << call << " repeats query parameters: " << r.target;
    EXPECT_EQ(field_violations(call, q, rules, mode), "") << r.target;
    if (mode == Mode::kDirect && q.empty()) {
      EXPECT_EQ(r.target.find('?'), std::string::npos) << "an empty query: " << r.target;
    }
  }

  ParkingEntryRequest entry_request() const {
    ParkingEntryRequest r;
    r.out_parking_no = "LGENTRY20261122000001";
    r.plate_number = kPlate;
    r.plate_color = "BLUE";
    r.start_time = kEntryTime;
    r.parking_name = "lanegate demo lot";
    r.free_duration_s = 900;
    return r;
  }

  ChargeRequest parking_charge() const {
    ChargeRequest r;
    r.product = Product::kParking;
    r.out_trade_no = "LGPK20261122000001";
    r.description = "停车费";
    r.amount = Money::from_fen(1200);
    r.parking.parking_id = "5K8264ILTKCH16CQ250";
    r.parking.plate_number = kPlate;
    r.parking.plate_color = "BLUE";
    r.parking.start_time = kEntryTime;
    r.parking.end_time = kExitTime;
    r.parking.parking_name = "lanegate demo lot";
    r.parking.charging_duration_s = 7200;
    r.parking.device_id = "lane-1";
    return r;
  }

  ChargeRequest etc_charge(int vehicle_class) const {
    ChargeRequest r;
    r.product = Product::kHighway;
    r.out_trade_no = "LGETC20261122000001";
    r.description = "高速通行费";
    r.amount = Money::from_fen(3500);
    r.contract_id = kContract;
    r.highway.plate_number = kPlate;
    r.highway.start_time = kEntryTime;
    r.highway.end_time = kExitTime;
    r.highway.entrance = "广州北收费站";
    r.highway.exit = "深圳南收费站";
    r.highway.vehicle_class = vehicle_class;
    return r;
  }

  void plate_service_query(Mode mode);
  void parking_entry(Mode mode);
  void parking_charge_body(Mode mode);
  void parking_query(Mode mode);
  void trade_bill(Mode mode);

  SystemClock clock_;
  RecordingProvider provider_;
};

// --- parking -------------------------------------------------------------------------------

void WireFields::plate_service_query(Mode mode) {
  SCOPED_TRACE(mode_name(mode));
  provider_.reply("GET", "/v3/vehicle/parking/services/find",
                  json::serialize(json::object{{"plate_number", kPlate},
                                               {"plate_color", "BLUE"},
                                               {"openid", kOpenid},
                                               {"service_open_time", kEntryRfc3339},
                                               {"service_state", "NORMAL"}}));
  auto c = client(mode);
  ASSERT_TRUE(c);
  auto state = c->find_plate_service({"", kPlate, "BLUE", kOpenid});
  ASSERT_TRUE(state) << state.error().error.to_string();
  EXPECT_EQ(state->service_state, "NORMAL");

  const RecordedRequest r = only_request();
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path(), "/v3/vehicle/parking/services/find");
  expect_query(r, "plate service state", kPlateServiceQuery, mode);
  std::string ignored;
  const json::object q = query_params(r, &ignored);
  // spec: Direct vs partner, parking: appid = the merchant's app / the provider's app.
  EXPECT_EQ(at(q, "appid"), caller_appid(mode));
  EXPECT_EQ(at(q, "plate_number"), kPlate);
  EXPECT_EQ(at(q, "plate_color"), "BLUE");
  EXPECT_EQ(at(q, "openid"), kOpenid);
  if (mode == Mode::kPartner) {
    EXPECT_EQ(at(q, "sub_mchid"), kSubMchid);
  }
  // spec: Signing a request: "a plate 粤B12345 in a query is signed as %E7%B2%A4B12345".
  EXPECT_NE(r.target.find(std::string("plate_number=") + kPlateOnTheWire), std::string::npos)
      << r.target;
  expect_signed_by_caller(r, mode);
}
TEST_F(WireFields, PlateServiceQueryDirect) { plate_service_query(Mode::kDirect); }
TEST_F(WireFields, PlateServiceQueryPartner) { plate_service_query(Mode::kPartner); }

void WireFields::parking_entry(Mode mode) {
  SCOPED_TRACE(mode_name(mode));
  const ParkingEntryRequest req = entry_request();
  provider_.reply("POST", "/v3/vehicle/parking/parkings",
                  json::serialize(json::object{{"id", "5K8264ILTKCH16CQ250"},
                                               {"out_parking_no", req.out_parking_no},
                                               {"plate_number", kPlate},
                                               {"plate_color", "BLUE"},
                                               {"start_time", kEntryRfc3339},
                                               {"parking_name", req.parking_name},
                                               {"free_duration", 900},
                                               {"state", "NORMAL"}}));
  auto c = client(mode);
  ASSERT_TRUE(c);
  auto made = c->create_parking_entry(req);
  ASSERT_TRUE(made) << made.error().error.to_string();
  EXPECT_EQ(made->id, "5K8264ILTKCH16CQ250");

  const RecordedRequest r = only_request();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/v3/vehicle/parking/parkings");
  const json::object b = body_object(r);
  EXPECT_EQ(field_violations("create parking entry", b, kParkingEntryBody, mode), "") << r.body;
  if (mode == Mode::kPartner) {
    EXPECT_EQ(at(b, "sub_mchid"), kSubMchid);
  }
  EXPECT_EQ(at(b, "out_parking_no"), req.out_parking_no);
  EXPECT_EQ(at(b, "plate_number"), kPlate);
  EXPECT_EQ(at(b, "plate_color"), "BLUE");
  EXPECT_EQ(at(b, "notify_url"), kNotifyUrl);
  EXPECT_TRUE(at(b, "notify_url").starts_with("https://")) << "spec: notify_url https only";
  EXPECT_EQ(at(b, "start_time"), kEntryRfc3339);
  EXPECT_EQ(at(b, "parking_name"), "lanegate demo lot");
  EXPECT_EQ(at(b, "free_duration"), "900");
  expect_signed_by_caller(r, mode);
}
TEST_F(WireFields, ParkingEntryDirect) { parking_entry(Mode::kDirect); }
TEST_F(WireFields, ParkingEntryPartner) { parking_entry(Mode::kPartner); }

void WireFields::parking_charge_body(Mode mode) {
  SCOPED_TRACE(mode_name(mode));
  const ChargeRequest req = parking_charge();
  provider_.reply("POST", "/v3/vehicle/transactions/parking",
                  parking_transaction(mode, req.out_trade_no, 1200, "ACCEPTED"));
  auto c = client(mode);
  ASSERT_TRUE(c);
  auto t = c->charge(req, ChargeAttempt::kFirst);
  ASSERT_TRUE(t) << t.error().error.to_string();
  EXPECT_EQ(t->state, TradeState::kAccepted);

  const RecordedRequest r = only_request();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/v3/vehicle/transactions/parking");
  const json::object b = body_object(r);
  EXPECT_EQ(field_violations("parking charge acceptance", b, kParkingChargeBody, mode), "")
      << r.body;
  // spec: Direct vs partner, parking: appid = the merchant's app, in partner mode the
  // provider's app ("no sp_appid/sp_openid in this API").
  EXPECT_EQ(at(b, "appid"), caller_appid(mode));
  if (mode == Mode::kPartner) {
    EXPECT_EQ(at(b, "sub_mchid"), kSubMchid);
    EXPECT_EQ(at(b, "sub_appid"), kSubAppid);  // optional; configured here
  }
  EXPECT_EQ(at(b, "description"), "停车费");
  EXPECT_EQ(at(b, "out_trade_no"), req.out_trade_no);
  EXPECT_EQ(at(b, "trade_scene"), "PARKING");
  EXPECT_EQ(at(b, "notify_url"), kNotifyUrl);
  EXPECT_TRUE(at(b, "notify_url").starts_with("https://")) << "spec: notify_url (https)";
  EXPECT_EQ(at(b, "amount.total"), "1200");
  EXPECT_EQ(at(b, "amount.currency"), "CNY");
  EXPECT_EQ(at(b, "parking_info.parking_id"), "5K8264ILTKCH16CQ250");
  EXPECT_EQ(at(b, "parking_info.plate_number"), kPlate);
  EXPECT_EQ(at(b, "parking_info.plate_color"), "BLUE");
  EXPECT_EQ(at(b, "parking_info.start_time"), kEntryRfc3339);
  EXPECT_EQ(at(b, "parking_info.end_time"), kExitRfc3339);
  EXPECT_EQ(at(b, "parking_info.parking_name"), "lanegate demo lot");
  EXPECT_EQ(at(b, "parking_info.charging_duration"), "7200");
  EXPECT_EQ(at(b, "parking_info.device_id"), "lane-1");
  expect_signed_by_caller(r, mode);
}
TEST_F(WireFields, ParkingChargeDirect) { parking_charge_body(Mode::kDirect); }
TEST_F(WireFields, ParkingChargePartner) { parking_charge_body(Mode::kPartner); }

void WireFields::parking_query(Mode mode) {
  SCOPED_TRACE(mode_name(mode));
  const std::string no = "LGPK20261122000001";
  provider_.reply("GET", "/v3/vehicle/transactions/out-trade-no/" + no,
                  parking_transaction(mode, no, 1200, "SUCCESS"));
  auto c = client(mode);
  ASSERT_TRUE(c);
  auto t = c->query_transaction(Product::kParking, no);
  ASSERT_TRUE(t) << t.error().error.to_string();
  EXPECT_EQ(t->state, TradeState::kSuccess);

  const RecordedRequest r = only_request();
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path(), "/v3/vehicle/transactions/out-trade-no/" + no);
  EXPECT_EQ(r.body, "");
  expect_query(r, "parking query order", kParkingQueryQuery, mode);
  if (mode == Mode::kPartner) {
    EXPECT_EQ(r.target, "/v3/vehicle/transactions/out-trade-no/" + no + "?sub_mchid=" + kSubMchid);
  } else {
    EXPECT_EQ(r.target, "/v3/vehicle/transactions/out-trade-no/" + no);
  }
  expect_signed_by_caller(r, mode);
}
TEST_F(WireFields, ParkingQueryDirect) { parking_query(Mode::kDirect); }
TEST_F(WireFields, ParkingQueryPartner) { parking_query(Mode::kPartner); }

// --- ETC highway (spec: "ETC highway deduction (service-provider API only)") -----------------

TEST_F(WireFields, EtcChargePartnerSendsExactlyTheDeductFields) {
  const ChargeRequest req = etc_charge(/*vehicle_class=*/1);
  provider_.reply("POST", "/v3/vehicle/etc/transactions/highway",
                  etc_transaction(req.out_trade_no, 3500, "SUCCESS"));
  auto c = client(Mode::kPartner);
  ASSERT_TRUE(c);
  auto t = c->charge(req, ChargeAttempt::kFirst);
  ASSERT_TRUE(t) << t.error().error.to_string();
  EXPECT_EQ(t->state, TradeState::kSuccess);

  const RecordedRequest r = only_request();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/v3/vehicle/etc/transactions/highway");
  const json::object b = body_object(r);
  EXPECT_EQ(field_violations("ETC deduct", b, kEtcDeductBody, Mode::kPartner), "") << r.body;
  // Called out on their own: the two fields a parking-shaped encoder would add.
  EXPECT_EQ(at(b, "notify_url"), "<absent>") << "spec: ETC deduction has no notify_url";
  EXPECT_EQ(at(b, "highway_info.plate_color"), "<absent>") << "spec: highway_info has none";
  EXPECT_EQ(at(b, "out_trade_no"), req.out_trade_no);
  EXPECT_EQ(at(b, "appid"), kSpAppid) << "spec: ETC appid is the provider's app";
  EXPECT_EQ(at(b, "sub_mchid"), kSubMchid);
  EXPECT_EQ(at(b, "sub_appid"), kSubAppid);
  EXPECT_EQ(at(b, "contract_id"), kContract);
  EXPECT_EQ(at(b, "description"), "高速通行费");
  EXPECT_EQ(at(b, "highway_info.plate_number"), kPlate);
  // start_time is the entry, end_time the exit: entry before exit.
  EXPECT_EQ(at(b, "highway_info.start_time"), kEntryRfc3339);
  EXPECT_EQ(at(b, "highway_info.end_time"), kExitRfc3339);
  EXPECT_EQ(at(b, "highway_info.channel_type"), kChannelType) << "the configured value";
  EXPECT_EQ(at(b, "highway_info.car_type"), "CAR") << "class 1 is configured as CAR";
  // "Entrance and exit are station names, not ids."
  EXPECT_EQ(at(b, "highway_info.entrance"), "广州北收费站");
  EXPECT_EQ(at(b, "highway_info.exit"), "深圳南收费站");
  EXPECT_EQ(at(b, "amount.total"), "3500");
  EXPECT_EQ(at(b, "amount.currency"), "CNY");
  expect_signed_by_caller(r, Mode::kPartner);
}

TEST_F(WireFields, EtcChargeSendsNoCarTypeForAnUnconfiguredClass) {
  const ChargeRequest req = etc_charge(/*vehicle_class=*/2);
  provider_.reply("POST", "/v3/vehicle/etc/transactions/highway",
                  etc_transaction(req.out_trade_no, 3500, "SUCCESS"));
  auto c = client(Mode::kPartner);
  ASSERT_TRUE(c);
  auto t = c->charge(req, ChargeAttempt::kFirst);
  ASSERT_TRUE(t) << t.error().error.to_string();
  const RecordedRequest r = only_request();
  const json::object b = body_object(r);
  EXPECT_EQ(field_violations("ETC deduct", b, kEtcDeductBody, Mode::kPartner), "") << r.body;
  // spec: car_type's value set is unconfirmed: never guessed for a class without an entry.
  EXPECT_EQ(at(b, "highway_info.car_type"), "<absent>");
}

TEST_F(WireFields, EtcCallsInDirectModeParkLocallyAndSendNothing) {
  auto c = client(Mode::kDirect);
  ASSERT_TRUE(c);
  auto charged = c->charge(etc_charge(1), ChargeAttempt::kFirst);
  ASSERT_FALSE(charged) << "spec: ETC is not available to a direct merchant";
  EXPECT_EQ(charged.error().outcome, Outcome::kPark);
  auto queried = c->query_transaction(Product::kHighway, "LGETC20261122000001");
  ASSERT_FALSE(queried);
  EXPECT_EQ(queried.error().outcome, Outcome::kPark);
  auto contract = c->query_etc_contract(kContract);
  ASSERT_FALSE(contract);
  EXPECT_EQ(contract.error().outcome, Outcome::kPark);
  EXPECT_EQ(provider_.requests().size(), 0u) << "nothing may reach the provider";
}

TEST_F(WireFields, EtcQueryPartner) {
  const std::string no = "LGETC20261122000001";
  provider_.reply("GET", "/v3/vehicle/etc/transactions/out-trade-no/" + no,
                  etc_transaction(no, 3500, "SUCCESS"));
  auto c = client(Mode::kPartner);
  ASSERT_TRUE(c);
  auto t = c->query_transaction(Product::kHighway, no);
  ASSERT_TRUE(t) << t.error().error.to_string();
  EXPECT_EQ(t->state, TradeState::kSuccess);
  const RecordedRequest r = only_request();
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target,
            "/v3/vehicle/etc/transactions/out-trade-no/" + no + "?sub_mchid=" + kSubMchid);
  expect_query(r, "ETC query", kEtcGetQuery, Mode::kPartner);
  expect_signed_by_caller(r, Mode::kPartner);
}

TEST_F(WireFields, EtcContractQueryPartner) {
  provider_.reply("GET", std::string("/v3/vehicle/etc/contracts/") + kContract,
                  json::serialize(json::object{{"appid", kSpAppid},
                                               {"sp_mchid", kSpMchid},
                                               {"sp_openid", kOpenid},
                                               {"sub_mchid", kSubMchid},
                                               {"contract_id", kContract},
                                               {"bind_state", "NORMAL"},
                                               {"plate_number", kPlate}}));
  auto c = client(Mode::kPartner);
  ASSERT_TRUE(c);
  auto contract = c->query_etc_contract(kContract);
  ASSERT_TRUE(contract) << contract.error().error.to_string();
  // spec: Contract: bind_state is compared with the configured bound value by the caller.
  EXPECT_EQ(contract->bind_state, "NORMAL");
  EXPECT_EQ(contract->contract_id, kContract);
  EXPECT_EQ(contract->plate_number, kPlate);
  EXPECT_EQ(contract->merchant_id, kSpMchid);
  EXPECT_EQ(contract->sub_merchant_id, kSubMchid);
  EXPECT_EQ(contract->sp_openid, kOpenid);
  const RecordedRequest r = only_request();
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target,
            std::string("/v3/vehicle/etc/contracts/") + kContract + "?sub_mchid=" + kSubMchid);
  expect_query(r, "ETC contract by id", kEtcGetQuery, Mode::kPartner);
  expect_signed_by_caller(r, Mode::kPartner);
}

// --- trade bill (spec: "Trade bill (reconciliation)") ---------------------------------------

// A small ALL-type file; its SHA-1 was computed with sha1sum(1), not with the client's code.
constexpr const char* kBillCsv = "交易时间,商户订单号\n`2026-11-22 13:29:35,`LGPK20261122000001\n";
constexpr const char* kBillSha1 = "a091b7b988fa24c8fdd97d678e97781b5e011e7c";

void WireFields::trade_bill(Mode mode) {
  SCOPED_TRACE(mode_name(mode));
  const std::string file_target = "/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG";
  provider_.reply(
      "GET", "/v3/bill/tradebill",
      json::serialize(json::object{{"hash_type", "SHA1"},
                                   {"hash_value", kBillSha1},
                                   {"download_url", provider_.base_url() + file_target}}));
  provider_.reply("GET", "/v3/billdownload/file", kBillCsv, /*signed_reply=*/false);
  auto c = client(mode);
  ASSERT_TRUE(c);
  auto bill = c->download_trade_bill("2026-11-22");
  ASSERT_TRUE(bill) << bill.error().error.to_string();
  EXPECT_EQ(bill->csv, kBillCsv);

  auto all = provider_.requests();
  ASSERT_EQ(all.size(), 2u) << "the bill reply, then the file";
  const RecordedRequest& r = all[0];
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path(), "/v3/bill/tradebill");
  expect_query(r, "trade bill", kTradeBillQuery, mode);
  std::string ignored;
  const json::object q = query_params(r, &ignored);
  EXPECT_EQ(at(q, "bill_date"), "2026-11-22");
  EXPECT_EQ(at(q, "bill_type"), "ALL");
  if (mode == Mode::kPartner) {
    EXPECT_EQ(at(q, "sub_mchid"), kSubMchid) << "the special merchant's bill";
  }
  expect_signed_by_caller(r, mode);
  // "Fetch download_url … with a signed GET".
  const RecordedRequest& f = all[1];
  EXPECT_EQ(f.method, "GET");
  EXPECT_EQ(f.target, file_target);
  EXPECT_EQ(f.body, "");
  expect_signed_by_caller(f, mode);
}
TEST_F(WireFields, TradeBillDirect) { trade_bill(Mode::kDirect); }
TEST_F(WireFields, TradeBillPartner) { trade_bill(Mode::kPartner); }

TEST_F(WireFields, TradeBillWithAnotherSha1IsRefused) {
  provider_.reply("GET", "/v3/bill/tradebill",
                  json::serialize(json::object{
                      {"hash_type", "SHA1"},
                      {"hash_value", kBillSha1},
                      {"download_url", provider_.base_url() + "/v3/billdownload/file?token=T"}}));
  // One byte changed on the way: the file reply is not signed, only its hash protects it.
  std::string tampered = kBillCsv;
  tampered.back() = ' ';
  provider_.reply("GET", "/v3/billdownload/file", tampered, /*signed_reply=*/false);
  auto c = client(Mode::kDirect);
  ASSERT_TRUE(c);
  auto bill = c->download_trade_bill("2026-11-22");
  EXPECT_FALSE(bill) << "a bill whose SHA-1 differs from hash_value was accepted";
}

// hash_value is hex whose letter case the spec does not fix: an upper-case one of the
// right file is the right file. A download_url on another host is not fetched (nor sent
// our signature): the bill is refused with the reason.
TEST_F(WireFields, TradeBillHashCaseAndDownloadHost) {
  std::string upper = kBillSha1;
  for (char& ch : upper) {
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  provider_.reply("GET", "/v3/bill/tradebill",
                  json::serialize(json::object{
                      {"hash_type", "SHA1"},
                      {"hash_value", upper},
                      {"download_url", provider_.base_url() + "/v3/billdownload/file?token=T"}}));
  provider_.reply("GET", "/v3/billdownload/file", kBillCsv, /*signed_reply=*/false);
  auto c = client(Mode::kDirect);
  ASSERT_TRUE(c);
  auto bill = c->download_trade_bill("2026-11-22");
  ASSERT_TRUE(bill) << bill.error().error.to_string();
  EXPECT_EQ(bill->csv, kBillCsv);

  provider_.reply("GET", "/v3/bill/tradebill",
                  json::serialize(json::object{
                      {"hash_type", "SHA1"},
                      {"hash_value", kBillSha1},
                      {"download_url", "https://elsewhere.example.cn/v3/billdownload/file?token=T"}}));
  const std::size_t before = provider_.requests().size();
  auto moved = c->download_trade_bill("2026-11-22");
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().error.field, "download_url");
  EXPECT_EQ(provider_.requests().size(), before + 1) << "only the bill reply was asked for";
}

// The tables' checker itself, on bodies the provider would refuse: a check that passes
// everything would make every test above pass too.
TEST_F(WireFields, FieldTablesRefuseWhatTheProviderWould) {
  const json::object etc = json::parse(R"({
      "out_trade_no": "LGETC1", "appid": "wx1", "sub_mchid": "19", "description": "d",
      "notify_url": "https://x/notify",
      "highway_info": {"plate_number": "p", "start_time": "s", "end_time": "e",
                       "channel_type": "ETC", "entrance": "a", "plate_color": "BLUE"},
      "amount": {"total": "3500", "currency": "CNY"},
      "device_info": {"device_id": "rsu-1"}})")
                               .as_object();
  const std::string v = field_violations("ETC deduct", etc, kEtcDeductBody, Mode::kPartner);
  for (const char* expected :
       {"`notify_url`", "`highway_info.plate_color`",
        "`amount.total` = \"3500\" has the wrong JSON type", "required `contract_id` is missing",
        "required `device_info.device_ip` is missing"}) {
    EXPECT_NE(v.find(expected), std::string::npos) << expected << " not reported in:" << v;
  }
  // Direct mode: no sub_* field in a parking body; partner mode: sub_mchid is required.
  const json::object entry = json::parse(R"({
      "sub_mchid": "19", "out_parking_no": "o", "plate_number": "p", "plate_color": "BLUE",
      "notify_url": "https://x", "start_time": "s", "parking_name": "n", "free_duration": 900})")
                                 .as_object();
  EXPECT_NE(field_violations("entry", entry, kParkingEntryBody, Mode::kDirect).find("`sub_mchid`"),
            std::string::npos);
  EXPECT_EQ(field_violations("entry", entry, kParkingEntryBody, Mode::kPartner), "");
  json::object without = entry;
  without.erase("sub_mchid");
  EXPECT_NE(field_violations("entry", without, kParkingEntryBody, Mode::kPartner)
                .find("required `sub_mchid` is missing"),
            std::string::npos);
}

// --- reply side -----------------------------------------------------------------------------

// spec: ETC Transaction names: mchid (not sp_mchid), trade_state_desc, payer{sp_openid}.
TEST_F(WireFields, EtcReplyNamesMapToTheTransaction) {
  const ChargeRequest req = etc_charge(1);
  provider_.reply("POST", "/v3/vehicle/etc/transactions/highway",
                  etc_transaction(req.out_trade_no, 3500, "SUCCESS"));
  auto c = client(Mode::kPartner);
  ASSERT_TRUE(c);
  auto t = c->charge(req, ChargeAttempt::kFirst);
  ASSERT_TRUE(t) << t.error().error.to_string();
  EXPECT_EQ(t->merchant_id, kSpMchid);
  EXPECT_EQ(t->sub_merchant_id, kSubMchid);
  EXPECT_EQ(t->openid, kOpenid) << "payer.sp_openid";
  EXPECT_EQ(t->trade_state_description, "扣款成功") << "trade_state_desc";
  EXPECT_EQ(t->transaction_id, "4200000000202611220000000002");
  EXPECT_EQ(t->amount, Money::from_fen(3500));
}

// spec: Direct vs partner, parking reply: sp_mchid, sub_mchid, payer{openid (under appid),
// sub_openid (under sub_appid)}: the gateway's openid is the one under appid.
TEST_F(WireFields, PartnerParkingReplyNamesMapToTheTransaction) {
  const ChargeRequest req = parking_charge();
  provider_.reply("POST", "/v3/vehicle/transactions/parking",
                  parking_transaction(Mode::kPartner, req.out_trade_no, 1200, "ACCEPTED"));
  auto c = client(Mode::kPartner);
  ASSERT_TRUE(c);
  auto t = c->charge(req, ChargeAttempt::kFirst);
  ASSERT_TRUE(t) << t.error().error.to_string();
  EXPECT_EQ(t->merchant_id, kSpMchid);
  EXPECT_EQ(t->sub_merchant_id, kSubMchid);
  EXPECT_EQ(t->openid, kOpenid);
  EXPECT_EQ(t->trade_state_description, "扣款受理成功");
}

// spec: trade_state values: "accept both [ACCEPT, ACCEPTED] as accepted, deduction pending";
// "One published failure sample carries FAIL: treat as PAY_FAIL".
TEST_F(WireFields, TradeStateSpellings) {
  const std::string no = "LGPK20261122000001";
  auto c = client(Mode::kPartner);
  ASSERT_TRUE(c);
  for (const auto& [text, state] :
       {std::pair{"ACCEPTED", TradeState::kAccepted}, std::pair{"ACCEPT", TradeState::kAccepted},
        std::pair{"FAIL", TradeState::kPayFail}, std::pair{"PAY_FAIL", TradeState::kPayFail}}) {
    SCOPED_TRACE(text);
    provider_.reply("GET", "/v3/vehicle/transactions/out-trade-no/" + no,
                    parking_transaction(Mode::kPartner, no, 1200, text));
    auto t = c->query_transaction(Product::kParking, no);
    ASSERT_TRUE(t) << t.error().error.to_string();
    EXPECT_EQ(t->state, state);
  }
}

// spec: "Unknown values: keep the item pending and alarm": a charge reply whose trade_state is
// not in the table is parked for an operator, neither taken as settled nor re-queried blindly.
TEST_F(WireFields, UnknownTradeStateOnAChargeReplyParks) {
  const ChargeRequest req = parking_charge();
  provider_.reply("POST", "/v3/vehicle/transactions/parking",
                  parking_transaction(Mode::kDirect, req.out_trade_no, 1200, "PROCESSING"));
  auto c = client(Mode::kDirect);
  ASSERT_TRUE(c);
  auto t = c->charge(req, ChargeAttempt::kFirst);
  ASSERT_FALSE(t) << "PROCESSING was taken as " << trade_state_name(t->state);
  EXPECT_EQ(t.error().outcome, Outcome::kPark) << outcome_name(t.error().outcome);
  EXPECT_EQ(t.error().provider_code, kUnknownTradeState);
}

// --- in-cab payments (spec: "Taxi: in-cab payment") ---------------------------------------

constexpr const char* kAuthCode = "134567890123456789";  // 18 digits, a WeChat prefix (13)
constexpr const char* kFareNo = "LGTX20261122000001";
constexpr const char* kTxId = "4200000000202611220000000009";

std::string pay_base(Mode m) {
  return m == Mode::kDirect ? "/v3/pay/transactions" : "/v3/pay/partner/transactions";
}

// spec: Payment code reply / Native TRANSACTION.SUCCESS resource: appid/mchid (partner
// sp_appid, sp_mchid, sub_appid, sub_mchid), payer{openid} (partner sp_openid/sub_openid).
std::string payment_json(Mode mode, const std::string& out_trade_no, std::int64_t fen,
                         const std::string& trade_state,
                         const std::string& trade_type = "MICROPAY") {
  json::object o;
  if (mode == Mode::kDirect) {
    o["appid"] = kDirectAppid;
    o["mchid"] = kDirectMchid;
  } else {
    o["sp_appid"] = kSpAppid;
    o["sp_mchid"] = kSpMchid;
    o["sub_appid"] = kSubAppid;
    o["sub_mchid"] = kSubMchid;
  }
  o["out_trade_no"] = out_trade_no;
  o["trade_type"] = trade_type;
  o["trade_state"] = trade_state;
  o["trade_state_desc"] = trade_state == "SUCCESS" ? "支付成功" : "用户支付中";
  if (trade_state == "SUCCESS") {
    o["transaction_id"] = kTxId;
    o["bank_type"] = "OTHERS";
    o["success_time"] = kExitRfc3339;
  }
  o["payer"] = mode == Mode::kDirect
                   ? json::object{{"openid", kOpenid}}
                   : json::object{{"sp_openid", kOpenid}, {"sub_openid", "oSubOpenid0003"}};
  o["amount"] = json::object{
      {"total", fen}, {"payer_total", fen}, {"currency", "CNY"}, {"payer_currency", "CNY"}};
  return json::serialize(o);
}

CodepayRequest fare_by_code() {
  CodepayRequest r;
  r.out_trade_no = kFareNo;
  r.description = "出租车车费";
  r.auth_code = kAuthCode;
  r.amount = Money::from_fen(2350);
  r.device_id = "meter-0001";
  r.store_out_id = "lanegate-gw-1";
  return r;
}

void expect_merchant_body(const json::object& b, Mode mode, bool with_apps) {
  if (mode == Mode::kDirect) {
    EXPECT_EQ(at(b, "mchid"), kDirectMchid);
    EXPECT_EQ(at(b, "appid"), with_apps ? kDirectAppid : "<absent>");
  } else {
    EXPECT_EQ(at(b, "sp_mchid"), kSpMchid);
    EXPECT_EQ(at(b, "sub_mchid"), kSubMchid);
    EXPECT_EQ(at(b, "sp_appid"), with_apps ? kSpAppid : "<absent>");
    EXPECT_EQ(at(b, "sub_appid"), with_apps ? kSubAppid : "<absent>");
  }
}

class PayWire : public WireFields {
 protected:
  void codepay(Mode mode) {
    SCOPED_TRACE(mode_name(mode));
    provider_.reply("POST", pay_base(mode) + "/codepay",
                    payment_json(mode, kFareNo, 2350, "SUCCESS"));
    auto c = client(mode);
    ASSERT_TRUE(c);
    auto paid = c->codepay(fare_by_code());
    ASSERT_TRUE(paid) << paid.error().error.to_string();
    EXPECT_EQ(paid->state, PayState::kSuccess);
    // The money fields the caller compares with its order.
    EXPECT_EQ(paid->out_trade_no, kFareNo);
    EXPECT_EQ(paid->amount, Money::from_fen(2350));
    EXPECT_EQ(paid->merchant_id, caller_mchid(mode));
    EXPECT_EQ(paid->sub_merchant_id, mode == Mode::kPartner ? kSubMchid : "");
    EXPECT_EQ(paid->openid, kOpenid);
    EXPECT_EQ(paid->transaction_id, kTxId);

    const RecordedRequest r = only_request();
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, pay_base(mode) + "/codepay");
    const json::object b = body_object(r);
    EXPECT_EQ(field_violations("codepay", b, kCodepayBody, mode), "") << r.body;
    expect_merchant_body(b, mode, /*with_apps=*/true);
    EXPECT_EQ(at(b, "notify_url"), "<absent>") << "spec: codepay has no notify_url";
    EXPECT_EQ(at(b, "payer.auth_code"), kAuthCode);
    EXPECT_EQ(at(b, "amount.total"), "2350");
    EXPECT_EQ(at(b, "amount.currency"), "CNY");
    EXPECT_EQ(at(b, "scene_info.device_id"), "meter-0001");
    EXPECT_EQ(at(b, "scene_info.store_info.out_id"), "lanegate-gw-1");
    EXPECT_EQ(at(b, "description"), "出租车车费");
    expect_signed_by_caller(r, mode);
  }

  void native(Mode mode) {
    SCOPED_TRACE(mode_name(mode));
    provider_.reply("POST", pay_base(mode) + "/native",
                    R"({"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"})");
    auto c = client(mode);
    ASSERT_TRUE(c);
    NativeRequest req;
    req.out_trade_no = kFareNo;
    req.description = "出租车车费";
    req.amount = Money::from_fen(2350);
    req.time_expire = kExitTime;
    req.device_id = "meter-0001";
    auto url = c->create_native(req);
    ASSERT_TRUE(url) << url.error().error.to_string();
    EXPECT_EQ(*url, "weixin://wxpay/bizpayurl?pr=p4lpSuKzz");

    const RecordedRequest r = only_request();
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, pay_base(mode) + "/native");
    const json::object b = body_object(r);
    EXPECT_EQ(field_violations("native", b, kNativeBody, mode), "") << r.body;
    expect_merchant_body(b, mode, /*with_apps=*/true);
    EXPECT_EQ(at(b, "notify_url"), kNotifyUrl) << "the configured notify_url";
    EXPECT_EQ(at(b, "time_expire"), kExitRfc3339) << "spec: RFC 3339 with +08:00";
    EXPECT_EQ(at(b, "amount.total"), "2350");
    EXPECT_EQ(at(b, "amount.currency"), "CNY");
    EXPECT_EQ(at(b, "scene_info.device_id"), "meter-0001");
    expect_signed_by_caller(r, mode);
  }

  void query(Mode mode) {
    SCOPED_TRACE(mode_name(mode));
    provider_.reply("GET", pay_base(mode) + "/out-trade-no/" + kFareNo,
                    payment_json(mode, kFareNo, 2350, "NOTPAY", "NATIVE"));
    auto c = client(mode);
    ASSERT_TRUE(c);
    auto p = c->query_payment(PayProduct::kNative, kFareNo);
    ASSERT_TRUE(p) << p.error().error.to_string();
    EXPECT_EQ(p->state, PayState::kNotPay);
    EXPECT_EQ(p->product, PayProduct::kNative);
    EXPECT_EQ(p->trade_type, "NATIVE");

    const RecordedRequest r = only_request();
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.body, "");
    EXPECT_EQ(r.target, pay_base(mode) + "/out-trade-no/" + kFareNo +
                            (mode == Mode::kDirect
                                 ? std::string("?mchid=") + kDirectMchid
                                 : std::string("?sp_mchid=") + kSpMchid + "&sub_mchid=" + kSubMchid));
    expect_query(r, "payment query", kPaymentQueryQuery, mode);
    expect_signed_by_caller(r, mode);
  }

  void reverse(Mode mode) {
    SCOPED_TRACE(mode_name(mode));
    const std::string path = pay_base(mode) + "/out-trade-no/" + kFareNo + "/reverse";
    provider_.reply("POST", path,
                    json::serialize(json::object{{"mchid", caller_mchid(mode)},
                                                 {"out_trade_no", kFareNo}}));
    auto c = client(mode);
    ASSERT_TRUE(c);
    auto done = c->reverse_payment(kFareNo);
    ASSERT_TRUE(done) << done.error().error.to_string();
    const RecordedRequest r = only_request();
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, path);
    const json::object b = body_object(r);
    EXPECT_EQ(field_violations("reverse", b, kReverseBody, mode), "") << r.body;
    expect_merchant_body(b, mode, /*with_apps=*/true);
    expect_signed_by_caller(r, mode);
  }

  void close(Mode mode) {
    SCOPED_TRACE(mode_name(mode));
    const std::string path = pay_base(mode) + "/out-trade-no/" + kFareNo + "/close";
    provider_.reply_shaped("POST", path, "", {.status = 204});
    auto c = client(mode);
    ASSERT_TRUE(c);
    auto done = c->close_payment(PayProduct::kNative, kFareNo);
    ASSERT_TRUE(done) << done.error().error.to_string();
    const RecordedRequest r = only_request();
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, path);
    const json::object b = body_object(r);
    EXPECT_EQ(field_violations("close", b, kCloseBody, mode), "") << r.body;
    expect_merchant_body(b, mode, /*with_apps=*/false);
    expect_signed_by_caller(r, mode);
  }

  // One codepay against a reply of `shape`; checks it was sent exactly once.
  ProviderResult<Payment> codepay_against(const std::string& body, RecordingProvider::Shape shape,
                                          WechatPayClient* c) {
    provider_.reply_shaped("POST", pay_base(Mode::kDirect) + "/codepay", body, shape);
    const std::size_t before = provider_.requests().size();
    auto result = c->codepay(fare_by_code());
    EXPECT_EQ(provider_.requests().size(), before + 1) << "a payment code is sent exactly once";
    return result;
  }
};

TEST_F(PayWire, CodepayDirect) { codepay(Mode::kDirect); }
TEST_F(PayWire, CodepayPartner) { codepay(Mode::kPartner); }
TEST_F(PayWire, NativeDirect) { native(Mode::kDirect); }
TEST_F(PayWire, NativePartner) { native(Mode::kPartner); }
TEST_F(PayWire, PaymentQueryDirect) { query(Mode::kDirect); }
TEST_F(PayWire, PaymentQueryPartner) { query(Mode::kPartner); }
TEST_F(PayWire, ReverseDirect) { reverse(Mode::kDirect); }
TEST_F(PayWire, ReversePartner) { reverse(Mode::kPartner); }
TEST_F(PayWire, CloseDirect) { close(Mode::kDirect); }
TEST_F(PayWire, ClosePartner) { close(Mode::kPartner); }

// spec: "Ambiguous results" rule 2: USERPAYING is not a result; the caller queries.
TEST_F(PayWire, CodepayUserPayingReplyIsAnOrderThatIsNotPaid) {
  auto c = client(Mode::kDirect);
  ASSERT_TRUE(c);
  auto r = codepay_against(payment_json(Mode::kDirect, kFareNo, 2350, "USERPAYING"), {}, c.get());
  ASSERT_TRUE(r) << r.error().error.to_string();
  EXPECT_EQ(r->state, PayState::kUserPaying);
}

// How v3 signals USERPAYING at pay time is unconfirmed: as an error code it is unknown, not a
// refusal (a refusal would make the passenger pay twice).
TEST_F(PayWire, CodepayUserPayingErrorCodeIsUnknownNotARefusal) {
  auto c = client(Mode::kDirect);
  ASSERT_TRUE(c);
  for (int status : {202, 400, 403}) {
    SCOPED_TRACE(status);
    auto r = codepay_against(R"({"code":"USERPAYING","message":"需要用户输入支付密码"})",
                             {.status = status}, c.get());
    ASSERT_FALSE(r) << "taken as " << pay_state_name(r->state);
    EXPECT_EQ(r.error().outcome, Outcome::kQueryFirst) << outcome_name(r.error().outcome);
  }
}

// spec: "Errors": 400 PARAM_ERROR / INVALID_REQUEST, 401 SIGN_ERROR, 403 NO_AUTH refuse the
// request as a whole: nothing was taken.
TEST_F(PayWire, CodepayDocumentedRefusalsPark) {
  auto c = client(Mode::kDirect);
  ASSERT_TRUE(c);
  for (auto [status, code] : {std::pair{400, "PARAM_ERROR"}, std::pair{400, "INVALID_REQUEST"},
                              std::pair{401, "SIGN_ERROR"}, std::pair{403, "NO_AUTH"}}) {
    SCOPED_TRACE(code);
    auto r = codepay_against(
        json::serialize(json::object{{"code", code}, {"message", "refused"}}), {.status = status},
        c.get());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().outcome, Outcome::kPark) << outcome_name(r.error().outcome);
    EXPECT_EQ(r.error().provider_code, code);
    EXPECT_EQ(r.error().http_status, status);
  }
}

// An undocumented 4xx code, a 5xx, a rate limit.
TEST_F(PayWire, CodepayOtherErrorsAreUnknownAndRateLimitsRetry) {
  auto c = client(Mode::kDirect);
  ASSERT_TRUE(c);
  auto r = codepay_against(R"({"code":"SYSTEM_ERROR","message":"系统错误"})", {.status = 500},
                           c.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().outcome, Outcome::kQueryFirst);
  r = codepay_against(R"({"code":"BANKERROR","message":"银行系统异常"})", {.status = 403}, c.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().outcome, Outcome::kQueryFirst) << "not a documented refusal";
  r = codepay_against(R"({"code":"RATELIMIT_EXCEEDED","message":"slow down"})", {.status = 429},
                      c.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().outcome, Outcome::kRetryLater);
}

TEST_F(PayWire, CodepayBadSignatureIsUnknown) {
  auto c = client(Mode::kDirect);
  ASSERT_TRUE(c);
  auto r = codepay_against(payment_json(Mode::kDirect, kFareNo, 2350, "SUCCESS"),
                           {.bad_signature = true}, c.get());
  ASSERT_FALSE(r) << "an unverified SUCCESS was believed";
  EXPECT_EQ(r.error().outcome, Outcome::kQueryFirst);
}

TEST_F(PayWire, CodepayTimeoutIsUnknown) {
  config::ProviderSection cfg = config(Mode::kDirect);
  cfg.request_timeout_ms = 300;
  auto made = WechatPayClient::create(cfg, clock_);
  ASSERT_TRUE(made) << made.error().to_string();
  auto r = codepay_against(payment_json(Mode::kDirect, kFareNo, 2350, "SUCCESS"),
                           {.delay = std::chrono::milliseconds(2500)}, made->get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().outcome, Outcome::kQueryFirst);
}

TEST_F(PayWire, CodepayThatCannotConnectRetriesLater) {
  config::ProviderSection cfg = config(Mode::kDirect);
  cfg.base_url = "https://127.0.0.1:1";  // nothing listens: connection refused
  auto made = WechatPayClient::create(cfg, clock_);
  ASSERT_TRUE(made) << made.error().to_string();
  auto r = (*made)->codepay(fare_by_code());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().outcome, Outcome::kRetryLater) << "nothing reached the provider";
}

// spec: trade_state values: unknown -> keep unresolved and alarm. On a codepay reply that is
// "unknown, query" (kPark would tell the caller nothing was taken); on a query it parks.
TEST_F(PayWire, UnknownTradeStateOnCodepayQueriesAndOnAQueryParks) {
  auto c = client(Mode::kDirect);
  ASSERT_TRUE(c);
  auto r = codepay_against(payment_json(Mode::kDirect, kFareNo, 2350, "PROCESSING"), {}, c.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().outcome, Outcome::kQueryFirst);
  EXPECT_EQ(r.error().provider_code, kUnknownTradeState);
  provider_.reply("GET", pay_base(Mode::kDirect) + "/out-trade-no/" + kFareNo,
                  payment_json(Mode::kDirect, kFareNo, 2350, "PROCESSING"));
  auto q = c->query_payment(PayProduct::kCodepay, kFareNo);
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().outcome, Outcome::kPark);
  EXPECT_EQ(q.error().provider_code, kUnknownTradeState);
}

TEST_F(PayWire, QueryOfAnUnknownOrderIsNotFound) {
  auto c = client(Mode::kPartner);
  ASSERT_TRUE(c);
  provider_.reply_shaped("GET", pay_base(Mode::kPartner) + "/out-trade-no/" + kFareNo,
                         R"({"code":"ORDER_NOT_EXIST","message":"订单不存在"})", {.status = 404});
  auto q = c->query_payment(PayProduct::kCodepay, kFareNo);
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().outcome, Outcome::kNotFound);
}

// Checked before sending: nothing leaves, the field and the rule are named.
TEST_F(PayWire, CodepayRefusesABadCodeLocally) {
  auto c = client(Mode::kDirect);
  ASSERT_TRUE(c);
  for (const char* code : {"13456789012345678", "194567890123456789", "13456789012345678a"}) {
    CodepayRequest req = fare_by_code();
    req.auth_code = code;
    auto r = c->codepay(req);
    ASSERT_FALSE(r) << code;
    EXPECT_EQ(r.error().outcome, Outcome::kPark);
    EXPECT_EQ(r.error().error.field, "payer.auth_code");
  }
  CodepayRequest no_store = fare_by_code();
  no_store.store_out_id.clear();
  auto r = c->codepay(no_store);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().error.field, "scene_info.store_info.out_id");
  EXPECT_EQ(provider_.requests().size(), 0u);
}

std::mutex g_log_mu;
std::string g_log;
void capture_log(log::Level, std::string_view line) {
  std::lock_guard lock(g_log_mu);
  g_log += std::string(line) + "\n";
}

// The passenger's code is a bearer secret: no log line, error text or metric may carry it,
// whatever the provider answers (its message may echo the request).
TEST_F(PayWire, AuthCodeNeverReachesLogsErrorsOrMetrics) {
  {
    std::lock_guard lock(g_log_mu);
    g_log.clear();
  }
  log::set_min_level(log::Level::kDebug);
  log::set_test_sink(&capture_log);
  config::ProviderSection cfg = config(Mode::kDirect);
  cfg.request_timeout_ms = 300;
  auto made = WechatPayClient::create(cfg, clock_);
  ASSERT_TRUE(made);
  WechatPayClient* c = made->get();
  const std::string echo = std::string(R"({"code":"PARAM_ERROR","message":"auth_code )") +
                           kAuthCode + R"( invalid","detail":{"field":"auth_code","value":")" +
                           kAuthCode + R"(","issue":"invalid"}})";
  std::vector<ProviderFailure> failures;
  for (auto [body, shape] :
       {std::pair{echo, RecordingProvider::Shape{.status = 400}},
        std::pair{std::string(R"({"code":"SYSTEM_ERROR","message":")") + kAuthCode + "\"}",
                  RecordingProvider::Shape{.status = 500}},
        std::pair{std::string(R"({"code":"USERPAYING","message":")") + kAuthCode + "\"}",
                  RecordingProvider::Shape{.status = 403}},
        std::pair{payment_json(Mode::kDirect, kFareNo, 2350, "SUCCESS"),
                  RecordingProvider::Shape{.bad_signature = true}},
        std::pair{payment_json(Mode::kDirect, kFareNo, 2350, "PROCESSING"),
                  RecordingProvider::Shape{}},
        std::pair{payment_json(Mode::kDirect, kFareNo, 2350, "SUCCESS"),
                  RecordingProvider::Shape{.delay = std::chrono::milliseconds(2500)}}}) {
    auto r = codepay_against(body, shape, c);
    ASSERT_FALSE(r);
    failures.push_back(r.error());
  }
  log::set_test_sink(nullptr);
  log::set_min_level(log::Level::kInfo);
  std::string logged;
  {
    std::lock_guard lock(g_log_mu);
    logged = g_log;
  }
  EXPECT_FALSE(logged.empty()) << "the failures were logged somewhere";
  EXPECT_EQ(logged.find(kAuthCode), std::string::npos) << logged;
  for (const auto& f : failures) {
    EXPECT_EQ(f.error.to_string().find(kAuthCode), std::string::npos) << f.error.to_string();
    EXPECT_EQ(f.provider_code.find(kAuthCode), std::string::npos);
  }
  EXPECT_EQ(metrics::Registry::global().render().find(kAuthCode), std::string::npos);
}

}  // namespace
}  // namespace provider_test
