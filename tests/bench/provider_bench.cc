// Provider protocol cost on loopback:
//   BM_Charge/threads:N       charges/s through WechatPayClient -> sandbox (N in flight)
//   BM_RawHttplib/threads:N   plain cpp-httplib POSTs to the same HTTPS server, no signatures
//   BM_SignAndVerify          client-side sign + verify of one request/reply pair
// The ratio raw/charge is the price of the protocol (signatures both ways, JSON, the
// sandbox's SQLite commit). Numbers depend on the machine; run alone for stable figures.
#include <benchmark/benchmark.h>
#include <httplib.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "config/config.h"
#include "core/clock.h"
#include "core/pki.h"
#include "gateway/provider_wechatpay.h"
#include "sim/provider_sandbox.h"

namespace {

using namespace lanegate;

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  std::string out = s.str();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) {
    out.pop_back();
  }
  return out;
}

struct World {
  std::filesystem::path dir;
  std::filesystem::path pki;
  std::unique_ptr<sim::ProviderSandbox> sandbox;
  std::unique_ptr<gateway::WechatPayClient> client;
  std::string parking_id;
  std::atomic<std::int64_t> next{0};

  World() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "lanegate-bench-XXXXXX").string();
    dir = mkdtemp(tmpl.data());
    pki = std::filesystem::path(LANEGATE_BINARY_DIR) / "test-cache" / "provider-pki";
    std::filesystem::create_directories(pki.parent_path());
    std::string cmd = "flock '" + pki.string() + ".lock' " + LANEGATE_SOURCE_DIR +
                      "/scripts/make-demo-pki '" + pki.string() + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::abort();
    }
    sim::ProviderSandboxOptions o;
    o.pki_dir = pki;
    o.seed_file = std::filesystem::path(LANEGATE_SOURCE_DIR) / "sim/seed/provider-demo.json";
    o.db_file = dir / "sandbox.db";
    auto s = sim::ProviderSandbox::start(o);
    if (!s) {
      std::abort();
    }
    sandbox = std::move(*s);
    sim::ProviderFaults quiet;
    quiet.notifications_paused = true;  // measure charges, not deliveries to nowhere
    sandbox->set_faults(quiet);
    config::ProviderSection c;
    c.base_url = sandbox->base_url();
    c.mchid = "1900000001";
    c.appid = "wxd678efh567hg6787";
    c.merchant_serial_no = slurp(pki / "merchant.serial");
    c.merchant_private_key_file = pki / "merchant.key";
    c.apiv3_key_file = pki / "apiv3.key";
    c.platform_keys = {{slurp(pki / "platform.serial"), pki / "platform.pem"}};
    c.notify_url = "https://127.0.0.1:9/notify";
    c.ca_file = pki / "ca.pem";
    auto made = gateway::WechatPayClient::create(c);
    if (!made) {
      std::abort();
    }
    client = std::move(*made);
    gateway::ParkingEntryRequest e;
    e.out_parking_no = "BENCH-IN-1";
    e.plate_number = "粤B12345";
    e.plate_color = "BLUE";
    e.start_time = SystemClock::instance().now();
    e.parking_name = "bench lot";
    auto entry = client->create_parking_entry(e);
    if (!entry) {
      std::abort();
    }
    parking_id = entry->id;
  }
  ~World() {
    sandbox->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

World& world() {
  static World w;
  return w;
}

void BM_Charge(benchmark::State& state) {
  World& w = world();
  gateway::ChargeRequest r;
  r.product = gateway::Product::kParking;
  r.description = "停车费";
  r.amount = Money::from_fen(500);
  r.parking.parking_id = w.parking_id;
  r.parking.plate_number = "粤B12345";
  r.parking.plate_color = "BLUE";
  r.parking.start_time = SystemClock::instance().now();
  r.parking.end_time = r.parking.start_time;
  r.parking.parking_name = "bench lot";
  r.parking.device_id = "lane-1";
  std::int64_t failures = 0;
  for (auto _ : state) {
    r.out_trade_no = "BENCH" + std::to_string(w.next.fetch_add(1));
    auto t = w.client->charge(r, gateway::ChargeAttempt::kFirst);
    if (!t) {
      ++failures;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["failures"] = static_cast<double>(failures);
}
BENCHMARK(BM_Charge)->Threads(1)->Threads(4)->Threads(16)->UseRealTime()->MinTime(2.0);

void BM_RawHttplib(benchmark::State& state) {
  World& w = world();
  httplib::SSLClient client("127.0.0.1", w.sandbox->port());
  client.set_ca_cert_path((w.pki / "ca.pem").string());
  client.enable_server_certificate_verification(true);
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  const std::string body(420, 'x');  // about the size of a charge body
  std::int64_t failures = 0;
  for (auto _ : state) {
    auto res = client.Post("/sandbox/echo", body, "application/json");
    if (!res || res->status != 200) {
      ++failures;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["failures"] = static_cast<double>(failures);
}
BENCHMARK(BM_RawHttplib)->Threads(1)->Threads(4)->Threads(16)->UseRealTime()->MinTime(2.0);

// What the client adds per request: one SHA256withRSA signature (merchant key) and one
// verification (platform key). The sandbox does the mirror image on its side.
void BM_SignAndVerify(benchmark::State& state) {
  World& w = world();
  auto merchant = pki::load_private_key(w.pki / "merchant.key");
  auto platform_priv = pki::load_private_key(w.pki / "platform.key");
  auto keys = std::make_shared<gateway::PlatformKeySet>();
  keys->put("P", *pki::load_public_key(w.pki / "platform.pem"));
  gateway::ResponseVerifier verifier(keys, SystemClock::instance());
  const std::string body(420, 'x');
  std::string ts = std::to_string(SystemClock::instance().unix_seconds());
  auto reply_sig = pki::sign_sha256_rsa_base64(*platform_priv, ts + "\nN\n" + body + "\n");
  gateway::SignedMessage reply{ts, "N", *reply_sig, "P", "WECHATPAY2-SHA256-RSA2048", body};
  for (auto _ : state) {
    auto auth =
        gateway::authorization_header(*merchant, "1900000001", "SERIAL", "POST",
                                      "/v3/vehicle/transactions/parking", ts, "NONCE", body);
    benchmark::DoNotOptimize(auth);
    auto ok = verifier.verify(reply, "bench");
    benchmark::DoNotOptimize(ok);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SignAndVerify);

}  // namespace

BENCHMARK_MAIN();
