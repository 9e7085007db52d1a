// The provider sandbox (see sim/provider_sandbox.h): start/stop and the public API, the
// seed, request authentication, reply signing, the HTTPS routes and the admin server.
// The calls themselves live in provider_sandbox_{parking,etc,bill,notify}.cc; the wire
// rules (errors, field lists) in provider_sandbox_wire.cc.
#include "sim/provider_sandbox.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <iostream>
#include <map>

#include "core/crypto.h"
#include "core/log.h"
#include "provider_sandbox_impl.h"

namespace lanegate::sim {
using namespace sandbox;

namespace {

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
    // Kept for old state files; no longer read (contract changes now go to the service
    // provider's registered callback, as the spec says).
    R"sql(
CREATE TABLE contract_subscribers(
  contract_id TEXT NOT NULL, mchid TEXT NOT NULL, notify_url TEXT NOT NULL,
  PRIMARY KEY(contract_id, mchid));
)sql",
    // Partner mode, ETC contracts in the spec's shape, refunds. etc_contracts.state holds
    // the bind_state. Uniqueness stays per calling merchant (the service provider): the
    // sandbox refuses an out_trade_no reused across sub merchants, the conservative
    // reading of "unique per merchant".
    R"sql(
ALTER TABLE merchants ADD COLUMN contract_notify_url TEXT NOT NULL DEFAULT '';
CREATE TABLE sub_merchants(
  sp_mchid TEXT NOT NULL, sub_mchid TEXT NOT NULL, sub_appid TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(sp_mchid, sub_mchid));
ALTER TABLE etc_contracts ADD COLUMN sub_mchid TEXT NOT NULL DEFAULT '';
ALTER TABLE etc_contracts ADD COLUMN sub_openid TEXT;
ALTER TABLE plates ADD COLUMN sub_openid TEXT;
ALTER TABLE parkings ADD COLUMN sub_mchid TEXT NOT NULL DEFAULT '';
ALTER TABLE transactions ADD COLUMN sub_mchid TEXT NOT NULL DEFAULT '';
ALTER TABLE transactions ADD COLUMN sub_appid TEXT NOT NULL DEFAULT '';
ALTER TABLE transactions ADD COLUMN sub_openid TEXT;
ALTER TABLE transactions ADD COLUMN device_json TEXT;
ALTER TABLE transactions ADD COLUMN refunded INTEGER NOT NULL DEFAULT 0;
CREATE TABLE refunds(
  seq INTEGER PRIMARY KEY, mchid TEXT NOT NULL, out_trade_no TEXT NOT NULL,
  refund_id TEXT NOT NULL UNIQUE, out_refund_no TEXT NOT NULL, amount INTEGER NOT NULL,
  create_time TEXT NOT NULL, UNIQUE(mchid, out_refund_no));
)sql",
    // In-cab payments (payment code, Native) and the payment codes the admin registered.
    // A code is kept only as its SHA-256: the sandbox needs to know it was spent, not it.
    R"sql(
CREATE TABLE payments(
  seq INTEGER PRIMARY KEY, mchid TEXT NOT NULL, sub_mchid TEXT NOT NULL DEFAULT '',
  appid TEXT NOT NULL, sub_appid TEXT NOT NULL DEFAULT '', out_trade_no TEXT NOT NULL,
  transaction_id TEXT NOT NULL UNIQUE, trade_type TEXT NOT NULL, description TEXT NOT NULL,
  attach TEXT, amount INTEGER NOT NULL, trade_state TEXT NOT NULL, trade_state_desc TEXT,
  openid TEXT NOT NULL DEFAULT '', sub_openid TEXT, code_hash TEXT NOT NULL DEFAULT '',
  notify_url TEXT NOT NULL DEFAULT '', code_url TEXT NOT NULL DEFAULT '',
  device_id TEXT NOT NULL DEFAULT '', create_time TEXT NOT NULL, success_time TEXT,
  pay_due_ms INTEGER, revoke_due_ms INTEGER, expire_ms INTEGER, fail_code TEXT,
  refunded INTEGER NOT NULL DEFAULT 0, reversed INTEGER NOT NULL DEFAULT 0,
  submissions INTEGER NOT NULL DEFAULT 1, UNIQUE(mchid, out_trade_no));
CREATE TABLE paycodes(
  code_hash TEXT PRIMARY KEY, openid TEXT NOT NULL, issued_ms INTEGER NOT NULL,
  userpaying_ms INTEGER NOT NULL DEFAULT 0, decline TEXT, used INTEGER NOT NULL DEFAULT 0);
)sql"};

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

using Impl = ProviderSandbox::Impl;

// --- setup ---------------------------------------------------------------------------
Status Impl::load_pki() {
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
    return fail(Errc::kInvalidArgument, "must start with PUB_KEY_ID_", (d / "pubkey.id").string());
  }
  return {};
}

// The seed is applied on every start: merchants (and their sub merchants) are replaced,
// accounts, plates and contracts are only added, so a running demo keeps its state.
// Layout: docs/PROVIDER.md. Older seeds (direct merchants only, contracts with "state")
// keep working.
Status Impl::apply_seed() {
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
  auto field_error = [&](std::string what) {
    return fail(Errc::kInvalidArgument, what, options.seed_file.string());
  };
  if (const auto* b = root.if_contains("etc_bound_state"); b != nullptr) {
    if (!b->is_string() || b->as_string().empty()) {
      return field_error("etc_bound_state must be a non-empty string");
    }
    etc_bound_state = std::string(b->as_string());
  }
  if (const auto* q = root.if_contains("quickpay"); q != nullptr) {
    if (!q->is_object()) {
      return field_error("quickpay must be an object");
    }
    for (const auto& [key, value] : q->as_object()) {
      auto ms = get_int(q->as_object(), key);
      if (!ms || *ms <= 0) {
        return field_error("quickpay." + std::string(key) + " must be milliseconds > 0");
      }
      if (key == "code_validity_ms") {
        code_validity_ms = *ms;
      } else if (key == "auto_revoke_ms") {
        auto_revoke_ms = *ms;
      } else {
        return field_error("quickpay." + std::string(key) +
                           ": unknown key (code_validity_ms, auto_revoke_ms)");
      }
    }
  }
  auto txn = db().begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  auto exec = [&](std::string_view sql, auto... args) -> Status {
    auto st = db().prepare(sql);
    if (!st) {
      return std::unexpected(st.error());
    }
    return st->bind_all(args...).run();
  };
  if (const auto* ms = root.if_contains("merchants"); ms != nullptr && ms->is_array()) {
    for (const auto& mv : ms->as_array()) {
      if (!mv.is_object()) {
        return field_error("merchant must be an object");
      }
      const auto& o = mv.as_object();
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
      std::string callback = get_string(o, "contract_notify_url").value_or("");
      if (!callback.empty() && !callback.starts_with("https://")) {
        return field_error("merchant " + *mchid + ": contract_notify_url must be an https URL");
      }
      if (auto r =
              exec("INSERT OR REPLACE INTO merchants(mchid, appid, serial_no, cert_pem, apiv3_key, "
                   "products, contract_notify_url) VALUES(?,?,?,?,?,?,?)",
                   *mchid, *appid, cert->serial_hex, cert->pem, *key, products, callback);
          !r) {
        return r;
      }
      if (auto r = exec("DELETE FROM sub_merchants WHERE sp_mchid=?", *mchid); !r) {
        return r;
      }
      if (const auto* subs = o.if_contains("sub_merchants"); subs != nullptr) {
        if (!subs->is_array()) {
          return field_error("merchant " + *mchid + ": sub_merchants must be an array");
        }
        for (const auto& sv : subs->as_array()) {
          auto sub = sv.is_object() ? get_string(sv.as_object(), "sub_mchid") : std::nullopt;
          if (!sub || sub->empty()) {
            return field_error("merchant " + *mchid + ": each sub merchant needs a sub_mchid");
          }
          if (auto r = exec("INSERT OR REPLACE INTO sub_merchants(sp_mchid, sub_mchid, sub_appid) "
                            "VALUES(?,?,?)",
                            *mchid, *sub, get_string(sv.as_object(), "sub_appid").value_or(""));
              !r) {
            return r;
          }
        }
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
      if (auto r = exec("INSERT OR IGNORE INTO accounts(openid, overdue) VALUES(?,?)", *openid,
                        overdue ? 1 : 0);
          !r) {
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
      if (auto r =
              exec("INSERT OR IGNORE INTO plates(plate_number, plate_color, openid, service_state, "
                   "service_open_time, sub_openid) VALUES(?,?,?,?,?,?)",
                   *number, *color, *openid, state,
                   get_string(o, "service_open_time").value_or("2026-01-01T08:00:00+08:00"),
                   get_string(o, "sub_openid"));
          !r) {
        return r;
      }
      if (auto r = exec("INSERT OR IGNORE INTO accounts(openid, overdue) VALUES(?,0)", *openid);
          !r) {
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
      // "bind_state"; older seeds say "state"; neither: bound.
      std::string bind_state =
          get_string(o, "bind_state").value_or(get_string(o, "state").value_or(etc_bound_state));
      if (auto r =
              exec("INSERT OR IGNORE INTO etc_contracts(contract_id, plate_number, plate_color, "
                   "openid, state, sub_mchid, sub_openid) VALUES(?,?,?,?,?,?,?)",
                   *id, *number, get_string(o, "plate_color").value_or(""), *openid, bind_state,
                   get_string(o, "sub_mchid").value_or(""), get_string(o, "sub_openid"));
          !r) {
        return r;
      }
      if (auto r = exec("INSERT OR IGNORE INTO accounts(openid, overdue) VALUES(?,0)", *openid);
          !r) {
        return r;
      }
    }
  }
  return txn->commit();
}

// --- helpers -------------------------------------------------------------------------
double Impl::draw() {
  std::lock_guard lock(rng_mu);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

std::string Impl::digits(int n) {
  std::lock_guard lock(rng_mu);
  std::string s;
  for (int i = 0; i < n; ++i) {
    s.push_back(static_cast<char>('0' + rng() % 10));
  }
  return s;
}

std::string Impl::now_text() const { return format_rfc3339(options.clock->now(), kChina); }

std::optional<Merchant> Impl::find_merchant(std::string_view mchid) {
  auto st = db().prepare(
      "SELECT mchid, appid, serial_no, cert_pem, apiv3_key, products, contract_notify_url FROM "
      "merchants WHERE mchid = ?");
  if (!st) {
    return std::nullopt;
  }
  st->bind_all(mchid);
  auto row = st->step();
  if (!row || !*row) {
    return std::nullopt;
  }
  Merchant m;
  m.mchid = st->column_text(0);
  m.appid = st->column_text(1);
  m.serial_no = st->column_text(2);
  m.apiv3_key = st->column_text(4);
  m.products = st->column_text(5);
  m.contract_notify_url = st->column_text(6);
  auto key = pki::public_key_from_pem(st->column_text(3));
  if (!key) {
    return std::nullopt;
  }
  m.key = *key;
  auto subs = db().prepare(
      "SELECT sub_mchid, sub_appid FROM sub_merchants WHERE sp_mchid=? ORDER BY sub_mchid");
  if (!subs) {
    return std::nullopt;
  }
  subs->bind_all(mchid);
  while (true) {
    auto r = subs->step();
    if (!r) {
      return std::nullopt;
    }
    if (!*r) {
      break;
    }
    m.subs.push_back({subs->column_text(0), subs->column_text(1)});
  }
  return m;
}

bool Impl::lose_reply() {
  ProviderFaults f = current_faults();
  return f.lost_reply_share > 0 && draw() < f.lost_reply_share;
}

std::variant<const SubMerchant*, Reply> Impl::resolve_sub(
    const Merchant& m, const std::optional<std::string>& sub_mchid,
    const std::optional<std::string>& sub_appid, std::string_view location) {
  if (!m.partner()) {
    return static_cast<const SubMerchant*>(nullptr);
  }
  const SubMerchant* found = nullptr;
  for (const auto& s : m.subs) {
    if (sub_mchid && s.sub_mchid == *sub_mchid) {
      found = &s;
    }
  }
  if (found == nullptr) {
    // The provider's answer to a sub merchant outside the partnership is not in the spec;
    // NO_AUTH (permanent) is the conservative reading.
    return error_reply(403, "NO_AUTH", "sub_mchid is not a sub merchant of this service provider",
                       "sub_mchid", "no partnership with this sub merchant", location);
  }
  if (sub_appid && *sub_appid != found->sub_appid) {
    return error_reply(400, "INVALID_REQUEST", "sub_appid is not bound to this sub_mchid",
                       "sub_appid", "sub_appid/sub_mchid mismatch", location);
  }
  return found;
}

std::optional<json::object> Impl::parse_body(const httplib::Request& req, Reply& error) {
  boost::system::error_code ec;
  json::value v = json::parse(req.body, ec);
  if (ec || !v.is_object()) {
    error = error_reply(400, "INVALID_REQUEST", "body is not a JSON object", "body", "not JSON");
    return std::nullopt;
  }
  return std::move(v.as_object());
}

// Signs `reply` per the spec: TIMESTAMP\nNONCE\nBODY\n with the platform certificate's
// key, or the public-key-id key when the client asked for it.
void Impl::sign_reply(const httplib::Request& req, httplib::Response& res,
                      const std::string& body) {
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

void Impl::send(const httplib::Request& req, httplib::Response& res, const Reply& reply) {
  res.status = reply.status;
  sign_reply(req, res, reply.body);
  if (reply.lose_after_commit) {
    // The transaction is committed (invariant 1); the reply is lost: headers go out,
    // the body never does and the connection is closed mid-reply.
    // A 204 (close) has no body to cut and clients do not read one: the lost reply
    // promises one byte under a 200 status line instead, so it too breaks mid-reply and
    // the client never holds a complete answer.
    if (reply.status == 204) {
      res.status = 200;
    }
    auto length = std::max<std::size_t>(reply.body.size(), 1);
    res.set_content_provider(length, "application/json",
                             [](std::size_t, std::size_t, httplib::DataSink&) { return false; });
    return;
  }
  res.set_content(reply.body, "application/json");
}

Reply Impl::sign_error(const httplib::Request& req, std::string_view issue,
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
std::variant<Merchant, Reply> Impl::authenticate(const httplib::Request& req) {
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
    return error_reply(403, "NO_AUTH", "unknown mchid", "mchid", "merchant not registered",
                       "authorization");
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

ProviderFaults Impl::current_faults() const {
  std::lock_guard lock(faults_mu);
  return faults;
}

Reply Impl::certificates(const Merchant& m) {
  std::string nonce = crypto::random_token(12).value_or("000000000000");
  auto sealed = pki::aes256gcm_encrypt(m.apiv3_key, nonce, "certificate", platform_cert.pem);
  if (!sealed) {
    return system_error(sealed.error());
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

// --- servers -------------------------------------------------------------------------
namespace {

// Wraps an API handler: latency, signature check, random failures, signing.
template <typename Handler>
httplib::Server::Handler api_route(Impl* impl, Handler handler) {
  return [impl, handler](const httplib::Request& req, httplib::Response& res) {
    impl->requests.inc();
    ProviderFaults f = impl->current_faults();
    if (f.latency_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(f.latency_ms));
    }
    auto who = impl->authenticate(req);
    if (auto* refused = std::get_if<Reply>(&who)) {
      impl->send(req, res, *refused);
      return;
    }
    if (f.error_5xx_share > 0 && impl->draw() < f.error_5xx_share) {
      impl->send(req, res, error_reply(500, "SYSTEM_ERROR", "系统错误 (injected)"));
      return;
    }
    if (f.unavailable_share > 0 && impl->draw() < f.unavailable_share) {
      impl->send(req, res, error_reply(503, "SERVICE_UNAVAILABLE", "服务不可用 (injected)"));
      return;
    }
    if (f.ratelimit_share > 0 && impl->draw() < f.ratelimit_share) {
      impl->send(req, res, error_reply(429, "RATELIMIT_EXCEEDED", "频率超限 (injected)"));
      return;
    }
    Reply reply = handler(req, std::get<Merchant>(who));
    impl->send(req, res, reply);
  };
}

}  // namespace

void Impl::install_routes(httplib::SSLServer& s) {
  s.new_task_queue = [] { return new httplib::ThreadPool(48); };
  s.set_keep_alive_max_count(100000);
  s.set_tcp_nodelay(true);  // no Nagle + delayed-ACK stall between headers and body
  // Short: stopping the listener (refuse_connections) waits for idle keep-alive
  // connections to time out, and they must not outlive an "uplink down".
  s.set_keep_alive_timeout(2);
  using Req = httplib::Request;
  s.Get("/v3/vehicle/parking/services/find",
        api_route(this, [this](const Req& r, const Merchant& m) { return find_service(r, m); }));
  s.Post("/v3/vehicle/parking/parkings",
         api_route(this, [this](const Req& r, const Merchant& m) { return create_parking(r, m); }));
  s.Post("/v3/vehicle/transactions/parking",
         api_route(this, [this](const Req& r, const Merchant& m) { return charge_parking(r, m); }));
  s.Get(R"(/v3/vehicle/transactions/out-trade-no/([^/?]+))",
        api_route(this, [this](const Req& r, const Merchant& m) { return query_vehicle(r, m); }));
  s.Post("/v3/vehicle/etc/transactions/highway",
         api_route(this, [this](const Req& r, const Merchant& m) { return charge_highway(r, m); }));
  s.Get(R"(/v3/vehicle/etc/transactions/out-trade-no/([^/?]+))",
        api_route(this,
                  [this](const Req& r, const Merchant& m) { return query_highway(r, m, false); }));
  s.Get(R"(/v3/vehicle/etc/transactions/id/([^/?]+))",
        api_route(this,
                  [this](const Req& r, const Merchant& m) { return query_highway(r, m, true); }));
  s.Get(R"(/v3/vehicle/etc/contracts/([^/?]+))",
        api_route(this, [this](const Req& r, const Merchant& m) { return contract_by_id(r, m); }));
  s.Get(
      R"(/v3/vehicle/etc/users/([^/?]+)/contracts)",
      api_route(this, [this](const Req& r, const Merchant& m) { return contract_by_user(r, m); }));
  // In-cab payments, both modes (spec "Taxi: in-cab payment").
  for (bool partner : {false, true}) {
    const std::string base = partner ? "/v3/pay/partner/transactions" : "/v3/pay/transactions";
    s.Post(base + "/codepay", api_route(this, [this, partner](const Req& r, const Merchant& m) {
             return codepay(r, m, partner);
           }));
    s.Post(base + "/native", api_route(this, [this, partner](const Req& r, const Merchant& m) {
             return native(r, m, partner);
           }));
    s.Get(base + R"(/out-trade-no/([^/?]+))",
          api_route(this, [this, partner](const Req& r, const Merchant& m) {
            return query_payment(r, m, partner);
          }));
    s.Post(base + R"(/out-trade-no/([^/?]+)/reverse)",
           api_route(this, [this, partner](const Req& r, const Merchant& m) {
             return reverse_payment(r, m, partner);
           }));
    s.Post(base + R"(/out-trade-no/([^/?]+)/close)",
           api_route(this, [this, partner](const Req& r, const Merchant& m) {
             return close_payment(r, m, partner);
           }));
  }
  s.Get("/v3/certificates", api_route(this, [this](const Req& r, const Merchant& m) {
          if (auto bad = check_query(r, {}); bad) {
            return *bad;
          }
          return certificates(m);
        }));
  s.Get("/v3/bill/tradebill",
        api_route(this, [this](const Req& r, const Merchant& m) { return trade_bill(r, m); }));
  s.Get("/v3/billdownload/file",
        [this](const Req& r, httplib::Response& res) { bill_download(r, res); });
  // Not part of the provider API: an unsigned echo on the same server, TLS and thread
  // pool, so the benchmark can put the cost of the protocol beside raw cpp-httplib.
  s.Post("/sandbox/echo",
         [](const Req& r, httplib::Response& res) { res.set_content(r.body, "application/json"); });
}

Status Impl::start_api(int port) {
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

void Impl::stop_api() {
  if (api) {
    api->stop();
  }
  if (api_thread.joinable()) {
    api_thread.join();
  }
  api.reset();
}

void Impl::apply_faults(const ProviderFaults& f) {
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

std::string Impl::faults_json() const {
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

Result<std::vector<SandboxTransaction>> Impl::list_transactions() const {
  std::lock_guard lock(db_mu);
  auto st = const_cast<Impl*>(this)->db().prepare(
      "SELECT mchid, out_trade_no, transaction_id, product, trade_state, amount, openid, "
      "submissions, sub_mchid, refunded FROM transactions ORDER BY seq");
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
                   static_cast<int>(st->column_int64(7)), st->column_text(8), st->column_int64(9)});
  }
  return out;
}

Result<std::vector<SandboxNotification>> Impl::list_notifications() const {
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

namespace {

std::optional<json::object> admin_body(const httplib::Request& req, httplib::Response& res) {
  boost::system::error_code ec;
  json::value v = json::parse(req.body, ec);
  if (ec || !v.is_object()) {
    res.status = 400;
    res.set_content(R"({"error":"body must be a JSON object"})", "application/json");
    return std::nullopt;
  }
  return std::move(v.as_object());
}

void admin_status(httplib::Response& res, const Status& r) {
  res.status = r ? 200 : 400;
  res.set_content(
      r ? R"({"ok":true})" : json::serialize(json::object{{"error", r.error().to_string()}}),
      "application/json");
}

}  // namespace

void Impl::install_admin() {
  admin.Post("/admin/faults", [this](const httplib::Request& req, httplib::Response& res) {
    auto body = admin_body(req, res);
    if (!body) {
      return;
    }
    ProviderFaults f = current_faults();
    const auto& o = *body;
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
    auto body = admin_body(req, res);
    if (!body) {
      return;
    }
    const auto* x = body->if_contains("time_factor");
    if (x == nullptr || !x->is_number() || x->to_number<double>() <= 0) {
      res.status = 400;
      res.set_content(R"({"error":"time_factor: a number > 0"})", "application/json");
      return;
    }
    time_factor = x->to_number<double>();
    res.set_content(R"({"ok":true})", "application/json");
  });
  admin.Post("/admin/plates", [this](const httplib::Request& req, httplib::Response& res) {
    auto body = admin_body(req, res);
    if (!body) {
      return;
    }
    admin_status(res, set_plate_state(get_string(*body, "plate_number").value_or(""),
                                      get_string(*body, "plate_color").value_or(""),
                                      get_string(*body, "service_state").value_or("")));
  });
  admin.Post("/admin/contracts", [this](const httplib::Request& req, httplib::Response& res) {
    auto body = admin_body(req, res);
    if (!body) {
      return;
    }
    // "bind_state" is the spec's name; "state" is what this endpoint took before.
    auto state = get_string(*body, "bind_state");
    if (!state) {
      state = get_string(*body, "state");
    }
    admin_status(
        res, set_contract_state(get_string(*body, "contract_id").value_or(""), state.value_or(""),
                                get_string(*body, "notify_url").value_or("")));
  });
  admin.Post("/admin/refunds", [this](const httplib::Request& req, httplib::Response& res) {
    auto body = admin_body(req, res);
    if (!body) {
      return;
    }
    auto amount = get_int(*body, "amount");
    auto r = refund(get_string(*body, "out_trade_no").value_or(""), amount.value_or(0),
                    get_string(*body, "out_refund_no").value_or(""));
    if (!r) {
      admin_status(res, std::unexpected(r.error()));
      return;
    }
    res.set_content(json::serialize(json::object{{"mchid", r->mchid},
                                                 {"out_trade_no", r->out_trade_no},
                                                 {"transaction_id", r->transaction_id},
                                                 {"refund_id", r->refund_id},
                                                 {"out_refund_no", r->out_refund_no},
                                                 {"amount", r->amount_fen},
                                                 {"create_time", r->create_time}}),
                    "application/json");
  });
  admin.Get("/admin/transactions", [this](const httplib::Request&, httplib::Response& res) {
    auto list = list_transactions();
    json::array a;
    if (list) {
      for (const auto& t : *list) {
        a.push_back(json::object{{"mchid", t.mchid},
                                 {"sub_mchid", t.sub_mchid},
                                 {"out_trade_no", t.out_trade_no},
                                 {"transaction_id", t.transaction_id},
                                 {"product", t.product},
                                 {"trade_state", t.trade_state},
                                 {"amount", t.amount_fen},
                                 {"refunded", t.refunded_fen},
                                 {"openid", t.openid},
                                 {"submissions", t.submissions}});
      }
    }
    res.set_content(json::serialize(a), "application/json");
  });
  admin.Post("/admin/paycodes", [this](const httplib::Request& req, httplib::Response& res) {
    auto body = admin_body(req, res);
    if (!body) {
      return;
    }
    SandboxPaycode code;
    code.code = get_string(*body, "code").value_or("");
    code.openid = get_string(*body, "openid").value_or("");
    code.issued_at = get_string(*body, "issued_at").value_or("");
    code.userpaying_ms = get_int(*body, "userpaying_ms").value_or(0);
    code.decline = get_string(*body, "decline").value_or("");
    admin_status(res, register_paycode(code));
  });
  admin.Post("/admin/native/pay", [this](const httplib::Request& req, httplib::Response& res) {
    auto body = admin_body(req, res);
    if (!body) {
      return;
    }
    auto paid = pay_native(get_string(*body, "out_trade_no").value_or(""),
                           get_string(*body, "openid").value_or(""));
    if (!paid) {
      // 409: the order exists but cannot be paid (closed = the QR expired, or paid).
      res.status = paid.error().code == Errc::kRejected   ? 409
                   : paid.error().code == Errc::kNotFound ? 404
                                                          : 400;
      res.set_content(json::serialize(json::object{{"error", paid.error().to_string()}}),
                      "application/json");
      return;
    }
    res.set_content(json::serialize(json::object{{"out_trade_no", paid->out_trade_no},
                                                 {"transaction_id", paid->transaction_id},
                                                 {"trade_state", paid->trade_state},
                                                 {"openid", paid->openid}}),
                    "application/json");
  });
  admin.Post("/admin/quickpay", [this](const httplib::Request& req, httplib::Response& res) {
    auto body = admin_body(req, res);
    if (!body) {
      return;
    }
    for (const char* key : {"code_validity_ms", "auto_revoke_ms"}) {
      if (body->contains(key)) {
        auto ms = get_int(*body, key);
        if (!ms || *ms <= 0) {
          res.status = 400;
          res.set_content(
              json::serialize(json::object{{"error", std::string(key) + ": milliseconds > 0"}}),
              "application/json");
          return;
        }
      }
    }
    if (auto ms = get_int(*body, "code_validity_ms")) {
      code_validity_ms = *ms;
    }
    if (auto ms = get_int(*body, "auto_revoke_ms")) {
      auto_revoke_ms = *ms;
    }
    res.set_content(json::serialize(json::object{{"code_validity_ms", code_validity_ms.load()},
                                                 {"auto_revoke_ms", auto_revoke_ms.load()}}),
                    "application/json");
  });
  admin.Get("/admin/payments", [this](const httplib::Request&, httplib::Response& res) {
    auto list = list_payments();
    if (!list) {
      res.status = 500;
      res.set_content(json::serialize(json::object{{"error", list.error().to_string()}}),
                      "application/json");
      return;
    }
    json::array a;
    for (const auto& p : *list) {
      a.push_back(json::object{{"mchid", p.mchid},
                               {"sub_mchid", p.sub_mchid},
                               {"out_trade_no", p.out_trade_no},
                               {"transaction_id", p.transaction_id},
                               {"trade_type", p.trade_type},
                               {"trade_state", p.trade_state},
                               {"amount", p.amount_fen},
                               {"refunded", p.refunded_fen},
                               {"reversed", p.reversed},
                               {"code_url", p.code_url},
                               {"openid", p.openid},
                               {"submissions", p.submissions}});
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

ProviderSandbox::ProviderSandbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ProviderSandbox::~ProviderSandbox() { stop(); }

Result<std::unique_ptr<ProviderSandbox>> ProviderSandbox::start(
    const ProviderSandboxOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->time_factor = options.time_factor > 0 ? options.time_factor : 1.0;
  impl->code_validity_ms = options.code_validity_ms;
  impl->auto_revoke_ms = options.auto_revoke_ms;
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
Status ProviderSandbox::set_contract_state(const std::string& contract_id,
                                           const std::string& bind_state,
                                           const std::string& extra_notify_url) {
  return impl_->set_contract_state(contract_id, bind_state, extra_notify_url);
}
Result<SandboxRefund> ProviderSandbox::refund(const std::string& out_trade_no,
                                              std::int64_t amount_fen,
                                              const std::string& out_refund_no) {
  return impl_->refund(out_trade_no, amount_fen, out_refund_no);
}
Result<std::vector<SandboxTransaction>> ProviderSandbox::transactions() const {
  return impl_->list_transactions();
}
Status ProviderSandbox::register_paycode(const SandboxPaycode& code) {
  return impl_->register_paycode(code);
}
Result<SandboxPayment> ProviderSandbox::pay_native(const std::string& out_trade_no,
                                                   const std::string& openid) {
  return impl_->pay_native(out_trade_no, openid);
}
Result<std::vector<SandboxPayment>> ProviderSandbox::payments() const {
  return impl_->list_payments();
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
