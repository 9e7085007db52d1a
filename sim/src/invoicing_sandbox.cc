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

// Step 3 (append-only): red-letter confirmation forms (红字确认单), and the invoiceLine
// of each order (a form's blueInvoiceLine must equal its blue's; '' on orders stored
// before this step, whose line is then not checked). Amounts are the red's (negative).
// order_no is the orderNo the red gets (wanted until issued; a void form no longer holds
// it, so it is not unique here); forms are never deleted.
constexpr std::string_view kSchemaRedConfirm = R"sql(
ALTER TABLE sandbox_invoice ADD COLUMN invoice_line TEXT NOT NULL DEFAULT '';
CREATE TABLE sandbox_red_confirm(
  bill_id TEXT PRIMARY KEY,
  bill_no TEXT NOT NULL UNIQUE,
  bill_uuid TEXT NOT NULL UNIQUE,
  blue_number TEXT NOT NULL,
  blue_line TEXT NOT NULL,
  seller_tax_no TEXT NOT NULL,
  seller_name TEXT NOT NULL,
  buyer_tax_no TEXT NOT NULL,
  buyer_name TEXT NOT NULL,
  apply_source INTEGER NOT NULL,
  red_reason TEXT NOT NULL,
  status TEXT NOT NULL,
  message TEXT NOT NULL DEFAULT '',
  order_no TEXT NOT NULL DEFAULT '',
  serial_num TEXT NOT NULL DEFAULT '',
  issued INTEGER NOT NULL DEFAULT 0,
  excl_fen INTEGER NOT NULL,
  tax_fen INTEGER NOT NULL,
  incl_fen INTEGER NOT NULL,
  applied_unix INTEGER NOT NULL,
  bill_time TEXT NOT NULL,
  confirm_time TEXT NOT NULL DEFAULT '',
  queries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sandbox_red_confirm_order ON sandbox_red_confirm(order_no) WHERE order_no <> '';
CREATE INDEX sandbox_red_confirm_blue ON sandbox_red_confirm(blue_number);
INSERT INTO sandbox_sequence VALUES ('red_confirm', 1), ('bill_id', 1);
)sql";

// Refusal codes of the red-letter calls. Like the E91xx/E92xx/E93xx codes they are the
// sandbox's own (the platform's are not documented); each describe names the field.
//   E9510  a content key the method does not list
//   E9511  a required field is missing or empty
//   E9512  a value outside its documented set, format or length (or not a string)
//   E9513  sellerTaxNo / taxNum is not the seller of the userTax header
//   E9514  detail: partial red letters are not supported by this sandbox
//   E9520  billId 重复 (already used by another form)
//   E9521  orderNo 重复 (used by an invoice or held by another form) in apply / confirm
//   E9530  the blue named is not an issued blue invoice of this seller
//   E9531  the blue is already reversed (已全额冲红) or has a red
//   E9532  the blue already has a live confirmation form
//   E9533  blueInvoiceLine / invoiceLine / buyerName / buyerTaxNo differ from the blue's
//   E9534  several blue identifiers that name different invoices
//   E9540  the form named does not exist (for this seller)
//   E9541  the form is not in a state that allows the call
//   E9542  已开具红字发票: the form has already issued its red
//   E9543  billNo and billUuid name different forms, or a form of another blue
// fastInvoiceRed answers a duplicate orderNo with E9106, as requestBillingNew does.
constexpr auto kRedApplyKeys =
    std::to_array<std::string_view>({"billId",          "blueInvoiceLine",
                                     "applySource",     "blueInvoiceNumber",
                                     "blueInvoiceCode", "blueElecInvoiceNumber",
                                     "billTime",        "sellerTaxNo",
                                     "sellerName",      "departmentId",
                                     "clerkId",         "buyerTaxNo",
                                     "buyerName",       "vatUsage",
                                     "saleTaxUsage",    "accountStatus",
                                     "redReason",       "extensionNumber",
                                     "autoInvoice",     "orderNo",
                                     "phone",           "email",
                                     "callbackUrl",     "detail"});
constexpr auto kRedQueryKeys =
    std::to_array<std::string_view>({"identity", "billStatus", "billId", "billNo", "billUuid",
                                     "billTimeStart", "billTimeEnd", "pageSize", "pageNo"});
constexpr auto kConfirmKeys = std::to_array<std::string_view>(
    {"billUuid", "billId", "billNo", "identity", "confirmAgreement", "confirmReason", "callbackUrl",
     "orderNo", "extensionNumber", "clerkId", "deptId"});
constexpr auto kFastRedKeys = std::to_array<std::string_view>(
    {"orderNo", "extensionNumber", "clerkId", "deptId", "orderTime", "taxNum", "invoiceCode",
     "invoiceNumber", "elecInvoiceNumber", "invoiceId", "billNo", "billUuid", "invoiceLine",
     "callBackUrl"});

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

// A string member, or "" when absent or not a string.
std::string str(const json::object& o, std::string_view key) {
  auto it = o.find(json::string_view(key.data(), key.size()));
  if (it == o.end() || !it->value().is_string()) {
    return {};
  }
  return std::string(it->value().get_string());
}

// Specific business (spec "Specific business", "Parking → 06", "Taxi → ... 09"). Fills
// `summary` with the lines the PDF prints.
std::optional<PlatformError> specific_problem(const json::object& order, std::size_t detail_lines,
                                              const InvoicingSandboxOptions& options,
                                              std::vector<std::string>& summary) {
  const std::string factor = str(order, "specificFactor").empty() ? "0" : str(order, "specificFactor");
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
      if (str(rent, key).empty()) {
        return PlatformError{"E9122", std::string("realPropertyRentInfo.") + key + " is required for 06"};
      }
    }
    const std::string address = str(rent, "realPropertyAddress");
    const std::string detail = str(rent, "detailAddress");
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
    const std::string start = str(rent, "rentStartDate"), end = str(rent, "rentEndDate");
    if (!is_date(start) || !is_date(end)) {
      return PlatformError{"E9124", "realPropertyRentInfo.rentStartDate/rentEndDate must be YYYY-MM-DD"};
    }
    if (start > end) {
      return PlatformError{"E9124", "realPropertyRentInfo.rentStartDate is after rentEndDate"};
    }
    const std::string cross = str(rent, "crossCityFlag");
    if (cross != "0" && cross != "1") {
      return PlatformError{"E9125", "realPropertyRentInfo.crossCityFlag must be 0 or 1"};
    }
    const std::string unit = str(rent, "unit");
    if (unit.size() != 1 || unit[0] < '1' || unit[0] > '7') {
      return PlatformError{"E9125", "realPropertyRentInfo.unit must be an area unit 1..7"};
    }
    if (options.require_certificate && str(rent, "realPropertyCertificate").empty()) {
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
        if (str(t, key).empty()) {
          return PlatformError{"E9128", where + "." + key + " is required"};
        }
      }
      if (!is_date(str(t, "travelDate"))) {
        return PlatformError{"E9128", where + ".travelDate must be YYYY-MM-DD"};
      }
      const std::string vehicle = str(t, "vehicleType");
      static const std::set<std::string> kVehicles = {"1", "2", "3", "4", "5", "6", "7", "9"};
      if (!kVehicles.contains(vehicle)) {
        return PlatformError{"E9128", where + ".vehicleType " + vehicle + " is not a vehicle type"};
      }
      if ((vehicle == "1" || vehicle == "2" || vehicle == "7") && str(t, "vehicleLevel").empty()) {
        return PlatformError{"E9128", where + ".vehicleLevel is required for plane, train and ship"};
      }
    }
    summary.push_back("Specific business 09 passenger transport: " + std::to_string(rows->size()) +
                      " traveller(s), vehicle type " + str((*rows)[0].as_object(), "vehicleType"));
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

// The red-letter calls take only the keys their doc lists, and only strings ("every field
// is String"); `detail`, the one array, is handled by the apply itself.
template <std::size_t N>
std::optional<PlatformError> red_keys_problem(const json::object& content,
                                              const std::array<std::string_view, N>& keys,
                                              std::string_view method) {
  for (const auto& kv : content) {
    const std::string_view key(kv.key().data(), kv.key().size());
    if (!listed(keys, key)) {
      return PlatformError{"E9510", std::string(key) + " is not a " + std::string(method) +
                                        " field (specs/e-invoice.md)"};
    }
  }
  for (const auto& kv : content) {
    if (kv.key() != "detail" && !kv.value().is_string()) {
      return PlatformError{"E9512", std::string(kv.key()) + " must be a string"};
    }
  }
  return std::nullopt;
}

// The sandbox's orderNo rule (requestBillingNew's): 1-20 characters [A-Za-z0-9_-].
bool order_no_ok(std::string_view s) {
  return !s.empty() && s.size() <= 20 &&
         s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ==
             std::string_view::npos;
}

bool twenty_digits(std::string_view s) { return s.size() == 20 && all_of(s, "0123456789"); }

// 05-10 作废 and 16 申请失败 end a form; any other state (01-04, 15, unknown codes) keeps it live.
bool void_state(std::string_view status) {
  return status == "05" || status == "06" || status == "07" || status == "08" || status == "09" ||
         status == "10" || status == "16";
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
  std::atomic<std::int64_t> fast_red_requests{0};

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
      if (!listed(kOrderKeys, key) ||
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
    if (auto holder = form_holding_order_locked(order_no, "")) {
      return PlatformError{"E9106", "订单编号不能重复 (orderNo " + order_no +
                                        " is held for the red of confirmation form " + *holder +
                                        ")"};
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
    if (type == "2") {
      return PlatformError{"E9113", "invoiceType 2: red is not used for 数电; use fastInvoiceRed"};
    }
    if (type != "1") {
      return PlatformError{"E9101", "invoiceType must be 1 (blue)"};
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
      if (l.incl <= 0) {
        return PlatformError{"E9208", where + ": blue lines must be positive"};
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
      // unless told otherwise.
      if (options.require_parking_06 && lines[i].code == "3040502020200000000" && factor != "6") {
        return PlatformError{"E9129", where + ": parking (3040502020200000000) is issued with specificFactor 6 (不动产经营租赁)"};
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
        "fail_planned, specific_factor, specific_summary, remark, invoice_line) "
        "VALUES (?, ?, '20', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!ins) {
      return PlatformError{"E9999", "sandbox storage failure"};
    }
    ins->bind_all(order_no, std::string(serial), std::string("blue"), std::string(),
                  options.seller_name, seller, buyer_name, buyer_tax, sum_excl, sum_tax, sum_incl,
                  next_failure, factor, join_lines(summary), str(order, "remark"), line_kind);
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
        "remark, invoice_line FROM sandbox_invoice "
        "WHERE " +
        std::string(where) + " = ?");
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
    s.invoice_line = st->column_text(15);
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

  // ---- Red-letter confirmation forms (spec "Red-letter (冲红) for 数电 invoices") ----

  struct Form {
    std::string bill_id, bill_no, bill_uuid, blue_number, blue_line, seller_tax_no, seller_name,
        buyer_tax_no, buyer_name, red_reason, status, message, order_no, serial_num, bill_time,
        confirm_time;
    int apply_source = 0;
    bool issued = false;
    std::int64_t excl_fen = 0, tax_fen = 0, incl_fen = 0, applied_unix = 0, queries = 0;
  };

  static PlatformError storage_failure() {
    return PlatformError{"E9999", "sandbox storage failure"};
  }

  // "YYYY-MM-DD HH:MM:SS" at +08:00 on the sandbox clock.
  std::string local_time_text() const {
    std::string t = format_rfc3339(options.clock->now(), UtcOffset{480}).substr(0, 19);
    t[10] = ' ';
    return t;
  }

  // Forms matching `where` (SQL over sandbox_red_confirm with ? for `args`), in apply
  // order, after the 72-hour rule. REQUIRES: mu held.
  std::vector<Form> forms_locked(const std::string& where, const std::vector<std::string>& args) {
    std::vector<Form> out;
    auto st = db.prepare(
        "SELECT bill_id, bill_no, bill_uuid, blue_number, blue_line, seller_tax_no, seller_name, "
        "buyer_tax_no, buyer_name, red_reason, status, message, order_no, serial_num, bill_time, "
        "confirm_time, apply_source, issued, excl_fen, tax_fen, incl_fen, applied_unix, queries "
        "FROM sandbox_red_confirm WHERE " +
        where + " ORDER BY rowid");
    if (!st) {
      return out;
    }
    int i = 0;
    for (const auto& a : args) {
      st->bind(++i, a);
    }
    while (true) {
      auto row = st->step();
      if (!row || !*row) {
        break;
      }
      Form f;
      std::string* texts[] = {&f.bill_id,    &f.bill_no,       &f.bill_uuid,   &f.blue_number,
                              &f.blue_line,  &f.seller_tax_no, &f.seller_name, &f.buyer_tax_no,
                              &f.buyer_name, &f.red_reason,    &f.status,      &f.message,
                              &f.order_no,   &f.serial_num,    &f.bill_time,   &f.confirm_time};
      int col = 0;
      for (std::string* t : texts) {
        *t = st->column_text(col++);
      }
      f.apply_source = static_cast<int>(st->column_int64(col++));
      f.issued = st->column_int64(col++) != 0;
      f.excl_fen = st->column_int64(col++);
      f.tax_fen = st->column_int64(col++);
      f.incl_fen = st->column_int64(col++);
      f.applied_unix = st->column_int64(col++);
      f.queries = st->column_int64(col++);
      out.push_back(std::move(f));
    }
    st->reset();
    for (Form& f : out) {
      expire_locked(f);
    }
    return out;
  }
  std::optional<Form> form_locked(std::string_view column, const std::string& value) {
    auto forms = forms_locked(std::string(column) + " = ?", {value});
    if (forms.empty()) {
      return std::nullopt;
    }
    return std::move(forms.front());
  }

  // A form at 02 or 03 read more than 72 hours after its apply is void (07).
  // REQUIRES: mu held.
  void expire_locked(Form& f) {
    if ((f.status == "02" || f.status == "03") &&
        options.clock->unix_seconds() - f.applied_unix > 72 * 3600) {
      if (auto up = db.prepare("UPDATE sandbox_red_confirm SET status = '07' WHERE bill_id = ?")) {
        up->bind(1, f.bill_id);
        (void)up->run();
      }
      f.status = "07";
    }
  }

  // Invariant 5. REQUIRES: mu held.
  std::optional<Form> live_form_locked(const std::string& blue_number) {
    for (Form& f : forms_locked("blue_number = ?", {blue_number})) {
      if (!void_state(f.status)) {
        return std::move(f);
      }
    }
    return std::nullopt;
  }

  // The billId of a live form (other than `except`) that holds `order_no` for its red.
  // An issued form's red has the orderNo itself. REQUIRES: mu held.
  std::optional<std::string> form_holding_order_locked(const std::string& order_no,
                                                       const std::string& except) {
    for (const Form& f : forms_locked("order_no = ? AND bill_id <> ?", {order_no, except})) {
      if (!void_state(f.status)) {
        return f.bill_id;
      }
    }
    return std::nullopt;
  }

  // Whether `order_no` may name a new red: no invoice has it and no other form holds it.
  // REQUIRES: mu held.
  std::optional<std::string> order_no_taken_locked(const std::string& order_no,
                                                   const std::string& except_bill_id) {
    if (find_locked(order_no)) {
      return "订单编号不能重复 (orderNo " + order_no + " already exists)";
    }
    if (auto holder = form_holding_order_locked(order_no, except_bill_id)) {
      return "订单编号不能重复 (orderNo " + order_no +
             " is held for the red of confirmation form " + *holder + ")";
    }
    return std::nullopt;
  }

  // Numbers the form, stamps its apply time and stores it (invariant 7).
  // REQUIRES: mu held, inside a transaction.
  std::optional<PlatformError> insert_form_locked(Form& f) {
    auto no_seq = next_sequence("red_confirm");
    if (!no_seq) {
      return storage_failure();
    }
    const std::string year = format_local_date(options.clock->now(), UtcOffset{480}).substr(2, 2);
    char no[48];
    std::snprintf(no, sizeof no, "%s9%s%015lld", options.province_code.c_str(), year.c_str(),
                  static_cast<long long>(*no_seq));
    f.bill_no = no;
    f.bill_uuid = crypto::sha256_hex("sandbox red confirmation " + f.bill_no).substr(0, 32);
    while (f.bill_id.empty()) {
      auto id_seq = next_sequence("bill_id");
      if (!id_seq) {
        return storage_failure();
      }
      char id[32];
      std::snprintf(id, sizeof id, "9%016lld", static_cast<long long>(*id_seq));
      if (!form_locked("bill_id", id)) {
        f.bill_id = id;
      }
    }
    f.applied_unix = options.clock->unix_seconds();
    f.bill_time = local_time_text();
    auto ins = db.prepare(
        "INSERT INTO sandbox_red_confirm(bill_id, bill_no, bill_uuid, blue_number, blue_line, "
        "seller_tax_no, seller_name, buyer_tax_no, buyer_name, apply_source, red_reason, status, "
        "order_no, excl_fen, tax_fen, incl_fen, applied_unix, bill_time) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!ins) {
      return storage_failure();
    }
    ins->bind_all(f.bill_id, f.bill_no, f.bill_uuid, f.blue_number, f.blue_line, f.seller_tax_no,
                  f.seller_name, f.buyer_tax_no, f.buyer_name, f.apply_source, f.red_reason,
                  f.status, f.order_no, f.excl_fen, f.tax_fen, f.incl_fen, f.applied_unix,
                  f.bill_time);
    if (!ins->run()) {
      return storage_failure();
    }
    return std::nullopt;
  }

  // Sets the state (and confirm time when given) of a stored form. REQUIRES: mu held.
  std::optional<PlatformError> set_form_status_locked(Form& f, std::string status,
                                                      std::string message,
                                                      const std::string& confirm_time) {
    auto up = db.prepare(
        "UPDATE sandbox_red_confirm SET status = ?, message = ?, order_no = ?, "
        "confirm_time = CASE WHEN ? = '' THEN confirm_time ELSE ? END WHERE bill_id = ?");
    if (!up) {
      return storage_failure();
    }
    up->bind_all(status, message, f.order_no, confirm_time, confirm_time, f.bill_id);
    if (!up->run()) {
      return storage_failure();
    }
    f.status = std::move(status);
    f.message = std::move(message);
    if (!confirm_time.empty()) {
      f.confirm_time = confirm_time;
    }
    return std::nullopt;
  }

  // Creates the red of a form at 01 or 04 under `order_no`: the blue's lines and totals
  // negated, status 20 like any accepted order, and marks the form issued (invariant 6).
  // The platform writes the remark itself (spec). REQUIRES: mu held, inside a transaction.
  std::optional<PlatformError> issue_red_locked(Form& f, const std::string& order_no) {
    auto blue = find_by_number_locked(f.blue_number);
    if (!blue || blue->kind != "blue" || blue->status != "2") {
      return PlatformError{"E9530", "blue invoice " + f.blue_number + " is not issued"};
    }
    if (blue->reversed || has_red_locked(f.blue_number)) {
      return PlatformError{"E9531",
                           "blue invoice " + f.blue_number + " 已全额冲红 (already reversed)"};
    }
    if (auto taken = order_no_taken_locked(order_no, f.bill_id)) {
      return PlatformError{"E9106", *taken};
    }
    auto serial_seq = next_sequence("serial");
    if (!serial_seq) {
      return storage_failure();
    }
    char serial[32];
    std::snprintf(serial, sizeof serial, "SB%018lld", static_cast<long long>(*serial_seq));
    const std::string remark =
        "被冲红蓝字数电发票号码：" + f.blue_number + " 红字发票信息确认单编号：" + f.bill_no;
    auto ins = db.prepare(
        "INSERT INTO sandbox_invoice(order_no, serial_num, status, kind, original_number, "
        "seller_name, seller_tax_num, buyer_name, buyer_tax_num, excl_fen, tax_fen, incl_fen, "
        "fail_planned, specific_factor, specific_summary, remark, invoice_line) "
        "SELECT ?, ?, '20', 'red', invoice_number, seller_name, seller_tax_num, buyer_name, "
        "buyer_tax_num, -excl_fen, -tax_fen, -incl_fen, ?, specific_factor, specific_summary, ?, "
        "invoice_line FROM sandbox_invoice WHERE invoice_number = ?");
    if (!ins) {
      return storage_failure();
    }
    ins->bind_all(order_no, std::string(serial), next_failure, remark, f.blue_number);
    if (!ins->run()) {
      return storage_failure();
    }
    auto lines = db.prepare(
        "INSERT INTO sandbox_line(order_no, line_no, goods_code, rate, excl_fen, tax_fen, "
        "incl_fen) SELECT ?, line_no, goods_code, rate, -excl_fen, -tax_fen, -incl_fen "
        "FROM sandbox_line WHERE order_no = ?");
    if (!lines) {
      return storage_failure();
    }
    lines->bind_all(order_no, blue->order_no);
    if (!lines->run()) {
      return storage_failure();
    }
    auto up = db.prepare(
        "UPDATE sandbox_red_confirm SET issued = 1, order_no = ?, serial_num = ? WHERE bill_id = "
        "?");
    if (!up) {
      return storage_failure();
    }
    up->bind_all(order_no, std::string(serial), f.bill_id);
    if (!up->run()) {
      return storage_failure();
    }
    next_failure.clear();
    f.issued = true;
    f.order_no = order_no;
    f.serial_num = serial;
    return std::nullopt;
  }

  // "电票都自动开": at the moment a form reaches 01 or 04, with an orderNo, the platform
  // issues its red. A blue already reversed some other way (a legacy invoiceType 2 red)
  // makes the form fail (16) instead. REQUIRES: mu held, inside a transaction.
  std::optional<PlatformError> auto_issue_locked(Form& f) {
    if (!options.auto_issue_red || f.issued || f.order_no.empty() ||
        (f.status != "01" && f.status != "04")) {
      return std::nullopt;
    }
    auto blue = find_by_number_locked(f.blue_number);
    if (blue && (blue->reversed || has_red_locked(f.blue_number))) {
      return set_form_status_locked(f, "16", "该发票已全额冲红", "");
    }
    return issue_red_locked(f, f.order_no);
  }

  // The blue a red-letter call names: an issued blue of this sandbox (every invoice here
  // is the one seller's: userTax must be it). REQUIRES: mu held.
  std::variant<SandboxInvoice, PlatformError> issued_blue_locked(const std::string& field,
                                                                 const std::string& value,
                                                                 std::string_view column) {
    auto inv = load(column, value);
    if (!inv || inv->kind != "blue" || inv->status != "2") {
      return PlatformError{"E9530",
                           field + " " + value + " is not an issued blue invoice of this seller"};
    }
    return *inv;
  }

  // saveInvoiceRedConfirm. REQUIRES: mu held.
  std::variant<json::value, PlatformError> red_apply(const json::object& c,
                                                     std::string_view user_tax) {
    if (auto p = red_keys_problem(c, kRedApplyKeys, "saveInvoiceRedConfirm")) {
      return *p;
    }
    if (auto it = c.find("detail"); it != c.end()) {
      const json::value& v = it->value();
      const bool empty =
          (v.is_array() && v.as_array().empty()) || (v.is_string() && v.get_string().empty());
      if (!empty) {
        return PlatformError{"E9514",
                             "detail: partial red letters are not supported by this "
                             "sandbox (reverse the whole invoice)"};
      }
    }
    Form f;
    f.blue_line = str(c, "blueInvoiceLine");
    const std::string source = str(c, "applySource");
    f.seller_tax_no = str(c, "sellerTaxNo");
    f.seller_name = str(c, "sellerName");
    f.buyer_name = str(c, "buyerName");
    f.buyer_tax_no = str(c, "buyerTaxNo");
    f.red_reason = str(c, "redReason");
    f.bill_id = str(c, "billId");
    f.order_no = str(c, "orderNo");
    static const std::set<std::string> kLines = {"bs", "pc", "es", "ec", "p", "c", "s", "b"};
    if (f.blue_line.empty()) {
      return PlatformError{"E9511", "blueInvoiceLine is required"};
    }
    if (!kLines.contains(f.blue_line)) {
      return PlatformError{"E9512", "blueInvoiceLine " + f.blue_line + " is not an invoice line"};
    }
    if (source.empty()) {
      return PlatformError{"E9511", "applySource is required (0 seller, 1 buyer)"};
    }
    if (source != "0" && source != "1") {
      return PlatformError{"E9512", "applySource must be 0 (seller) or 1 (buyer)"};
    }
    if (f.seller_tax_no.empty()) {
      return PlatformError{"E9511", "sellerTaxNo is required"};
    }
    if (f.seller_tax_no != user_tax) {
      return PlatformError{
          "E9513", "sellerTaxNo " + f.seller_tax_no + " is not the seller of the userTax header"};
    }
    if (f.seller_name.empty() && source != "0") {
      return PlatformError{"E9511",
                           "sellerName is required unless the seller applies (applySource 0)"};
    }
    if (f.buyer_name.empty()) {
      return PlatformError{"E9511", "buyerName is required"};
    }
    if (f.red_reason.empty()) {
      return PlatformError{
          "E9511", "redReason is required (1 销货退回, 2 开票有误, 3 服务中止, 4 销售折让)"};
    }
    if (f.red_reason != "1" && f.red_reason != "2" && f.red_reason != "3" && f.red_reason != "4") {
      return PlatformError{
          "E9512", "redReason " + f.red_reason +
                       " is not a Nuonuo reason (1 销货退回, 2 开票有误, 3 服务中止, 4 销售折让)"};
    }
    if (code_points(f.bill_id) > 32) {
      return PlatformError{"E9512", "billId is longer than 32 characters"};
    }
    if (!f.bill_id.empty() && form_locked("bill_id", f.bill_id)) {
      return PlatformError{"E9520", "billId 重复: 申请号 " + f.bill_id + " is already used"};
    }
    if (!f.order_no.empty()) {
      if (!order_no_ok(f.order_no)) {
        return PlatformError{"E9512", "orderNo must be 1-20 characters [A-Za-z0-9_-]"};
      }
      if (auto taken = order_no_taken_locked(f.order_no, "")) {
        return PlatformError{"E9521", "orderNo 重复: " + *taken};
      }
    }
    if (!str(c, "blueInvoiceCode").empty()) {
      return PlatformError{
          "E9512", "blueInvoiceCode is for VAT blues; a 数电 blue is named by its 20-digit number"};
    }
    const std::string elec = str(c, "blueElecInvoiceNumber"), plain = str(c, "blueInvoiceNumber");
    if (!elec.empty() && !twenty_digits(elec)) {
      return PlatformError{"E9512",
                           "blueElecInvoiceNumber must be the blue's 20-digit 数电 number"};
    }
    if (!plain.empty() && !twenty_digits(plain)) {
      return PlatformError{"E9512",
                           "blueInvoiceNumber " + plain +
                               " is not a 20-digit 数电 number (this sandbox holds no VAT blues)"};
    }
    if (!elec.empty() && !plain.empty() && elec != plain) {
      return PlatformError{"E9534",
                           "blueElecInvoiceNumber and blueInvoiceNumber name different invoices"};
    }
    const std::string field = elec.empty() ? "blueInvoiceNumber" : "blueElecInvoiceNumber";
    f.blue_number = elec.empty() ? plain : elec;
    if (f.blue_number.empty()) {
      return PlatformError{"E9511",
                           "blueElecInvoiceNumber is required (or a 20-digit blueInvoiceNumber)"};
    }
    auto found = issued_blue_locked(field, f.blue_number, "invoice_number");
    if (auto* err = std::get_if<PlatformError>(&found)) {
      return *err;
    }
    const SandboxInvoice& blue = std::get<SandboxInvoice>(found);
    if (blue.reversed) {
      return PlatformError{"E9531", field + " " + f.blue_number + " 已全额冲红 (already reversed)"};
    }
    if (auto live = live_form_locked(f.blue_number)) {
      return PlatformError{"E9532", field + " " + f.blue_number +
                                        " already has confirmation form " + live->bill_id + " at " +
                                        live->status};
    }
    if (has_red_locked(f.blue_number)) {
      return PlatformError{"E9531", field + " " + f.blue_number + " already has a red invoice"};
    }
    if (!blue.invoice_line.empty() && f.blue_line != blue.invoice_line) {
      return PlatformError{"E9533", "blueInvoiceLine " + f.blue_line + " is not the blue's line " +
                                        blue.invoice_line};
    }
    if (f.buyer_name != blue.buyer_name) {
      return PlatformError{
          "E9533", "buyerName " + f.buyer_name + " is not the blue's buyer " + blue.buyer_name};
    }
    if (f.buyer_tax_no != blue.buyer_tax_num) {
      return PlatformError{"E9533", "buyerTaxNo '" + f.buyer_tax_no +
                                        "' is not the blue's buyer tax id '" + blue.buyer_tax_num +
                                        "'"};
    }
    if (f.seller_name.empty()) {
      f.seller_name = options.seller_name;
    }
    f.apply_source = source == "1" ? 1 : 0;
    // A natural person (no tax id) confirms nothing; otherwise the other side must.
    f.status = blue.buyer_tax_num.empty() ? "01" : (f.apply_source == 0 ? "02" : "03");
    f.excl_fen = -blue.excl_fen;
    f.tax_fen = -blue.tax_fen;
    f.incl_fen = -blue.incl_fen;
    auto txn = db.begin();
    if (!txn) {
      return storage_failure();
    }
    if (auto p = insert_form_locked(f)) {
      return *p;
    }
    if (auto p = auto_issue_locked(f)) {
      return *p;
    }
    if (!txn->commit()) {
      return storage_failure();
    }
    return json::value(json::string(f.bill_id));
  }

  // One row of queryInvoiceRedConfirm, as the captured live reply spells it (notes G1, G4):
  // billStatus a string, openStatus and applySource numbers, requestStatus null,
  // "taxIncludeAmount" without the d.
  json::object form_row(const Form& f, bool pending) const {
    const bool open = f.issued && !pending;
    json::object r;
    r["billId"] = f.bill_id;
    r["billNo"] = f.bill_no;
    r["billUuid"] = f.bill_uuid;
    r["billStatus"] = pending ? std::string("15") : f.status;
    r["requestStatus"] = nullptr;
    r["openStatus"] = open ? 1 : 0;
    r["applySource"] = f.apply_source;
    r["billMessage"] = !pending && f.status == "16" ? f.message : std::string();
    r["invoiceSerialNum"] = open ? json::value(f.serial_num) : json::value(nullptr);
    r["orderNo"] = open ? json::value(f.order_no) : json::value(nullptr);
    r["blueInvoiceNumber"] = f.blue_number;
    r["blueElecInvoiceNumber"] = f.blue_number;
    r["blueInvoiceLine"] = f.blue_line;
    r["sellerTaxNo"] = f.seller_tax_no;
    r["sellerName"] = f.seller_name;
    r["buyerTaxNo"] = f.buyer_tax_no;
    r["buyerName"] = f.buyer_name;
    r["taxExcludedAmount"] = Money::from_fen(f.excl_fen).to_string();
    r["taxAmount"] = Money::from_fen(f.tax_fen).to_string();
    r["taxIncludeAmount"] = Money::from_fen(f.incl_fen).to_string();
    r["redReason"] = f.red_reason;
    r["billTime"] = f.bill_time;
    r["confirmTime"] = f.confirm_time.empty() ? json::value(nullptr) : json::value(f.confirm_time);
    return r;
  }

  // queryInvoiceRedConfirm. REQUIRES: mu held.
  std::variant<json::value, PlatformError> red_query(const json::object& c,
                                                     std::string_view user_tax) {
    if (auto p = red_keys_problem(c, kRedQueryKeys, "queryInvoiceRedConfirm")) {
      return *p;
    }
    const std::string identity = str(c, "identity");
    if (identity.empty()) {
      return PlatformError{"E9511", "identity is required (0 seller, 1 buyer)"};
    }
    if (identity != "0" && identity != "1") {
      return PlatformError{"E9512", "identity must be 0 (seller) or 1 (buyer)"};
    }
    auto number = [&](std::string_view key, int fallback, int max) -> std::optional<int> {
      const std::string v = str(c, key);
      if (v.empty()) {
        return fallback;
      }
      if (v.size() > 6 || !all_of(v, "0123456789")) {
        return std::nullopt;
      }
      const int n = std::stoi(v);
      return n >= 1 && n <= max ? std::optional<int>(n) : std::nullopt;
    };
    const auto page_size = number("pageSize", 10, 50);
    if (!page_size) {
      return PlatformError{"E9512", "pageSize must be 1-50 (default 10)"};
    }
    const auto page_no = number("pageNo", 1, 999999);
    if (!page_no) {
      return PlatformError{"E9512", "pageNo must be a positive number (default 1)"};
    }
    const std::string status = str(c, "billStatus");
    if (!status.empty() && (status.size() != 2 || !all_of(status, "0123456789"))) {
      return PlatformError{"E9512", "billStatus must be a 2-digit state code"};
    }
    const std::string from = str(c, "billTimeStart"), to = str(c, "billTimeEnd");
    for (const auto& [key, value] :
         {std::pair{"billTimeStart", from}, std::pair{"billTimeEnd", to}}) {
      if (!value.empty() && !is_date(value)) {
        return PlatformError{"E9512", std::string(key) + " must be YYYY-MM-DD"};
      }
    }
    if (!from.empty() && !to.empty()) {
      auto a = parse_local_date(from, UtcOffset{480});
      auto b = parse_local_date(to, UtcOffset{480});
      if (!a || !b || *a > *b || *b - *a > std::chrono::hours(24 * 90)) {
        return PlatformError{"E9512",
                             "billTimeStart..billTimeEnd must be a window of at most 90 days"};
      }
    }
    std::string where = "seller_tax_no = ?";
    std::vector<std::string> args = {std::string(user_tax)};
    for (const auto& [key, column] :
         {std::pair{"billId", "bill_id"}, std::pair{"billNo", "bill_no"},
          std::pair{"billUuid", "bill_uuid"}}) {
      if (const std::string v = str(c, key); !v.empty()) {
        where += std::string(" AND ") + column + " = ?";
        args.push_back(v);
      }
    }
    std::vector<std::pair<Form, bool>> matched;  // form, pending
    for (Form& f : forms_locked(where, args)) {
      const bool pending = f.queries < options.red_apply_pending_queries;
      const std::string reported = pending ? "15" : f.status;
      const std::string day = f.bill_time.substr(0, 10);
      if ((!status.empty() && reported != status) || (!from.empty() && day < from) ||
          (!to.empty() && day > to)) {
        continue;
      }
      matched.emplace_back(std::move(f), pending);
    }
    json::array list;
    const std::size_t first =
        static_cast<std::size_t>(*page_no - 1) * static_cast<std::size_t>(*page_size);
    for (std::size_t i = first;
         i < matched.size() && list.size() < static_cast<std::size_t>(*page_size); ++i) {
      const auto& [f, pending] = matched[i];
      list.push_back(form_row(f, pending));
      if (auto up = db.prepare(
              "UPDATE sandbox_red_confirm SET queries = queries + 1 WHERE bill_id = ?")) {
        up->bind(1, f.bill_id);
        (void)up->run();
      }
    }
    json::object result;
    result["total"] = static_cast<std::int64_t>(matched.size());
    result["list"] = std::move(list);
    return json::value(std::move(result));
  }

  // confirm: the other side's answer to a form. REQUIRES: mu held.
  std::variant<json::value, PlatformError> red_confirm(const json::object& c,
                                                       std::string_view user_tax) {
    if (auto p = red_keys_problem(c, kConfirmKeys, "confirm")) {
      return *p;
    }
    // Doc: "优先级：红字确认单uuid > 红字确认单申请号 > 红字确认单编号".
    std::string key, column;
    for (const auto& [k, col] : {std::pair{"billUuid", "bill_uuid"}, std::pair{"billId", "bill_id"},
                                 std::pair{"billNo", "bill_no"}}) {
      if (!str(c, k).empty()) {
        key = k;
        column = col;
        break;
      }
    }
    if (key.empty()) {
      return PlatformError{"E9511", "one of billUuid, billId, billNo is required"};
    }
    const std::string identity = str(c, "identity"), agreement = str(c, "confirmAgreement");
    if (identity.empty()) {
      return PlatformError{"E9511", "identity is required (0 seller, 1 buyer)"};
    }
    if (identity != "0" && identity != "1") {
      return PlatformError{"E9512", "identity must be 0 (seller) or 1 (buyer)"};
    }
    if (agreement.empty()) {
      return PlatformError{"E9511", "confirmAgreement is required (0 reject, 1 agree)"};
    }
    if (agreement != "0" && agreement != "1") {
      return PlatformError{"E9512", "confirmAgreement must be 0 (reject) or 1 (agree)"};
    }
    if (code_points(str(c, "confirmReason")) > 200) {
      return PlatformError{"E9512", "confirmReason is longer than 200 characters"};
    }
    const std::string order_no = str(c, "orderNo");
    if (!order_no.empty() && !order_no_ok(order_no)) {
      return PlatformError{"E9512", "orderNo must be 1-20 characters [A-Za-z0-9_-]"};
    }
    auto form = form_locked(column, str(c, key));
    if (!form || form->seller_tax_no != user_tax) {
      return PlatformError{"E9540", key + " " + str(c, key) + " names no confirmation form"};
    }
    Form& f = *form;
    // Doc: the buyer confirms at 02 (seller entered), the seller at 03 (buyer entered).
    const std::string wanted = identity == "0" ? "03" : "02";
    if (f.status != wanted) {
      return PlatformError{"E9541", "identity " + identity +
                                        (identity == "0" ? " (seller)" : " (buyer)") +
                                        " may confirm only a form at " + wanted + "; " + key + " " +
                                        str(c, key) + " is at " + f.status};
    }
    if (f.order_no.empty() && !order_no.empty()) {
      if (auto taken = order_no_taken_locked(order_no, f.bill_id)) {
        return PlatformError{"E9521", "orderNo 重复: " + *taken};
      }
      f.order_no = order_no;
    }
    auto txn = db.begin();
    if (!txn) {
      return storage_failure();
    }
    const std::string next = agreement == "1" ? "04" : (f.status == "02" ? "05" : "06");
    if (auto p = set_form_status_locked(f, next, "", local_time_text())) {
      return *p;
    }
    if (auto p = auto_issue_locked(f)) {
      return *p;
    }
    if (!txn->commit()) {
      return storage_failure();
    }
    return json::value(json::object());
  }

  // fastInvoiceRed (快捷冲红): issues the red of a form at 01/04 that has none yet.
  // REQUIRES: mu held.
  std::variant<json::value, PlatformError> fast_red(const json::object& c,
                                                    std::string_view user_tax) {
    fast_red_requests.fetch_add(1);
    if (auto p = red_keys_problem(c, kFastRedKeys, "fastInvoiceRed")) {
      return *p;
    }
    const std::string order_no = str(c, "orderNo");
    if (order_no.empty()) {
      return PlatformError{"E9511", "orderNo is required (the red's own, new orderNo)"};
    }
    if (!order_no_ok(order_no)) {
      return PlatformError{"E9512", "orderNo must be 1-20 characters [A-Za-z0-9_-]"};
    }
    if (find_locked(order_no)) {
      return PlatformError{"E9106", "订单编号不能重复 (orderNo " + order_no + " already exists)"};
    }
    const std::string tax_num = str(c, "taxNum");
    if (tax_num.empty()) {
      return PlatformError{"E9511", "taxNum is required (the seller of the userTax header)"};
    }
    if (tax_num != user_tax) {
      return PlatformError{"E9513",
                           "taxNum " + tax_num + " is not the seller of the userTax header"};
    }
    if (!str(c, "invoiceCode").empty()) {
      return PlatformError{
          "E9512", "invoiceCode is for VAT blues; a 数电 blue is named by its 20-digit number"};
    }
    const std::string plain = str(c, "invoiceNumber");
    if (!plain.empty() && !twenty_digits(plain)) {
      return PlatformError{"E9512",
                           "invoiceNumber " + plain +
                               " is not a 20-digit 数电 number (this sandbox holds no VAT blues)"};
    }
    const std::string elec = str(c, "elecInvoiceNumber");
    if (!elec.empty() && !twenty_digits(elec)) {
      return PlatformError{"E9512", "elecInvoiceNumber must be the blue's 20-digit 数电 number"};
    }
    std::optional<SandboxInvoice> blue;
    std::string named;
    for (const auto& [field, column] :
         {std::pair{"invoiceId", "serial_num"}, std::pair{"elecInvoiceNumber", "invoice_number"},
          std::pair{"invoiceNumber", "invoice_number"}}) {
      const std::string v = str(c, field);
      if (v.empty()) {
        continue;
      }
      auto found = issued_blue_locked(field, v, column);
      if (auto* err = std::get_if<PlatformError>(&found)) {
        return *err;
      }
      const SandboxInvoice& inv = std::get<SandboxInvoice>(found);
      if (blue && blue->order_no != inv.order_no) {
        return PlatformError{"E9534", named + " and " + field + " name different invoices"};
      }
      if (!blue) {
        blue = inv;
        named = field;
      }
    }
    if (!blue) {
      return PlatformError{"E9511",
                           "one of invoiceId, elecInvoiceNumber, invoiceNumber (20 digits) "
                           "is required to name the blue"};
    }
    if (const std::string line = str(c, "invoiceLine");
        !line.empty() && !blue->invoice_line.empty() && line != blue->invoice_line) {
      return PlatformError{"E9533",
                           "invoiceLine " + line + " is not the blue's line " + blue->invoice_line};
    }
    const std::string bill_no = str(c, "billNo"), bill_uuid = str(c, "billUuid");
    if (bill_no.empty()) {
      return PlatformError{"E9511", "billNo is required for a 数电 red (全电红票必传)"};
    }
    if (bill_uuid.empty()) {
      return PlatformError{"E9511", "billUuid is required for a 数电 red"};
    }
    auto form = form_locked("bill_no", bill_no);
    if (!form || form->seller_tax_no != user_tax) {
      return PlatformError{"E9540", "billNo " + bill_no + " names no confirmation form"};
    }
    if (form->bill_uuid != bill_uuid) {
      return PlatformError{"E9543", "billNo " + bill_no + " and billUuid " + bill_uuid +
                                        " do not name the same confirmation form"};
    }
    Form& f = *form;
    if (f.blue_number != blue->invoice_number) {
      return PlatformError{"E9543", "billNo " + bill_no + " is a form for blue " + f.blue_number +
                                        ", not for " + named + " " + str(c, named)};
    }
    if (f.issued) {
      return PlatformError{"E9542", "已开具红字发票: billNo " + bill_no + " already issued red " +
                                        f.serial_num + " (orderNo " + f.order_no + ")"};
    }
    if (f.status != "01" && f.status != "04") {
      return PlatformError{"E9541",
                           "billNo " + bill_no + " is at " + f.status +
                               "; a red is issued only at 01 (no confirmation) or 04 (confirmed)"};
    }
    if (blue->reversed || has_red_locked(blue->invoice_number)) {
      return PlatformError{"E9531", named + " " + str(c, named) + " 已全额冲红 (already reversed)"};
    }
    if (auto taken = order_no_taken_locked(order_no, f.bill_id)) {
      return PlatformError{"E9106", *taken};
    }
    auto txn = db.begin();
    if (!txn) {
      return storage_failure();
    }
    if (auto p = issue_red_locked(f, order_no)) {
      return *p;
    }
    if (!txn->commit()) {
      return storage_failure();
    }
    json::object result;
    result["invoiceSerialNum"] = f.serial_num;
    return json::value(std::move(result));
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
    using RedCall =
        std::variant<json::value, PlatformError> (Impl::*)(const json::object&, std::string_view);
    static const std::map<std::string, RedCall, std::less<>> kRedCalls = {
        {"nuonuo.OpeMplatform.saveInvoiceRedConfirm", &Impl::red_apply},
        {"nuonuo.OpeMplatform.queryInvoiceRedConfirm", &Impl::red_query},
        {"nuonuo.OpeMplatform.confirm", &Impl::red_confirm},
        {"nuonuo.OpeMplatform.fastInvoiceRed", &Impl::fast_red},
    };
    if (auto call = kRedCalls.find(method); call != kRedCalls.end()) {
      auto r = (this->*(call->second))(c.as_object(), user_tax);
      if (auto* err = std::get_if<PlatformError>(&r)) {
        return send(reply(err->code, err->describe));
      }
      json::object o = reply("E0000", "成功");
      o["result"] = std::get<json::value>(std::move(r));
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
  const std::array<std::string_view, 3> steps = {kSchema, kSchemaSpecific, kSchemaRedConfirm};
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

std::optional<SandboxRedConfirm> InvoicingSandbox::find_red_confirm(
    const std::string& bill_id) const {
  std::lock_guard lock(impl_->mu);
  auto f = impl_->form_locked("bill_id", bill_id);
  if (!f) {
    return std::nullopt;
  }
  SandboxRedConfirm r;
  r.bill_id = f->bill_id;
  r.bill_no = f->bill_no;
  r.bill_uuid = f->bill_uuid;
  r.bill_status = f->status;
  r.blue_number = f->blue_number;
  r.red_reason = f->red_reason;
  r.order_no = f->order_no;
  r.serial_num = f->serial_num;
  r.apply_source = f->apply_source;
  r.issued = f->issued;
  return r;
}

void InvoicingSandbox::buyer_confirms(const std::string& bill_id, bool agree) {
  std::lock_guard lock(impl_->mu);
  auto f = impl_->form_locked("bill_id", bill_id);
  if (!f || f->status != "02") {
    return;
  }
  auto txn = impl_->db.begin();
  if (!txn) {
    return;
  }
  if (impl_->set_form_status_locked(*f, agree ? "04" : "05", "", impl_->local_time_text()) ||
      impl_->auto_issue_locked(*f)) {
    return;  // rolled back
  }
  (void)txn->commit();
}

std::string InvoicingSandbox::buyer_applies(const std::string& blue_number,
                                            std::string red_reason) {
  std::lock_guard lock(impl_->mu);
  auto found = impl_->issued_blue_locked("blue", blue_number, "invoice_number");
  if (!std::holds_alternative<SandboxInvoice>(found)) {
    return "";
  }
  const SandboxInvoice& blue = std::get<SandboxInvoice>(found);
  if (blue.reversed || impl_->has_red_locked(blue_number) || impl_->live_form_locked(blue_number)) {
    return "";
  }
  Impl::Form f;
  f.blue_number = blue_number;
  f.blue_line = blue.invoice_line.empty() ? "pc" : blue.invoice_line;
  f.seller_tax_no = impl_->options.seller_tax_id;
  f.seller_name = impl_->options.seller_name;
  f.buyer_tax_no = blue.buyer_tax_num;
  f.buyer_name = blue.buyer_name;
  f.apply_source = 1;
  f.red_reason = std::move(red_reason);
  f.status = "03";
  f.excl_fen = -blue.excl_fen;
  f.tax_fen = -blue.tax_fen;
  f.incl_fen = -blue.incl_fen;
  auto txn = impl_->db.begin();
  if (!txn || impl_->insert_form_locked(f) || !txn->commit()) {
    return "";
  }
  return f.bill_id;
}

void InvoicingSandbox::force_bill_status(const std::string& bill_id, std::string code) {
  std::lock_guard lock(impl_->mu);
  auto f = impl_->form_locked("bill_id", bill_id);
  if (!f) {
    return;
  }
  std::string message = code == "16" ? "该发票已全额冲红" : "";
  (void)impl_->set_form_status_locked(*f, std::move(code), std::move(message), "");
}

std::int64_t InvoicingSandbox::fast_red_requests() const { return impl_->fast_red_requests.load(); }

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
    if (a == "--no-auto-issue-red") {
      o.auto_issue_red = false;
      continue;
    }
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
    } else if (a == "--red-apply-pending-queries") {
      o.red_apply_pending_queries = std::atoi(v.c_str());
    } else {
      std::cerr
          << "invoicing: unknown option " << a
          << "\nusage: lanegate-sim invoicing --db FILE [--port N] [--app-secret-file F]"
             " [--access-token-file F] [--app-key K] [--seller-tax-id ID] [--seller-name NAME]"
             " [--queries-in-progress N] [--no-auto-issue-red] [--red-apply-pending-queries N]"
             " [--tls-cert F --tls-key F]\n";
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
