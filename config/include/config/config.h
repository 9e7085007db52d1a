#pragma once
// The whole product's configuration, as loaded from /etc/lanegate/lanegate.toml.
// Every key, its default and its rule is documented in docs/CONFIG.md; the shipped
// examples live in config/examples/. Loading is strict: unknown keys, wrong types and
// out-of-range values are errors naming the file, line, key and rule, and all errors
// are reported at once.
//
// These are plain values: modules receive the section they need by const reference
// and never parse TOML themselves. A Config that load_file()/load_string() returned has
// passed every rule of docs/CONFIG.md, including the cross references (every id a lane
// names exists and has the right kind), so consumers need not re-check them; structs
// built in code (tests) carry no such guarantee.
//
// TOML layout: [gateway], [api] + [api.tls] + [[api.token]], [provider] +
// [[provider.platform_key]] + [provider.etc] + [[provider.etc.car_type]], [invoicing] + [[invoicing.tax]], [[bus]], [[device]],
// [[meter]], [[reader]], [[lane]], [[tariff.parking]], [[tariff.toll]] +
// [[tariff.toll.fare]], [[station]], [offline], [queue], [plates], [cameras]. TOML keys equal the field names
// below, except ApiToken::sha256_hex (key `sha256`) and the enums (strings such as
// "parking-exit", "roadside_unit", "rtu", "little").
//
// Related headers: config/check.h (the check-config command), config/defaults.h (list
// defaults: provinces, tax rules), config/registers.h (register names and addresses).

#include <cstdint>
#include <expected>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/money.h"

namespace lanegate::config {

struct GatewaySection {
  std::string id;                                    // required, [A-Za-z0-9_-]{1,32}
  std::string site_name;                             // required, shown on receipts
  std::filesystem::path state_dir = "/var/lib/lanegate";
  int utc_offset_minutes = 480;                      // local time for tariffs and days
  std::string log_level = "info";                    // debug | info | notice | warning | error
  // Upper bound on the database file in MiB (PRAGMA max_page_count on every connection
  // lanegated opens; applied again on SIGHUP). 0 = unlimited. 0..1048576.
  std::int64_t max_database_mb = 0;
};

struct ApiToken {
  std::string name;        // who (shown in the audit ledger for manual opens); unique
  std::string role;        // "operator" | "auditor"
  std::string sha256_hex;  // TOML key `sha256`: SHA-256 of the bearer token, 64 lower-case
                           // hex digits; unique
};

struct TlsServer {
  std::filesystem::path cert_file;
  std::filesystem::path key_file;
};

struct ApiSection {
  std::string listen_address = "127.0.0.1";
  int listen_port = 8080;                      // 0 = pick a free port (tests)
  std::vector<ApiToken> tokens;
  std::int64_t max_body_bytes = 64 * 1024;
  int header_timeout_ms = 5000;
  std::optional<TlsServer> tls;
  // Base URL printed in claim QR codes, e.g. "https://lot7.example.cn".
  std::string public_base_url = "http://127.0.0.1:8080";
};

struct PlatformKey {
  std::string id;                // certificate serial or "PUB_KEY_ID_…"
  std::filesystem::path file;    // PEM public key or certificate
};

// Spec "Direct merchant vs service provider (partner)". The merchant that calls (and signs
// every request) is the direct merchant, or in partner mode the service provider; the
// merchant served is then the special merchant `sub_mchid`.
enum class ProviderMode { kDirect, kPartner };

// An ETC vehicle class (the roadside unit's 1..16) and the car_type sent for it.
struct EtcCarType {
  int vehicle_class = 1;
  std::string value;  // e.g. "CAR"
};

// ETC highway deduction ([provider.etc], partner mode only). The spec marks the value sets
// of channel_type, car_type and bind_state *unconfirmed*: they are configuration, and a
// value outside them is refused locally, never guessed.
struct EtcSection {
  std::string channel_type = "ETC";
  std::vector<std::string> channel_types = {"ETC", "MTC"};  // the v2 enumeration
  std::vector<EtcCarType> car_types;  // a class without an entry: car_type is not sent
  // The bind_state value that means "bound": deduct (and pass offline) only while the
  // contract's last seen bind_state equals it. Required when a toll-exit lane exists.
  std::string bound_state;
  // Contracts are queried (GET /v3/vehicle/etc/contracts/{id}) when nothing was heard of
  // them for contract_silence_s (the provider's notification schedule ends after ~4 h),
  // checked every contract_check_interval_s.
  int contract_check_interval_s = 900;
  int contract_silence_s = 4 * 3600;
};

struct ProviderSection {
  std::string kind = "wechatpay-v3";
  std::string base_url = "https://api.mch.weixin.qq.com";
  ProviderMode mode = ProviderMode::kDirect;
  std::string mchid;      // direct: the merchant
  std::string appid;      // direct: the merchant's app
  std::string sp_mchid;   // partner: the service provider (signs every call)
  std::string sp_appid;   // partner: the service provider's app (body `appid` / `sp_appid`)
  std::string sub_mchid;  // partner: the special merchant served
  std::string sub_appid;  // partner, optional: the special merchant's app
  EtcSection etc;
  std::string merchant_serial_no;
  std::filesystem::path merchant_private_key_file;
  std::filesystem::path apiv3_key_file;          // 32-byte key, file mode 0600
  std::vector<PlatformKey> platform_keys;
  std::string public_key_id;                     // ask for PUB_KEY_ID_ signed replies when set
  std::string notify_url;                        // https URL the provider posts to
  std::optional<std::filesystem::path> ca_file;  // default: system trust store
  bool verify_tls = true;
  int connect_timeout_ms = 2000;                 // a call ends by connect + request timeout
  int charge_deadline_ms = 1500;                 // decision waits this long for ACCEPTED
  int request_timeout_ms = 10000;                // each read/write of every call, charges too
  // No charge above this is sent without an operator: the lane calls the attendant.
  Money max_charge = Money::from_fen(200000);
  int certificate_refresh_s = 12 * 3600;

  bool partner() const { return mode == ProviderMode::kPartner; }
  // The merchant in the Authorization header and the app of the body's `appid`.
  const std::string& caller_mchid() const { return partner() ? sp_mchid : mchid; }
  const std::string& caller_appid() const { return partner() ? sp_appid : appid; }
  bool configured() const { return !caller_mchid().empty(); }
};

// [regulator]: the city's taxi regulator platform (JT/T 905 operation-data upload 0x0B05
// over TCP). Absent or enabled = false: no upload.
struct RegulatorSection {
  bool enabled = false;
  std::string host;
  int port = 0;
  int connect_timeout_ms = 3000;
  int reply_timeout_ms = 10'000;  // wait for the 0x8001 general reply naming our serial
};

// The fleet centre (docs/FLEET.md): this box uploads its ledger and its day seals to
// lanegate-fleetd over mutual TLS, through the outbox (topic fleet.sync).
struct FleetSection {
  bool enabled = false;
  std::string host;                   // lanegate-fleetd's address
  int port = 8443;
  std::filesystem::path cert_file;    // this box's client certificate (CN = its box id)
  std::filesystem::path key_file;     // its private key
  std::filesystem::path ca_file;      // the CA that signed the centre's certificate
  int sync_interval_s = 60;           // how often a sync is queued
  int batch_records = 500;            // records per upload request (the centre takes 5000)
  int timeout_ms = 20'000;            // per request
};

struct TaxRule {
  std::string service;                 // "taxi" | "parking" (tolls are never issued here)
  std::string item_name;               // "*经营租赁*停车费": receipts; the wire sends the name part
  std::string code;                    // 19-digit tax classification code
  int rate_percent = 0;                // specs/e-invoice.md "Tax classification codes and rates"
  // "" | "01" | "03" | "04" | "08" | "09"; which pair with which rate, and the default when
  // the key is absent: config/tax_rules.h (tax_rule_problems, default_favoured_policy_flag).
  std::string favoured_policy_flag;
  std::string survey_answer_type;      // "" | "1" | "2" | "3": small-scale seller at 1 % / 3 %
};

// Who the seller is for VAT: the rates and flags a line may carry depend on it
// (config/tax_rules.h).
enum class Taxpayer { kGeneral, kSmallScale };

// How the X-Nuonuo-Sign header value is written. Public clients differ (specs/e-invoice.md
// "Invoicing platform API": *unconfirmed*, try plain first).
enum class SignEncoding { kPlain, kUrl };

// [invoicing.parking]: the specific-business 06 (不动产经营租赁) data of this lot.
struct ParkingLeaseSite {
  bool specific_business = true;       // issue parking with 06 (spec: unconfirmed whether required)
  std::string property_address;        // realPropertyAddress: province-city-district
  std::string detail_address;          // detailAddress: contains 街/路/村/乡/镇/道
  bool cross_city = false;             // crossCityFlag
  std::string certificate;             // realPropertyCertificate, optional
  int area_unit = 0;                   // unit: 1..7 (0 = unset), required when 06 is on
};

// [invoicing.taxi]: specific business 09 (旅客运输) when a passenger supplies identity.
struct TaxiInvoicing {
  bool offer_traveller = true;
  // The spec calls the list invoiceTravellerTransport and names ...InfoList as its documented
  // real name (*unconfirmed* which is accepted). The default is the long name: the Nuonuo doc
  // table cuts field names at 25 characters ("invoiceTravellerTransport" and
  // "allElectronicInvoiceNumbe" are both 25), so the short one reads as a cut.
  std::string traveller_list_key = "invoiceTravellerTransportInfoList";
};

// An account whose invoices are issued without asking ([[invoicing.default_title]]): a
// company whose vehicles park or ride here, say. At settlement its invoice is claimed with
// this buyer at once.
struct DefaultTitle {
  std::string account;             // the plate (parking, toll) or ETC contract
  std::string kind = "company";    // "company" | "person"
  std::string title;               // required for a company
  std::string tax_id;              // company: unified social credit code
  std::string email;               // one of email / phone: where the invoice is delivered
  std::string phone;
};

struct InvoicingSection {
  bool enabled = false;
  std::string base_url;
  std::string app_key;
  std::filesystem::path app_secret_file;
  std::filesystem::path access_token_file;
  std::optional<std::filesystem::path> ca_file;  // default: system trust store
  bool verify_tls = true;                        // false only for a loopback base_url
  std::string seller_name;
  std::string seller_tax_id;
  std::string clerk;  // 数电: the clerk logged in to the e-tax account;
                      // required when enabled
  SignEncoding sign_encoding = SignEncoding::kPlain;
  Taxpayer taxpayer = Taxpayer::kGeneral;
  ParkingLeaseSite parking;                      // [invoicing.parking]
  TaxiInvoicing taxi;                            // [invoicing.taxi]
  int claim_window_days = 30;
  std::vector<std::string> buyer_id_allow_list;
  // One rule per invoiced service. The loader always fills both ("taxi", "parking"): a
  // service missing from [[invoicing.tax]] gets default_tax_rule(service) from
  // config/defaults.h. Tolls have none and a "toll" rule is a config error: the national
  // toll e-bill platform issues them (specs/e-invoice.md "Tolls").
  std::vector<TaxRule> tax;
  std::vector<DefaultTitle> default_titles;  // TOML: [[invoicing.default_title]]
};

enum class Transport { kTcp, kRtu };

struct BusSection {
  std::string id;
  Transport transport = Transport::kTcp;
  std::string host;                    // tcp
  int port = 502;                      // tcp
  std::string serial_device;           // rtu, e.g. /dev/ttyUSB0
  int baud = 9600;                     // rtu
  char parity = 'N';                   // rtu: N | E | O
  int data_bits = 8;                   // rtu
  int stop_bits = 1;                   // rtu
  int response_timeout_ms = 500;
  int byte_timeout_ms = 500;
  int reconnect_max_ms = 3000;         // reconnect backoff cap
};

enum class DeviceKind { kCamera, kLoop, kBarrier, kDisplay, kRoadsideUnit };
enum class ByteOrder { kBig, kLittle };

struct DeviceSection {
  std::string id;
  DeviceKind kind = DeviceKind::kCamera;
  std::string bus;                     // id of a [[bus]]
  int unit_id = 1;
  ByteOrder byte_order = ByteOrder::kBig;
  ByteOrder word_order = ByteOrder::kBig;
  int poll_interval_ms = 50;
  // Register overrides by name (see docs/CONFIG.md for the names per kind), e.g.
  // registers = { sequence = 0, plate_text = 6 }.
  std::map<std::string, int> registers;
  // camera
  std::string encoding = "utf-8";      // "utf-8" | "gbk"
  int min_confidence = 800;            // 0..1000; reads below are dropped and counted
  int repeat_window_ms = 10000;        // same plate on the same lane within: suppressed
  // camera: how its plates arrive. "modbus" (default): the register map is polled over
  // `bus`. "vzenith" | "hikvision" | "dahua" | "generic": the camera pushes each
  // recognition over HTTP to the camera receiver ([cameras]); `bus` is then not allowed.
  std::string protocol = "modbus";
  std::string serial;        // push camera, required: its identity as it states it
                             // (Vzenith serialno, Hikvision MAC, Dahua DeviceID, generic id)
  std::string address;       // push camera: the only peer IP its pushes may come from
  std::string token_sha256;  // push camera, required: SHA-256 (64 hex) of its push token
  // push camera: the vendor's colour strings (Hikvision plateColor, Dahua PlateColor; the
  // spec marks them unconfirmed) -> BLUE | YELLOW | BLACK | WHITE | GREEN | LIMEGREEN.
  // A string without an entry sends the vehicle to manual handling.
  std::map<std::string, std::string> colours;
  int heartbeat_timeout_s = 90;  // push camera: no heartbeat and no push this long -> down
  int reply_wait_ms = 1500;      // vzenith: the reply waits this long for the decision
  bool push() const { return kind == DeviceKind::kCamera && protocol != "modbus"; }
  // barrier
  int open_confirm_timeout_ms = 5000;
  int open_retries = 2;
  int down_after_failures = 3;         // consecutive failed polls before `down`
};

struct SerialPortSection {
  std::string id;
  std::string device;                  // /dev/ttyS0 or a pty path
  int baud = 9600;
  char parity = 'N';
  int data_bits = 8;
  int stop_bits = 1;
};

enum class LaneMode { kParkingEntry, kParkingExit, kTollExit, kTaxi };

struct LaneSection {
  std::string id;
  LaneMode mode = LaneMode::kParkingEntry;
  std::string name;                    // the loader sets it to `id` when the key is absent
  // Device ids (of the matching DeviceKind); which are required depends on the mode
  // (docs/CONFIG.md, "[[lane]]"); a device is used by at most one lane.
  std::string camera;
  std::string loop;
  std::string barrier;
  std::string display;
  std::string roadside_unit;           // toll-exit
  std::string meter;                   // taxi: id of a [[meter]]
  std::string code_reader;            // taxi: id of a [[reader]] (optional): payment codes
  // taxi: the terminal's ISU id (JT/T 905 header, 12 BCD digits) for the regulator upload;
  // required when [regulator] is enabled.
  std::string isu_id;
  // taxi: after a trip record, how long the passenger may scan a payment code before the
  // terminal shows a Native QR instead (0: show the QR at once).
  int code_wait_ms = 20'000;
  // taxi: how long the QR (and the whole electronic payment window) stays open before the
  // trip is recorded as paid at the meter; the next trip's start ends it sooner.
  int qr_wait_s = 180;
  std::string tariff;                  // id of a parking tariff (parking modes) or a toll
                                       // tariff (toll-exit) that has a fare for station_id
  std::uint32_t station_id = 0;        // toll-exit: this exit's station id
  std::string exit_without_entry = "attendant";  // parking-exit: "attendant" | "daily_cap"
  // toll-exit: a plate read and a roadside-unit record pair only when they arrive within
  // this long of each other; a lone one expires after it (attendant).
  int pair_window_ms = 5000;
  // parking and toll lanes with a loop: a vehicle present this long with no valid plate
  // read is a no-plate vehicle (display, API event, metric; an attendant enters the plate
  // or opens with a reason). 0 = off.
  int no_plate_after_ms = 6000;
};

struct ParkingTariff {
  std::string id;
  int free_minutes = 15;
  int unit_minutes = 30;
  Money day_rate = Money::from_fen(300);     // per unit
  Money night_rate = Money::from_fen(100);   // per unit
  int day_start_minute = 8 * 60;             // local minutes after midnight
  int night_start_minute = 20 * 60;
  Money daily_cap = Money::from_fen(3000);   // per 24 h from entry
  std::string rounding = "up";               // "up" | "down": partial units
  // An entry older than this at exit (or stamped after the exit) is not charged
  // automatically: a box booted with a reset real-time clock must not bill decades.
  int max_stay_days = 90;
};

struct TollFare {
  std::uint32_t entry_station = 0;
  std::uint32_t exit_station = 0;
  int vehicle_class = 1;                     // 1..16
  Money fare;
};

// A toll station ([[station]]): the ETC deduction names the entrance and the exit by
// station name, the roadside unit and the fare table by id.
struct Station {
  std::uint32_t id = 0;
  std::string name;  // e.g. "沿江深圳-大铲湾"
};

struct TollTariff {
  std::string id;
  std::vector<TollFare> fares;
};

struct OfflineLimits {
  Money per_transaction = Money::from_fen(5000);
  Money per_plate_outstanding = Money::from_fen(20000);
  Money site_exposure = Money::from_fen(500000);
  int binding_max_age_s = 24 * 3600;
};

struct QueueLimits {
  std::int64_t max_rows = 1'000'000;
  std::int64_t max_bytes = 512LL * 1024 * 1024;
  int acked_retention_hours = 72;
  int max_in_flight = 8;
  int rate_per_second = 50;
  int retry_base_ms = 1000;
  int retry_cap_ms = 300'000;
  int lease_ms = 60'000;  // covers one charge work item: config/src/cross_checks.cc
  int drain_interval_ms = 1000;
};

// [cameras]: the receiver of plate cameras that push over HTTP, and their evidence images.
struct CamerasSection {
  // Empty: the camera routes are served on the API listener. Otherwise a dedicated plain
  // HTTP listener (cameras post without TLS) on this address and port.
  std::string listen_address;
  int listen_port = 0;
  std::int64_t max_body_bytes = 8 * 1024 * 1024;  // a push with its images
  int evidence_retention_days = 30;               // images older are removed
  std::int64_t evidence_max_mb = 2048;            // the oldest are removed above this
};

struct PlateRules {
  // Province characters accepted as the first plate character, one UTF-8 character
  // each. Default: the 31 mainland abbreviations (same list as mainland_provinces() in
  // config/defaults.h); 使/领 are excluded.
  std::vector<std::string> provinces = {"京", "津", "沪", "渝", "冀", "豫", "云", "辽",
                                        "黑", "湘", "皖", "鲁", "新", "苏", "浙", "赣",
                                        "鄂", "桂", "甘", "晋", "蒙", "陕", "吉", "闽",
                                        "贵", "粤", "青", "藏", "川", "宁", "琼"};
  // Accept 8-character new-energy plates at all; false switches off both new-energy forms
  // whatever `forms` says (kept for configs written before `forms`).
  bool allow_new_energy = true;
  // Plate forms accepted for automatic charging, by the names of lane::form_name()
  // (spec lane-devices.md "Plates (GA 36 civil plates)"). Default: all ten.
  std::vector<std::string> forms = {"ordinary",         "coach",           "trailer",   "police",
                                    "hong_kong",        "macau",           "consulate", "embassy",
                                    "new_energy_small", "new_energy_large"};
  // New-energy class letters accepted (GA 36-2018 defines D and F; validators since 2021
  // also accept A B C E G H J K, *unconfirmed*). Upper-case, each at most once.
  std::string new_energy_letters = "ABCDEFGHJK";
};

struct Config {
  std::filesystem::path source;              // file it was loaded from
  GatewaySection gateway;
  ApiSection api;
  ProviderSection provider;
  InvoicingSection invoicing;
  RegulatorSection regulator;
  FleetSection fleet;
  CamerasSection cameras;
  std::vector<BusSection> buses;
  std::vector<DeviceSection> devices;
  std::vector<SerialPortSection> meters;
  std::vector<SerialPortSection> readers;
  std::vector<LaneSection> lanes;
  std::vector<ParkingTariff> parking_tariffs;
  std::vector<TollTariff> toll_tariffs;
  std::vector<Station> stations;
  OfflineLimits offline;
  QueueLimits queue;
  PlateRules plates;

  const BusSection* find_bus(std::string_view id) const;
  const DeviceSection* find_device(std::string_view id) const;
  const LaneSection* find_lane(std::string_view id) const;
  const Station* find_station(std::uint32_t id) const;
};

// One broken rule. Errors of one load are ordered by (line, column).
struct ConfigError {
  std::string file;
  int line = 0;      // 1-based, 0 when unknown
  int column = 0;
  std::string key;   // dotted path, e.g. "lane[2].mode"
  std::string rule;  // what was expected
  // "FILE:LINE:COL: KEY: RULE"
  std::string to_string() const;
};

using LoadResult = std::expected<Config, std::vector<ConfigError>>;

// Parses and validates; returns every error found, not just the first. Never throws
// (toml++ syntax errors become a ConfigError). Each call counts itself in the metrics
// lanegate_config_loads_total{result} and lanegate_config_errors_total.
// Thread-safety: pure functions, callable from any thread.
[[nodiscard]] LoadResult load_file(const std::filesystem::path& path);
// `source_name` is used as ConfigError::file and Config::source.
[[nodiscard]] LoadResult load_string(std::string_view toml, std::string_view source_name);

std::string_view to_string(LaneMode mode);
std::string_view to_string(DeviceKind kind);

}  // namespace lanegate::config
