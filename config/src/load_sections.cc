// Reads each TOML section into its struct. Rules that concern a single key or a single
// table live here; rules that relate several sections (references, duplicates across
// tables, device kinds per lane mode) live in cross_checks.cc.
#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <tuple>

#include "config/defaults.h"
#include "config/registers.h"
#include "config/tax_rules.h"
#include "core/text.h"
#include "table_reader.h"
#include "value_rules.h"

namespace lanegate::config::detail {
namespace {

constexpr Money yuan(std::int64_t y) { return Money::from_fen(y * 100); }
constexpr std::int64_t kU32Max = 4294967295LL;

// Applies a value rule ("" = fine) to a key that was read successfully.
void apply(TableReader& r, std::string_view key, const std::string& rule) {
  if (!rule.empty()) {
    r.fail(key, rule);
  }
}

void read_id(TableReader& r, std::string& out) {
  if (r.string("id", out, Need::kRequired)) {
    apply(r, "id", id_rule(out));
  }
}

bool all_of_chars(std::string_view s, std::string_view extra, bool hex_only = false) {
  return std::all_of(s.begin(), s.end(), [&](char c) {
    bool digit = c >= '0' && c <= '9';
    if (hex_only) {
      return digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    return digit || alpha || extra.find(c) != std::string_view::npos;
  });
}

// ---- [gateway] ----------------------------------------------------------------------
void read_gateway(TableReader& r, GatewaySection& g) {
  read_id(r, g.id);
  if (r.string("site_name", g.site_name, Need::kRequired)) {
    apply(r, "site_name", text_rule(g.site_name, 128));
  }
  r.path("state_dir", g.state_dir);
  if (r.integer_as("utc_offset_minutes", g.utc_offset_minutes, -720, 840) &&
      g.utc_offset_minutes % 15 != 0) {
    r.fail("utc_offset_minutes",
           "must be a multiple of 15 minutes (got " + std::to_string(g.utc_offset_minutes) + ")");
  }
  r.string_in("log_level", g.log_level, {"debug", "info", "notice", "warning", "error"});
  r.integer("max_database_mb", g.max_database_mb, 0, 1024 * 1024);
}

// ---- [api] ----------------------------------------------------------------------------
void read_api(TableReader& r, ApiSection& a) {
  if (r.string("listen_address", a.listen_address)) {
    apply(r, "listen_address", ip_literal_rule(a.listen_address));
  }
  r.integer_as("listen_port", a.listen_port, 0, 65535);
  r.integer("max_body_bytes", a.max_body_bytes, 1024, 16 * 1024 * 1024);
  r.integer_as("header_timeout_ms", a.header_timeout_ms, 100, 60'000);
  if (r.string("public_base_url", a.public_base_url)) {
    apply(r, "public_base_url", url_rule(a.public_base_url, /*https_only=*/false));
  }
  if (const toml::table* t = r.table("tls")) {
    TableReader tls(r.diag(), *t, r.key_path("tls"));
    TlsServer server;
    bool ok = tls.path("cert_file", server.cert_file, Need::kRequired);
    ok = tls.path("key_file", server.key_file, Need::kRequired) && ok;
    tls.finish();
    if (ok) {
      a.tls = server;
    }
  }
  if (ip_literal_rule(a.listen_address).empty() && !is_loopback_ip(a.listen_address) && !a.tls &&
      !r.has("tls")) {
    r.fail("listen_address",
           "a non-loopback listen_address needs [api.tls]: bearer tokens must not cross the "
           "network in clear");
  }
  std::map<std::string, int> names;
  std::map<std::string, int> hashes;
  r.tables("token", [&](TableReader& t, std::size_t) {
    ApiToken token;
    if (t.string("name", token.name, Need::kRequired)) {
      apply(t, "name", text_rule(token.name, 64));
      auto [it, fresh] = names.emplace(token.name, t.table_pos().line);
      if (!fresh) {
        t.fail("name", "duplicate token name \"" + token.name + "\" (first at line " +
                           std::to_string(it->second) + ")");
      }
    }
    t.string_in("role", token.role, {"operator", "auditor"}, Need::kRequired);
    if (t.string("sha256", token.sha256_hex, Need::kRequired)) {
      std::string rule = sha256_hex_rule(token.sha256_hex);
      apply(t, "sha256", rule);
      if (rule.empty()) {
        auto [it, fresh] = hashes.emplace(token.sha256_hex, t.table_pos().line);
        if (!fresh) {
          t.fail("sha256", "the same token hash is already used by the token at line " +
                               std::to_string(it->second) + " (one token per person)");
        }
      }
    }
    a.tokens.push_back(std::move(token));
  });
}

// ---- [provider] -----------------------------------------------------------------------
bool digits_only(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void read_merchant_id(TableReader& r, std::string_view key, std::string& out, Need need) {
  if (r.string(key, out, need) && (out.empty() || out.size() > 32 || !digits_only(out))) {
    r.fail(key, "must be a merchant id: 1..32 decimal digits (got " + detail::quoted(out) + ")");
  }
}

void read_app_id(TableReader& r, std::string_view key, std::string& out, Need need) {
  if (r.string(key, out, need) && (out.empty() || out.size() > 32 || !all_of_chars(out, "_"))) {
    r.fail(key, "must be 1..32 characters of A-Z a-z 0-9 _ (got " + detail::quoted(out) + ")");
  }
}

// ---- [provider.etc] -------------------------------------------------------------------
bool upper_word(std::string_view s) {
  return !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

void read_etc(TableReader& r, EtcSection& e) {
  if (r.string_array("channel_types", e.channel_types)) {
    for (const auto& v : e.channel_types) {
      if (!upper_word(v)) {
        r.fail("channel_types", "every value must be 1..32 of A-Z 0-9 _ (got " +
                                    detail::quoted(v) + ")");
      }
    }
  }
  if (r.string("channel_type", e.channel_type) &&
      std::find(e.channel_types.begin(), e.channel_types.end(), e.channel_type) ==
          e.channel_types.end()) {
    r.fail("channel_type", "must be one of channel_types (got " + detail::quoted(e.channel_type) +
                               "; the v3 value set is unconfirmed, so it is not guessed)");
  }
  if (r.string("bound_state", e.bound_state) && !upper_word(e.bound_state)) {
    r.fail("bound_state", "must be the bind_state value that means bound: 1..32 of A-Z 0-9 _ (got " +
                              detail::quoted(e.bound_state) + ")");
  }
  r.integer_as("contract_check_interval_s", e.contract_check_interval_s, 60, 86'400);
  r.integer_as("contract_silence_s", e.contract_silence_s, 600, 7 * 86'400);
  std::map<int, int> classes;
  r.tables("car_type", [&](TableReader& t, std::size_t) {
    EtcCarType ct;
    if (t.integer_as("vehicle_class", ct.vehicle_class, 1, 16, Need::kRequired)) {
      if (auto [it, fresh] = classes.emplace(ct.vehicle_class, t.table_pos().line); !fresh) {
        t.fail("vehicle_class", "duplicate car_type for vehicle_class " +
                                    std::to_string(ct.vehicle_class) + " (first at line " +
                                    std::to_string(it->second) + ")");
      }
    }
    if (t.string("value", ct.value, Need::kRequired) && !upper_word(ct.value)) {
      t.fail("value", "must be 1..32 of A-Z 0-9 _ (got " + detail::quoted(ct.value) + ")");
    }
    e.car_types.push_back(std::move(ct));
  });
}

// ---- [provider] -----------------------------------------------------------------------
void read_provider(TableReader& r, ProviderSection& p) {
  r.string_in("kind", p.kind, {"wechatpay-v3"});
  if (r.string("base_url", p.base_url)) {
    apply(r, "base_url", url_rule(p.base_url, /*https_only=*/true));
  }
  r.enumeration("mode", p.mode,
                {{"direct", ProviderMode::kDirect}, {"partner", ProviderMode::kPartner}});
  if (p.partner()) {
    r.reject_if_present("mchid", "partner mode: the service provider's id is sp_mchid and the "
                                 "special merchant's sub_mchid");
    r.reject_if_present("appid", "partner mode: the service provider's app is sp_appid and the "
                                 "special merchant's sub_appid");
    read_merchant_id(r, "sp_mchid", p.sp_mchid, Need::kRequired);
    read_app_id(r, "sp_appid", p.sp_appid, Need::kRequired);
    read_merchant_id(r, "sub_mchid", p.sub_mchid, Need::kRequired);
    read_app_id(r, "sub_appid", p.sub_appid, Need::kOptional);
    if (!p.sp_mchid.empty() && p.sp_mchid == p.sub_mchid) {
      r.fail("sub_mchid", "must differ from sp_mchid (the service provider serves another "
                          "merchant)");
    }
  } else {
    for (const char* key : {"sp_mchid", "sp_appid", "sub_mchid", "sub_appid"}) {
      r.reject_if_present(key, "only with mode = \"partner\" (direct merchants use mchid and "
                               "appid)");
    }
    read_merchant_id(r, "mchid", p.mchid, Need::kRequired);
    read_app_id(r, "appid", p.appid, Need::kRequired);
  }
  if (const toml::table* t = r.table("etc")) {
    TableReader etc(r.diag(), *t, r.key_path("etc"));
    read_etc(etc, p.etc);
    etc.finish();
  }
  if (r.string("merchant_serial_no", p.merchant_serial_no, Need::kRequired) &&
      (p.merchant_serial_no.empty() || p.merchant_serial_no.size() > 64 ||
       !all_of_chars(p.merchant_serial_no, "", true))) {
    r.fail("merchant_serial_no",
           "must be the merchant certificate serial number: 1..64 hex digits");
  }
  r.path("merchant_private_key_file", p.merchant_private_key_file, Need::kRequired);
  r.path("apiv3_key_file", p.apiv3_key_file, Need::kRequired);
  if (r.string("public_key_id", p.public_key_id)) {
    constexpr std::string_view kPrefix = "PUB_KEY_ID_";
    std::string_view digits = std::string_view(p.public_key_id);
    bool ok = digits.starts_with(kPrefix);
    digits.remove_prefix(ok ? kPrefix.size() : 0);
    ok = ok && !digits.empty() && digits.size() <= 64 &&
         std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!ok) {
      r.fail("public_key_id", "must be \"PUB_KEY_ID_\" followed by digits, or absent (got " +
                                  detail::quoted(p.public_key_id) + ")");
    }
  }
  if (r.string("notify_url", p.notify_url, Need::kRequired)) {
    apply(r, "notify_url", url_rule(p.notify_url, /*https_only=*/true));
  }
  std::filesystem::path ca;
  if (r.path("ca_file", ca)) {
    p.ca_file = ca;
  }
  if (r.boolean("verify_tls", p.verify_tls) && !p.verify_tls) {
    Url url;
    if (parse_url(p.base_url, url) && !is_loopback_host(url.host)) {
      r.fail("verify_tls",
             "may be false only for a loopback base_url (127.0.0.1, ::1, localhost); "
             "set ca_file to trust a private CA instead");
    }
  }
  r.integer_as("connect_timeout_ms", p.connect_timeout_ms, 100, 60'000);
  r.integer_as("charge_deadline_ms", p.charge_deadline_ms, 100, 10'000);
  r.integer_as("request_timeout_ms", p.request_timeout_ms, 1000, 120'000);
  r.money("max_charge", p.max_charge, Money::from_fen(1), yuan(1'000'000));
  r.integer_as("certificate_refresh_s", p.certificate_refresh_s, 3600, 86'400);
  std::map<std::string, int> ids;
  r.tables("platform_key", [&](TableReader& t, std::size_t) {
    PlatformKey key;
    if (t.string("id", key.id, Need::kRequired)) {
      if (key.id.empty() || key.id.size() > 64 || !all_of_chars(key.id, "_")) {
        t.fail("id", "must be a certificate serial or PUB_KEY_ID_…: 1..64 of A-Z a-z 0-9 _");
      } else if (auto [it, fresh] = ids.emplace(key.id, t.table_pos().line); !fresh) {
        t.fail("id", "duplicate platform key id \"" + key.id + "\" (first at line " +
                         std::to_string(it->second) + ")");
      }
    }
    t.path("file", key.file, Need::kRequired);
    p.platform_keys.push_back(std::move(key));
  });
}

// ---- [invoicing] ----------------------------------------------------------------------
// The platform client appends /open/v1/services to base_url itself (specs/e-invoice.md
// "Invoicing platform API"): a base_url that already ends in it would be called twice over.
std::string platform_origin_rule(std::string_view base_url) {
  Url url;
  if (!parse_url(base_url, url)) {
    return {};  // url_rule reports it
  }
  std::string_view path = url.path;
  path = path.substr(0, path.find_first_of("?#"));
  while (!path.empty() && path.back() == '/') {
    path.remove_suffix(1);
  }
  if (path.ends_with("/open/v1/services")) {
    return "give the platform's origin, e.g. https://sdk.nuonuo.com; lanegate adds "
           "/open/v1/services (specs/e-invoice.md \"Invoicing platform API\")";
  }
  return {};
}

constexpr std::string_view kLeaseSection = "specs/e-invoice.md \"Parking → 06 不动产经营租赁\"";

// [invoicing.parking]: the lot as the 06 (不动产经营租赁) block describes it. Whether the
// fields are required depends on the lanes: config/src/cross_checks.cc.
void read_parking_lease(TableReader& r, ParkingLeaseSite& p) {
  r.boolean("specific_business", p.specific_business);
  if (r.string("property_address", p.property_address)) {
    apply(r, "property_address", text_rule(p.property_address, 480));
  }
  if (r.string("detail_address", p.detail_address)) {
    std::string rule = text_rule(p.detail_address, 480);
    if (rule.empty()) {
      const bool keyword = std::ranges::any_of(
          std::array<std::string_view, 6>{"街", "路", "村", "乡", "镇", "道"},
          [&](std::string_view k) { return p.detail_address.find(k) != std::string::npos; });
      if (!keyword) {
        rule = "must contain one of 街 路 村 乡 镇 道 (detailAddress, " +
               std::string(kLeaseSection) + "; got " + detail::quoted(p.detail_address) + ")";
      }
    }
    if (rule.empty()) {
      const std::size_t n = code_points(p.property_address) + code_points(p.detail_address);
      if (n > 120) {
        rule = "property_address and detail_address together must be at most 120 characters, got " +
               std::to_string(n) + " (" + std::string(kLeaseSection) + ")";
      }
    }
    apply(r, "detail_address", rule);
  }
  r.boolean("cross_city", p.cross_city);
  if (r.string("certificate", p.certificate)) {
    apply(r, "certificate", text_rule(p.certificate, 128));
  }
  if (r.has("area_unit")) {
    int unit = 0;
    if (r.integer_as("area_unit", unit, 1, 7)) {
      p.area_unit = unit;
    }
  }
}

// [invoicing.taxi]: specific business 09 (旅客运输) when a passenger supplies identity.
void read_taxi_invoicing(TableReader& r, TaxiInvoicing& t) {
  r.boolean("offer_traveller", t.offer_traveller);
  r.string_in("traveller_list_key", t.traveller_list_key,
              {"invoiceTravellerTransport", "invoiceTravellerTransportInfoList"});
}

void read_tax_rule(TableReader& t, TaxRule& rule, Taxpayer taxpayer, bool taxpayer_ok,
                   std::map<std::string, int>& services) {
  bool service_ok = false;
  const bool service_read = t.string("service", rule.service, Need::kRequired);
  if (service_read) {
    service_ok = rule.service == "taxi" || rule.service == "parking";
    if (service_ok) {
      auto [it, fresh] = services.emplace(rule.service, t.table_pos().line);
      if (!fresh) {
        t.fail("service", "duplicate tax rule for service \"" + rule.service +
                              "\" (first at line " + std::to_string(it->second) + ")");
      }
    }
  }
  if (t.string("item_name", rule.item_name, Need::kRequired)) {
    apply(t, "item_name", item_name_rule(rule.item_name));
  }
  if (t.string("code", rule.code, Need::kRequired) && !is_digits(rule.code, 19)) {
    t.fail("code",
           "must be the 19-digit tax classification code (got " + detail::quoted(rule.code) + ")");
  }
  const bool rate_ok = t.integer_as("rate_percent", rule.rate_percent, 0, 17, Need::kRequired);
  const bool flag_written = t.string("favoured_policy_flag", rule.favoured_policy_flag);
  const bool flag_ok = flag_written || !t.has("favoured_policy_flag");
  const bool survey_written = t.string("survey_answer_type", rule.survey_answer_type);
  const bool survey_ok = survey_written || !t.has("survey_answer_type");
  if (service_ok && rate_ok && !flag_written) {
    rule.favoured_policy_flag =
        default_favoured_policy_flag(rule.service, rule.rate_percent, taxpayer);
  }
  // The table of config/tax_rules.h, the same one invoice::validate_tax_rule() applies. A
  // value wrong on its own is reported when it was read (a toll rule is wrong whatever its
  // rate); a pairing only when every value it relates holds what was written.
  const bool all_read = service_ok && rate_ok && flag_ok && survey_ok && taxpayer_ok;
  for (const TaxRuleProblem& p : tax_rule_problems(rule, taxpayer)) {
    const bool read = p.field == "service"                ? service_read
                      : p.field == "favoured_policy_flag" ? flag_written
                      : p.field == "survey_answer_type"   ? survey_written
                                                          : rate_ok;
    if (p.standalone ? read : all_read) {
      t.fail(p.field, p.rule);
    }
  }
}

void read_invoicing(TableReader& r, InvoicingSection& inv) {
  r.boolean("enabled", inv.enabled);
  // What the platform client needs is required only when invoicing is switched on.
  Need need = inv.enabled ? Need::kRequired : Need::kOptional;
  if (r.string("base_url", inv.base_url, need)) {
    std::string rule = url_rule(inv.base_url, /*https_only=*/true);
    apply(r, "base_url", rule.empty() ? platform_origin_rule(inv.base_url) : rule);
  }
  if (r.string("app_key", inv.app_key, need)) {
    apply(r, "app_key", text_rule(inv.app_key, 128));
  }
  r.path("app_secret_file", inv.app_secret_file, need);
  r.path("access_token_file", inv.access_token_file, need);
  std::filesystem::path ca;
  if (r.path("ca_file", ca)) {
    inv.ca_file = ca;
  }
  if (r.boolean("verify_tls", inv.verify_tls) && !inv.verify_tls) {
    Url url;
    if (parse_url(inv.base_url, url) && !is_loopback_host(url.host)) {
      r.fail("verify_tls",
             "may be false only for a loopback base_url (127.0.0.1, ::1, localhost); "
             "set ca_file to trust a private CA instead");
    }
  }
  if (r.string("seller_name", inv.seller_name, need)) {
    apply(r, "seller_name", text_rule(inv.seller_name, 200));
  }
  constexpr std::string_view kClerkWhy =
      "数电 orders carry the clerk logged in to the e-tax account (specs/e-invoice.md "
      "\"Invoicing platform API\")";
  if (r.string("clerk", inv.clerk)) {
    if (std::string rule = text_rule(inv.clerk, 64); !rule.empty()) {
      r.fail("clerk", rule + ": " + std::string(kClerkWhy));
    }
  } else if (inv.enabled && !r.has("clerk")) {
    r.fail("clerk", "required key is missing: " + std::string(kClerkWhy));
  }
  r.enumeration("sign_encoding", inv.sign_encoding,
                {{"plain", SignEncoding::kPlain}, {"url", SignEncoding::kUrl}});
  const bool taxpayer_ok =
      r.enumeration("taxpayer", inv.taxpayer,
                    {{"general", Taxpayer::kGeneral}, {"small_scale", Taxpayer::kSmallScale}}) ||
      !r.has("taxpayer");
  if (const toml::table* t = r.table("parking")) {
    TableReader parking(r.diag(), *t, r.key_path("parking"));
    read_parking_lease(parking, inv.parking);
    parking.finish();
  }
  if (const toml::table* t = r.table("taxi")) {
    TableReader taxi(r.diag(), *t, r.key_path("taxi"));
    read_taxi_invoicing(taxi, inv.taxi);
    taxi.finish();
  }
  r.integer_as("claim_window_days", inv.claim_window_days, 1, 366);
  if (r.string_array("buyer_id_allow_list", inv.buyer_id_allow_list)) {
    for (std::size_t i = 0; i < inv.buyer_id_allow_list.size(); ++i) {
      std::string rule = uscc_shape_rule(inv.buyer_id_allow_list[i]);
      if (!rule.empty()) {
        std::string key = r.key_path("buyer_id_allow_list") + "[" + std::to_string(i) + "]";
        r.diag().add(r.diag().where(key), key, rule);
      }
    }
  }
  if (r.string("seller_tax_id", inv.seller_tax_id, need)) {
    bool allowed = std::find(inv.buyer_id_allow_list.begin(), inv.buyer_id_allow_list.end(),
                             inv.seller_tax_id) != inv.buyer_id_allow_list.end();
    apply(r, "seller_tax_id",
          allowed ? uscc_shape_rule(inv.seller_tax_id) : uscc_rule(inv.seller_tax_id));
  }
  std::map<std::string, int> services;
  r.tables("tax", [&](TableReader& t, std::size_t) {
    TaxRule rule;
    read_tax_rule(t, rule, inv.taxpayer, taxpayer_ok, services);
    inv.tax.push_back(std::move(rule));
  });
  std::map<std::string, int> accounts;
  r.tables("default_title", [&](TableReader& t, std::size_t) {
    DefaultTitle d;
    if (t.string("account", d.account, Need::kRequired)) {
      apply(t, "account", text_rule(d.account, 64));
      auto [it, fresh] = accounts.emplace(d.account, t.table_pos().line);
      if (!fresh) {
        t.fail("account", "duplicate default title for this account (first at line " +
                              std::to_string(it->second) + ")");
      }
    }
    t.string_in("kind", d.kind, {"company", "person"});
    const Need company = d.kind == "company" ? Need::kRequired : Need::kOptional;
    if (t.string("title", d.title, company)) {
      apply(t, "title", text_rule(d.title, 200));
    }
    if (t.string("tax_id", d.tax_id, company)) {
      const bool allowed = std::find(inv.buyer_id_allow_list.begin(), inv.buyer_id_allow_list.end(),
                                     d.tax_id) != inv.buyer_id_allow_list.end();
      apply(t, "tax_id", allowed ? uscc_shape_rule(d.tax_id) : uscc_rule(d.tax_id));
    }
    if (t.string("email", d.email)) {
      apply(t, "email", text_rule(d.email, 254));
    }
    if (t.string("phone", d.phone)) {
      apply(t, "phone", text_rule(d.phone, 32));
    }
    if (d.email.empty() && d.phone.empty()) {
      t.fail("email", "a default title needs an email or a phone to deliver the invoice to");
    }
    inv.default_titles.push_back(std::move(d));
  });
  // Services the operator did not list keep the spec's defaults.
  for (const TaxRule& d : default_tax_rules()) {
    if (!services.contains(d.service)) {
      inv.tax.push_back(d);
    }
  }
}

// ---- serial line parameters shared by [[bus]] (rtu), [[meter]], [[reader]] -----------
void read_serial_line(TableReader& r, int& baud, char& parity, int& data_bits, int& stop_bits) {
  r.integer_in("baud", baud, {1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200});
  std::string parity_text(1, parity);
  if (r.string_in("parity", parity_text, {"N", "E", "O"})) {
    parity = parity_text.front();
  }
  r.integer_in("data_bits", data_bits, {7, 8});
  r.integer_in("stop_bits", stop_bits, {1, 2});
}

constexpr std::array<std::string_view, 5> kSerialKeys = {"serial_device", "baud", "parity",
                                                         "data_bits", "stop_bits"};

// ---- [[bus]] --------------------------------------------------------------------------
void read_bus(TableReader& r, BusSection& b) {
  read_id(r, b.id);
  bool transport_ok =
      r.enumeration<Transport>("transport", b.transport,
                               {{"tcp", Transport::kTcp}, {"rtu", Transport::kRtu}}) ||
      !r.has("transport");
  if (!transport_ok) {
    // Unknown transport: accept the transport-specific keys silently (they cannot be
    // judged) rather than piling up follow-on errors.
    for (std::string_view k : {"host", "port"}) {
      r.ignore(k);
    }
    for (std::string_view k : kSerialKeys) {
      r.ignore(k);
    }
  } else if (b.transport == Transport::kTcp) {
    if (r.string("host", b.host, Need::kRequired)) {
      apply(r, "host", host_rule(b.host));
    }
    r.integer_as("port", b.port, 1, 65535);
    for (std::string_view k : kSerialKeys) {
      r.reject_if_present(k, "only allowed with transport = \"rtu\"");
    }
  } else {
    std::filesystem::path device;
    if (r.path("serial_device", device, Need::kRequired)) {
      b.serial_device = device.string();
    }
    read_serial_line(r, b.baud, b.parity, b.data_bits, b.stop_bits);
    for (std::string_view k : {"host", "port"}) {
      r.reject_if_present(k, "only allowed with transport = \"tcp\"");
    }
  }
  r.integer_as("response_timeout_ms", b.response_timeout_ms, 10, 10'000);
  r.integer_as("byte_timeout_ms", b.byte_timeout_ms, 1, 10'000);
  r.integer_as("reconnect_max_ms", b.reconnect_max_ms, 100, 600'000);
}

// The paths are stored as strings in config.h; reading through path() applies the
// absolute-path rule.
void read_serial_port(TableReader& r, SerialPortSection& s) {
  read_id(r, s.id);
  std::filesystem::path device;
  if (r.path("device", device, Need::kRequired)) {
    s.device = device.string();
  }
  read_serial_line(r, s.baud, s.parity, s.data_bits, s.stop_bits);
}

// ---- [[device]] -----------------------------------------------------------------------
const EnumNames<DeviceKind> kDeviceKinds = {{"camera", DeviceKind::kCamera},
                                            {"loop", DeviceKind::kLoop},
                                            {"barrier", DeviceKind::kBarrier},
                                            {"display", DeviceKind::kDisplay},
                                            {"roadside_unit", DeviceKind::kRoadsideUnit}};

void read_registers(TableReader& r, DeviceSection& d) {
  const toml::table* t = r.table("registers");
  if (t == nullptr) {
    return;
  }
  Diagnostics& diag = r.diag();
  std::string base = r.key_path("registers");
  for (const auto& [key, node] : *t) {
    std::string name(key.str());
    std::string path = base + "." + name;
    Pos pos = pos_of(key.source());
    const RegisterName* known = find_register(d.kind, name);
    if (known == nullptr) {
      std::string names;
      for (const RegisterName& n : register_names(d.kind)) {
        names += names.empty() ? "" : ", ";
        names += n.name;
      }
      diag.add(pos, path,
               "no register of that name for kind " + std::string(to_string(d.kind)) +
                   " (names: " + names + ")");
      continue;
    }
    const auto* value = node.as_integer();
    if (value == nullptr) {
      diag.add(pos_of(node.source()), path,
               std::string("expected integer, got ") + TableReader::type_name(node.type()));
      continue;
    }
    std::int64_t address = value->get();
    if (address < 0 || address + known->count - 1 > 65535) {
      diag.add(pos_of(node.source()), path,
               "must be in 0.." + std::to_string(65536 - known->count) + ", got " +
                   std::to_string(address));
      continue;
    }
    d.registers[name] = static_cast<int>(address);
  }
  // Overrides must not make two registers of the same table overlap.
  auto names = register_names(d.kind);
  for (std::size_t i = 0; i < names.size(); ++i) {
    for (std::size_t j = i + 1; j < names.size(); ++j) {
      if (names[i].table != names[j].table) {
        continue;
      }
      int a = register_address(d, names[i].name);
      int b = register_address(d, names[j].name);
      if (a < b + names[j].count && b < a + names[i].count) {
        r.fail("registers", "register \"" + std::string(names[i].name) + "\" (" +
                                std::to_string(a) + ") overlaps \"" + std::string(names[j].name) +
                                "\" (" + std::to_string(b) + ".." +
                                std::to_string(b + names[j].count - 1) + ")");
      }
    }
  }
  // The camera plate record and the roadside-unit entry record are read in one request.
  if (d.kind == DeviceKind::kCamera || d.kind == DeviceKind::kRoadsideUnit) {
    int low = 65536;
    int high = -1;
    for (const RegisterName& n : names) {
      int a = register_address(d, n.name);
      low = std::min(low, a);
      high = std::max(high, a + n.count);
    }
    if (high - low > kMaxRegistersPerRead) {
      r.fail("registers", "the record must fit one Modbus read: registers " + std::to_string(low) +
                              ".." + std::to_string(high - 1) + " span more than " +
                              std::to_string(kMaxRegistersPerRead) + " registers");
    }
  }
}

// A push camera's colour table: vendor string -> provider colour name.
void read_camera_colours(TableReader& r, DeviceSection& d) {
  const toml::table* t = r.table("colours");
  if (t == nullptr) {
    return;
  }
  const std::string base = r.key_path("colours");
  for (const auto& [key, node] : *t) {
    const std::string path = base + "." + std::string(key.str());
    const auto* value = node.as_string();
    static constexpr std::array<std::string_view, 6> kNames = {"BLUE",  "YELLOW", "BLACK",
                                                               "WHITE", "GREEN",  "LIMEGREEN"};
    if (value == nullptr || std::ranges::find(kNames, value->get()) == kNames.end()) {
      r.diag().add(pos_of(node.source()), path,
                   "must be one of: BLUE, YELLOW, BLACK, WHITE, GREEN, LIMEGREEN");
      continue;
    }
    d.colours[std::string(key.str())] = value->get();
  }
}

// The keys of a camera that pushes over HTTP ([[device]] kind = "camera", protocol other
// than "modbus").
void read_push_camera(TableReader& r, DeviceSection& d) {
  if (r.string("serial", d.serial, Need::kRequired)) {
    const bool ok = !d.serial.empty() && d.serial.size() <= 64 &&
                    std::ranges::all_of(d.serial, [](char c) { return c > 0x20 && c < 0x7F; });
    apply(r, "serial", ok ? "" : "must be 1..64 printable ASCII characters without spaces");
  }
  if (r.string("address", d.address)) {
    apply(r, "address", ip_literal_rule(d.address));
  }
  if (r.string("token_sha256", d.token_sha256, Need::kRequired)) {
    apply(r, "token_sha256", sha256_hex_rule(d.token_sha256));
  }
  read_camera_colours(r, d);
  r.integer_as("heartbeat_timeout_s", d.heartbeat_timeout_s, 10, 3600);
  r.integer_as("reply_wait_ms", d.reply_wait_ms, 100, 10'000);
}

constexpr std::array<std::string_view, 6> kPushCameraKeys = {
    "serial", "address", "token_sha256", "colours", "heartbeat_timeout_s", "reply_wait_ms"};

void read_device(TableReader& r, DeviceSection& d) {
  read_id(r, d.id);
  bool kind_ok = r.enumeration<DeviceKind>("kind", d.kind, kDeviceKinds, Need::kRequired);
  if (kind_ok && d.kind == DeviceKind::kCamera) {
    r.string_in("protocol", d.protocol, {"modbus", "vzenith", "hikvision", "dahua", "generic"});
  } else if (kind_ok) {
    r.reject_if_present("protocol", "only allowed for kind = \"camera\"");
  } else {
    r.ignore("protocol");
  }
  if (kind_ok && d.push()) {
    r.reject_if_present("bus", "not used by a camera that pushes over HTTP (protocol = \"" +
                                   d.protocol + "\")");
    read_push_camera(r, d);
    for (std::string_view k : {"unit_id", "byte_order", "word_order", "poll_interval_ms",
                               "down_after_failures", "registers", "encoding"}) {
      r.reject_if_present(k, "not used by a camera that pushes over HTTP (protocol = \"" +
                                 d.protocol + "\")");
    }
    r.integer_as("min_confidence", d.min_confidence, 0, 1000);
    r.integer_as("repeat_window_ms", d.repeat_window_ms, 0, 3'600'000);
    for (std::string_view k : {"open_confirm_timeout_ms", "open_retries"}) {
      r.reject_if_present(k, "only allowed for kind = \"barrier\"");
    }
    return;
  }
  for (std::string_view k : kPushCameraKeys) {
    if (kind_ok) {
      r.reject_if_present(k, "only allowed for a camera that pushes over HTTP (protocol = "
                             "\"vzenith\", \"hikvision\", \"dahua\" or \"generic\")");
    } else {
      r.ignore(k);
    }
  }
  if (r.string("bus", d.bus, Need::kRequired)) {
    apply(r, "bus", id_rule(d.bus));
  }
  r.integer_as("unit_id", d.unit_id, 0, 255);  // narrowed per transport in cross_checks.cc
  const EnumNames<ByteOrder> orders = {{"big", ByteOrder::kBig}, {"little", ByteOrder::kLittle}};
  r.enumeration<ByteOrder>("byte_order", d.byte_order, orders);
  r.enumeration<ByteOrder>("word_order", d.word_order, orders);
  r.integer_as("poll_interval_ms", d.poll_interval_ms, 10, 60'000);
  r.integer_as("down_after_failures", d.down_after_failures, 1, 100);

  constexpr std::array<std::string_view, 3> kCameraKeys = {"encoding", "min_confidence",
                                                           "repeat_window_ms"};
  constexpr std::array<std::string_view, 2> kBarrierKeys = {"open_confirm_timeout_ms",
                                                            "open_retries"};
  if (!kind_ok) {
    // Without a valid kind the kind-specific keys cannot be judged; report only the kind.
    for (std::string_view k : kCameraKeys) {
      r.ignore(k);
    }
    for (std::string_view k : kBarrierKeys) {
      r.ignore(k);
    }
    r.ignore("registers");
    return;
  }
  read_registers(r, d);
  if (d.kind == DeviceKind::kCamera) {
    r.string_in("encoding", d.encoding, {"utf-8", "gbk"});
    r.integer_as("min_confidence", d.min_confidence, 0, 1000);
    r.integer_as("repeat_window_ms", d.repeat_window_ms, 0, 3'600'000);
  } else {
    for (std::string_view k : kCameraKeys) {
      r.reject_if_present(k, "only allowed for kind = \"camera\"");
    }
  }
  if (d.kind == DeviceKind::kBarrier) {
    r.integer_as("open_confirm_timeout_ms", d.open_confirm_timeout_ms, 100, 60'000);
    r.integer_as("open_retries", d.open_retries, 0, 10);
  } else {
    for (std::string_view k : kBarrierKeys) {
      r.reject_if_present(k, "only allowed for kind = \"barrier\"");
    }
  }
}

// ---- [cameras] ------------------------------------------------------------------------
void read_cameras(TableReader& r, CamerasSection& c) {
  if (r.string("listen_address", c.listen_address)) {
    apply(r, "listen_address", ip_literal_rule(c.listen_address));
  }
  r.integer_as("listen_port", c.listen_port, 0, 65535);
  r.integer("max_body_bytes", c.max_body_bytes, 64 * 1024, 32 * 1024 * 1024);
  r.integer_as("evidence_retention_days", c.evidence_retention_days, 1, 3650);
  r.integer("evidence_max_mb", c.evidence_max_mb, 1, 1024 * 1024);
}

// ---- [[lane]] -------------------------------------------------------------------------
const EnumNames<LaneMode> kLaneModes = {{"parking-entry", LaneMode::kParkingEntry},
                                        {"parking-exit", LaneMode::kParkingExit},
                                        {"toll-exit", LaneMode::kTollExit},
                                        {"taxi", LaneMode::kTaxi}};

// Which reference keys each mode uses: R required, O optional, '-' not allowed.
// Columns: parking-entry, parking-exit, toll-exit, taxi.
struct LaneKeyUse {
  std::string_view key;
  std::array<char, 4> use;
};
constexpr std::array<LaneKeyUse, 15> kLaneKeys = {{
    {"camera", {'R', 'R', 'R', '-'}},
    {"loop", {'O', 'O', 'O', '-'}},
    {"barrier", {'R', 'R', 'R', '-'}},
    {"display", {'O', 'O', 'O', '-'}},
    {"roadside_unit", {'-', '-', 'R', '-'}},
    {"meter", {'-', '-', '-', 'R'}},
    {"code_reader", {'-', '-', '-', 'O'}},
    {"tariff", {'R', 'R', 'R', '-'}},
    {"station_id", {'-', '-', 'R', '-'}},
    {"exit_without_entry", {'-', 'O', '-', '-'}},
    {"pair_window_ms", {'-', '-', 'O', '-'}},
    {"isu_id", {'-', '-', '-', 'O'}},
    {"code_wait_ms", {'-', '-', '-', 'O'}},
    {"qr_wait_s", {'-', '-', '-', 'O'}},
    {"no_plate_after_ms", {'O', 'O', 'O', '-'}},
}};

std::string* lane_ref(LaneSection& l, std::string_view key) {
  if (key == "camera") {
    return &l.camera;
  }
  if (key == "loop") {
    return &l.loop;
  }
  if (key == "barrier") {
    return &l.barrier;
  }
  if (key == "display") {
    return &l.display;
  }
  if (key == "roadside_unit") {
    return &l.roadside_unit;
  }
  if (key == "meter") {
    return &l.meter;
  }
  if (key == "code_reader") {
    return &l.code_reader;
  }
  if (key == "tariff") {
    return &l.tariff;
  }
  return nullptr;
}

void read_lane_key(TableReader& r, LaneSection& l, std::string_view key) {
  if (key == "station_id") {
    r.integer_as("station_id", l.station_id, 1, kU32Max);
  } else if (key == "exit_without_entry") {
    r.string_in("exit_without_entry", l.exit_without_entry, {"attendant", "daily_cap"});
  } else if (key == "pair_window_ms") {
    r.integer_as("pair_window_ms", l.pair_window_ms, 500, 60'000);
  } else if (key == "isu_id") {
    if (r.string("isu_id", l.isu_id)) {
      const bool digits = l.isu_id.size() == 12 &&
                          std::all_of(l.isu_id.begin(), l.isu_id.end(),
                                      [](char c) { return c >= '0' && c <= '9'; });
      apply(r, "isu_id", digits ? "" : "must be 12 digits (JT/T 905 ISU id, BCD[6])");
    }
  } else if (key == "code_wait_ms") {
    r.integer_as("code_wait_ms", l.code_wait_ms, 0, 120'000);
  } else if (key == "qr_wait_s") {
    r.integer_as("qr_wait_s", l.qr_wait_s, 30, 3600);
  } else if (key == "no_plate_after_ms") {
    const bool set = r.has("no_plate_after_ms");
    r.integer_as("no_plate_after_ms", l.no_plate_after_ms, 0, 600'000);
    if (set && l.no_plate_after_ms != 0 && l.no_plate_after_ms < 1000) {
      r.fail("no_plate_after_ms", "must be 0 (off) or at least 1000");
    }
  } else if (std::string* ref = lane_ref(l, key); ref != nullptr) {
    if (r.string(key, *ref)) {
      apply(r, key, id_rule(*ref));
    }
  }
}

void read_lane(TableReader& r, LaneSection& l) {
  read_id(r, l.id);
  bool mode_ok = r.enumeration<LaneMode>("mode", l.mode, kLaneModes, Need::kRequired);
  if (r.string("name", l.name)) {
    apply(r, "name", text_rule(l.name, 64));
  } else {
    l.name = l.id;
  }
  for (const LaneKeyUse& k : kLaneKeys) {
    if (!mode_ok) {
      read_lane_key(r, l, k.key);  // judge values, not presence, without a valid mode
      continue;
    }
    char use = k.use[static_cast<std::size_t>(l.mode)];
    std::string mode_text = "mode = \"" + std::string(to_string(l.mode)) + "\"";
    if (use == '-') {
      r.reject_if_present(k.key, "not used with " + mode_text);
      continue;
    }
    if (use == 'R' && !r.has(k.key)) {
      r.fail(k.key, "required with " + mode_text);
    }
    read_lane_key(r, l, k.key);
  }
}

// ---- [regulator] ----------------------------------------------------------------------
void read_regulator(TableReader& r, RegulatorSection& g) {
  r.boolean("enabled", g.enabled);
  const Need need = g.enabled ? Need::kRequired : Need::kOptional;
  if (r.string("host", g.host, need)) {
    apply(r, "host", host_rule(g.host));
  }
  r.integer_as("port", g.port, 1, 65535, need);
  r.integer_as("connect_timeout_ms", g.connect_timeout_ms, 100, 60'000);
  r.integer_as("reply_timeout_ms", g.reply_timeout_ms, 100, 120'000);
}

// ---- [fleet] --------------------------------------------------------------------------
void read_fleet(TableReader& r, FleetSection& f) {
  r.boolean("enabled", f.enabled);
  const Need need = f.enabled ? Need::kRequired : Need::kOptional;
  if (r.string("host", f.host, need)) {
    apply(r, "host", host_rule(f.host));
  }
  r.integer_as("port", f.port, 1, 65535);
  r.path("cert_file", f.cert_file, need);
  r.path("key_file", f.key_file, need);
  r.path("ca_file", f.ca_file, need);
  r.integer_as("sync_interval_s", f.sync_interval_s, 5, 86'400);
  r.integer_as("batch_records", f.batch_records, 1, 5000);
  r.integer_as("timeout_ms", f.timeout_ms, 1000, 300'000);
}

// ---- [[station]] ----------------------------------------------------------------------
void read_station(TableReader& r, Station& st) {
  r.integer_as("id", st.id, 1, kU32Max, Need::kRequired);
  if (r.string("name", st.name, Need::kRequired)) {
    apply(r, "name", text_rule(st.name, 128));
  }
}

// ---- [[tariff.parking]], [[tariff.toll]] ----------------------------------------------
void read_parking_tariff(TableReader& r, ParkingTariff& t) {
  read_id(r, t.id);
  r.integer_as("free_minutes", t.free_minutes, 0, 1440);
  r.integer_as("unit_minutes", t.unit_minutes, 1, 1440);
  r.money("day_rate", t.day_rate, Money::zero(), yuan(1000));
  r.money("night_rate", t.night_rate, Money::zero(), yuan(1000));
  bool day_ok =
      r.integer_as("day_start_minute", t.day_start_minute, 0, 1439) || !r.has("day_start_minute");
  bool night_ok = r.integer_as("night_start_minute", t.night_start_minute, 0, 1439) ||
                  !r.has("night_start_minute");
  if (day_ok && night_ok && t.day_start_minute == t.night_start_minute) {
    r.fail("night_start_minute",
           "must differ from day_start_minute (use equal day_rate and night_rate for one rate)");
  }
  r.money("daily_cap", t.daily_cap, Money::zero(), yuan(10000));
  r.string_in("rounding", t.rounding, {"up", "down"});
  r.integer_as("max_stay_days", t.max_stay_days, 1, 3650);
}

void read_toll_tariff(TableReader& r, TollTariff& t) {
  read_id(r, t.id);
  std::map<std::tuple<std::uint32_t, std::uint32_t, int>, int> seen;
  std::size_t count = r.tables("fare", [&](TableReader& f, std::size_t) {
    TollFare fare;
    bool ok = f.integer_as("entry_station", fare.entry_station, 1, kU32Max, Need::kRequired);
    ok = f.integer_as("exit_station", fare.exit_station, 1, kU32Max, Need::kRequired) && ok;
    ok =
        (f.integer_as("vehicle_class", fare.vehicle_class, 1, 16) || !f.has("vehicle_class")) && ok;
    ok = f.money("fare", fare.fare, Money::from_fen(1), yuan(10000), Need::kRequired) && ok;
    if (ok) {
      auto [it, fresh] =
          seen.emplace(std::tuple(fare.entry_station, fare.exit_station, fare.vehicle_class),
                       f.table_pos().line);
      if (!fresh) {
        f.fail("fare", "duplicate fare for entry_station " + std::to_string(fare.entry_station) +
                           ", exit_station " + std::to_string(fare.exit_station) +
                           ", vehicle_class " + std::to_string(fare.vehicle_class) +
                           " (first at line " + std::to_string(it->second) + ")");
      }
    }
    t.fares.push_back(fare);
  });
  if (count == 0) {
    r.fail("fare", "a toll tariff needs at least one [[tariff.toll.fare]] table");
  }
}

// ---- [offline], [queue], [plates] -----------------------------------------------------
void read_offline(TableReader& r, OfflineLimits& o) {
  bool a = r.money("per_transaction", o.per_transaction, Money::zero(), yuan(1'000'000)) ||
           !r.has("per_transaction");
  bool b =
      r.money("per_plate_outstanding", o.per_plate_outstanding, Money::zero(), yuan(1'000'000)) ||
      !r.has("per_plate_outstanding");
  bool c = r.money("site_exposure", o.site_exposure, Money::zero(), yuan(10'000'000)) ||
           !r.has("site_exposure");
  r.integer_as("binding_max_age_s", o.binding_max_age_s, 0, 7 * 86'400);
  if (a && b && o.per_transaction > o.per_plate_outstanding) {
    r.fail("per_transaction",
           "must not exceed per_plate_outstanding (" + o.per_plate_outstanding.to_string() + ")");
  }
  if (b && c && o.per_plate_outstanding > o.site_exposure) {
    r.fail("per_plate_outstanding",
           "must not exceed site_exposure (" + o.site_exposure.to_string() + ")");
  }
}

void read_queue(TableReader& r, QueueLimits& q) {
  r.integer("max_rows", q.max_rows, 1000, 1'000'000'000);
  r.integer("max_bytes", q.max_bytes, 1024 * 1024, 1024LL * 1024 * 1024 * 1024);
  r.integer_as("acked_retention_hours", q.acked_retention_hours, 1, 24 * 366);
  r.integer_as("max_in_flight", q.max_in_flight, 1, 256);
  r.integer_as("rate_per_second", q.rate_per_second, 1, 10'000);
  bool base =
      r.integer_as("retry_base_ms", q.retry_base_ms, 10, 600'000) || !r.has("retry_base_ms");
  bool cap = r.integer_as("retry_cap_ms", q.retry_cap_ms, 10, 86'400'000) || !r.has("retry_cap_ms");
  if (base && cap && q.retry_cap_ms < q.retry_base_ms) {
    r.fail("retry_cap_ms",
           "must be at least retry_base_ms (" + std::to_string(q.retry_base_ms) + ")");
  }
  r.integer_as("lease_ms", q.lease_ms, 1000, 3'600'000);
  r.integer_as("drain_interval_ms", q.drain_interval_ms, 10, 60'000);
}

// Empty when `name` is a plate form name (the default `forms` lists all of them).
std::string plate_form_rule(std::string_view name) {
  const std::vector<std::string> all = PlateRules{}.forms;
  if (std::ranges::find(all, name) != all.end()) {
    return {};
  }
  std::string names;
  for (const std::string& n : all) {
    names += names.empty() ? "" : ", ";
    names += n;
  }
  return "must be one of: " + names + " (got " + quoted(name) + ")";
}

// Empty when `letters` is a non-empty set of new-energy class letters.
std::string new_energy_letters_rule(std::string_view letters) {
  constexpr std::string_view kClassLetters = "ABCDEFGHJK";
  if (letters.empty()) {
    return "must list at least one new-energy class letter";
  }
  for (std::size_t i = 0; i < letters.size(); ++i) {
    if (kClassLetters.find(letters[i]) == std::string_view::npos) {
      return "must contain only the class letters " + std::string(kClassLetters) + " (got " +
             quoted(letters) + ")";
    }
    if (letters.find(letters[i]) != i) {
      return "duplicate class letter \"" + std::string(1, letters[i]) + "\"";
    }
  }
  return {};
}

void read_plates(TableReader& r, PlateRules& p) {
  std::vector<std::string> provinces;
  if (r.string_array("provinces", provinces)) {
    bool ok = true;
    if (provinces.empty()) {
      r.fail("provinces", "must list at least one province character");
      ok = false;
    }
    std::set<std::string> seen;
    for (std::size_t i = 0; i < provinces.size(); ++i) {
      std::string key = r.key_path("provinces") + "[" + std::to_string(i) + "]";
      std::string rule = province_rule(provinces[i]);
      if (rule.empty() && !seen.insert(provinces[i]).second) {
        rule = "duplicate province \"" + provinces[i] + "\"";
      }
      if (!rule.empty()) {
        r.diag().add(r.diag().where(key), key, rule);
        ok = false;
      }
    }
    if (ok) {
      p.provinces = std::move(provinces);
    }
  }
  r.boolean("allow_new_energy", p.allow_new_energy);
  std::vector<std::string> forms;
  if (r.string_array("forms", forms)) {
    bool ok = true;
    if (forms.empty()) {
      r.fail("forms", "must list at least one plate form");
      ok = false;
    }
    std::set<std::string> seen;
    for (std::size_t i = 0; i < forms.size(); ++i) {
      std::string key = r.key_path("forms") + "[" + std::to_string(i) + "]";
      std::string rule = plate_form_rule(forms[i]);
      if (rule.empty() && !seen.insert(forms[i]).second) {
        rule = "duplicate form \"" + forms[i] + "\"";
      }
      if (!rule.empty()) {
        r.diag().add(r.diag().where(key), key, rule);
        ok = false;
      }
    }
    if (ok) {
      p.forms = std::move(forms);
    }
  }
  std::string letters;
  if (r.string("new_energy_letters", letters)) {
    if (std::string rule = new_energy_letters_rule(letters); !rule.empty()) {
      r.fail("new_energy_letters", rule);
    } else {
      p.new_energy_letters = std::move(letters);
    }
  }
}

// Reads an optional [name] section with `fn`.
template <typename Fn>
void section(TableReader& root, std::string_view name, Need need, Fn&& fn) {
  if (need == Need::kRequired && !root.has(name)) {
    root.fail(name, "required section [" + std::string(name) + "] is missing");
  }
  if (const toml::table* t = root.table(name)) {
    TableReader reader(root.diag(), *t, std::string(name));
    fn(reader);
    reader.finish();
  }
}

}  // namespace

void read_document(const toml::table& root, Diagnostics& diag, Config& c) {
  TableReader r(diag, root, "");
  section(r, "gateway", Need::kRequired, [&](TableReader& t) { read_gateway(t, c.gateway); });
  section(r, "api", Need::kOptional, [&](TableReader& t) { read_api(t, c.api); });
  section(r, "provider", Need::kRequired, [&](TableReader& t) { read_provider(t, c.provider); });
  section(r, "invoicing", Need::kOptional, [&](TableReader& t) { read_invoicing(t, c.invoicing); });
  if (!r.has("invoicing")) {
    c.invoicing.tax = default_tax_rules();
  }
  section(r, "regulator", Need::kOptional, [&](TableReader& t) { read_regulator(t, c.regulator); });
  section(r, "fleet", Need::kOptional, [&](TableReader& t) { read_fleet(t, c.fleet); });
  section(r, "cameras", Need::kOptional, [&](TableReader& t) { read_cameras(t, c.cameras); });
  r.tables("bus", [&](TableReader& t, std::size_t) { read_bus(t, c.buses.emplace_back()); });
  r.tables("device",
           [&](TableReader& t, std::size_t) { read_device(t, c.devices.emplace_back()); });
  r.tables("meter",
           [&](TableReader& t, std::size_t) { read_serial_port(t, c.meters.emplace_back()); });
  r.tables("reader",
           [&](TableReader& t, std::size_t) { read_serial_port(t, c.readers.emplace_back()); });
  std::size_t lanes =
      r.tables("lane", [&](TableReader& t, std::size_t) { read_lane(t, c.lanes.emplace_back()); });
  if (lanes == 0) {
    r.fail("lane", "at least one [[lane]] is required");
  }
  section(r, "tariff", Need::kOptional, [&](TableReader& t) {
    t.tables("parking", [&](TableReader& p, std::size_t) {
      read_parking_tariff(p, c.parking_tariffs.emplace_back());
    });
    t.tables("toll", [&](TableReader& p, std::size_t) {
      read_toll_tariff(p, c.toll_tariffs.emplace_back());
    });
  });
  r.tables("station",
           [&](TableReader& t, std::size_t) { read_station(t, c.stations.emplace_back()); });
  section(r, "offline", Need::kOptional, [&](TableReader& t) { read_offline(t, c.offline); });
  section(r, "queue", Need::kOptional, [&](TableReader& t) { read_queue(t, c.queue); });
  section(r, "plates", Need::kOptional, [&](TableReader& t) { read_plates(t, c.plates); });
  r.finish();
}

}  // namespace lanegate::config::detail
