#include "invoice/platform.h"

#include <httplib.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <cctype>
#include <fstream>
#include <ostream>
#include <span>
#include <sstream>
#include <tuple>

#include "config/secrets.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/time_format.h"
#include "core/url.h"

namespace lanegate::invoice {
namespace {

namespace json = boost::json;

metrics::Counter& platform_calls(std::string_view method, std::string_view outcome) {
  return metrics::Registry::global().counter(
      "lanegate_invoice_platform_calls_total", "Calls to the invoicing platform by outcome",
      {{"method", std::string(method)}, {"outcome", std::string(outcome)}});
}

std::string rate_text(int percent) {
  if (percent == 0) {
    return "0";
  }
  std::string digits = std::to_string(percent);
  if (percent < 10) {
    return "0.0" + digits;
  }
  if (percent < 100) {
    return "0." + digits;
  }
  return "1";
}

// "2026-11-22 13:29:35" in China Standard Time.
std::string platform_datetime(SystemTime t) {
  std::string s = format_rfc3339(t, UtcOffset{480});  // 2026-11-22T13:29:35+08:00
  s = s.substr(0, 19);
  s[10] = ' ';
  return s;
}

std::string push_mode(const Buyer& b) {
  if (!b.email.empty() && !b.phone.empty()) {
    return "2";
  }
  if (!b.email.empty()) {
    return "0";
  }
  if (!b.phone.empty()) {
    return "1";
  }
  return "-1";
}

// The configured item name is "*category*name" (receipts show it so). goodsName carries
// the name only: the platform prefixes the category of the tax code itself (spec, taxi:
// "shown as *运输服务*…; goodsName per site, e.g. 客运服务费").
std::string goods_name(std::string_view item_name) {
  if (item_name.starts_with('*')) {
    if (const auto close = item_name.find('*', 1); close != std::string_view::npos) {
      return std::string(item_name.substr(close + 1));
    }
  }
  return std::string(item_name);
}

// The requestBillingNew order. Keys only from the spec's list ("Invoicing platform API");
// not in the spec and carried over unchanged (INVOICE.md lists them): the invoiceDate
// format, withTaxFlag "1", num "1", amounts as 2-decimal strings.
// surveyAnswerType (spec: "small-scale at 1%/3%: 1 liability before 2022-04-01, 2
// correcting/reversing an earlier invoice, 3 waiving the exemption"): the configured answer
// of the rule each line was split under; empty when no line's rule has one.
std::string survey_answer(const IssueRequest& r, std::span<const config::TaxRule> rules) {
  for (const InvoiceLine& l : r.lines) {
    for (const config::TaxRule& rule : rules) {
      if (rule.service == l.service && rule.rate_percent == l.rate_percent &&
          !rule.survey_answer_type.empty()) {
        return rule.survey_answer_type;
      }
    }
  }
  return {};
}

std::string issue_content(const IssueRequest& r, std::string_view callback_url,
                          std::string_view clerk, std::string_view survey_answer_type,
                          std::string_view traveller_list_key) {
  json::array details;
  for (const InvoiceLine& l : r.lines) {
    json::object d;
    d["goodsName"] = goods_name(l.item_name);
    d["goodsCode"] = l.tax_code;
    d["withTaxFlag"] = "1";
    const bool red = l.incl.is_negative();
    d["num"] = red ? "-1" : "1";
    d["price"] = red ? l.incl.negate()->to_string() : l.incl.to_string();
    d["taxRate"] = rate_text(l.rate_percent);
    d["taxExcludedAmount"] = l.excl.to_string();
    d["tax"] = l.tax.to_string();
    d["taxIncludedAmount"] = l.incl.to_string();
    d["invoiceLineProperty"] = "0";
    d["favouredPolicyFlag"] = l.favoured_policy_flag;
    details.push_back(std::move(d));
  }
  json::object order;
  order["buyerName"] = r.buyer.title;
  order["buyerTaxNum"] = r.buyer.tax_id;
  order["salerTaxNum"] = r.seller.tax_id;
  order["orderNo"] = r.order_no;
  order["invoiceDate"] = platform_datetime(r.invoice_date);
  order["clerk"] = clerk;
  order["invoiceType"] = "1";  // blue only: "2 red is not used for 数电" (R1)
  order["invoiceLine"] = "pc";
  order["pushMode"] = push_mode(r.buyer);
  order["email"] = r.buyer.email;
  order["buyerPhone"] = r.buyer.phone;
  order["callBackUrl"] = callback_url;
  if (!survey_answer_type.empty()) {
    order["surveyAnswerType"] = survey_answer_type;
  }
  // Specific business (spec "Specific business"): 6 carries realPropertyRentInfo (one
  // object: the public clients' shape), 9 the traveller list under the configured key.
  // Lines never carry unit or specType (with 6 they must be empty).
  order["specificFactor"] = platform_code(r.specific.factor);
  if (r.specific.factor == SpecificFactor::kRealPropertyLease && r.specific.lease) {
    const LeaseInfo& l = *r.specific.lease;
    json::object rent{{"realPropertyAddress", l.property_address},
                      {"detailAddress", l.detail_address},
                      {"rentStartDate", l.start_date},
                      {"rentEndDate", l.end_date},
                      {"crossCityFlag", l.cross_city ? "1" : "0"},
                      {"unit", std::to_string(l.area_unit)}};
    if (!l.certificate.empty()) {
      rent["realPropertyCertificate"] = l.certificate;
    }
    order["realPropertyRentInfo"] = std::move(rent);
  }
  if (r.specific.factor == SpecificFactor::kPassengerTransport) {
    json::array rows;
    for (const Traveller& t : r.specific.travellers) {
      rows.push_back(json::object{{"traveller", t.name},
                                  {"travelDate", t.travel_date},
                                  {"travellerCardType", t.card_type},
                                  {"travellerCardNo", t.card_no},
                                  {"travelPlace", t.travel_place},
                                  {"arrivePlace", t.arrive_place},
                                  {"vehicleType", std::to_string(t.vehicle_type)}});
    }
    order[json::string_view(traveller_list_key.data(), traveller_list_key.size())] = std::move(rows);
  }
  if (!r.specific.remark.empty()) {
    order["remark"] = r.specific.remark;
  }
  order["invoiceDetail"] = std::move(details);
  json::object content;
  content["order"] = std::move(order);
  return json::serialize(content);
}

std::string string_field(const json::object& o, std::string_view key) {
  auto it = o.find(json::string_view(key.data(), key.size()));
  if (it == o.end()) {
    return {};
  }
  if (it->value().is_string()) {
    return std::string(it->value().get_string());
  }
  if (it->value().is_int64()) {
    return std::to_string(it->value().get_int64());
  }
  return {};
}

// A reply amount ("12.34" or a number) in fen; nullopt when absent. A present amount that
// is not a 2-place decimal is a protocol error: it is money the reply claims.
Result<std::optional<std::int64_t>> amount_field(const json::object& o, std::string_view key) {
  auto it = o.find(json::string_view(key.data(), key.size()));
  if (it == o.end() || it->value().is_null() ||
      (it->value().is_string() && it->value().get_string().empty())) {
    return std::optional<std::int64_t>{};
  }
  std::string text;
  if (it->value().is_string()) {
    text = std::string(it->value().get_string());
  } else if (it->value().is_int64()) {
    text = std::to_string(it->value().get_int64());
  } else if (it->value().is_double()) {
    text = json::serialize(it->value());
  }
  auto m = Money::parse(text);
  if (!m) {
    return fail(Errc::kProtocol, std::string(key) + " '" + text + "' is not an amount", "amount");
  }
  return std::optional<std::int64_t>{m->fen()};
}

Result<json::value> parse_json(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) {
    return fail(Errc::kProtocol, std::string(what) + " is not JSON: " + ec.message(), "reply");
  }
  return v;
}

// What a reply other than E0000 means (a duplicate is handled by each call first):
// E9613 the daily retry limit, E1xxx the envelope or credentials, anything else a refusal
// of this request (the platform's code and text in the message).
Error refusal(std::string_view code, std::string_view describe, std::string_view field) {
  const std::string text = std::string(code) + ": " + std::string(describe);
  if (code == "E9613") {
    return Error{Errc::kBusy, "platform retry limit reached for today: " + text, "order_no"};
  }
  if (code.starts_with("E1")) {
    return Error{Errc::kPermission, "platform refused the request envelope (" + text + ")",
                 "app_key"};
  }
  return Error{Errc::kRejected, text, std::string(field)};
}

// Splits "https://host:port/prefix" into ("https://host:port", "/prefix").
std::pair<std::string, std::string> split_base_url(std::string_view url) {
  const auto scheme_end = url.find("://");
  const auto path_start =
      url.find('/', scheme_end == std::string_view::npos ? 0 : scheme_end + 3);
  if (path_start == std::string_view::npos) {
    return {std::string(url), ""};
  }
  std::string prefix(url.substr(path_start));
  while (!prefix.empty() && prefix.back() == '/') {
    prefix.pop_back();
  }
  return {std::string(url.substr(0, path_start)), prefix};
}

}  // namespace

IssueRequest make_issue_request(const InvoiceRecord& invoice, const Seller& seller, SystemTime now) {
  IssueRequest r;
  r.order_no = invoice.order_no;
  r.seller = seller;
  r.buyer = invoice.buyer;
  if (r.buyer.kind == BuyerKind::kPerson) {
    r.buyer.tax_id.clear();
  }
  r.lines = invoice.lines;
  r.invoice_date = now;
  r.specific = invoice.specific;
  return r;
}

RedConfirmApply make_red_confirm_apply(const RedConfirmation& form, const InvoiceRecord& red,
                                       const InvoiceRecord& blue, const Seller& seller) {
  RedConfirmApply a;
  a.bill_id = form.bill_id;
  a.blue_number = blue.invoice_number;
  a.seller = seller;
  a.buyer = blue.buyer;
  if (a.buyer.kind == BuyerKind::kPerson) {
    a.buyer.tax_id.clear();
  }
  a.reason = form.reason;
  a.red_order_no = red.order_no;
  return a;
}

Result<PlatformStatus> platform_status_from_code(std::string_view code) {
  if (code == "2") return PlatformStatus::kIssued;
  if (code == "20") return PlatformStatus::kInProgress;
  if (code == "21") return PlatformStatus::kSigning;
  if (code == "22") return PlatformStatus::kFailed;
  if (code == "24") return PlatformStatus::kSealFailed;
  if (code == "3") return PlatformStatus::kVoided;
  if (code == "31") return PlatformStatus::kVoiding;
  return fail(Errc::kProtocol, "unknown invoice status '" + std::string(code) + "'", "status");
}

bool is_final(PlatformStatus s) {
  return s == PlatformStatus::kIssued || s == PlatformStatus::kFailed ||
         s == PlatformStatus::kSealFailed;
}

Result<std::string> NuonuoSigner::sign(std::string_view sign_string) const {
  if (secret_.empty()) {
    return fail(Errc::kCrypto, "empty app secret", "app_secret_file");
  }
  const auto mac = crypto::hmac_sha1(crypto::as_bytes(secret_), crypto::as_bytes(sign_string));
  return crypto::base64_encode(std::span<const std::uint8_t>(mac.data(), mac.size()));
}

std::string nuonuo_sign_string(std::string_view app_key, std::string_view senid,
                               std::string_view nonce, std::string_view timestamp,
                               std::string_view content) {
  std::string s;
  s.reserve(content.size() + app_key.size() + 96);
  s += "a=services&l=v1&p=open&k=";
  s += app_key;
  s += "&i=";
  s += senid;
  s += "&n=";
  s += nonce;
  s += "&t=";
  s += timestamp;
  s += "&f=";
  s += content;
  return s;
}

bool is_duplicate_refusal(std::string_view code, std::string_view describe) {
  if (code == "E9106") {
    return true;
  }
  if (describe.find("重复") != std::string_view::npos) {
    return true;
  }
  std::string lower(describe);
  for (char& c : lower) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return lower.find("duplicate") != std::string::npos;
}

NuonuoPlatform::NuonuoPlatform(PlatformClientOptions options, std::unique_ptr<RequestSigner> signer,
                               const Clock& clock)
    : options_(std::move(options)), signer_(std::move(signer)), clock_(clock) {}

NuonuoPlatform::~NuonuoPlatform() = default;

Result<NuonuoPlatform::Reply> NuonuoPlatform::call(std::string_view method,
                                                   std::string_view content) {
  // senid: 32 hex; nonce: a random 8-digit number; timestamp: Unix seconds (the spec marks
  // s vs ms *unconfirmed* and says send seconds).
  auto senid = crypto::random_bytes(16);
  auto nonce_bytes = crypto::random_bytes(4);
  if (!senid || !nonce_bytes) {
    return std::unexpected(senid ? nonce_bytes.error() : senid.error());
  }
  std::uint32_t r = 0;
  for (std::uint8_t b : *nonce_bytes) {
    r = (r << 8) | b;
  }
  const std::string nonce = std::to_string(10'000'000 + r % 90'000'000);
  const std::string senid_hex = crypto::hex_encode(*senid);
  const std::string timestamp = std::to_string(clock_.unix_seconds());
  auto sign = signer_->sign(
      nuonuo_sign_string(options_.app_key, senid_hex, nonce, timestamp, content));
  if (!sign) {
    return std::unexpected(sign.error());
  }
  // Whether X-Nuonuo-Sign is URL-encoded differs between public clients (*unconfirmed*):
  // plain unless [invoicing] sign_encoding = "url".
  const std::string sign_header =
      options_.sign_encoding == config::SignEncoding::kUrl ? percent_encode(*sign) : *sign;
  const std::string query = "?senid=" + senid_hex + "&nonce=" + nonce +
                            "&timestamp=" + timestamp + "&appkey=" + percent_encode(options_.app_key);

  auto [host, prefix] = split_base_url(options_.base_url);
  httplib::Client client(host);
  const auto connect = options_.connect_timeout;
  const auto total = options_.request_timeout;
  client.set_connection_timeout(std::chrono::duration_cast<std::chrono::seconds>(connect).count(),
                                static_cast<time_t>((connect.count() % 1000) * 1000));
  client.set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(total).count(),
                          static_cast<time_t>((total.count() % 1000) * 1000));
  client.set_write_timeout(std::chrono::duration_cast<std::chrono::seconds>(total).count(),
                           static_cast<time_t>((total.count() % 1000) * 1000));
  client.enable_server_certificate_verification(options_.verify_tls);
  if (options_.ca_file) {
    client.set_ca_cert_path(options_.ca_file->c_str());
  }
  httplib::Headers headers = {{"X-Nuonuo-Sign", sign_header},
                              {"accessToken", options_.access_token},
                              {"userTax", options_.seller_tax_id},
                              {"method", std::string(method)}};
  const std::string short_method(method.substr(method.rfind('.') + 1));
  client.set_url_encode(false);  // the query is encoded above, exactly as sent
  auto res = client.Post(prefix + "/open/v1/services" + query, headers, std::string(content),
                         "application/json;charset=utf-8");
  if (!res) {
    platform_calls(short_method, "unreachable").inc();
    const auto err = res.error();
    if (err == httplib::Error::SSLServerVerification || err == httplib::Error::SSLConnection) {
      return fail(Errc::kCrypto,
                  "TLS with the invoicing platform failed: " + httplib::to_string(err) +
                      " (check ca_file and the platform certificate)",
                  "base_url");
    }
    return fail(err == httplib::Error::Read || err == httplib::Error::Write
                    ? Errc::kTimeout
                    : Errc::kUnavailable,
                "invoicing platform not reachable: " + httplib::to_string(err), "base_url");
  }
  if (res->status >= 500 || res->status == 429) {
    platform_calls(short_method, "http_" + std::to_string(res->status)).inc();
    return fail(Errc::kUnavailable, "invoicing platform answered HTTP " + std::to_string(res->status),
                "base_url");
  }
  if (res->status == 401 || res->status == 403) {
    platform_calls(short_method, "denied").inc();
    return fail(Errc::kPermission, "invoicing platform refused the credentials (HTTP " +
                                       std::to_string(res->status) + ")",
                "access_token_file");
  }
  if (res->status != 200) {
    platform_calls(short_method, "http_" + std::to_string(res->status)).inc();
    return fail(Errc::kProtocol, "invoicing platform answered HTTP " + std::to_string(res->status),
                "base_url");
  }
  auto v = parse_json(res->body, "platform reply");
  if (!v) {
    platform_calls(short_method, "bad_reply").inc();
    return std::unexpected(v.error());
  }
  if (!v->is_object()) {
    return fail(Errc::kProtocol, "platform reply is not an object", "reply");
  }
  const auto& o = v->as_object();
  Reply reply;
  reply.code = string_field(o, "code");
  reply.describe = string_field(o, "describe");
  if (auto it = o.find("result"); it != o.end()) {
    reply.result_json = json::serialize(it->value());
  }
  platform_calls(short_method, reply.code.empty() ? "no_code" : reply.code).inc();
  return reply;
}

Result<IssueAccepted> NuonuoPlatform::issue(const IssueRequest& request) {
  auto reply = call(kMethodIssue, issue_content(request, options_.callback_url, options_.clerk,
                                                 survey_answer(request, options_.tax_rules),
                                                 options_.traveller_list_key));
  if (!reply) {
    return std::unexpected(reply.error());
  }
  if (is_duplicate_refusal(reply->code, reply->describe)) {
    // Already accepted earlier (our previous attempt's reply was lost): ask for it.
    return accepted_earlier(request.order_no);
  }
  if (reply->code != "E0000") {
    return std::unexpected(refusal(reply->code, reply->describe, "order"));
  }
  auto v = parse_json(reply->result_json, "issue result");
  if (!v || !v->is_object()) {
    return fail(Errc::kProtocol, "issue reply without a result object", "result");
  }
  std::string serial = string_field(v->as_object(), "invoiceSerialNum");
  if (serial.empty()) {
    return fail(Errc::kProtocol, "issue reply without invoiceSerialNum", "result");
  }
  return IssueAccepted{std::move(serial), false};
}

Result<IssueResult> NuonuoPlatform::query(std::string_view order_no) {
  json::object content;
  content["orderNos"] = json::array{json::string(order_no.data(), order_no.size())};
  auto reply = call(kMethodQuery, json::serialize(content));
  if (!reply) {
    return std::unexpected(reply.error());
  }
  if (reply->code != "E0000") {
    return std::unexpected(refusal(reply->code, reply->describe, "order_no"));
  }
  auto v = parse_json(reply->result_json, "query result");
  if (!v || !v->is_array()) {
    return fail(Errc::kProtocol, "query reply without a result list", "result");
  }
  for (const auto& item : v->as_array()) {
    if (!item.is_object()) {
      continue;
    }
    const auto& o = item.as_object();
    if (string_field(o, "orderNo") != order_no) {
      continue;
    }
    IssueResult r;
    r.order_no = std::string(order_no);
    r.serial_num = string_field(o, "serialNo");
    auto status = platform_status_from_code(string_field(o, "status"));
    if (!status) {
      return std::unexpected(status.error());
    }
    r.status = *status;
    // The platform spells the field without the final "r"; accept both, and refuse a
    // reply whose two spellings disagree (which number would we give the passenger?).
    const std::string truncated = string_field(o, "allElectronicInvoiceNumbe");
    const std::string full = string_field(o, "allElectronicInvoiceNumber");
    if (!truncated.empty() && !full.empty() && truncated != full) {
      return fail(Errc::kProtocol,
                  "the reply names two invoice numbers: allElectronicInvoiceNumbe " + truncated +
                      ", allElectronicInvoiceNumber " + full,
                  "invoice_number");
    }
    r.invoice_number = truncated.empty() ? full : truncated;
    for (auto [key, slot] : {std::pair{"exTaxAmount", &r.excl_fen}, std::pair{"taxAmount", &r.tax_fen},
                             std::pair{"orderAmount", &r.incl_fen}}) {
      auto amount = amount_field(o, key);
      if (!amount) {
        return std::unexpected(amount.error());
      }
      *slot = *amount;
    }
    r.pdf_url = string_field(o, "pdfUrl");
    r.ofd_url = string_field(o, "ofdUrl");
    r.qr_code = string_field(o, "qrCode");
    r.fail_reason = string_field(o, "failCause");
    if (r.fail_reason.empty()) {
      r.fail_reason = string_field(o, "statusMsg");
    }
    return r;
  }
  return fail(Errc::kNotFound, "platform does not know order " + std::string(order_no),
              "order_no");
}

Result<IssueAccepted> NuonuoPlatform::accepted_earlier(std::string_view order_no) {
  auto known = query(order_no);
  if (!known) {
    return std::unexpected(known.error());
  }
  return IssueAccepted{known->serial_num, true};
}

Result<std::string> NuonuoPlatform::apply_red_confirm(const RedConfirmApply& a) {
  // saveInvoiceRedConfirm as the sources show it (spec "Red-letter"; docs/INVOICE.md):
  // applySource 0 = the seller enters the form; the blue's 20-digit 数电 number goes in
  // blueElecInvoiceNumber; orderNo names the red the platform issues itself once the form
  // needs no confirmation or both sides confirmed (R6). No detail: whole-invoice reds only.
  json::object c;
  c["billId"] = a.bill_id;
  c["blueInvoiceLine"] = a.blue_line;
  c["applySource"] = "0";
  c["blueElecInvoiceNumber"] = a.blue_number;
  c["sellerTaxNo"] = a.seller.tax_id;
  c["sellerName"] = a.seller.name;
  c["buyerName"] = a.buyer.title;
  if (!a.buyer.tax_id.empty()) {
    c["buyerTaxNo"] = a.buyer.tax_id;
  }
  c["redReason"] = nuonuo_red_reason(a.reason);
  c["orderNo"] = a.red_order_no;
  auto reply = call(kMethodRedApply, json::serialize(c));
  if (!reply) {
    return std::unexpected(reply.error());
  }
  if (is_duplicate_refusal(reply->code, reply->describe)) {
    // Our earlier apply got through and its reply was lost (R2): the form is there.
    auto known = query_red_confirm(a.bill_id);
    if (!known) {
      return std::unexpected(known.error());
    }
    return a.bill_id;
  }
  if (reply->code != "E0000") {
    return std::unexpected(refusal(reply->code, reply->describe, "red_confirm"));
  }
  // result is the billId as a bare string (some replies omit it): it must be ours.
  if (!reply->result_json.empty() && reply->result_json != "null") {
    auto v = parse_json(reply->result_json, "apply result");
    if (!v) {
      return std::unexpected(v.error());
    }
    if (v->is_string() && !v->get_string().empty() && v->get_string() != a.bill_id) {
      return fail(Errc::kProtocol,
                  "the platform filed red-letter form " + std::string(v->get_string()) +
                      " for our billId " + a.bill_id,
                  "bill_status");
    }
  }
  return a.bill_id;
}

Result<RedConfirmView> NuonuoPlatform::query_red_confirm(std::string_view bill_id) {
  json::object c;
  c["identity"] = "0";  // the seller asks (0 销方, 1 购方)
  c["billId"] = bill_id;
  auto reply = call(kMethodRedQuery, json::serialize(c));
  if (!reply) {
    return std::unexpected(reply.error());
  }
  if (reply->code != "E0000") {
    return std::unexpected(refusal(reply->code, reply->describe, "bill_id"));
  }
  auto v = parse_json(reply->result_json, "red-letter form query");
  if (!v) {
    return std::unexpected(v.error());
  }
  // {"total": n, "list": [row...]} (total is a number live, a string in the doc).
  const json::value* list = v->is_object() ? v->as_object().if_contains("list") : nullptr;
  if (list == nullptr || !(list->is_array() || list->is_null())) {
    return fail(Errc::kProtocol, "red-letter form query reply without a list", "result");
  }
  if (list->is_array()) {
    for (const auto& item : list->as_array()) {
      if (!item.is_object()) {
        continue;
      }
      const auto& o = item.as_object();
      if (string_field(o, "billId") != bill_id) {
        continue;
      }
      RedConfirmView r;
      r.bill_id = std::string(bill_id);
      r.bill_no = string_field(o, "billNo");
      r.bill_uuid = string_field(o, "billUuid");
      r.bill_status = string_field(o, "billStatus");
      // openStatus: a number on the wire, a string in the doc; 1 = the red is issued.
      r.red_issued = string_field(o, "openStatus") == "1";
      r.red_order_no = string_field(o, "orderNo");
      r.red_serial = string_field(o, "invoiceSerialNum");
      r.message = string_field(o, "billMessage");
      r.blue_number = string_field(o, "blueElecInvoiceNumber");
      if (r.blue_number.empty()) {
        r.blue_number = string_field(o, "blueInvoiceNumber");
      }
      return r;
    }
  }
  return fail(Errc::kNotFound, "the platform has no red-letter form " + std::string(bill_id),
              "bill_id");
}

Result<IssueAccepted> NuonuoPlatform::fast_red(const FastRedRequest& r) {
  json::object c;
  c["orderNo"] = r.order_no;
  c["taxNum"] = r.seller_tax_id;
  if (!r.blue_serial.empty()) {
    c["invoiceId"] = r.blue_serial;
  }
  c["elecInvoiceNumber"] = r.blue_number;
  c["billNo"] = r.bill_no;
  c["billUuid"] = r.bill_uuid;
  c["invoiceLine"] = r.invoice_line;
  auto reply = call(kMethodFastRed, json::serialize(c));
  if (!reply) {
    return std::unexpected(reply.error());
  }
  if (is_duplicate_refusal(reply->code, reply->describe)) {
    return accepted_earlier(r.order_no);  // R6: the red already exists under our orderNo
  }
  if (reply->code != "E0000") {
    return std::unexpected(refusal(reply->code, reply->describe, "red_confirm"));
  }
  auto v = parse_json(reply->result_json, "fast red result");
  if (!v || !v->is_object()) {
    return fail(Errc::kProtocol, "fastInvoiceRed reply without a result object", "result");
  }
  std::string serial = string_field(v->as_object(), "invoiceSerialNum");
  if (serial.empty()) {
    return fail(Errc::kProtocol, "fastInvoiceRed reply without invoiceSerialNum", "result");
  }
  return IssueAccepted{std::move(serial), false};
}

Result<std::string> read_secret_file(const std::filesystem::path& path) {
  if (auto s = config::check_secret_file(path, path.string()); !s) {
    return std::unexpected(s.error());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(Errc::kIo, "cannot read " + path.string(), path.string());
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.pop_back();
  }
  if (s.empty()) {
    return fail(Errc::kInvalidArgument, path.string() + " is empty", path.string());
  }
  return s;
}

Result<std::unique_ptr<InvoicingPlatform>> make_platform(const config::InvoicingSection& section,
                                                         const Clock& clock,
                                                         std::string callback_url) {
  auto secret = read_secret_file(section.app_secret_file);
  if (!secret) {
    return std::unexpected(secret.error());
  }
  auto token = read_secret_file(section.access_token_file);
  if (!token) {
    return std::unexpected(token.error());
  }
  PlatformClientOptions o;
  o.base_url = section.base_url;
  o.app_key = section.app_key;
  o.access_token = *token;
  o.seller_tax_id = section.seller_tax_id;
  o.clerk = section.clerk;
  o.sign_encoding = section.sign_encoding;
  o.tax_rules = section.tax;
  o.traveller_list_key = section.taxi.traveller_list_key;
  o.callback_url = std::move(callback_url);
  o.ca_file = section.ca_file;
  o.verify_tls = section.verify_tls;
  return std::unique_ptr<InvoicingPlatform>(std::make_unique<NuonuoPlatform>(
      std::move(o), std::make_unique<NuonuoSigner>(*secret), clock));
}

namespace {

// A red invoice still CLAIMED: its confirmation form one step further (red_letter.h).
// Returns ISSUING once the red exists on the platform under its orderNo.
Result<Advance> advance_red(ClaimStore& store, InvoicingPlatform& platform, const Seller& seller,
                            const InvoiceRecord& red) {
  auto form = store.red_confirmation(red.id);
  if (!form) {
    return std::unexpected(form.error());
  }
  if (!red.original_id) {
    return fail(Errc::kInternal, "red invoice " + std::to_string(red.id) + " names no blue invoice",
                "invoice_id");
  }
  auto blue = store.get_invoice(*red.original_id);
  if (!blue) {
    return std::unexpected(blue.error());
  }
  std::optional<RedConfirmView> seen;
  if (form->state == RedConfirmState::kNew || form->state == RedConfirmState::kApplying) {
    if (form->state == RedConfirmState::kApplying) {
      // An apply left before and its answer is unknown (R2): ask before applying again.
      auto q = platform.query_red_confirm(form->bill_id);
      if (q) {
        seen = std::move(*q);
      } else if (q.error().code != Errc::kNotFound) {
        return std::unexpected(q.error());
      }
    } else if (auto s = store.mark_red_apply_sent(*form); !s) {
      return std::unexpected(s.error());
    } else {
      form->state = RedConfirmState::kApplying;
    }
    if (!seen) {
      auto applied = platform.apply_red_confirm(make_red_confirm_apply(*form, red, *blue, seller));
      if (!applied) {
        if (applied.error().code == Errc::kRejected) {
          if (auto s = store.close_red_confirm(*form, RedConfirmState::kRefused, "",
                                               applied.error().message);
              !s) {
            return std::unexpected(s.error());
          }
          return Advance{InvoiceState::kFailed};
        }
        return std::unexpected(applied.error());
      }
      if (auto s = store.note_red_confirm(*form, RedConfirmState::kApplied, RedConfirmView{}); !s) {
        return std::unexpected(s.error());
      }
      form->state = RedConfirmState::kApplied;
    }
  } else if (form->state == RedConfirmState::kUsed) {
    // The form was used and the red then failed on the platform; the red keeps its orderNo
    // (R6), so only the platform can say what to do with it.
    return fail(Errc::kProtocol,
                "red invoice " + red.order_no + " failed after its form " + form->bill_id +
                    " was used; ask the platform before retrying",
                "bill_status");
  }
  if (!seen) {
    auto q = platform.query_red_confirm(form->bill_id);
    if (!q) {
      if (q.error().code == Errc::kNotFound) {
        return Advance{InvoiceState::kClaimed, form->state};  // not visible yet: ask later
      }
      return std::unexpected(q.error());
    }
    seen = std::move(*q);
  }

  // Every answer is checked against the invoice it claims to be about.
  if (!seen->blue_number.empty() && seen->blue_number != blue->invoice_number) {
    return fail(Errc::kProtocol,
                "red-letter form " + form->bill_id + " names blue invoice " + seen->blue_number +
                    ", not " + blue->invoice_number,
                "invoice_number");
  }
  auto to = red_confirm_state_from_bill_status(seen->bill_status);
  if (!to) {
    return std::unexpected(to.error());
  }
  if (*to == RedConfirmState::kVoid || *to == RedConfirmState::kRefused) {
    if (auto s = store.close_red_confirm(*form, *to, seen->bill_status, seen->message); !s) {
      return std::unexpected(s.error());
    }
    return Advance{InvoiceState::kFailed};
  }
  if (auto s = store.note_red_confirm(*form, *to, *seen); !s) {
    return std::unexpected(s.error());
  }
  form->state = *to;
  if (!seen->bill_no.empty()) form->bill_no = seen->bill_no;
  if (!seen->bill_uuid.empty()) form->bill_uuid = seen->bill_uuid;
  if (*to != RedConfirmState::kConfirmed) {
    return Advance{InvoiceState::kClaimed, *to};
  }

  // Confirmed (01/04). The platform issues the red itself when the apply carried our
  // orderNo ("电票都自动开" in its apply doc); the spec calls fastInvoiceRed the usual path.
  // *Unconfirmed* which one a live account does, so: take the red the platform made under
  // our orderNo when there is one, and call fastInvoiceRed only when there is none, with the
  // same orderNo (R6), so that both can never issue two reds.
  std::string serial;
  if (seen->red_issued || !seen->red_order_no.empty()) {
    if (seen->red_order_no != red.order_no) {
      return fail(Errc::kProtocol,
                  "red-letter form " + form->bill_id + " reports red order '" + seen->red_order_no +
                      "', not ours (" + red.order_no + ")",
                  "bill_status");
    }
    serial = seen->red_serial;
  } else if (auto known = platform.query(red.order_no)) {
    serial = known->serial_num;
  } else if (known.error().code != Errc::kNotFound) {
    return std::unexpected(known.error());
  } else {
    if (form->bill_no.empty() || form->bill_uuid.empty()) {  // R1
      return fail(Errc::kProtocol,
                  "red-letter form " + form->bill_id + " is confirmed but has no billNo/billUuid",
                  "bill_status");
    }
    FastRedRequest f;
    f.order_no = red.order_no;
    f.seller_tax_id = seller.tax_id;
    f.blue_serial = blue->serial_num;
    f.blue_number = blue->invoice_number;
    f.bill_no = form->bill_no;
    f.bill_uuid = form->bill_uuid;
    auto accepted = platform.fast_red(f);
    if (!accepted) {
      if (accepted.error().code == Errc::kRejected) {
        // The form stays confirmed: an operator's retry sends fastInvoiceRed again.
        if (auto s = store.mark_failed(red.id, accepted.error().message); !s) {
          return std::unexpected(s.error());
        }
        return Advance{InvoiceState::kFailed};
      }
      return std::unexpected(accepted.error());
    }
    serial = accepted->serial_num;
  }
  if (auto s = store.mark_red_confirm_used(*form, serial); !s) {
    return std::unexpected(s.error());
  }
  return Advance{InvoiceState::kIssuing};
}

}  // namespace

std::ostream& operator<<(std::ostream& out, const Advance& a) {
  out << to_string(a.state);
  if (a.red) {
    out << " (red form " << to_string(*a.red) << ")";
  }
  return out;
}

Result<Advance> advance_invoice(ClaimStore& store, InvoicingPlatform& platform,
                                const Seller& seller, std::int64_t invoice_id, const Clock& clock) {
  auto inv = store.get_invoice(invoice_id);
  if (!inv) {
    return std::unexpected(inv.error());
  }
  if (inv->state == InvoiceState::kClaimed && inv->kind == InvoiceKind::kRed) {
    auto step = advance_red(store, platform, seller, *inv);
    if (!step || step->state != InvoiceState::kIssuing) {
      return step;
    }
    inv->state = InvoiceState::kIssuing;
  }
  if (inv->state == InvoiceState::kClaimed) {
    auto accepted = platform.issue(make_issue_request(*inv, seller, clock.now()));
    if (!accepted) {
      if (accepted.error().code == Errc::kRejected) {
        if (auto s = store.mark_failed(invoice_id, accepted.error().message); !s) {
          return std::unexpected(s.error());
        }
        return InvoiceState::kFailed;
      }
      log::warn("invoice issue not sent; will retry",
                {{"INVOICE_ID", invoice_id}, {"ERROR", accepted.error().to_string()}});
      return std::unexpected(accepted.error());
    }
    if (auto s = store.mark_issuing(invoice_id, accepted->serial_num); !s) {
      return std::unexpected(s.error());
    }
    inv->state = InvoiceState::kIssuing;
  }
  if (inv->state != InvoiceState::kIssuing) {
    return inv->state;
  }
  auto result = platform.query(inv->order_no);
  if (!result) {
    if (result.error().code == Errc::kNotFound) {
      return InvoiceState::kIssuing;  // accepted moments ago, not yet visible: ask later
    }
    return std::unexpected(result.error());
  }
  switch (result->status) {
    case PlatformStatus::kIssued:
      // Every answer is checked against the money it claims to be about.
      for (auto [claimed, stored, key] :
           {std::tuple{result->excl_fen, inv->totals.excl.fen(), "exTaxAmount"},
            std::tuple{result->tax_fen, inv->totals.tax.fen(), "taxAmount"},
            std::tuple{result->incl_fen, inv->totals.incl.fen(), "orderAmount"}}) {
        if (claimed && *claimed != stored) {
          return fail(Errc::kProtocol,
                      std::string("the platform reports ") + key + " " +
                          Money::from_fen(*claimed).to_string() + " for invoice " +
                          inv->order_no + ", which totals " + Money::from_fen(stored).to_string(),
                      "amount");
        }
      }
      if (auto s = store.mark_issued(invoice_id, result->invoice_number, result->pdf_url); !s) {
        return std::unexpected(s.error());
      }
      log::info("invoice issued", {{"INVOICE_ID", invoice_id},
                                   {"INVOICE_NUMBER", result->invoice_number}});
      return InvoiceState::kIssued;
    case PlatformStatus::kFailed:
    case PlatformStatus::kSealFailed: {
      std::string reason = result->fail_reason.empty() ? "the platform reported a failure"
                                                       : result->fail_reason;
      if (auto s = store.mark_failed(invoice_id, reason); !s) {
        return std::unexpected(s.error());
      }
      return InvoiceState::kFailed;
    }
    case PlatformStatus::kInProgress:
    case PlatformStatus::kSigning:
      return InvoiceState::kIssuing;
    case PlatformStatus::kVoided:
    case PlatformStatus::kVoiding:
      return fail(Errc::kProtocol,
                  "the platform reports paper-only status " +
                      std::string(result->status == PlatformStatus::kVoided ? "3" : "31") +
                      " for electronic invoice " + inv->order_no,
                  "status");
  }
  return InvoiceState::kIssuing;
}

}  // namespace lanegate::invoice
