#pragma once
// Internal to the provider sandbox (sim/provider_sandbox.h): the one Impl shared by the
// files that each serve one concern:
//   provider_sandbox.cc         start/stop, public API, seed, servers, admin, signatures
//   provider_sandbox_wire.cc    error bodies, the per-call field lists and their checks
//   provider_sandbox_parking.cc plate service, parking entries, parking charges
//   provider_sandbox_pay.cc     in-cab payments: payment code, Native, query, reverse, close
//   provider_sandbox_etc.cc     ETC highway deduction, its queries, contracts, USER_STATE_CHANGE
//   provider_sandbox_bill.cc    refunds and the trade bill
//   provider_sandbox_notify.cc  deduction worker, notification sealing and delivery
// Written from the spec (/work/shared/specs/payment-provider-wechatpay-v3.md), deliberately
// without the gateway's client code: a mistake in one is caught by the other.

#include <httplib.h>

#include <boost/json.hpp>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "core/metrics.h"
#include "core/pki.h"
#include "core/sqlite.h"
#include "core/time_format.h"
#include "sim/provider_sandbox.h"

namespace lanegate::sim::sandbox {
namespace json = boost::json;

inline constexpr UtcOffset kChina{480};
inline constexpr std::int64_t kMaxSkewSeconds = 300;
// The spec leaves the trade type of vehicle deductions open; JSAPI is what the bill of an
// ordinary in-app payment shows. Used in the bill and in the ETC Transaction.
inline constexpr std::string_view kVehicleTradeType = "JSAPI";
// Fee rate shown in the bill: 0.60 %, in hundredths of a percent.
inline constexpr std::int64_t kFeeRateBasisPoints = 60;

// An API reply before signing.
struct Reply {
  int status = 200;
  std::string body;
  bool lose_after_commit = false;
};

// Error body per the spec's Errors section: {code, message, detail{field, value?, issue,
// location}}; detail only when `field` or `issue` is given.
Reply error_reply(int status, std::string_view code, std::string_view message,
                  std::string_view field = {}, std::string_view issue = {},
                  std::string_view location = "body", const json::value* value = nullptr);
Reply param_error(std::string_view field, std::string_view issue,
                  std::string_view location = "body", const json::value* value = nullptr);
Reply system_error(const Error& e);

std::optional<std::string> get_string(const json::object& o, std::string_view key);
std::optional<std::int64_t> get_int(const json::object& o, std::string_view key);
std::size_t utf8_length(std::string_view s);
bool is_plate_color(std::string_view c);
bool is_out_trade_no(std::string_view s);
std::int64_t real_now_ms();

// --- field lists -----------------------------------------------------------------------
// Every request body and query is checked against the field list of its call in the
// spec: an unknown field, a missing required one or a wrong JSON type is a 400
// PARAM_ERROR naming the field (dotted path for nested objects).
enum class Kind { kString, kInteger, kBoolean, kObject, kArray, kAnyObject };
struct Field {
  std::string name;
  Kind kind = Kind::kString;
  bool required = true;
  std::vector<Field> children;  // kObject; kArray: the fields of each element (an object)
};
using Fields = std::vector<Field>;
struct Param {
  std::string name;
  bool required = true;
};
using Params = std::vector<Param>;

std::optional<Reply> check_fields(const json::object& body, const Fields& fields,
                                  const std::string& prefix = {});
std::optional<Reply> check_query(const httplib::Request& req, const Params& params);

// The field lists, per call; `partner` adds sub_mchid (required) and sub_appid (optional)
// where the spec's table says so, and a direct merchant sending them is refused like any
// unknown field.
Fields parking_entry_fields(bool partner);
Fields parking_charge_fields(bool partner);
Fields highway_charge_fields();
Params find_service_params(bool partner);
Params partner_query_params(bool partner);  // sub_mchid for partners, nothing for direct
Params contract_by_user_params();
Params trade_bill_params(bool partner);
// The /v3/pay calls (spec "Taxi: in-cab payment"); `partner`: the /v3/pay/partner/ path.
Fields codepay_fields(bool partner);
Fields native_fields(bool partner);
Fields reverse_fields(bool partner);
Fields close_fields(bool partner);
Params pay_query_params(bool partner);
// Spec: 18 digits, WeChat codes start with 10..15.
bool is_auth_code(std::string_view s);

// --- merchants -------------------------------------------------------------------------
struct SubMerchant {
  std::string sub_mchid;
  std::string sub_appid;  // may be empty
};

struct Merchant {
  std::string mchid;
  std::string appid;
  std::string serial_no;
  pki::PublicKey key;
  std::string apiv3_key;
  std::string products;
  std::string contract_notify_url;  // the provider's pre-registered callback (ETC)
  std::vector<SubMerchant> subs;    // not empty: a service provider (partner)
  bool partner() const { return !subs.empty(); }
  bool has_product(std::string_view p) const { return products.find(p) != std::string::npos; }
};

// One transactions row (kTxColumns order).
struct TxRow {
  std::int64_t seq = 0;
  std::string mchid, appid, out_trade_no, transaction_id, product, description;
  std::int64_t amount = 0;
  std::string trade_state;
  std::optional<std::string> trade_state_description;
  std::string openid, notify_url, create_time;
  std::optional<std::string> success_time;
  std::string info_json;
  std::optional<std::string> attach;
  std::string device_id, sub_mchid, sub_appid;
  std::optional<std::string> sub_openid, device_json;
  std::int64_t refunded = 0;
  int submissions = 0;
};
inline constexpr std::string_view kTxColumns =
    "seq, mchid, appid, out_trade_no, transaction_id, product, description, amount, "
    "trade_state, trade_state_description, openid, notify_url, create_time, success_time, "
    "info_json, attach, device_id, sub_mchid, sub_appid, sub_openid, device_json, refunded, "
    "submissions";
TxRow read_tx(const Statement& st);

// Parking Transaction (spec "Parking Transaction") and ETC Transaction (spec "ETC
// Transaction": other names: mchid, trade_state_desc, payer{sp_openid, sub_openid}).
json::object parking_transaction_json(const TxRow& t);
json::object etc_transaction_json(const TxRow& t);

// One payments row (kPayColumns order): an ordinary payment (payment code or Native).
struct PayRow {
  std::int64_t seq = 0;
  std::string mchid, sub_mchid, appid, sub_appid, out_trade_no, transaction_id;
  std::string trade_type;  // MICROPAY | NATIVE
  std::string description;
  std::optional<std::string> attach;
  std::int64_t amount = 0;
  std::string trade_state;
  std::optional<std::string> trade_state_desc;
  std::string openid;
  std::optional<std::string> sub_openid;
  std::string code_hash, notify_url, code_url, device_id, create_time;
  std::optional<std::string> success_time;
  std::int64_t refunded = 0;
  bool reversed = false;
  int submissions = 0;
  std::optional<std::string> fail_code;  // PAYERROR: the business failure answered
};
inline constexpr std::string_view kPayColumns =
    "seq, mchid, sub_mchid, appid, sub_appid, out_trade_no, transaction_id, trade_type, "
    "description, attach, amount, trade_state, trade_state_desc, openid, sub_openid, code_hash, "
    "notify_url, code_url, device_id, create_time, success_time, refunded, reversed, "
    "submissions, fail_code";
PayRow read_pay(const Statement& st);
// The payment as the codepay reply, the query and the TRANSACTION.SUCCESS resource show it
// (spec "Payment code" reply, "Native" resource): direct appid/mchid/payer{openid};
// partner sp_appid/sp_mchid/sub_appid/sub_mchid/payer{sp_openid, sub_openid}.
// `attach_always`: the Native resource lists attach without "?" (empty when not given).
json::object payment_json(const PayRow& p, bool attach_always = false);

}  // namespace lanegate::sim::sandbox

namespace lanegate::sim {

struct ProviderSandbox::Impl {
  using Reply = sandbox::Reply;
  using Merchant = sandbox::Merchant;
  using SubMerchant = sandbox::SubMerchant;
  using TxRow = sandbox::TxRow;
  using PayRow = sandbox::PayRow;
  using json_object = boost::json::object;

  ProviderSandboxOptions options;
  std::filesystem::path ca_file;
  pki::PrivateKey platform_key;
  pki::Certificate platform_cert;
  pki::PrivateKey pubkey_key;
  std::string pubkey_id;
  // The bind_state value that means "bound" (seed "etc_bound_state"; the real value set
  // is unconfirmed, so any other string is treated as not bound).
  std::string etc_bound_state = "BOUND";

  mutable std::mutex db_mu;
  std::optional<Database> db_opt;
  Database& db() { return *db_opt; }

  mutable std::mutex faults_mu;
  ProviderFaults faults;
  std::atomic<double> time_factor{1.0};
  std::atomic<std::int64_t> sign_errors{0};
  // Quick-pay timing (options; seed "quickpay"; POST /admin/quickpay). Real time, not
  // scaled by time_factor: the client's query/reverse windows are real time too.
  std::atomic<std::int64_t> code_validity_ms{60000};
  std::atomic<std::int64_t> auto_revoke_ms{45000};

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

  // provider_sandbox.cc
  Status load_pki();
  Status apply_seed();
  double draw();
  std::string digits(int n);
  std::string now_text() const;
  // REQUIRES: db_mu held.
  std::optional<Merchant> find_merchant(std::string_view mchid);
  void sign_reply(const httplib::Request& req, httplib::Response& res, const std::string& body);
  void send(const httplib::Request& req, httplib::Response& res, const Reply& reply);
  Reply sign_error(const httplib::Request& req, std::string_view issue,
                   std::string_view expected_message);
  std::variant<Merchant, Reply> authenticate(const httplib::Request& req);
  ProviderFaults current_faults() const;
  bool lose_reply();  // draws against lost_reply_share
  Reply certificates(const Merchant& m);
  void install_routes(httplib::SSLServer& s);
  Status start_api(int port);
  void stop_api();
  void apply_faults(const ProviderFaults& f);
  void install_admin();
  std::string faults_json() const;
  Result<std::vector<SandboxTransaction>> list_transactions() const;
  Result<std::vector<SandboxNotification>> list_notifications() const;

  // The sub merchant a partner call names (sub_mchid, optional sub_appid), or the refusal.
  // Direct merchants: nullptr (their field lists already refused sub_* fields).
  std::variant<const SubMerchant*, Reply> resolve_sub(const Merchant& m,
                                                      const std::optional<std::string>& sub_mchid,
                                                      const std::optional<std::string>& sub_appid,
                                                      std::string_view location);
  std::optional<json_object> parse_body(const httplib::Request& req, Reply& error);

  // provider_sandbox_pay.cc. `partner`: the route is /v3/pay/partner/….
  Reply codepay(const httplib::Request& req, const Merchant& m, bool partner);
  Reply native(const httplib::Request& req, const Merchant& m, bool partner);
  Reply query_payment(const httplib::Request& req, const Merchant& m, bool partner);
  Reply reverse_payment(const httplib::Request& req, const Merchant& m, bool partner);
  Reply close_payment(const httplib::Request& req, const Merchant& m, bool partner);
  // Checks the ids of a /v3/pay body (or query) against the caller and the route: the
  // body's mchid/sp_mchid must be the Authorization mchid, appid/sp_appid its app, a
  // partner's sub_mchid one of its sub merchants. Returns the sub merchant (nullptr direct).
  std::variant<const SubMerchant*, Reply> pay_caller(const Merchant& m, bool partner,
                                                     const json_object& ids,
                                                     std::string_view location);
  // REQUIRES: db_mu held. Moves due orders on: USERPAYING -> SUCCESS when the passenger
  // has confirmed, USERPAYING -> REVOKED at the auto-revoke time, NOTPAY -> CLOSED at
  // time_expire.
  void advance_payments_locked();
  void advance_payments();
  std::optional<PayRow> load_payment_locked(const std::string& mchid,
                                            const std::string& out_trade_no);
  Status register_paycode(const SandboxPaycode& code);
  Result<SandboxPayment> pay_native(const std::string& out_trade_no, const std::string& openid);
  Result<std::vector<SandboxPayment>> list_payments() const;

  // provider_sandbox_parking.cc
  Reply find_service(const httplib::Request& req, const Merchant& m);
  Reply create_parking(const httplib::Request& req, const Merchant& m);
  Reply charge_parking(const httplib::Request& req, const Merchant& m);
  Reply query_vehicle(const httplib::Request& req, const Merchant& m);
  Status set_plate_state(const std::string& number, const std::string& color,
                         const std::string& state);
  // REQUIRES: db_mu held. The row of (mchid, out_trade_no) with one of `products`, or
  // nullopt; `sub_mchid` must match the row's (empty for direct merchants).
  std::optional<TxRow> load_tx_locked(const std::string& mchid, const std::string& out_trade_no,
                                      std::initializer_list<std::string_view> products,
                                      const std::string& sub_mchid);

  // provider_sandbox_etc.cc
  Reply charge_highway(const httplib::Request& req, const Merchant& m);
  Reply query_highway(const httplib::Request& req, const Merchant& m, bool by_transaction_id);
  Reply contract_by_id(const httplib::Request& req, const Merchant& m);
  Reply contract_by_user(const httplib::Request& req, const Merchant& m);
  Status set_contract_state(const std::string& contract_id, const std::string& bind_state,
                            const std::string& extra_url);

  // provider_sandbox_bill.cc
  Reply trade_bill(const httplib::Request& req, const Merchant& m);
  void bill_download(const httplib::Request& req, httplib::Response& res);
  Result<SandboxRefund> refund(const std::string& out_trade_no, std::int64_t amount_fen,
                               const std::string& out_refund_no);

  // provider_sandbox_notify.cc
  void settle_due();
  // Seals `resource` with the merchant's APIv3 key and queues its delivery to `url` in the
  // caller's open transaction. false: the envelope could not be built (nothing queued).
  // REQUIRES: db_mu held, a transaction open.
  Result<bool> queue_notification(const Merchant& m, const std::string& url,
                                  const std::string& event_type, std::string_view summary,
                                  std::string_view original_type, const std::string& resource);
  std::optional<std::pair<std::string, std::string>> notification_body(
      const Merchant& m, std::string_view event_type, std::string_view summary,
      std::string_view original_type, const std::string& resource);
  void deliver_due();
  int post_notification(const std::string& url, const std::string& body);
  bool stopping_now();
  void worker_loop();
};

}  // namespace lanegate::sim
