// The provider sandbox (see sim/provider_sandbox.h). Written from the spec
// (/work/shared/specs/payment-provider-wechatpay-v3.md), deliberately without the
// gateway's client code: the Authorization parsing, the signed-message layouts and the
// notification format here are an independent reading of the spec.
#include "sim/provider_sandbox.h"

#include <httplib.h>

#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <thread>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/money.h"
#include "core/pki.h"
#include "core/sqlite.h"
#include "core/time_format.h"

namespace lanegate::sim {
namespace json = boost::json;

namespace {

constexpr UtcOffset kChina{480};
constexpr std::int64_t kMaxSkewSeconds = 300;
// 15s, 15s, 30s, 3m, 10m, 20m, 30m, 30m, 30m, 60m, 3h, 3h, 3h, 6h, 6h.
constexpr std::int64_t kRetryScheduleSeconds[] = {
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600};

constexpr std::string_view kSchema[] = {
    R"sql(
CREATE TABLE merchants(
  mchid TEXT PRIMARY KEY, appid TEXT NOT NULL, serial_no TEXT NOT NULL,
  cert_pem TEXT NOT NULL, apiv3_key TEXT NOT NULL, products TEXT NOT NULL);
CREATE TABLE accounts(openid TEXT PRIMARY KEY, overdue INTEGER NOT NULL DEFAULT 0);
CREATE TABLE plates(
  plate_number TEXT NOT NULL, plate_color TEXT NOT NULL, openid TEXT NOT NULL,
  service_state TEXT NOT NULL, service_open_time TEXT NOT NULL,
  PRIMARY KEY(plate_number, plate_color));
CREATE TABLE etc_contracts(
  contract_id TEXT PRIMARY KEY, plate_number TEXT NOT NULL, plate_color TEXT NOT NULL,
  openid TEXT NOT NULL, state TEXT NOT NULL);
CREATE TABLE parkings(
  id TEXT PRIMARY KEY, mchid TEXT NOT NULL, out_parking_no TEXT NOT NULL,
  plate_number TEXT NOT NULL, plate_color TEXT NOT NULL, request_json TEXT NOT NULL,
  state TEXT NOT NULL, block_reason TEXT, UNIQUE(mchid, out_parking_no));
CREATE TABLE transactions(
  seq INTEGER PRIMARY KEY, mchid TEXT NOT NULL, appid TEXT NOT NULL,
  out_trade_no TEXT NOT NULL, transaction_id TEXT NOT NULL UNIQUE, product TEXT NOT NULL,
  description TEXT NOT NULL, amount INTEGER NOT NULL, trade_state TEXT NOT NULL,
  trade_state_description TEXT, openid TEXT NOT NULL, notify_url TEXT NOT NULL,
  create_time TEXT NOT NULL, success_time TEXT, due_ms INTEGER NOT NULL,
  info_json TEXT NOT NULL, attach TEXT, device_id TEXT NOT NULL DEFAULT '',
  submissions INTEGER NOT NULL DEFAULT 1, UNIQUE(mchid, out_trade_no));
CREATE TABLE notifications(
  seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, event_type TEXT NOT NULL,
  mchid TEXT NOT NULL, url TEXT NOT NULL, body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  next_ms INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'pending', last_status INTEGER NOT NULL DEFAULT 0);
CREATE TABLE bills(token TEXT PRIMARY KEY, mchid TEXT NOT NULL, csv TEXT NOT NULL);
)sql",
    // Who hears about an ETC contract's state: every merchant that charged it, at the
    // notify_url of its latest charge (the contract itself carries no notify_url).
    R"sql(
CREATE TABLE contract_subscribers(
  contract_id TEXT NOT NULL, mchid TEXT NOT NULL, notify_url TEXT NOT NULL,
  PRIMARY KEY(contract_id, mchid));
)sql"};

std::int64_t real_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

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

// An API reply before signing.
struct Reply {
  int status = 200;
  std::string body;
  bool lose_after_commit = false;
};

Reply error_reply(int status, std::string_view code, std::string_view message,
                  std::string_view field = {}, std::string_view issue = {}) {
  json::object o;
  o["code"] = code;
  o["message"] = message;
  if (!field.empty() || !issue.empty()) {
    json::object d;
    d["field"] = field;
    d["issue"] = issue;
    d["location"] = "body";
    o["detail"] = std::move(d);
  }
  return Reply{status, json::serialize(o), false};
}

Reply param_error(std::string_view field, std::string_view issue) {
  return error_reply(400, "PARAM_ERROR", std::string(field) + ": " + std::string(issue), field,
                     issue);
}

struct Merchant {
  std::string mchid;
  std::string appid;
  std::string serial_no;
  pki::PublicKey key;
  std::string apiv3_key;
  std::string products;
};

// The merchant's Authorization header, parsed per the spec: scheme, then five
// key="value" parts in any order.
struct AuthorizationParts {
  std::map<std::string, std::string> parts;
};

std::optional<AuthorizationParts> parse_authorization(std::string_view header) {
  constexpr std::string_view kScheme = "WECHATPAY2-SHA256-RSA2048 ";
  if (!header.starts_with(kScheme)) {
    return std::nullopt;
  }
  std::string_view rest = header.substr(kScheme.size());
  AuthorizationParts out;
  while (!rest.empty()) {
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == ',')) {
      rest.remove_prefix(1);
    }
    if (rest.empty()) {
      break;
    }
    auto eq = rest.find('=');
    if (eq == std::string_view::npos || eq + 1 >= rest.size() || rest[eq + 1] != '"') {
      return std::nullopt;
    }
    std::string key(rest.substr(0, eq));
    auto close = rest.find('"', eq + 2);
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    if (!out.parts.emplace(key, std::string(rest.substr(eq + 2, close - eq - 2))).second) {
      return std::nullopt;  // a part given twice
    }
    rest.remove_prefix(close + 1);
  }
  for (const char* required : {"mchid", "nonce_str", "timestamp", "serial_no", "signature"}) {
    if (!out.parts.contains(required)) {
      return std::nullopt;
    }
  }
  return out;
}

}  // namespace

struct ProviderSandbox::Impl {
  ProviderSandboxOptions options;
  std::filesystem::path ca_file;
  pki::PrivateKey platform_key;
  pki::Certificate platform_cert;
  pki::PrivateKey pubkey_key;
  std::string pubkey_id;

  mutable std::mutex db_mu;
  std::optional<Database> db_opt;
  Database& db() { return *db_opt; }

  mutable std::mutex faults_mu;
  ProviderFaults faults;
  std::atomic<double> time_factor{1.0};
  std::atomic<std::int64_t> sign_errors{0};

  std::mutex rng_mu;
  std::mt19937_64 rng{std::random_device{}()};

  std::mutex server_mu;  // guards api/api_thread (refuse_connections restarts them)
  std::unique_ptr<httplib::SSLServer> api;
  std::thread api_thread;
  int api_port = 0;
  httplib::Server admin;
  std::thread admin_thread;
  int admin_port_value = 0;

  std::mutex worker_mu;
  std::condition_variable worker_cv;
  bool stopping = false;
  std::thread worker;
  std::atomic<bool> stopped{false};

  metrics::Counter& requests = metrics::Registry::global().counter(
      "lanegate_sim_provider_requests_total", "API requests served by the provider sandbox");

  // --- setup -----------------------------------------------------------------------
  Status load_pki() {
    const auto& d = options.pki_dir;
    ca_file = d / "ca.pem";
    auto pk = pki::load_private_key(d / "platform.key");
    if (!pk) {
      return std::unexpected(pk.error());
    }
    platform_key = *pk;
    auto pc = pki::load_certificate(d / "platform.pem");
    if (!pc) {
      return std::unexpected(pc.error());
    }
    platform_cert = *pc;
    auto kk = pki::load_private_key(d / "pubkey.key");
    if (!kk) {
      return std::unexpected(kk.error());
    }
    pubkey_key = *kk;
    auto id = pki::read_file(d / "pubkey.id");
    if (!id) {
      return std::unexpected(id.error());
    }
    pubkey_id = *id;
    while (!pubkey_id.empty() && (pubkey_id.back() == '\n' || pubkey_id.back() == '\r')) {
      pubkey_id.pop_back();
    }
    if (!pubkey_id.starts_with("PUB_KEY_ID_")) {
      return fail(Errc::kInvalidArgument, "must start with PUB_KEY_ID_",
                  (d / "pubkey.id").string());
    }
    return {};
  }

  Status apply_seed() {
    auto text = pki::read_file(options.seed_file);
    if (!text) {
      return std::unexpected(text.error());
    }
    boost::system::error_code ec;
    json::value seed = json::parse(*text, ec);
    if (ec || !seed.is_object()) {
      return fail(Errc::kParse, "seed is not a JSON object", options.seed_file.string());
    }
    const auto& root = seed.as_object();
    auto txn = db().begin();
    if (!txn) {
      return std::unexpected(txn.error());
    }
    auto field_error = [&](std::string what) {
      return fail(Errc::kInvalidArgument, what, options.seed_file.string());
    };
    if (const auto* ms = root.if_contains("merchants"); ms != nullptr && ms->is_array()) {
      for (const auto& m : ms->as_array()) {
        const auto& o = m.as_object();
        auto mchid = get_string(o, "mchid");
        auto appid = get_string(o, "appid");
        auto cert_file = get_string(o, "certificate_file");
        auto key_file = get_string(o, "apiv3_key_file");
        if (!mchid || !appid || !cert_file || !key_file) {
          return field_error("merchant needs mchid, appid, certificate_file, apiv3_key_file");
        }
        auto cert = pki::load_certificate(options.pki_dir / *cert_file);
        if (!cert) {
          return std::unexpected(cert.error());
        }
        auto key = pki::read_file(options.pki_dir / *key_file);
        if (!key) {
          return std::unexpected(key.error());
        }
        if (key->size() != 32) {
          return field_error("APIv3 key file must hold exactly 32 bytes");
        }
        std::string products = get_string(o, "products").value_or("PARKING,HIGHWAY");
        auto st = db().prepare(
            "INSERT OR REPLACE INTO merchants(mchid, appid, serial_no, cert_pem, apiv3_key, "
            "products) VALUES(?,?,?,?,?,?)");
        if (!st) {
          return std::unexpected(st.error());
        }
        if (auto r =
                st->bind_all(*mchid, *appid, cert->serial_hex, cert->pem, *key, products).run();
            !r) {
          return r;
        }
      }
    }
    if (const auto* as = root.if_contains("accounts"); as != nullptr && as->is_array()) {
      for (const auto& a : as->as_array()) {
        const auto& o = a.as_object();
        auto openid = get_string(o, "openid");
        if (!openid) {
          return field_error("account needs openid");
        }
        bool overdue = o.if_contains("overdue") != nullptr && o.at("overdue").is_bool() &&
                       o.at("overdue").as_bool();
        auto st = db().prepare("INSERT OR IGNORE INTO accounts(openid, overdue) VALUES(?,?)");
        if (!st) {
          return std::unexpected(st.error());
        }
        if (auto r = st->bind_all(*openid, overdue ? 1 : 0).run(); !r) {
          return r;
        }
      }
    }
    if (const auto* ps = root.if_contains("plates"); ps != nullptr && ps->is_array()) {
      for (const auto& p : ps->as_array()) {
        const auto& o = p.as_object();
        auto number = get_string(o, "plate_number");
        auto color = get_string(o, "plate_color");
        auto openid = get_string(o, "openid");
        auto state = get_string(o, "service_state").value_or("NORMAL");
        if (!number || !color || !openid || !is_plate_color(*color)) {
          return field_error("plate needs plate_number, plate_color (BLUE..LIMEGREEN), openid");
        }
        auto st = db().prepare(
            "INSERT OR IGNORE INTO plates(plate_number, plate_color, openid, service_state, "
            "service_open_time) VALUES(?,?,?,?,?)");
        if (!st) {
          return std::unexpected(st.error());
        }
        if (auto r = st->bind_all(
                           *number, *color, *openid, state,
                           get_string(o, "service_open_time").value_or("2026-01-01T08:00:00+08:00"))
                         .run();
            !r) {
          return r;
        }
        auto acc = db().prepare("INSERT OR IGNORE INTO accounts(openid, overdue) VALUES(?,0)");
        if (!acc) {
          return std::unexpected(acc.error());
        }
        if (auto r = acc->bind_all(*openid).run(); !r) {
          return r;
        }
      }
    }
    if (const auto* cs = root.if_contains("etc_contracts"); cs != nullptr && cs->is_array()) {
      for (const auto& c : cs->as_array()) {
        const auto& o = c.as_object();
        auto id = get_string(o, "contract_id");
        auto number = get_string(o, "plate_number");
        auto openid = get_string(o, "openid");
        if (!id || !number || !openid) {
          return field_error("etc contract needs contract_id, plate_number, openid");
        }
        auto st = db().prepare(
            "INSERT OR IGNORE INTO etc_contracts(contract_id, plate_number, plate_color, openid, "
            "state) VALUES(?,?,?,?,?)");
        if (!st) {
          return std::unexpected(st.error());
        }
        if (auto r = st->bind_all(*id, *number, get_string(o, "plate_color").value_or("BLUE"),
                                  *openid, get_string(o, "state").value_or("NORMAL"))
                         .run();
            !r) {
          return r;
        }
      }
    }
    return txn->commit();
  }

  // --- helpers ---------------------------------------------------------------------
  double draw() {
    std::lock_guard lock(rng_mu);
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  }
  std::string digits(int n) {
    std::lock_guard lock(rng_mu);
    std::string s;
    for (int i = 0; i < n; ++i) {
      s.push_back(static_cast<char>('0' + rng() % 10));
    }
    return s;
  }
  std::string now_text() const { return format_rfc3339(options.clock->now(), kChina); }

  std::optional<Merchant> find_merchant(std::string_view mchid) {
    auto st = db().prepare(
        "SELECT mchid, appid, serial_no, cert_pem, apiv3_key, products FROM merchants WHERE "
        "mchid = ?");
    if (!st) {
      return std::nullopt;
    }
    st->bind_all(mchid);
    auto row = st->step();
    if (!row || !*row) {
      return std::nullopt;
    }
    Merchant m{st->column_text(0), st->column_text(1), st->column_text(2), {},
               st->column_text(4), st->column_text(5)};
    auto key = pki::public_key_from_pem(st->column_text(3));
    if (!key) {
      return std::nullopt;
    }
    m.key = *key;
    return m;
  }

  // Signs `reply` per the spec: TIMESTAMP\nNONCE\nBODY\n with the platform certificate's
  // key, or the public-key-id key when the client asked for it.
  void sign_reply(const httplib::Request& req, httplib::Response& res, const std::string& body) {
    bool public_key_mode = req.get_header_value("Wechatpay-Serial") == pubkey_id;
    std::string timestamp = std::to_string(options.clock->unix_seconds());
    std::string nonce = crypto::random_token(32).value_or("nonce");
    std::string message = timestamp + "\n" + nonce + "\n" + body + "\n";
    auto signature =
        pki::sign_sha256_rsa_base64(public_key_mode ? pubkey_key : platform_key, message);
    res.set_header("Wechatpay-Timestamp", timestamp);
    res.set_header("Wechatpay-Nonce", nonce);
    res.set_header("Wechatpay-Signature", signature.value_or(""));
    res.set_header("Wechatpay-Serial", public_key_mode ? pubkey_id : platform_cert.serial_hex);
    res.set_header("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048");
    res.set_header("Request-ID", crypto::random_token(24).value_or("r"));
  }

  void send(const httplib::Request& req, httplib::Response& res, const Reply& reply) {
    res.status = reply.status;
    sign_reply(req, res, reply.body);
    if (reply.lose_after_commit) {
      // The transaction is committed (invariant 1); the reply is lost: headers go out,
      // the body never does and the connection is closed mid-reply.
      auto length = reply.body.size();
      res.set_content_provider(length, "application/json",
                               [](std::size_t, std::size_t, httplib::DataSink&) { return false; });
      return;
    }
    res.set_content(reply.body, "application/json");
  }

  Reply sign_error(const httplib::Request& req, std::string_view issue,
                   std::string_view expected_message) {
    sign_errors.fetch_add(1);
    json::object info;
    info["method"] = req.method;
    info["sign_message_length"] = expected_message.size();
    // Like the real service: the message it verified, the body cut short.
    info["truncated_sign_message"] = std::string(expected_message.substr(0, 160));
    json::object detail;
    detail["field"] = "signature";
    detail["issue"] = issue;
    detail["location"] = "authorization";
    detail["sign_information"] = std::move(info);
    json::object o;
    o["code"] = "SIGN_ERROR";
    o["message"] = std::string("签名错误: ") + std::string(issue);
    o["detail"] = std::move(detail);
    return Reply{401, json::serialize(o), false};
  }

  // Checks the merchant's request signature. On success returns the merchant.
  std::variant<Merchant, Reply> authenticate(const httplib::Request& req) {
    auto auth = parse_authorization(req.get_header_value("Authorization"));
    if (!auth) {
      return sign_error(req, "Authorization header missing or malformed", "");
    }
    auto& p = auth->parts;
    std::string message = req.method + "\n" + req.target + "\n" + p["timestamp"] + "\n" +
                          p["nonce_str"] + "\n" + req.body + "\n";
    std::optional<Merchant> merchant;
    {
      std::lock_guard lock(db_mu);
      merchant = find_merchant(p["mchid"]);
    }
    if (!merchant) {
      return error_reply(403, "NO_AUTH", "unknown mchid", "mchid", "merchant not registered");
    }
    if (p["serial_no"] != merchant->serial_no) {
      return sign_error(req, "serial_no is not the merchant certificate's serial", message);
    }
    std::int64_t ts = 0;
    try {
      ts = std::stoll(p["timestamp"]);
    } catch (...) {
      return sign_error(req, "timestamp is not an integer", message);
    }
    if (std::llabs(options.clock->unix_seconds() - ts) > kMaxSkewSeconds) {
      return sign_error(req, "timestamp more than 300 s from the provider's clock", message);
    }
    if (!pki::verify_sha256_rsa_base64(merchant->key, message, p["signature"])) {
      return sign_error(req, "sign not match", message);
    }
    return *merchant;
  }

  // Wraps an API handler: latency, signature check, random failures, signing.
  template <typename Handler>
  httplib::Server::Handler api_route(Handler handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      requests.inc();
      ProviderFaults f = current_faults();
      if (f.latency_ms > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(f.latency_ms));
      }
      auto who = authenticate(req);
      if (auto* refused = std::get_if<Reply>(&who)) {
        send(req, res, *refused);
        return;
      }
      if (f.error_5xx_share > 0 && draw() < f.error_5xx_share) {
        send(req, res, error_reply(500, "SYSTEM_ERROR", "系统错误 (injected)"));
        return;
      }
      if (f.unavailable_share > 0 && draw() < f.unavailable_share) {
        send(req, res, error_reply(503, "SERVICE_UNAVAILABLE", "服务不可用 (injected)"));
        return;
      }
      if (f.ratelimit_share > 0 && draw() < f.ratelimit_share) {
        send(req, res, error_reply(429, "RATELIMIT_EXCEEDED", "频率超限 (injected)"));
        return;
      }
      Reply reply = handler(req, std::get<Merchant>(who));
      send(req, res, reply);
    };
  }

  ProviderFaults current_faults() const {
    std::lock_guard lock(faults_mu);
    return faults;
  }

  // --- API handlers ------------------------------------------------------------------
  Reply find_service(const httplib::Request& req, const Merchant& m) {
    std::string appid = req.get_param_value("appid");
    std::string number = req.get_param_value("plate_number");
    std::string color = req.get_param_value("plate_color");
    std::string openid = req.get_param_value("openid");
    for (auto [name, value] : {std::pair{"appid", &appid}, std::pair{"plate_number", &number},
                               std::pair{"plate_color", &color}, std::pair{"openid", &openid}}) {
      if (value->empty()) {
        return param_error(name, "required");
      }
    }
    if (appid != m.appid) {
      return error_reply(400, "INVALID_REQUEST", "appid is not bound to this mchid", "appid",
                         "appid/mchid mismatch");
    }
    if (!is_plate_color(color)) {
      return param_error("plate_color", "not one of BLUE, GREEN, YELLOW, BLACK, WHITE, LIMEGREEN");
    }
    std::lock_guard lock(db_mu);
    auto st = db().prepare(
        "SELECT service_state, service_open_time FROM plates WHERE plate_number=? AND "
        "plate_color=? AND openid=?");
    if (!st) {
      return error_reply(500, "SYSTEM_ERROR", st.error().to_string());
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

  std::optional<json::object> parse_body(const httplib::Request& req, Reply& error) {
    boost::system::error_code ec;
    json::value v = json::parse(req.body, ec);
    if (ec || !v.is_object()) {
      error = error_reply(400, "INVALID_REQUEST", "body is not a JSON object", "body", "not JSON");
      return std::nullopt;
    }
    return std::move(v.as_object());
  }

  Reply create_parking(const httplib::Request& req, const Merchant& m) {
    Reply error;
    auto body = parse_body(req, error);
    if (!body) {
      return error;
    }
    auto out_parking_no = get_string(*body, "out_parking_no");
    auto number = get_string(*body, "plate_number");
    auto color = get_string(*body, "plate_color");
    auto notify_url = get_string(*body, "notify_url");
    auto start_time = get_string(*body, "start_time");
    auto parking_name = get_string(*body, "parking_name");
    auto free_duration = get_int(*body, "free_duration");
    if (!out_parking_no || out_parking_no->empty() || out_parking_no->size() > 64) {
      return param_error("out_parking_no", "required, at most 64 characters");
    }
    if (!number || number->empty()) {
      return param_error("plate_number", "required");
    }
    if (!color || !is_plate_color(*color)) {
      return param_error("plate_color", "not one of BLUE, GREEN, YELLOW, BLACK, WHITE, LIMEGREEN");
    }
    if (!notify_url || !notify_url->starts_with("https://")) {
      return param_error("notify_url", "required, must be an https URL");
    }
    if (!start_time || !parse_rfc3339(*start_time)) {
      return param_error("start_time", "required, RFC 3339 with offset");
    }
    if (!parking_name || parking_name->empty() || utf8_length(*parking_name) > 128) {
      return param_error("parking_name", "required, at most 128 characters");
    }
    if (!free_duration || *free_duration < 0) {
      return param_error("free_duration", "required, seconds >= 0");
    }
    if (m.products.find("PARKING") == std::string::npos) {
      return error_reply(403, "NO_AUTH", "merchant has no parking product", "mchid", "no auth");
    }
    std::lock_guard lock(db_mu);
    // An entry is located only by out_parking_no: a resend returns the same entry.
    auto existing = db().prepare(
        "SELECT id, state, block_reason FROM parkings WHERE mchid=? AND out_parking_no=?");
    if (!existing) {
      return error_reply(500, "SYSTEM_ERROR", existing.error().to_string());
    }
    existing->bind_all(m.mchid, *out_parking_no);
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
        return error_reply(500, "SYSTEM_ERROR", plate.error().to_string());
      }
      plate->bind_all(*number, *color);
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
          "request_json, state, block_reason) VALUES(?,?,?,?,?,?,?,?)");
      if (!ins) {
        return error_reply(500, "SYSTEM_ERROR", ins.error().to_string());
      }
      if (auto r = ins->bind_all(id, m.mchid, *out_parking_no, *number, *color, req.body, state,
                                 block_reason)
                       .run();
          !r) {
        return error_reply(500, "SYSTEM_ERROR", r.error().to_string());
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

  json::object transaction_json(Statement& st) {
    // Columns: see kTransactionColumns.
    json::object o;
    o["appid"] = st.column_text(1);
    o["sp_mchid"] = st.column_text(0);
    o["description"] = st.column_text(5);
    o["create_time"] = st.column_text(11);
    o["out_trade_no"] = st.column_text(2);
    o["transaction_id"] = st.column_text(3);
    std::string state = st.column_text(7);
    o["trade_state"] = state;
    if (auto d = st.column_opt_text(8)) {
      o["trade_state_description"] = *d;
    }
    if (auto t = st.column_opt_text(12)) {
      o["success_time"] = *t;
    }
    if (auto a = st.column_opt_text(14)) {
      o["attach"] = *a;
    }
    std::string product = st.column_text(4);
    o["trade_scene"] = product;
    boost::system::error_code ec;
    json::value info = json::parse(st.column_text(13), ec);
    if (!ec) {
      o[info_key(product)] = info;
    }
    json::object payer;
    payer["openid"] = st.column_text(9);
    o["payer"] = std::move(payer);
    json::object amount;
    amount["total"] = st.column_int64(6);
    amount["currency"] = "CNY";
    if (state == "SUCCESS") {
      amount["payer_total"] = st.column_int64(6);
      amount["discount_total"] = 0;
      o["bank_type"] = "OTHERS";
      o["user_repaid"] = "N";
    }
    o["amount"] = std::move(amount);
    return o;
  }

  static constexpr std::string_view kTransactionColumns =
      "mchid, appid, out_trade_no, transaction_id, product, description, amount, trade_state, "
      "trade_state_description, openid, notify_url, create_time, success_time, info_json, "
      "attach";

  static std::string info_key(std::string_view product) {
    return product == "HIGHWAY" ? "highway_info" : product == "TAXI" ? "taxi_info" : "parking_info";
  }

  // PARKING, HIGHWAY, or TAXI (the taxi call is not in the spec: modelled on parking,
  // the rider's account named by taxi_info.openid).
  Reply charge(const httplib::Request& req, const Merchant& m, std::string_view product) {
    Reply error;
    auto body = parse_body(req, error);
    if (!body) {
      return error;
    }
    bool highway = product == "HIGHWAY";
    bool taxi = product == "TAXI";
    const std::string info_name = info_key(product);
    auto appid = get_string(*body, "appid");
    auto description = get_string(*body, "description");
    auto out_trade_no = get_string(*body, "out_trade_no");
    auto notify_url = get_string(*body, "notify_url");
    auto attach = get_string(*body, "attach");
    const json::value* amount_v = body->if_contains("amount");
    const json::value* info_v = body->if_contains(info_name);
    if (!appid) {
      return param_error("appid", "required");
    }
    if (*appid != m.appid) {
      return error_reply(400, "INVALID_REQUEST", "appid is not bound to this mchid", "appid",
                         "appid/mchid mismatch");
    }
    if (!description || description->empty() || utf8_length(*description) > 128) {
      return param_error("description", "required, at most 128 characters");
    }
    if (!out_trade_no || !is_out_trade_no(*out_trade_no)) {
      return param_error("out_trade_no", "required, 1..32 of [0-9A-Za-z_*-]");
    }
    if (!highway && get_string(*body, "trade_scene") != std::optional<std::string>(product)) {
      return param_error("trade_scene", "must be " + std::string(product));
    }
    if (!notify_url || !notify_url->starts_with("https://")) {
      return param_error("notify_url", "required, must be an https URL");
    }
    if (amount_v == nullptr || !amount_v->is_object()) {
      return param_error("amount", "required object {total, currency}");
    }
    auto total = get_int(amount_v->as_object(), "total");
    if (!total || *total <= 0) {
      return param_error("amount.total", "required, integer fen > 0");
    }
    if (get_string(amount_v->as_object(), "currency").value_or("CNY") != "CNY") {
      return param_error("amount.currency", "must be CNY");
    }
    if (info_v == nullptr || !info_v->is_object()) {
      return param_error(info_name, "required object");
    }
    const auto& info = info_v->as_object();
    auto plate = get_string(info, "plate_number");
    if (!plate || plate->empty()) {
      return param_error(info_name + ".plate_number", "required");
    }
    if (m.products.find(product) == std::string::npos) {
      return error_reply(403, "NO_AUTH", "merchant has no authority for this product", "mchid",
                         "no auth");
    }
    std::lock_guard lock(db_mu);
    // Invariant 2: the same out_trade_no returns the same transaction.
    {
      auto st =
          db().prepare("SELECT amount, product FROM transactions WHERE mchid=? AND out_trade_no=?");
      if (!st) {
        return error_reply(500, "SYSTEM_ERROR", st.error().to_string());
      }
      st->bind_all(m.mchid, *out_trade_no);
      if (auto row = st->step(); row && *row) {
        if (st->column_int64(0) != *total || st->column_text(1) != product) {
          return error_reply(400, "INVALID_REQUEST",
                             "out_trade_no already used with a different amount or product",
                             "out_trade_no", "duplicate out_trade_no, different content");
        }
        auto bump = db().prepare(
            "UPDATE transactions SET submissions = submissions + 1 WHERE mchid=? AND "
            "out_trade_no=?");
        if (bump) {
          (void)bump->bind_all(m.mchid, *out_trade_no).run();
        }
        return load_transaction_locked(m.mchid, *out_trade_no, product, true);
      }
    }
    std::string openid;
    std::string device_id;
    if (highway) {
      auto contract_id = get_string(*body, "contract_id");
      if (!contract_id) {
        return param_error("contract_id", "required");
      }
      auto st =
          db().prepare("SELECT openid, state, plate_number FROM etc_contracts WHERE contract_id=?");
      if (!st) {
        return error_reply(500, "SYSTEM_ERROR", st.error().to_string());
      }
      st->bind_all(*contract_id);
      auto row = st->step();
      if (!row || !*row) {
        return param_error("contract_id", "no such ETC contract");
      }
      if (st->column_text(1) != "NORMAL") {
        return error_reply(400, "INVALID_REQUEST", "ETC contract is not in NORMAL state",
                           "contract_id", "contract not active");
      }
      if (st->column_text(2) != *plate) {
        return param_error("highway_info.plate_number", "does not match the contract's plate");
      }
      openid = st->column_text(0);
      device_id = get_string(info, "entrance").value_or("");
      auto sub = db().prepare(
          "INSERT INTO contract_subscribers(contract_id, mchid, notify_url) VALUES(?,?,?) "
          "ON CONFLICT(contract_id, mchid) DO UPDATE SET notify_url=excluded.notify_url");
      if (!sub) {
        return error_reply(500, "SYSTEM_ERROR", sub.error().to_string());
      }
      if (auto r = sub->bind_all(*contract_id, m.mchid, *notify_url).run(); !r) {
        return error_reply(500, "SYSTEM_ERROR", r.error().to_string());
      }
    } else if (taxi) {
      auto rider = get_string(info, "openid");
      if (!rider || rider->empty()) {
        return param_error("taxi_info.openid", "required");
      }
      auto st = db().prepare("SELECT 1 FROM accounts WHERE openid=?");
      if (!st) {
        return error_reply(500, "SYSTEM_ERROR", st.error().to_string());
      }
      st->bind_all(*rider);
      auto row = st->step();
      if (!row || !*row) {
        return error_reply(400, "INVALID_REQUEST", "rider has no deduction service",
                           "taxi_info.openid", "no such account");
      }
      openid = *rider;
      device_id = get_string(info, "device_id").value_or("");
    } else {
      auto parking_id = get_string(info, "parking_id");
      if (!parking_id) {
        return param_error("parking_info.parking_id", "required");
      }
      auto st = db().prepare(
          "SELECT p.plate_number, b.openid, b.service_state FROM parkings p LEFT JOIN plates b ON "
          "b.plate_number = p.plate_number AND b.plate_color = p.plate_color WHERE p.id=? AND "
          "p.mchid=?");
      if (!st) {
        return error_reply(500, "SYSTEM_ERROR", st.error().to_string());
      }
      st->bind_all(*parking_id, m.mchid);
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
      device_id = get_string(info, "device_id").value_or("");
    }
    std::string transaction_id = "4200" + digits(24);
    std::int64_t due =
        real_now_ms() + static_cast<std::int64_t>(options.deduction_delay_ms * time_factor.load());
    auto ins = db().prepare(
        "INSERT INTO transactions(mchid, appid, out_trade_no, transaction_id, product, "
        "description, amount, trade_state, openid, notify_url, create_time, due_ms, info_json, "
        "attach, device_id) VALUES(?,?,?,?,?,?,?,'ACCEPTED',?,?,?,?,?,?,?)");
    if (!ins) {
      return error_reply(500, "SYSTEM_ERROR", ins.error().to_string());
    }
    if (auto r = ins->bind_all(m.mchid, *appid, *out_trade_no, transaction_id, std::string(product),
                               *description, *total, openid, *notify_url, now_text(), due,
                               json::serialize(info), attach, device_id)
                     .run();
        !r) {
      return error_reply(500, "SYSTEM_ERROR", r.error().to_string());
    }
    worker_cv.notify_one();
    Reply reply = load_transaction_locked(m.mchid, *out_trade_no, product, false);
    if (reply.status == 200) {
      ProviderFaults f = current_faults();
      reply.lose_after_commit = f.lost_reply_share > 0 && draw() < f.lost_reply_share;
    }
    return reply;
  }

  // REQUIRES: db_mu held.
  Reply load_transaction_locked(const std::string& mchid, const std::string& out_trade_no,
                                std::string_view product, bool allow_lost) {
    // The vehicle transactions query path (PARKING) also finds TAXI orders: both live
    // under /v3/vehicle/transactions/ (taxi: unconfirmed).
    auto st = db().prepare("SELECT " + std::string(kTransactionColumns) +
                           " FROM transactions WHERE mchid=? AND out_trade_no=? AND (product=? "
                           "OR (?='PARKING' AND product='TAXI'))");
    if (!st) {
      return error_reply(500, "SYSTEM_ERROR", st.error().to_string());
    }
    st->bind_all(mchid, out_trade_no, std::string(product), std::string(product));
    auto row = st->step();
    if (!row || !*row) {
      return error_reply(404, "ORDER_NOT_EXIST", "订单不存在", "out_trade_no", "not found");
    }
    Reply reply{200, json::serialize(transaction_json(*st)), false};
    if (allow_lost) {
      ProviderFaults f = current_faults();
      reply.lose_after_commit = f.lost_reply_share > 0 && draw() < f.lost_reply_share;
    }
    return reply;
  }

  Reply query(const httplib::Request& req, const Merchant& m, std::string_view product) {
    std::string no = req.matches[1];
    if (!is_out_trade_no(no)) {
      return param_error("out_trade_no", "1..32 of [0-9A-Za-z_*-]");
    }
    std::lock_guard lock(db_mu);
    return load_transaction_locked(m.mchid, no, product, false);
  }

  Reply query_etc_by_id(const httplib::Request& req, const Merchant& m) {
    std::string id = req.matches[1];
    std::lock_guard lock(db_mu);
    auto st = db().prepare(
        "SELECT out_trade_no FROM transactions WHERE mchid=? AND transaction_id=? "
        "AND product='HIGHWAY'");
    if (!st) {
      return error_reply(500, "SYSTEM_ERROR", st.error().to_string());
    }
    st->bind_all(m.mchid, id);
    auto row = st->step();
    if (!row || !*row) {
      return error_reply(404, "ORDER_NOT_EXIST", "订单不存在", "id", "not found");
    }
    return load_transaction_locked(m.mchid, st->column_text(0), "HIGHWAY", false);
  }

  Reply certificates(const Merchant& m) {
    std::string nonce = crypto::random_token(12).value_or("000000000000");
    auto sealed = pki::aes256gcm_encrypt(m.apiv3_key, nonce, "certificate", platform_cert.pem);
    if (!sealed) {
      return error_reply(500, "SYSTEM_ERROR", sealed.error().to_string());
    }
    json::object enc;
    enc["algorithm"] = "AEAD_AES_256_GCM";
    enc["nonce"] = nonce;
    enc["associated_data"] = "certificate";
    enc["ciphertext"] = crypto::base64_encode(std::string_view(*sealed));
    json::object c;
    c["serial_no"] = platform_cert.serial_hex;
    c["effective_time"] = format_rfc3339(platform_cert.not_before, kChina);
    c["expire_time"] = format_rfc3339(platform_cert.not_after, kChina);
    c["encrypt_certificate"] = std::move(enc);
    json::array data;
    data.push_back(std::move(c));
    json::object o;
    o["data"] = std::move(data);
    return Reply{200, json::serialize(o), false};
  }

  static std::string bill_field(std::string_view v) { return "`" + std::string(v); }

  Reply trade_bill(const httplib::Request& req, const Merchant& m) {
    std::string date = req.get_param_value("bill_date");
    std::string type = req.get_param_value("bill_type");
    auto day_start = parse_local_date(date, kChina);
    if (!day_start) {
      return param_error("bill_date", "required, YYYY-MM-DD");
    }
    if (!type.empty() && type != "ALL" && type != "SUCCESS") {
      return param_error("bill_type", "ALL or SUCCESS");
    }
    if (*day_start > options.clock->now()) {
      return param_error("bill_date", "in the future");
    }
    std::lock_guard lock(db_mu);
    auto st = db().prepare(
        "SELECT success_time, appid, mchid, device_id, transaction_id, out_trade_no, openid, "
        "product, trade_state, amount FROM transactions WHERE mchid=? AND trade_state='SUCCESS' "
        "ORDER BY seq");
    if (!st) {
      return error_reply(500, "SYSTEM_ERROR", st.error().to_string());
    }
    st->bind_all(m.mchid);
    std::string csv =
        "交易时间,公众账号ID,商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
        "付款银行,货币种类,应结订单总金额(元),退款金额(元)\r\n";
    std::int64_t count = 0;
    Money sum = Money::zero();
    while (true) {
      auto row = st->step();
      if (!row || !*row) {
        break;
      }
      auto success = parse_rfc3339(st->column_text(0));
      if (!success || format_local_date(*success, kChina) != date) {
        continue;
      }
      std::string local = format_rfc3339(*success, kChina);  // 2026-11-22T13:29:35+08:00
      std::string when = local.substr(0, 10) + " " + local.substr(11, 8);
      Money amount = Money::from_fen(st->column_int64(9));
      sum = sum.add(amount).value_or(sum);
      ++count;
      std::vector<std::string> fields{when};
      for (int col = 1; col <= 8; ++col) {
        fields.push_back(st->column_text(col));
      }
      std::string line;
      for (const auto& field : fields) {
        line += bill_field(field) + ",";
      }
      line += bill_field("OTHERS") + "," + bill_field("CNY") + "," +
              bill_field(amount.to_string()) + "," + bill_field("0.00") + "\r\n";
      csv += line;
    }
    csv += "总交易单数,应结订单总金额,退款总金额\r\n";
    csv += bill_field(std::to_string(count)) + "," + bill_field(sum.to_string()) + "," +
           bill_field("0.00") + "\r\n";
    std::string token = crypto::random_token(32).value_or("token");
    auto ins = db().prepare("INSERT INTO bills(token, mchid, csv) VALUES(?,?,?)");
    if (!ins || !ins->bind_all(token, m.mchid, csv).run()) {
      return error_reply(500, "SYSTEM_ERROR", "cannot store bill");
    }
    json::object o;
    o["hash_type"] = "SHA1";
    o["hash_value"] = pki::sha1_hex(csv);
    o["download_url"] =
        "https://127.0.0.1:" + std::to_string(api_port) + "/v3/billdownload/file?token=" + token;
    return Reply{200, json::serialize(o), false};
  }

  // The bill file itself: signed request, raw CSV reply (checked by hash, not signature).
  void bill_download(const httplib::Request& req, httplib::Response& res) {
    auto who = authenticate(req);
    if (auto* refused = std::get_if<Reply>(&who)) {
      send(req, res, *refused);
      return;
    }
    std::lock_guard lock(db_mu);
    auto st = db().prepare("SELECT csv FROM bills WHERE token=? AND mchid=?");
    if (!st) {
      res.status = 500;
      return;
    }
    st->bind_all(req.get_param_value("token"), std::get<Merchant>(who).mchid);
    auto row = st->step();
    if (!row || !*row) {
      send(req, res, error_reply(404, "NO_STATEMENT_EXIST", "bill token unknown"));
      return;
    }
    res.status = 200;
    res.set_content(st->column_text(0), "text/csv; charset=utf-8");
  }

  // --- servers -----------------------------------------------------------------------
  void install_routes(httplib::SSLServer& s) {
    s.new_task_queue = [] { return new httplib::ThreadPool(48); };
    s.set_keep_alive_max_count(100000);
    s.set_tcp_nodelay(true);  // no Nagle + delayed-ACK stall between headers and body
    // Short: stopping the listener (refuse_connections) waits for idle keep-alive
    // connections to time out, and they must not outlive an "uplink down".
    s.set_keep_alive_timeout(2);
    s.Get("/v3/vehicle/parking/services/find",
          api_route(
              [this](const httplib::Request& r, const Merchant& m) { return find_service(r, m); }));
    s.Post("/v3/vehicle/parking/parkings",
           api_route([this](const httplib::Request& r, const Merchant& m) {
             return create_parking(r, m);
           }));
    s.Post("/v3/vehicle/transactions/parking",
           api_route([this](const httplib::Request& r, const Merchant& m) {
             return charge(r, m, "PARKING");
           }));
    s.Post("/v3/vehicle/transactions/taxi",
           api_route([this](const httplib::Request& r, const Merchant& m) {
             return charge(r, m, "TAXI");
           }));
    s.Get(R"(/v3/vehicle/transactions/out-trade-no/([^/?]+))",
          api_route([this](const httplib::Request& r, const Merchant& m) {
            return query(r, m, "PARKING");
          }));
    s.Post("/v3/vehicle/etc/transactions/highway",
           api_route([this](const httplib::Request& r, const Merchant& m) {
             return charge(r, m, "HIGHWAY");
           }));
    s.Get(R"(/v3/vehicle/etc/transactions/out-trade-no/([^/?]+))",
          api_route([this](const httplib::Request& r, const Merchant& m) {
            return query(r, m, "HIGHWAY");
          }));
    s.Get(R"(/v3/vehicle/etc/transactions/id/([^/?]+))",
          api_route([this](const httplib::Request& r, const Merchant& m) {
            return query_etc_by_id(r, m);
          }));
    s.Get("/v3/certificates", api_route([this](const httplib::Request&, const Merchant& m) {
            return certificates(m);
          }));
    s.Get("/v3/bill/tradebill", api_route([this](const httplib::Request& r, const Merchant& m) {
            return trade_bill(r, m);
          }));
    s.Get("/v3/billdownload/file",
          [this](const httplib::Request& r, httplib::Response& res) { bill_download(r, res); });
    // Not part of the provider API: an unsigned echo on the same server, TLS and thread
    // pool, so the benchmark can put the cost of the protocol beside raw cpp-httplib.
    s.Post("/sandbox/echo", [](const httplib::Request& r, httplib::Response& res) {
      res.set_content(r.body, "application/json");
    });
  }

  Status start_api(int port) {
    auto cert = (options.pki_dir / "server.pem").string();
    auto key = (options.pki_dir / "server.key").string();
    auto server = std::make_unique<httplib::SSLServer>(cert.c_str(), key.c_str());
    if (!server->is_valid()) {
      return fail(Errc::kCrypto, "cannot load TLS server certificate/key", cert);
    }
    install_routes(*server);
    int bound = 0;
    if (port == 0) {
      bound = server->bind_to_any_port("127.0.0.1");
    } else {
      bound = server->bind_to_port("127.0.0.1", port) ? port : -1;
    }
    if (bound <= 0) {
      return fail(Errc::kIo, "cannot bind 127.0.0.1:" + std::to_string(port), "port");
    }
    api_port = bound;
    httplib::SSLServer* raw = server.get();
    api = std::move(server);
    api_thread = std::thread([raw] { raw->listen_after_bind(); });
    return {};
  }

  void stop_api() {
    if (api) {
      api->stop();
    }
    if (api_thread.joinable()) {
      api_thread.join();
    }
    api.reset();
  }

  void apply_faults(const ProviderFaults& f) {
    {
      std::lock_guard lock(faults_mu);
      faults = f;
    }
    std::lock_guard lock(server_mu);
    if (stopped) {
      return;
    }
    if (f.refuse_connections && api) {
      stop_api();  // connect() to the port is now refused
    } else if (!f.refuse_connections && !api) {
      if (auto r = start_api(api_port); !r) {
        log::error("provider sandbox cannot reopen its port", {{"ERROR", r.error().to_string()}});
      }
    }
    worker_cv.notify_one();
  }

  void install_admin() {
    admin.Post("/admin/faults", [this](const httplib::Request& req, httplib::Response& res) {
      boost::system::error_code ec;
      json::value v = json::parse(req.body, ec);
      if (ec || !v.is_object()) {
        res.status = 400;
        res.set_content(R"({"error":"body must be a JSON object"})", "application/json");
        return;
      }
      ProviderFaults f = current_faults();
      const auto& o = v.as_object();
      auto num = [&](std::string_view k, double& out) {
        if (const auto* x = o.if_contains(k); x != nullptr && x->is_number()) {
          out = x->to_number<double>();
        }
      };
      auto flag = [&](std::string_view k, bool& out) {
        if (const auto* x = o.if_contains(k); x != nullptr && x->is_bool()) {
          out = x->as_bool();
        }
      };
      flag("refuse_connections", f.refuse_connections);
      flag("notifications_paused", f.notifications_paused);
      double latency = f.latency_ms;
      num("latency_ms", latency);
      f.latency_ms = static_cast<int>(latency);
      num("error_5xx_share", f.error_5xx_share);
      num("unavailable_share", f.unavailable_share);
      num("ratelimit_share", f.ratelimit_share);
      num("lost_reply_share", f.lost_reply_share);
      apply_faults(f);
      res.set_content(faults_json(), "application/json");
    });
    admin.Get("/admin/faults", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(faults_json(), "application/json");
    });
    admin.Post("/admin/time_factor", [this](const httplib::Request& req, httplib::Response& res) {
      boost::system::error_code ec;
      json::value v = json::parse(req.body, ec);
      if (ec || !v.is_object() || v.as_object().if_contains("time_factor") == nullptr ||
          !v.as_object().at("time_factor").is_number() ||
          v.as_object().at("time_factor").to_number<double>() <= 0) {
        res.status = 400;
        res.set_content(R"({"error":"time_factor: a number > 0"})", "application/json");
        return;
      }
      time_factor = v.as_object().at("time_factor").to_number<double>();
      res.set_content(R"({"ok":true})", "application/json");
    });
    admin.Post("/admin/plates", [this](const httplib::Request& req, httplib::Response& res) {
      boost::system::error_code ec;
      json::value v = json::parse(req.body, ec);
      if (ec || !v.is_object()) {
        res.status = 400;
        return;
      }
      const auto& o = v.as_object();
      auto r = set_plate_state(get_string(o, "plate_number").value_or(""),
                               get_string(o, "plate_color").value_or(""),
                               get_string(o, "service_state").value_or(""));
      res.status = r ? 200 : 400;
      res.set_content(
          r ? R"({"ok":true})" : json::serialize(json::object{{"error", r.error().to_string()}}),
          "application/json");
    });
    admin.Post("/admin/contracts", [this](const httplib::Request& req, httplib::Response& res) {
      boost::system::error_code ec;
      json::value v = json::parse(req.body, ec);
      if (ec || !v.is_object()) {
        res.status = 400;
        res.set_content(R"({"error":"body must be a JSON object"})", "application/json");
        return;
      }
      const auto& o = v.as_object();
      auto r = set_contract_state(get_string(o, "contract_id").value_or(""),
                                  get_string(o, "state").value_or(""),
                                  get_string(o, "notify_url").value_or(""));
      res.status = r ? 200 : 400;
      res.set_content(
          r ? R"({"ok":true})" : json::serialize(json::object{{"error", r.error().to_string()}}),
          "application/json");
    });
    admin.Get("/admin/transactions", [this](const httplib::Request&, httplib::Response& res) {
      auto list = list_transactions();
      json::array a;
      if (list) {
        for (const auto& t : *list) {
          a.push_back(json::object{{"mchid", t.mchid},
                                   {"out_trade_no", t.out_trade_no},
                                   {"transaction_id", t.transaction_id},
                                   {"product", t.product},
                                   {"trade_state", t.trade_state},
                                   {"amount", t.amount_fen},
                                   {"openid", t.openid},
                                   {"submissions", t.submissions}});
        }
      }
      res.set_content(json::serialize(a), "application/json");
    });
    admin.Get("/admin/notifications", [this](const httplib::Request&, httplib::Response& res) {
      auto list = list_notifications();
      json::array a;
      if (list) {
        for (const auto& n : *list) {
          a.push_back(json::object{{"event_id", n.event_id},
                                   {"event_type", n.event_type},
                                   {"url", n.url},
                                   {"attempts", n.attempts},
                                   {"state", n.state},
                                   {"last_status", n.last_status}});
        }
      }
      res.set_content(json::serialize(a), "application/json");
    });
  }

  std::string faults_json() const {
    ProviderFaults f = current_faults();
    return json::serialize(json::object{{"refuse_connections", f.refuse_connections},
                                        {"latency_ms", f.latency_ms},
                                        {"error_5xx_share", f.error_5xx_share},
                                        {"unavailable_share", f.unavailable_share},
                                        {"ratelimit_share", f.ratelimit_share},
                                        {"lost_reply_share", f.lost_reply_share},
                                        {"notifications_paused", f.notifications_paused},
                                        {"time_factor", time_factor.load()}});
  }

  Status set_plate_state(const std::string& number, const std::string& color,
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
        "SELECT id, mchid, out_parking_no, request_json FROM parkings WHERE plate_number=? AND "
        "plate_color=? AND state<>?");
    if (!entries) {
      return std::unexpected(entries.error());
    }
    entries->bind_all(number, color, parking_state);
    struct Flip {
      std::string id, mchid, out_parking_no, request_json;
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
                       entries->column_text(3)});
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
      json::object resource;
      resource["sp_mchid"] = f.mchid;
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
      if (auto q = queue_notification(*merchant, f.mchid, url, "VEHICLE.ENTRANCE_STATE_CHANGE", "车辆入场状态变更",
                                      "parking", json::serialize(resource));
          !q) {
        return std::unexpected(q.error());
      }
    }
    return txn->commit();
  }

  // Changes an ETC contract's state and queues a VEHICLE.USER_STATE_CHANGE (fields
  // unconfirmed, modelled on ENTRANCE_STATE_CHANGE) to every merchant that charged the
  // contract, and to `extra_url` (first merchant's key) when given, in the same commit.
  Status set_contract_state(const std::string& contract_id, const std::string& state,
                            const std::string& extra_url) {
    if (state != "NORMAL" && state != "PAUSE" && state != "OUT_SERVICE" && state != "TERMINATED") {
      return fail(Errc::kInvalidArgument, "NORMAL, PAUSE, OUT_SERVICE or TERMINATED", "state");
    }
    if (!extra_url.empty() && !extra_url.starts_with("https://")) {
      return fail(Errc::kInvalidArgument, "an https URL", "notify_url");
    }
    std::lock_guard lock(db_mu);
    auto txn = db().begin();
    if (!txn) {
      return std::unexpected(txn.error());
    }
    auto st = db().prepare(
        "UPDATE etc_contracts SET state=? WHERE contract_id=? "
        "RETURNING plate_number, plate_color");
    if (!st) {
      return std::unexpected(st.error());
    }
    st->bind_all(state, contract_id);
    auto row = st->step();
    if (!row) {
      return std::unexpected(row.error());
    }
    if (!*row) {
      return fail(Errc::kNotFound, "no such ETC contract", "contract_id");
    }
    const std::string plate = st->column_text(0);
    const std::string colour = st->column_text(1);
    (void)st->step();
    std::vector<std::pair<std::string, std::string>> targets;  // mchid, url
    auto subs = db().prepare(
        "SELECT mchid, notify_url FROM contract_subscribers WHERE contract_id=? ORDER BY mchid");
    if (!subs) {
      return std::unexpected(subs.error());
    }
    subs->bind_all(contract_id);
    while (true) {
      auto r = subs->step();
      if (!r) {
        return std::unexpected(r.error());
      }
      if (!*r) {
        break;
      }
      targets.emplace_back(subs->column_text(0), subs->column_text(1));
    }
    if (!extra_url.empty()) {
      auto first = db().prepare("SELECT mchid FROM merchants ORDER BY mchid LIMIT 1");
      if (!first) {
        return std::unexpected(first.error());
      }
      if (auto r = first->step(); r && *r) {
        targets.emplace_back(first->column_text(0), extra_url);
      }
    }
    for (const auto& [mchid, url] : targets) {
      auto merchant = find_merchant(mchid);
      if (!merchant) {
        continue;
      }
      json::object resource;
      resource["sp_mchid"] = mchid;
      resource["contract_id"] = contract_id;
      resource["plate_number"] = plate;
      resource["plate_color"] = colour;
      resource["user_state"] = state;
      resource["state_update_time"] = now_text();
      if (auto q = queue_notification(*merchant, mchid, url, "VEHICLE.USER_STATE_CHANGE", "用户状态变更", "contract",
                                      json::serialize(resource));
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

  Result<std::vector<SandboxTransaction>> list_transactions() const {
    std::lock_guard lock(db_mu);
    auto st = const_cast<Impl*>(this)->db().prepare(
        "SELECT mchid, out_trade_no, transaction_id, product, trade_state, amount, openid, "
        "submissions FROM transactions ORDER BY seq");
    if (!st) {
      return std::unexpected(st.error());
    }
    std::vector<SandboxTransaction> out;
    while (true) {
      auto row = st->step();
      if (!row) {
        return std::unexpected(row.error());
      }
      if (!*row) {
        break;
      }
      out.push_back({st->column_text(0), st->column_text(1), st->column_text(2), st->column_text(3),
                     st->column_text(4), st->column_int64(5), st->column_text(6),
                     static_cast<int>(st->column_int64(7))});
    }
    return out;
  }

  Result<std::vector<SandboxNotification>> list_notifications() const {
    std::lock_guard lock(db_mu);
    auto st = const_cast<Impl*>(this)->db().prepare(
        "SELECT event_id, event_type, url, attempts, state, last_status FROM notifications "
        "ORDER BY seq");
    if (!st) {
      return std::unexpected(st.error());
    }
    std::vector<SandboxNotification> out;
    while (true) {
      auto row = st->step();
      if (!row) {
        return std::unexpected(row.error());
      }
      if (!*row) {
        break;
      }
      out.push_back({st->column_text(0), st->column_text(1), st->column_text(2),
                     static_cast<int>(st->column_int64(3)), st->column_text(4),
                     static_cast<int>(st->column_int64(5))});
    }
    return out;
  }

  // --- worker: deduction and notification delivery ------------------------------------
  // Settles due ACCEPTED transactions (invariant 4: the notification is queued in the
  // same SQLite transaction as the state change).
  void settle_due() {
    std::lock_guard lock(db_mu);
    auto txn = db().begin();
    if (!txn) {
      return;
    }
    auto st = db().prepare("SELECT " + std::string(kTransactionColumns) +
                           ", seq FROM transactions WHERE trade_state='ACCEPTED' AND due_ms <= ? "
                           "ORDER BY seq LIMIT 200");
    if (!st) {
      return;
    }
    st->bind_all(real_now_ms());
    struct Due {
      std::int64_t seq;
      std::string mchid, openid, notify_url;
    };
    std::vector<Due> due;
    while (true) {
      auto row = st->step();
      if (!row || !*row) {
        break;
      }
      due.push_back(
          {st->column_int64(15), st->column_text(0), st->column_text(9), st->column_text(10)});
    }
    for (const auto& d : due) {
      bool overdue = false;
      if (auto a = db().prepare("SELECT overdue FROM accounts WHERE openid=?")) {
        a->bind_all(d.openid);
        if (auto row = a->step(); row && *row) {
          overdue = a->column_int64(0) != 0;
        }
      }
      auto up = db().prepare(
          "UPDATE transactions SET trade_state=?, trade_state_description=?, success_time=? "
          "WHERE seq=?");
      if (!up) {
        return;
      }
      std::optional<std::string> when;
      if (!overdue) {
        when = now_text();
      }
      if (!up->bind_all(std::string(overdue ? "PAY_FAIL" : "SUCCESS"),
                        overdue ? std::optional<std::string>("用户账户欠费，扣款失败")
                                : std::optional<std::string>(),
                        when, d.seq)
               .run()) {
        return;
      }
      if (d.notify_url.empty()) {
        continue;
      }
      auto row = db().prepare("SELECT " + std::string(kTransactionColumns) +
                              " FROM transactions WHERE seq=?");
      if (!row) {
        return;
      }
      row->bind_all(d.seq);
      if (auto r = row->step(); !r || !*r) {
        return;
      }
      std::string resource = json::serialize(transaction_json(*row));
      auto merchant = find_merchant(d.mchid);
      if (!merchant) {
        continue;
      }
      const std::string event_type = overdue ? "TRANSACTION.FAIL" : "TRANSACTION.SUCCESS";
      if (!queue_notification(*merchant, d.mchid, d.notify_url, event_type, overdue ? "扣款失败" : "支付成功",
                              "transaction", resource)) {
        return;
      }
    }
    (void)txn->commit();
  }

  // Seals `resource` for the merchant and queues its delivery to `url` in the caller's open
  // transaction. false: the envelope could not be built (nothing queued).
  Result<bool> queue_notification(const Merchant& m, const std::string& mchid, const std::string& url,
                                  const std::string& event_type, std::string_view summary,
                                  std::string_view original_type, const std::string& resource) {
    auto body = notification_body(m, event_type, summary, original_type, resource);
    if (!body) {
      return false;
    }
    auto ins = db().prepare(
        "INSERT INTO notifications(event_id, event_type, mchid, url, body, next_ms) "
        "VALUES(?,?,?,?,?,?)");
    if (!ins) {
      return std::unexpected(ins.error());
    }
    if (auto r = ins->bind_all(body->first, event_type, mchid, url, body->second, real_now_ms()).run(); !r) {
      return std::unexpected(r.error());
    }
    return true;
  }

  // {event id, envelope JSON}
  std::optional<std::pair<std::string, std::string>> notification_body(
      const Merchant& m, std::string_view event_type, std::string_view summary,
      std::string_view original_type, const std::string& resource) {
    std::string nonce = crypto::random_token(12).value_or("000000000000");
    std::string aad = std::string(original_type);
    auto sealed = pki::aes256gcm_encrypt(m.apiv3_key, nonce, aad, resource);
    if (!sealed) {
      return std::nullopt;
    }
    std::string id = "EV-" + digits(8) + "-" + crypto::random_token(12).value_or("x");
    json::object res;
    res["original_type"] = original_type;
    res["algorithm"] = "AEAD_AES_256_GCM";
    res["ciphertext"] = crypto::base64_encode(std::string_view(*sealed));
    res["associated_data"] = aad;
    res["nonce"] = nonce;
    json::object o;
    o["id"] = id;
    o["create_time"] = now_text();
    o["resource_type"] = "encrypt-resource";
    o["event_type"] = event_type;
    o["summary"] = summary;
    o["resource"] = std::move(res);
    return std::pair{id, json::serialize(o)};
  }

  struct Pending {
    std::int64_t seq;
    std::string url, body;
    int attempts;
  };

  void deliver_due() {
    if (current_faults().notifications_paused) {
      return;
    }
    std::vector<Pending> pending;
    {
      std::lock_guard lock(db_mu);
      auto st = db().prepare(
          "SELECT seq, url, body, attempts FROM notifications WHERE state='pending' AND "
          "next_ms <= ? ORDER BY seq LIMIT 50");
      if (!st) {
        return;
      }
      st->bind_all(real_now_ms());
      while (true) {
        auto row = st->step();
        if (!row || !*row) {
          break;
        }
        pending.push_back({st->column_int64(0), st->column_text(1), st->column_text(2),
                           static_cast<int>(st->column_int64(3))});
      }
    }
    for (const auto& p : pending) {
      if (stopping_now()) {
        return;
      }
      int status = post_notification(p.url, p.body);
      bool ok = status >= 200 && status < 300;
      int attempts = p.attempts + 1;
      std::string state = "pending";
      std::int64_t next = 0;
      if (ok) {
        state = "delivered";
      } else if (attempts > static_cast<int>(std::size(kRetryScheduleSeconds))) {
        state = "abandoned";
      } else {
        next = real_now_ms() + static_cast<std::int64_t>(kRetryScheduleSeconds[attempts - 1] *
                                                         1000 * time_factor.load());
      }
      std::lock_guard lock(db_mu);
      if (auto up = db().prepare("UPDATE notifications SET attempts=?, state=?, next_ms=?, "
                                 "last_status=? WHERE seq=?")) {
        (void)up->bind_all(attempts, state, next, status, p.seq).run();
      }
    }
  }

  // HTTPS POST with the platform signature headers; returns the HTTP status or 0.
  int post_notification(const std::string& url, const std::string& body) {
    static const std::regex kUrl(R"(^https://([^/:]+)(?::(\d+))?(/.*)?$)");
    std::smatch m;
    if (!std::regex_match(url, m, kUrl)) {
      return 0;
    }
    std::string host = m[1];
    int port = m[2].matched ? std::stoi(m[2]) : 443;
    std::string path = m[3].matched ? std::string(m[3]) : "/";
    httplib::SSLClient client(host, port);
    client.set_ca_cert_path(ca_file.string());
    client.enable_server_certificate_verification(true);
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(5, 0);  // the provider waits 5 s for the acknowledgement
    std::string timestamp = std::to_string(options.clock->unix_seconds());
    std::string nonce = crypto::random_token(32).value_or("nonce");
    auto signature =
        pki::sign_sha256_rsa_base64(platform_key, timestamp + "\n" + nonce + "\n" + body + "\n");
    httplib::Headers headers{{"Wechatpay-Timestamp", timestamp},
                             {"Wechatpay-Nonce", nonce},
                             {"Wechatpay-Signature", signature.value_or("")},
                             {"Wechatpay-Serial", platform_cert.serial_hex},
                             {"Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048"}};
    auto res = client.Post(path.c_str(), headers, body, "application/json");
    return res ? res->status : 0;
  }

  bool stopping_now() {
    std::lock_guard lock(worker_mu);
    return stopping;
  }

  void worker_loop() {
    while (true) {
      {
        std::unique_lock lock(worker_mu);
        worker_cv.wait_for(lock, std::chrono::milliseconds(10), [this] { return stopping; });
        if (stopping) {
          return;
        }
      }
      settle_due();
      deliver_due();
    }
  }
};

ProviderSandbox::ProviderSandbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ProviderSandbox::~ProviderSandbox() { stop(); }

Result<std::unique_ptr<ProviderSandbox>> ProviderSandbox::start(
    const ProviderSandboxOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->time_factor = options.time_factor > 0 ? options.time_factor : 1.0;
  if (auto r = impl->load_pki(); !r) {
    return std::unexpected(r.error());
  }
  auto db = Database::open(options.db_file);
  if (!db) {
    return std::unexpected(db.error());
  }
  impl->db_opt = std::move(*db);
  // The sandbox's file is a simulator's state, not the gateway's money record: WAL with
  // synchronous=NORMAL survives a process crash, and one fsync per charge would make
  // the benchmark measure the disk instead of the protocol.
  if (auto r = impl->db().exec("PRAGMA synchronous=NORMAL"); !r) {
    return std::unexpected(r.error());
  }
  if (auto r = impl->db().migrate(std::span<const std::string_view>(kSchema)); !r) {
    return std::unexpected(r.error());
  }
  if (auto r = impl->apply_seed(); !r) {
    return std::unexpected(r.error());
  }
  {
    std::lock_guard lock(impl->server_mu);
    if (auto r = impl->start_api(options.port); !r) {
      return std::unexpected(r.error());
    }
  }
  impl->install_admin();
  int admin_port =
      options.admin_port == 0
          ? impl->admin.bind_to_any_port("127.0.0.1")
          : (impl->admin.bind_to_port("127.0.0.1", options.admin_port) ? options.admin_port : -1);
  if (admin_port <= 0) {
    std::lock_guard lock(impl->server_mu);
    impl->stop_api();
    return fail(Errc::kIo, "cannot bind admin port 127.0.0.1:" + std::to_string(options.admin_port),
                "admin_port");
  }
  impl->admin_port_value = admin_port;
  Impl* raw = impl.get();
  impl->admin_thread = std::thread([raw] { raw->admin.listen_after_bind(); });
  impl->worker = std::thread([raw] { raw->worker_loop(); });
  // Bounded wait for the listener thread to enter its accept loop.
  for (int i = 0; i < 500 && !impl->api->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return std::unique_ptr<ProviderSandbox>(new ProviderSandbox(std::move(impl)));
}

int ProviderSandbox::port() const { return impl_->api_port; }
int ProviderSandbox::admin_port() const { return impl_->admin_port_value; }
std::string ProviderSandbox::base_url() const {
  return "https://127.0.0.1:" + std::to_string(impl_->api_port);
}
void ProviderSandbox::set_faults(const ProviderFaults& faults) { impl_->apply_faults(faults); }
ProviderFaults ProviderSandbox::faults() const { return impl_->current_faults(); }
void ProviderSandbox::set_time_factor(double factor) {
  if (factor > 0) {
    impl_->time_factor = factor;
  }
}
Status ProviderSandbox::set_plate_state(const std::string& plate_number,
                                        const std::string& plate_color,
                                        const std::string& service_state) {
  return impl_->set_plate_state(plate_number, plate_color, service_state);
}
Status ProviderSandbox::set_contract_state(const std::string& contract_id, const std::string& state,
                                           const std::string& extra_notify_url) {
  return impl_->set_contract_state(contract_id, state, extra_notify_url);
}
Result<std::vector<SandboxTransaction>> ProviderSandbox::transactions() const {
  return impl_->list_transactions();
}
Result<std::vector<SandboxNotification>> ProviderSandbox::notifications() const {
  return impl_->list_notifications();
}
std::int64_t ProviderSandbox::sign_errors() const { return impl_->sign_errors.load(); }

void ProviderSandbox::stop() {
  if (!impl_ || impl_->stopped.exchange(true)) {
    return;
  }
  {
    std::lock_guard lock(impl_->worker_mu);
    impl_->stopping = true;
  }
  impl_->worker_cv.notify_all();
  if (impl_->worker.joinable()) {
    impl_->worker.join();
  }
  impl_->admin.stop();
  if (impl_->admin_thread.joinable()) {
    impl_->admin_thread.join();
  }
  std::lock_guard lock(impl_->server_mu);
  impl_->stop_api();
}

int run_provider_sandbox(std::span<const std::string> args) {
  ProviderSandboxOptions options;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= args.size()) {
        std::cerr << "lanegate-sim provider: " << a << " needs a value\n";
        return std::nullopt;
      }
      return args[++i];
    };
    std::optional<std::string> v;
    try {
      if (a == "--pki" && (v = value())) {
        options.pki_dir = *v;
      } else if (a == "--seed" && (v = value())) {
        options.seed_file = *v;
      } else if (a == "--db" && (v = value())) {
        options.db_file = *v;
      } else if (a == "--port" && (v = value())) {
        options.port = std::stoi(*v);
      } else if (a == "--admin-port" && (v = value())) {
        options.admin_port = std::stoi(*v);
      } else if (a == "--time-factor" && (v = value())) {
        options.time_factor = std::stod(*v);
      } else {
        std::cerr << "usage: lanegate-sim provider --pki DIR --seed FILE --db FILE [--port N] "
                     "[--admin-port N] [--time-factor F]\n";
        return 2;
      }
    } catch (const std::exception&) {
      std::cerr << "lanegate-sim provider: " << a << ": not a number\n";
      return 2;
    }
  }
  if (options.pki_dir.empty() || options.seed_file.empty() || options.db_file.empty()) {
    std::cerr << "lanegate-sim provider: --pki, --seed and --db are required\n";
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts
  auto sandbox = ProviderSandbox::start(options);
  if (!sandbox) {
    std::cerr << "lanegate-sim provider: " << sandbox.error().to_string() << "\n";
    return 1;
  }
  std::cout << "ready " << (*sandbox)->base_url()
            << " admin http://127.0.0.1:" << (*sandbox)->admin_port() << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  (*sandbox)->stop();
  return 0;
}

}  // namespace lanegate::sim
