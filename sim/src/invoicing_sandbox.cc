#include "sim/invoicing_sandbox.h"

#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "core/crypto.h"
#include "core/log.h"
#include "core/money.h"
#include "core/sqlite.h"
#include "core/text.h"
#include "core/time_format.h"
#include "sim/invoicing_pdf.h"

namespace lanegate::sim {
namespace {

namespace json = boost::json;

constexpr std::string_view kSchema = R"sql(
CREATE TABLE sandbox_invoice(
  order_no TEXT PRIMARY KEY,
  serial_num TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL,
  queries INTEGER NOT NULL DEFAULT 0,
  kind TEXT NOT NULL,
  invoice_number TEXT NOT NULL DEFAULT '',
  original_number TEXT NOT NULL DEFAULT '',
  seller_name TEXT NOT NULL,
  seller_tax_num TEXT NOT NULL,
  buyer_name TEXT NOT NULL,
  buyer_tax_num TEXT NOT NULL,
  excl_fen INTEGER NOT NULL,
  tax_fen INTEGER NOT NULL,
  incl_fen INTEGER NOT NULL,
  fail_planned TEXT NOT NULL DEFAULT '',
  fail_cause TEXT NOT NULL DEFAULT '',
  reversed INTEGER NOT NULL DEFAULT 0,
  issued_at TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX sandbox_invoice_number ON sandbox_invoice(invoice_number)
  WHERE invoice_number <> '';
CREATE UNIQUE INDEX sandbox_one_red ON sandbox_invoice(original_number)
  WHERE original_number <> '';
CREATE TABLE sandbox_line(
  order_no TEXT NOT NULL,
  line_no INTEGER NOT NULL,
  goods_code TEXT NOT NULL,
  rate TEXT NOT NULL,
  excl_fen INTEGER NOT NULL,
  tax_fen INTEGER NOT NULL,
  incl_fen INTEGER NOT NULL,
  PRIMARY KEY (order_no, line_no)
);
CREATE TABLE sandbox_sequence(name TEXT PRIMARY KEY, next INTEGER NOT NULL);
INSERT INTO sandbox_sequence VALUES ('invoice', 1), ('serial', 1);
)sql";

// Step 2 (append-only): the specific business each order carried, for find() and the PDF.
constexpr std::string_view kSchemaSpecific = R"sql(
ALTER TABLE sandbox_invoice ADD COLUMN specific_factor TEXT NOT NULL DEFAULT '0';
ALTER TABLE sandbox_invoice ADD COLUMN specific_summary TEXT NOT NULL DEFAULT '';
ALTER TABLE sandbox_invoice ADD COLUMN remark TEXT NOT NULL DEFAULT '';
)sql";

struct PlatformError {
  std::string code;
  std::string describe;
};

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    out += l;
    out += '\n';
  }
  return out;
}

bool is_date(std::string_view s) {
  static const std::regex kDate(R"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]))");
  return std::regex_match(s.begin(), s.end(), kDate);
}

std::string text_of(const json::object& o, std::string_view key) {
  auto it = o.find(json::string_view(key.data(), key.size()));
  return it != o.end() && it->value().is_string() ? std::string(it->value().get_string()) : "";
}

// Specific business (spec "Specific business", "Parking → 06", "Taxi → ... 09"). Fills
// `summary` with the lines the PDF prints.
std::optional<PlatformError> specific_problem(const json::object& order, std::size_t detail_lines,
                                              const InvoicingSandboxOptions& options,
                                              std::vector<std::string>& summary) {
  const std::string factor = text_of(order, "specificFactor").empty() ? "0" : text_of(order, "specificFactor");
  static const std::set<std::string> kFactors = {"0", "1", "3", "4", "5", "6", "9", "16",
                                                 "31", "32", "33", "34", "35"};
  if (!kFactors.contains(factor)) {
    return PlatformError{"E9120", "order.specificFactor " + factor + " is not a specific-business code"};
  }
  if ((factor == "5" || factor == "6") && detail_lines != 1) {
    return PlatformError{"E9121", "specificFactor " + factor + " allows exactly one invoiceDetail line"};
  }
  if (factor == "6") {
    auto it = order.find("realPropertyRentInfo");
    if (it == order.end() || !it->value().is_object()) {
      return PlatformError{"E9122", "specificFactor 6 needs the realPropertyRentInfo object"};
    }
    const json::object& rent = it->value().as_object();
    static const std::set<std::string> kRentKeys = {"realPropertyAddress", "detailAddress",
                                                    "rentStartDate", "rentEndDate", "crossCityFlag",
                                                    "realPropertyCertificate", "unit"};
    for (const auto& kv : rent) {
      if (!kRentKeys.contains(std::string(kv.key()))) {
        return PlatformError{"E9110", "realPropertyRentInfo." + std::string(kv.key()) + " is not a listed field"};
      }
    }
    for (const char* key : {"realPropertyAddress", "detailAddress", "rentStartDate", "rentEndDate",
                            "crossCityFlag", "unit"}) {
      if (text_of(rent, key).empty()) {
        return PlatformError{"E9122", std::string("realPropertyRentInfo.") + key + " is required for 06"};
      }
    }
    const std::string address = text_of(rent, "realPropertyAddress");
    const std::string detail = text_of(rent, "detailAddress");
    bool keyword = false;
    for (std::string_view k : {"街", "路", "村", "乡", "镇", "道"}) {
      keyword = keyword || detail.find(k) != std::string::npos;
    }
    if (!keyword) {
      return PlatformError{"E9123", "realPropertyRentInfo.detailAddress must contain 街/路/村/乡/镇/道"};
    }
    if (code_points(address) + code_points(detail) > 120) {
      return PlatformError{"E9123", "realPropertyRentInfo address and detailAddress exceed 120 characters"};
    }
    const std::string start = text_of(rent, "rentStartDate"), end = text_of(rent, "rentEndDate");
    if (!is_date(start) || !is_date(end)) {
      return PlatformError{"E9124", "realPropertyRentInfo.rentStartDate/rentEndDate must be YYYY-MM-DD"};
    }
    if (start > end) {
      return PlatformError{"E9124", "realPropertyRentInfo.rentStartDate is after rentEndDate"};
    }
    const std::string cross = text_of(rent, "crossCityFlag");
    if (cross != "0" && cross != "1") {
      return PlatformError{"E9125", "realPropertyRentInfo.crossCityFlag must be 0 or 1"};
    }
    const std::string unit = text_of(rent, "unit");
    if (unit.size() != 1 || unit[0] < '1' || unit[0] > '7') {
      return PlatformError{"E9125", "realPropertyRentInfo.unit must be an area unit 1..7"};
    }
    if (options.require_certificate && text_of(rent, "realPropertyCertificate").empty()) {
      return PlatformError{"E9126", "realPropertyRentInfo.realPropertyCertificate is required (tax-bureau element list)"};
    }
    summary.push_back("Specific business 06 real property lease: " + start + " to " + end +
                      ", cross-city " + cross + ", area unit " + unit);
  }
  if (factor == "9") {
    const json::array* rows = nullptr;
    std::string used;
    for (const std::string& key : options.traveller_keys) {
      if (auto it = order.find(key); it != order.end() && it->value().is_array()) {
        rows = &it->value().as_array();
        used = key;
      }
    }
    if (rows == nullptr) {
      return PlatformError{"E9127", "specificFactor 9 needs the traveller list (" +
                                        (options.traveller_keys.empty() ? std::string("-") : options.traveller_keys.front()) + ")"};
    }
    if (rows->empty() || rows->size() > 2000) {
      return PlatformError{"E9127", used + " must hold 1-2000 travellers"};
    }
    int n = 0;
    for (const auto& v : *rows) {
      const std::string where = used + "[" + std::to_string(++n) + "]";
      if (!v.is_object()) return PlatformError{"E9127", where + " is not an object"};
      const json::object& t = v.as_object();
      for (const char* key : {"traveller", "travelDate", "travellerCardType", "travellerCardNo",
                              "travelPlace", "arrivePlace", "vehicleType"}) {
        if (text_of(t, key).empty()) {
          return PlatformError{"E9128", where + "." + key + " is required"};
        }
      }
      if (!is_date(text_of(t, "travelDate"))) {
        return PlatformError{"E9128", where + ".travelDate must be YYYY-MM-DD"};
      }
      const std::string vehicle = text_of(t, "vehicleType");
      static const std::set<std::string> kVehicles = {"1", "2", "3", "4", "5", "6", "7", "9"};
      if (!kVehicles.contains(vehicle)) {
        return PlatformError{"E9128", where + ".vehicleType " + vehicle + " is not a vehicle type"};
      }
      if ((vehicle == "1" || vehicle == "2" || vehicle == "7") && text_of(t, "vehicleLevel").empty()) {
        return PlatformError{"E9128", where + ".vehicleLevel is required for plane, train and ship"};
      }
    }
    summary.push_back("Specific business 09 passenger transport: " + std::to_string(rows->size()) +
                      " traveller(s), vehicle type " + text_of((*rows)[0].as_object(), "vehicleType"));
  }
  return std::nullopt;
}

// GB 32100-2015 check, written from the spec independently of invoice/buyer_id.cc.
bool credit_code_ok(std::string_view code) {
  static constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY";
  if (code.size() != 18) {
    return false;
  }
  int sum = 0;
  int weight = 1;
  for (std::size_t i = 0; i < 17; ++i) {
    const auto v = kAlphabet.find(code[i]);
    if (v == std::string_view::npos) {
      return false;
    }
    sum += static_cast<int>(v) * weight;
    weight = weight * 3 % 31;
  }
  const int c = (31 - sum % 31) % 31;
  return code[17] == kAlphabet[static_cast<std::size_t>(c)];
}

std::string str(const json::object& o, std::string_view key) {
  auto it = o.find(json::string_view(key.data(), key.size()));
  if (it == o.end() || !it->value().is_string()) {
    return {};
  }
  return std::string(it->value().get_string());
}

// Rates the sandbox accepts, as written in requests, with their percent.
std::optional<int> rate_percent(std::string_view r) {
  static constexpr std::array<std::pair<std::string_view, int>, 8> kRates = {{
      {"0", 0}, {"0.01", 1}, {"0.03", 3}, {"0.05", 5}, {"0.06", 6}, {"0.09", 9}, {"0.13", 13},
      {"0.00", 0},
  }};
  for (auto [text, p] : kRates) {
    if (text == r) {
      return p;
    }
  }
  return std::nullopt;
}

std::string digits_only(std::string_view s) {
  return s.find_first_not_of("0123456789") == std::string_view::npos ? std::string(s) : "";
}

bool all_of(std::string_view s, std::string_view alphabet) {
  return !s.empty() && s.find_first_not_of(alphabet) == std::string_view::npos;
}


// The keys the spec lists for each object ("Invoicing platform API"). Anything else is
// refused naming the key: a field the platform does not document is a guess.
constexpr std::array<std::string_view, 20> kOrderKeys = {
    "buyerName", "buyerTaxNum", "salerTaxNum", "orderNo", "invoiceDate", "clerk",
    "invoiceType", "invoiceLine", "specificFactor", "realPropertyRentInfo",
    "invoiceTravellerTransport", "invoiceTravellerTransportInfoList", "pushMode", "email",
    "buyerPhone", "callBackUrl", "remark", "naturalPersonFlag", "surveyAnswerType",
    "invoiceDetail"};
// TODO(issue 17, red letters): "invoiceNum"/"redReason" only until reds move to
// saveInvoiceRedConfirm + fastInvoiceRed; the spec has no such order keys.
constexpr std::array<std::string_view, 2> kLegacyRedKeys = {"invoiceNum", "redReason"};
// favouredPolicyName, zeroRateFlag and deduction are listed as "stay empty on 数电 lines".
constexpr std::array<std::string_view, 16> kDetailKeys = {
    "goodsName", "goodsCode", "withTaxFlag", "price", "num", "unit", "specType", "taxRate",
    "taxExcludedAmount", "tax", "taxIncludedAmount", "invoiceLineProperty",
    "favouredPolicyFlag", "favouredPolicyName", "zeroRateFlag", "deduction"};

template <std::size_t N>
bool listed(const std::array<std::string_view, N>& keys, std::string_view k) {
  return std::find(keys.begin(), keys.end(), k) != keys.end();
}

// Flag ↔ rate pairs a parking or taxi line may carry (spec "Favoured-policy flag"): 03 免税
// and 04 不征税 go with rate 0 and only they do; 08 is 3 % and 09 is 5 % simplified; 01
// 简易征收 is a simplified rate (3 % or 5 %); no flag at a general rate. The other flags
// (02, 05-07, 10-18) belong to goods and levies no parking or taxi line has.
std::string flag_problem(std::string_view flag, int percent) {
  if (percent == 0) {
    return flag == "03" || flag == "04" ? "" : "taxRate 0 needs favouredPolicyFlag 03 (免税) or 04 (不征税)";
  }
  if (flag.empty()) {
    return "";
  }
  if (flag == "03" || flag == "04") return "favouredPolicyFlag " + std::string(flag) + " needs taxRate 0";
  if (flag == "08") return percent == 3 ? "" : "favouredPolicyFlag 08 (按3%简易征收) needs taxRate 0.03";
  if (flag == "09") return percent == 5 ? "" : "favouredPolicyFlag 09 (按5%简易征收) needs taxRate 0.05";
  if (flag == "01") {
    return percent == 3 || percent == 5 || percent == 1 ? "" : "favouredPolicyFlag 01 (简易征收) needs a simplified rate";
  }
  return "favouredPolicyFlag " + std::string(flag) + " is not a flag a parking or taxi line carries";
}

}  // namespace

struct InvoicingSandbox::Impl {
  InvoicingSandboxOptions options;
  Database db;
  mutable std::mutex mu;
  std::unique_ptr<httplib::Server> server_owner;
  httplib::Server& server;
  bool tls = false;
  std::thread thread;
  int port = 0;
  std::set<std::string> seen_senids;
  std::string next_failure;
  std::map<std::string, std::string> forced_status;        // order_no -> status code
  std::map<std::string, std::int64_t> amount_skew_fen;     // order_no -> added to orderAmount
  std::atomic<bool> unavailable{false};
  std::atomic<std::int64_t> issue_requests{0};

  Impl(InvoicingSandboxOptions o, Database d, std::unique_ptr<httplib::Server> s, bool with_tls)
      : options(std::move(o)), db(std::move(d)), server_owner(std::move(s)),
        server(*server_owner), tls(with_tls) {}

  std::string base_url() const {
    return std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port);
  }

  static json::object reply(const std::string& code, const std::string& describe) {
    json::object o;
    o["code"] = code;
    o["describe"] = describe;
    return o;
  }

  Result<std::int64_t> next_sequence(std::string_view name) {
    auto st = db.prepare("UPDATE sandbox_sequence SET next = next + 1 WHERE name = ? RETURNING next - 1");
    if (!st) {
      return std::unexpected(st.error());
    }
    st->bind(1, name);
    auto row = st->step();
    if (!row) {
      return std::unexpected(row.error());
    }
    if (!*row) {
      return fail(Errc::kInternal, "sequence missing", std::string(name));
    }
    const std::int64_t v = st->column_int64(0);
    st->reset();
    return v;
  }

  // Validates and stores an issue request. REQUIRES: mu held.
  std::variant<json::object, PlatformError> issue(const json::object& content,
                                                  std::string_view user_tax) {
    issue_requests.fetch_add(1);
    auto it = content.find("order");
    if (it == content.end() || !it->value().is_object()) {
      return PlatformError{"E9101", "content.order is missing"};
    }
    const json::object& order = it->value().as_object();
    for (const auto& kv : order) {
      const std::string_view key(kv.key().data(), kv.key().size());
      const bool traveller_key =
          key == "invoiceTravellerTransport" || key == "invoiceTravellerTransportInfoList";
      const bool accepted_traveller_key =
          std::find(options.traveller_keys.begin(), options.traveller_keys.end(), key) !=
          options.traveller_keys.end();
      if ((!listed(kOrderKeys, key) && !listed(kLegacyRedKeys, key)) ||
          (traveller_key && !accepted_traveller_key)) {
        return PlatformError{"E9110", "order." + std::string(key) +
                                          " is not a requestBillingNew field (specs/e-invoice.md)"};
      }
    }
    const std::string order_no = str(order, "orderNo");
    if (order_no.empty() || order_no.size() > 20 ||
        order_no.find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos) {
      return PlatformError{"E9101", "orderNo must be 1-20 characters [A-Za-z0-9_-]"};
    }
    if (find_locked(order_no)) {
      return PlatformError{"E9106", "订单编号不能重复 (orderNo " + order_no + " already exists)"};
    }
    const std::string seller = str(order, "salerTaxNum");
    if (seller != options.seller_tax_id || seller != user_tax) {
      return PlatformError{"E9102", "salerTaxNum does not match the authorised seller (userTax)"};
    }
    const std::string clerk = str(order, "clerk");
    if (clerk.empty()) {
      return PlatformError{"E9111", "order.clerk is required for 数电 (the clerk logged in to the e-tax account)"};
    }
    if (const std::string survey = str(order, "surveyAnswerType");
        !survey.empty() && survey != "1" && survey != "2" && survey != "3") {
      return PlatformError{"E9114", "order.surveyAnswerType must be 1, 2 or 3"};
    }
    if (code_points(str(order, "remark")) > 200) {
      return PlatformError{"E9112", "order.remark is longer than 200 characters"};
    }
    const std::string buyer_name = str(order, "buyerName");
    if (buyer_name.empty()) {
      return PlatformError{"E9103", "buyerName is required"};
    }
    const std::string buyer_tax = str(order, "buyerTaxNum");
    if (!buyer_tax.empty() && !credit_code_ok(buyer_tax)) {
      return PlatformError{"E9104", "buyerTaxNum " + buyer_tax + " fails the GB 32100 check"};
    }
    const std::string type = str(order, "invoiceType");
    if (type != "1" && type != "2") {
      return PlatformError{"E9101", "invoiceType must be 1 (blue)"};
    }
    if (type == "2" && !options.accept_legacy_red) {
      return PlatformError{"E9113", "invoiceType 2: red is not used for 数电; use fastInvoiceRed"};
    }
    const std::string line_kind = str(order, "invoiceLine");
    if (line_kind != "pc" && line_kind != "bs") {
      return PlatformError{"E9101", "invoiceLine must be pc or bs"};
    }
    if (line_kind == "bs" && buyer_tax.empty()) {
      return PlatformError{"E9104", "a special invoice (bs) needs buyerTaxNum"};
    }
    const std::string push = str(order, "pushMode");
    if (push != "-1" && push != "0" && push != "1" && push != "2") {
      return PlatformError{"E9101", "pushMode must be -1, 0, 1 or 2"};
    }
    if ((push == "0" || push == "2") && str(order, "email").find('@') == std::string::npos) {
      return PlatformError{"E9105", "pushMode " + push + " needs an email"};
    }
    if ((push == "1" || push == "2") && str(order, "buyerPhone").size() != 11) {
      return PlatformError{"E9105", "pushMode " + push + " needs buyerPhone (11 digits)"};
    }
    const bool red = type == "2";
    auto dit = order.find("invoiceDetail");
    if (dit == order.end() || !dit->value().is_array() || dit->value().as_array().empty() ||
        dit->value().as_array().size() > 100) {
      return PlatformError{"E9101", "invoiceDetail must hold 1-100 lines"};
    }
    struct Line {
      std::string code;
      std::string rate;
      std::int64_t excl, tax, incl;
    };
    std::vector<Line> lines;
    std::int64_t sum_excl = 0, sum_tax = 0, sum_incl = 0;
    int n = 0;
    for (const auto& v : dit->value().as_array()) {
      ++n;
      const std::string where = "invoiceDetail[" + std::to_string(n) + "]";
      if (!v.is_object()) {
        return PlatformError{"E9101", where + " is not an object"};
      }
      const auto& d = v.as_object();
      for (const auto& kv : d) {
        const std::string_view key(kv.key().data(), kv.key().size());
        if (!listed(kDetailKeys, key)) {
          return PlatformError{"E9110", where + "." + std::string(key) +
                                            " is not an invoiceDetail field (specs/e-invoice.md)"};
        }
      }
      for (std::string_view empty_key : {"favouredPolicyName", "zeroRateFlag", "deduction"}) {
        if (!str(d, empty_key).empty()) {
          return PlatformError{"E9209", where + "." + std::string(empty_key) +
                                            " stays empty on 数电 lines"};
        }
      }
      // The platform prefixes the category of the tax code itself: goodsName is the name.
      const std::string name = str(d, "goodsName");
      if (name.empty() || name[0] == '*') {
        return PlatformError{"E9201", where + ".goodsName must be the item name without *category*"};
      }
      Line l;
      l.code = str(d, "goodsCode");
      if (l.code.size() != 19 || digits_only(l.code).empty()) {
        return PlatformError{"E9202", where + ".goodsCode must be 19 digits"};
      }
      l.rate = str(d, "taxRate");
      auto p = rate_percent(l.rate);
      if (!p) {
        return PlatformError{"E9203", where + ".taxRate " + l.rate + " is not an allowed rate"};
      }
      const std::string flag = str(d, "favouredPolicyFlag");
      if (const std::string problem = flag_problem(flag, *p); !problem.empty()) {
        return PlatformError{"E9204", where + ": " + problem};
      }
      auto excl = Money::parse(str(d, "taxExcludedAmount"));
      auto tax = Money::parse(str(d, "tax"));
      auto incl = Money::parse(str(d, "taxIncludedAmount"));
      auto price = Money::parse(str(d, "price"));
      const std::string num = str(d, "num");
      if (!excl || !tax || !incl || !price || (num != "1" && num != "-1")) {
        return PlatformError{"E9205", where + ": amounts must be decimals with 2 places, num 1/-1"};
      }
      l.excl = excl->fen();
      l.tax = tax->fen();
      l.incl = incl->fen();
      if (*p == 0 && l.tax != 0) {
        return PlatformError{"E9206", where + ": tax must be 0.00 at taxRate 0"};
      }
      if (l.excl + l.tax != l.incl) {
        return PlatformError{"E9206", where + ": taxExcludedAmount + tax != taxIncludedAmount"};
      }
      if ((num == "1" ? price->fen() : -price->fen()) != l.incl) {
        return PlatformError{"E9206", where + ": price * num != taxIncludedAmount"};
      }
      // |excl * r - tax| <= 0.06 yuan, in hundredths of a fen.
      const std::int64_t diff = l.excl * *p - l.tax * 100;
      if (diff > 600 || diff < -600) {
        return PlatformError{"E9207", where + ": tax differs from excl * rate by more than 0.06"};
      }
      if (red ? (l.incl >= 0) : (l.incl <= 0)) {
        return PlatformError{"E9208", where + (red ? ": red lines must be negative"
                                                   : ": blue lines must be positive")};
      }
      sum_excl += l.excl;
      sum_tax += l.tax;
      sum_incl += l.incl;
      lines.push_back(std::move(l));
    }
    std::vector<std::string> summary;
    if (auto problem = specific_problem(order, lines.size(), options, summary)) {
      return *problem;
    }
    const std::string factor = str(order, "specificFactor").empty() ? "0" : str(order, "specificFactor");
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const auto& d = dit->value().as_array()[i].as_object();
      const std::string where = "invoiceDetail[" + std::to_string(i + 1) + "]";
      if ((factor == "5" || factor == "6") && (!str(d, "unit").empty() || !str(d, "specType").empty())) {
        return PlatformError{"E9121", where + ": unit and specType must be empty with specificFactor " + factor};
      }
      // Spec: *unconfirmed* whether parking is refused without 06; this sandbox refuses it
      // unless told otherwise. (Legacy reds are exempt until the red flow lands.)
      if (!red && options.require_parking_06 && lines[i].code == "3040502020200000000" && factor != "6") {
        return PlatformError{"E9129", where + ": parking (3040502020200000000) is issued with specificFactor 6 (不动产经营租赁)"};
      }
    }
    std::string original;
    if (red) {
      original = str(order, "invoiceNum");
      auto blue = find_by_number_locked(original);
      if (!blue || blue->kind != "blue" || blue->status != "2") {
        return PlatformError{"E9301", "invoiceNum " + original + " is not an issued blue invoice"};
      }
      if (blue->reversed || has_red_locked(original)) {
        return PlatformError{"E9302", "invoice " + original + " is already reversed"};
      }
      auto blue_lines = lines_locked(blue->order_no);
      bool same = blue_lines.size() == lines.size();
      for (std::size_t i = 0; same && i < lines.size(); ++i) {
        same = blue_lines[i].code == lines[i].code && blue_lines[i].excl == -lines[i].excl &&
               blue_lines[i].tax == -lines[i].tax && blue_lines[i].incl == -lines[i].incl;
      }
      if (!same) {
        return PlatformError{"E9303",
                             "red lines must be the original lines negated, in the original order"};
      }
    }
    auto serial_seq = next_sequence("serial");
    if (!serial_seq) {
      return PlatformError{"E9999", "sandbox storage failure"};
    }
    char serial[32];
    std::snprintf(serial, sizeof serial, "SB%018lld", static_cast<long long>(*serial_seq));
    auto txn = db.begin();
    if (!txn) {
      return PlatformError{"E9999", "sandbox storage failure"};
    }
    auto ins = db.prepare(
        "INSERT INTO sandbox_invoice(order_no, serial_num, status, kind, original_number, "
        "seller_name, seller_tax_num, buyer_name, buyer_tax_num, excl_fen, tax_fen, incl_fen, "
        "fail_planned, specific_factor, specific_summary, remark) "
        "VALUES (?, ?, '20', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!ins) {
      return PlatformError{"E9999", "sandbox storage failure"};
    }
    ins->bind_all(order_no, std::string(serial), std::string(red ? "red" : "blue"), original,
                  options.seller_name, seller, buyer_name, buyer_tax, sum_excl, sum_tax,
                  sum_incl, next_failure, factor, join_lines(summary), str(order, "remark"));
    if (!ins->run()) {
      return PlatformError{"E9999", "sandbox storage failure"};
    }
    int line_no = 0;
    for (const Line& l : lines) {
      auto st = db.prepare("INSERT INTO sandbox_line VALUES (?,?,?,?,?,?,?)");
      if (!st) {
        return PlatformError{"E9999", "sandbox storage failure"};
      }
      st->bind_all(order_no, ++line_no, l.code, l.rate, l.excl, l.tax, l.incl);
      if (!st->run()) {
        return PlatformError{"E9999", "sandbox storage failure"};
      }
    }
    if (!txn->commit()) {
      return PlatformError{"E9999", "sandbox storage failure"};
    }
    next_failure.clear();
    json::object result;
    result["invoiceSerialNum"] = serial;
    return result;
  }

  std::optional<SandboxInvoice> load(std::string_view where, std::string_view value) const {
    auto st = const_cast<Database&>(db).prepare(
        "SELECT order_no, serial_num, status, kind, invoice_number, original_number, buyer_name, "
        "buyer_tax_num, excl_fen, tax_fen, incl_fen, fail_cause, reversed, specific_factor, "
        "remark FROM sandbox_invoice "
        "WHERE " + std::string(where) + " = ?");
    if (!st) {
      return std::nullopt;
    }
    st->bind(1, value);
    auto row = st->step();
    if (!row || !*row) {
      return std::nullopt;
    }
    SandboxInvoice s;
    s.order_no = st->column_text(0);
    s.serial_num = st->column_text(1);
    s.status = st->column_text(2);
    s.kind = st->column_text(3);
    s.invoice_number = st->column_text(4);
    s.original_number = st->column_text(5);
    s.buyer_name = st->column_text(6);
    s.buyer_tax_num = st->column_text(7);
    s.excl_fen = st->column_int64(8);
    s.tax_fen = st->column_int64(9);
    s.incl_fen = st->column_int64(10);
    s.fail_cause = st->column_text(11);
    s.reversed = st->column_int64(12) != 0;
    s.specific_factor = st->column_text(13);
    s.remark = st->column_text(14);
    return s;
  }
  std::optional<SandboxInvoice> find_locked(std::string_view order_no) const {
    return load("order_no", order_no);
  }
  std::optional<SandboxInvoice> find_by_number_locked(std::string_view number) const {
    if (number.empty()) {
      return std::nullopt;
    }
    return load("invoice_number", number);
  }
  bool has_red_locked(std::string_view number) const {
    return load("original_number", number).has_value();
  }
  struct StoredLine {
    std::string code, rate;
    std::int64_t excl, tax, incl;
  };
  std::vector<StoredLine> lines_locked(std::string_view order_no) const {
    std::vector<StoredLine> out;
    auto st = const_cast<Database&>(db).prepare(
        "SELECT goods_code, rate, excl_fen, tax_fen, incl_fen FROM sandbox_line WHERE order_no = ? "
        "ORDER BY line_no");
    if (!st) {
      return out;
    }
    st->bind(1, order_no);
    while (true) {
      auto row = st->step();
      if (!row || !*row) {
        return out;
      }
      out.push_back({st->column_text(0), st->column_text(1), st->column_int64(2),
                     st->column_int64(3), st->column_int64(4)});
    }
  }

  // Moves an in-progress order on by one query (invariant 4). REQUIRES: mu held.
  void progress_locked(const std::string& order_no) {
    auto inv = find_locked(order_no);
    if (!inv || inv->status != "20") {
      return;
    }
    auto st = db.prepare(
        "UPDATE sandbox_invoice SET queries = queries + 1 WHERE order_no = ? RETURNING queries, "
        "fail_planned");
    if (!st) {
      return;
    }
    st->bind(1, order_no);
    auto row = st->step();
    if (!row || !*row) {
      return;
    }
    const std::int64_t queries = st->column_int64(0);
    const std::string planned = st->column_text(1);
    st->reset();
    if (queries <= options.queries_in_progress) {
      return;
    }
    auto txn = db.begin();
    if (!txn) {
      return;
    }
    if (!planned.empty()) {
      auto up = db.prepare(
          "UPDATE sandbox_invoice SET status = '22', fail_cause = ? WHERE order_no = ?");
      if (up) {
        up->bind_all(planned, order_no);
        (void)up->run();
      }
      (void)txn->commit();
      return;
    }
    auto seq = next_sequence("invoice");
    if (!seq) {
      return;
    }
    const std::string year = format_local_date(options.clock->now(), UtcOffset{480}).substr(2, 2);
    char number[32];
    std::snprintf(number, sizeof number, "%s%s%c%015lld", year.c_str(),
                  options.province_code.c_str(), options.channel, static_cast<long long>(*seq));
    std::string issued_at = format_rfc3339(options.clock->now(), UtcOffset{480}).substr(0, 19);
    issued_at[10] = ' ';
    auto up = db.prepare(
        "UPDATE sandbox_invoice SET status = '2', invoice_number = ?, issued_at = ? "
        "WHERE order_no = ?");
    if (!up) {
      return;
    }
    up->bind_all(std::string(number), issued_at, order_no);
    if (!up->run()) {
      return;
    }
    if (inv->kind == "red") {
      auto rev = db.prepare("UPDATE sandbox_invoice SET reversed = 1 WHERE invoice_number = ?");
      if (rev) {
        rev->bind(1, inv->original_number);
        (void)rev->run();
      }
    }
    (void)txn->commit();
  }

  std::variant<json::array, PlatformError> query(const json::object& content) {
    for (const auto& kv : content) {
      if (kv.key() != "orderNos" && kv.key() != "serialNos") {
        return PlatformError{"E9110", std::string(kv.key()) +
                                          " is not a queryInvoiceResult field (serialNos or orderNos)"};
      }
    }
    auto it = content.find("orderNos");
    if (it == content.end() || !it->value().is_array()) {
      return PlatformError{"E9101", "orderNos must be a list"};
    }
    json::array out;
    for (const auto& v : it->value().as_array()) {
      if (!v.is_string()) {
        continue;
      }
      const std::string order_no(v.get_string());
      progress_locked(order_no);
      auto inv = find_locked(order_no);
      if (!inv) {
        continue;
      }
      json::object o;
      o["orderNo"] = inv->order_no;
      o["serialNo"] = inv->serial_num;
      const auto forced = forced_status.find(order_no);
      o["status"] = forced != forced_status.end() ? forced->second : inv->status;
      o["statusMsg"] = inv->status == "2" ? "开票完成" : inv->status == "22" ? "开票失败" : "开票中";
      o["failCause"] = inv->fail_cause;
      // The platform's own spelling lacks the final "r" (spec); other forms on request.
      switch (options.number_field) {
        case NumberField::kTruncated:
          o["allElectronicInvoiceNumbe"] = inv->invoice_number;
          break;
        case NumberField::kFull:
          o["allElectronicInvoiceNumber"] = inv->invoice_number;
          break;
        case NumberField::kBoth:
          o["allElectronicInvoiceNumbe"] = inv->invoice_number;
          o["allElectronicInvoiceNumber"] = inv->invoice_number;
          break;
        case NumberField::kBothConflicting:
          o["allElectronicInvoiceNumbe"] = inv->invoice_number;
          o["allElectronicInvoiceNumber"] =
              inv->invoice_number.empty() ? "" : inv->invoice_number.substr(0, 19) + "9";
          break;
      }
      const std::int64_t skew = amount_skew_fen.contains(order_no) ? amount_skew_fen.at(order_no) : 0;
      o["exTaxAmount"] = Money::from_fen(inv->excl_fen).to_string();
      o["taxAmount"] = Money::from_fen(inv->tax_fen).to_string();
      o["orderAmount"] = Money::from_fen(inv->incl_fen + skew).to_string();
      o["pdfUrl"] =
          inv->status == "2" ? base_url() + "/invoices/" + inv->invoice_number + ".pdf" : "";
      o["ofdUrl"] = "";
      o["qrCode"] = inv->status == "2" ? "01,32,," + inv->invoice_number : "";
      out.push_back(std::move(o));
    }
    return out;
  }

  void handle_services(const httplib::Request& req, httplib::Response& res) {
    if (unavailable.load()) {
      res.status = 503;
      res.set_content("{\"code\":\"E0503\",\"describe\":\"platform unavailable\"}",
                      "application/json");
      return;
    }
    auto send = [&](const json::object& o) {
      res.status = 200;
      res.set_content(json::serialize(o), "application/json;charset=utf-8");
    };
    // Envelope (spec "Invoicing platform API"): query senid, nonce, timestamp, appkey;
    // headers X-Nuonuo-Sign, accessToken, userTax, method; the body is the content.
    const std::string senid = req.get_param_value("senid"), nonce = req.get_param_value("nonce"),
                      timestamp = req.get_param_value("timestamp"),
                      app_key = req.get_param_value("appkey");
    const std::string& content = req.body;
    const std::string sign = req.get_header_value("X-Nuonuo-Sign");
    if (senid.empty() || nonce.empty() || timestamp.empty() || app_key.empty() || sign.empty()) {
      return send(reply("E1000", "query senid, nonce, timestamp, appkey and header X-Nuonuo-Sign are required"));
    }
    if (senid.size() != 32 || !all_of(senid, "0123456789abcdefABCDEF")) {
      return send(reply("E1000", "senid must be 32 hex digits"));
    }
    if (nonce.size() != 8 || !all_of(nonce, "0123456789")) {
      return send(reply("E1000", "nonce must be a random 8-digit number"));
    }
    const std::string token = req.get_header_value("accessToken");
    const std::string user_tax = req.get_header_value("userTax");
    const std::string method = req.get_header_value("method");
    if (!crypto::equal_constant_time(token, options.access_token)) {
      return send(reply("E1002", "accessToken is invalid or expired"));
    }
    if (user_tax != options.seller_tax_id) {
      return send(reply("E1005", "userTax is not authorised for this access token"));
    }
    if (app_key != options.app_key) {
      return send(reply("E1006", "unknown appkey"));
    }
    // Seconds (the spec's choice where clients differ): a 13-digit millisecond value is refused.
    if (timestamp.size() != 10 || !all_of(timestamp, "0123456789")) {
      return send(reply("E1003", "timestamp must be Unix seconds (10 digits)"));
    }
    const std::int64_t skew = std::stoll(timestamp) - options.clock->unix_seconds();
    if (skew > options.timestamp_window_s || skew < -options.timestamp_window_s) {
      return send(reply("E1003", "timestamp outside the allowed window"));
    }
    // Base64(HMAC-SHA1(appSecret, "a=services&l=v1&p=open&k=..&i=..&n=..&t=..&f=content")).
    // The header arrives percent-decoded (cpp-httplib decodes header values), so a plain
    // and a URL-encoded X-Nuonuo-Sign both verify here; the client's exact bytes are
    // checked by tests/integration/invoice/wire_fields_test.cc.
    const std::string signed_text = "a=services&l=v1&p=open&k=" + app_key + "&i=" + senid +
                                    "&n=" + nonce + "&t=" + timestamp + "&f=" + content;
    const auto mac = crypto::hmac_sha1(crypto::as_bytes(options.app_secret),
                                       crypto::as_bytes(signed_text));
    const std::string expected =
        crypto::base64_encode(std::span<const std::uint8_t>(mac.data(), mac.size()));
    if (!crypto::equal_constant_time(expected, sign)) {
      return send(reply("E1001", "signature does not verify"));
    }
    boost::system::error_code ec;
    std::lock_guard lock(mu);
    if (!seen_senids.insert(senid).second) {
      return send(reply("E1007", "senid was already used (replay)"));
    }
    json::value c = json::parse(content, ec);
    if (ec || !c.is_object()) {
      return send(reply("E1000", "content is not a JSON object"));
    }
    if (method == "nuonuo.OpeMplatform.requestBillingNew") {
      auto r = issue(c.as_object(), user_tax);
      if (auto* err = std::get_if<PlatformError>(&r)) {
        return send(reply(err->code, err->describe));
      }
      json::object o = reply("E0000", "成功");
      o["result"] = std::get<json::object>(std::move(r));
      return send(o);
    }
    if (method == "nuonuo.OpeMplatform.queryInvoiceResult") {
      auto r = query(c.as_object());
      if (auto* err = std::get_if<PlatformError>(&r)) {
        return send(reply(err->code, err->describe));
      }
      json::object o = reply("E0000", "成功");
      o["result"] = std::get<json::array>(std::move(r));
      return send(o);
    }
    return send(reply("E1004", "unknown method '" + method + "'"));
  }

  void handle_pdf(const httplib::Request& req, httplib::Response& res) {
    const std::string number = req.matches[1];
    std::lock_guard lock(mu);
    auto inv = find_by_number_locked(number);
    if (!inv || inv->status != "2") {
      res.status = 404;
      res.set_content("no such invoice\n", "text/plain");
      return;
    }
    InvoicePdfData d;
    d.invoice_number = inv->invoice_number;
    d.kind = inv->kind;
    d.original_number = inv->original_number;
    d.buyer_name = inv->buyer_name;
    d.buyer_tax_id = inv->buyer_tax_num;
    {
      auto sp = db.prepare("SELECT specific_summary FROM sandbox_invoice WHERE order_no = ?");
      if (sp) {
        sp->bind(1, inv->order_no);
        if (auto row = sp->step(); row && *row) {
          std::istringstream lines(sp->column_text(0));
          for (std::string line; std::getline(lines, line);) {
            d.specific_lines.push_back(line);
          }
        }
      }
    }
    auto st = db.prepare(
        "SELECT issued_at, seller_name, seller_tax_num FROM sandbox_invoice WHERE order_no = ?");
    if (st) {
      st->bind(1, inv->order_no);
      if (auto row = st->step(); row && *row) {
        d.issue_time = st->column_text(0);
        d.seller_name = st->column_text(1);
        d.seller_tax_id = st->column_text(2);
      }
    }
    for (const auto& l : lines_locked(inv->order_no)) {
      d.lines.push_back({l.code, l.rate, Money::from_fen(l.excl).to_string(),
                         Money::from_fen(l.tax).to_string(), Money::from_fen(l.incl).to_string()});
    }
    d.total_excl = Money::from_fen(inv->excl_fen).to_string();
    d.total_tax = Money::from_fen(inv->tax_fen).to_string();
    d.total_incl = Money::from_fen(inv->incl_fen).to_string();
    res.set_content(render_invoice_pdf(d), "application/pdf");
  }
};

InvoicingSandbox::InvoicingSandbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

InvoicingSandbox::~InvoicingSandbox() { stop(); }

Result<std::unique_ptr<InvoicingSandbox>> InvoicingSandbox::start(InvoicingSandboxOptions options) {
  if (options.clock == nullptr) {
    options.clock = &SystemClock::instance();
  }
  if (options.province_code.size() != 2 || digits_only(options.province_code).empty()) {
    return fail(Errc::kInvalidArgument, "province code must be 2 digits", "province_code");
  }
  auto db = Database::open(options.db_file);
  if (!db) {
    return std::unexpected(db.error());
  }
  const std::array<std::string_view, 2> steps = {kSchema, kSchemaSpecific};
  if (auto m = db->migrate(std::span<const std::string_view>(steps)); !m) {
    return std::unexpected(m.error());
  }
  std::unique_ptr<httplib::Server> server;
  const bool tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  if (tls) {
    auto ssl = std::make_unique<httplib::SSLServer>(options.tls_cert_file.c_str(),
                                                    options.tls_key_file.c_str());
    if (!ssl->is_valid()) {
      return fail(Errc::kCrypto,
                  "cannot load TLS certificate " + options.tls_cert_file.string() + " / key " +
                      options.tls_key_file.string(),
                  "tls_cert_file");
    }
    server = std::move(ssl);
  } else {
    server = std::make_unique<httplib::Server>();
  }
  auto impl = std::make_unique<Impl>(std::move(options), std::move(*db), std::move(server), tls);
  Impl* p = impl.get();
  p->server.Post("/open/v1/services", [p](const httplib::Request& req, httplib::Response& res) {
    p->handle_services(req, res);
  });
  p->server.Get(R"(/invoices/(\d{20})\.pdf)", [p](const httplib::Request& req, httplib::Response& res) {
    p->handle_pdf(req, res);
  });
  p->server.set_payload_max_length(1024 * 1024);
  if (p->options.port == 0) {
    p->port = p->server.bind_to_any_port("127.0.0.1");
  } else if (p->server.bind_to_port("127.0.0.1", p->options.port)) {
    p->port = p->options.port;
  } else {
    p->port = -1;
  }
  if (p->port <= 0) {
    return fail(Errc::kIo, "cannot bind 127.0.0.1:" + std::to_string(p->options.port), "port");
  }
  p->thread = std::thread([p] { p->server.listen_after_bind(); });
  // Wait for the accept loop: Server::stop() before it runs is lost, and the destructor
  // would then wait forever for a server nobody can stop.
  for (int i = 0; i < 5000 && !p->server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return std::unique_ptr<InvoicingSandbox>(new InvoicingSandbox(std::move(impl)));
}

int InvoicingSandbox::port() const { return impl_->port; }

std::string InvoicingSandbox::base_url() const { return impl_->base_url(); }

void InvoicingSandbox::stop() {
  if (!impl_) {
    return;
  }
  impl_->server.stop();
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
}

void InvoicingSandbox::fail_next_issue(std::string cause) {
  std::lock_guard lock(impl_->mu);
  impl_->next_failure = std::move(cause);
}

void InvoicingSandbox::set_unavailable(bool unavailable) { impl_->unavailable.store(unavailable); }

void InvoicingSandbox::force_status(const std::string& order_no, std::string code) {
  std::lock_guard lock(impl_->mu);
  impl_->forced_status[order_no] = std::move(code);
}

void InvoicingSandbox::misreport_amount(const std::string& order_no, std::int64_t fen) {
  std::lock_guard lock(impl_->mu);
  impl_->amount_skew_fen[order_no] = fen;
}

std::optional<SandboxInvoice> InvoicingSandbox::find(const std::string& order_no) const {
  std::lock_guard lock(impl_->mu);
  return impl_->find_locked(order_no);
}

std::int64_t InvoicingSandbox::issue_requests() const { return impl_->issue_requests.load(); }

namespace {

Result<std::string> read_file_trimmed(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(Errc::kIo, "cannot read " + path, path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

}  // namespace

int run_invoicing_sandbox(std::span<const std::string> args) {
  InvoicingSandboxOptions o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool has_value = i + 1 < args.size();
    if (!has_value) {
      std::cerr << "invoicing: " << a << " needs a value\n";
      return 2;
    }
    const std::string& v = args[++i];
    if (a == "--db") {
      o.db_file = v;
    } else if (a == "--port") {
      o.port = std::atoi(v.c_str());
    } else if (a == "--app-secret-file" || a == "--access-token-file") {
      auto s = read_file_trimmed(v);
      if (!s) {
        std::cerr << "invoicing: " << s.error().message << "\n";
        return 1;
      }
      (a == "--app-secret-file" ? o.app_secret : o.access_token) = *s;
    } else if (a == "--app-key") {
      o.app_key = v;
    } else if (a == "--seller-tax-id") {
      o.seller_tax_id = v;
    } else if (a == "--seller-name") {
      o.seller_name = v;
    } else if (a == "--tls-cert") {
      o.tls_cert_file = v;
    } else if (a == "--tls-key") {
      o.tls_key_file = v;
    } else if (a == "--queries-in-progress") {
      o.queries_in_progress = std::atoi(v.c_str());
    } else {
      std::cerr << "invoicing: unknown option " << a
                << "\nusage: lanegate-sim invoicing --db FILE [--port N] [--app-secret-file F]"
                   " [--access-token-file F] [--app-key K] [--seller-tax-id ID] [--seller-name NAME]"
                   " [--queries-in-progress N] [--tls-cert F --tls-key F]\n";
      return 2;
    }
  }
  if (o.db_file.empty()) {
    std::cerr << "invoicing: --db FILE is required\n";
    return 2;
  }
  // Block the stop signals before any thread starts, then wait for them here.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  auto sandbox = InvoicingSandbox::start(o);
  if (!sandbox) {
    std::cerr << "invoicing: " << sandbox.error().to_string() << "\n";
    return 1;
  }
  std::cout << "ready " << (*sandbox)->base_url() << std::endl;
  int sig = 0;
  sigwait(&set, &sig);
  (*sandbox)->stop();
  return 0;
}

}  // namespace lanegate::sim
