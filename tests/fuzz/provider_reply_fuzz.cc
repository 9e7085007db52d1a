// Fuzz target: the payment provider's replies (outside bytes from the uplink). The reply
// parsers (transaction, error body, plate service, parking entry) are private to
// WechatPayClient, so the fuzzer drives the real client over real HTTPS against an
// in-process server on 127.0.0.1 that answers with the fuzzed bytes. Keys, the TLS
// certificate and the APIv3 key are made in LLVMFuzzerInitialize; 2xx replies are signed
// with the configured platform key, so the fuzzer reaches the parsers behind verification.
//   byte 0: bits 0-1 the call (charge, charge after ambiguity, query -- with bit 6 a codepay,
//           with bit 7 a payment query instead -- or one of bits 6-7:
//           plate service, parking entry, and in partner mode the ETC contract query and
//           the ETC charge), bits 2-4 the HTTP status, bit 5 leaves a 2xx unsigned;
//   rest:   the reply body.
// Properties (gateway/provider.h invariants): never crashes or leaks an exception; a
// result is only returned for a signed 2xx; a charge result is for the out_trade_no and
// amount sent (invariant 1); a 2xx to a charge that cannot be used, and any 5xx to a
// charge, is ambiguous (query_first), never a refusal (invariant 3); a 429 is retry_later.
#include <httplib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "fuzz_pki.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/money.h"
#include "core/pki.h"
#include "gateway/provider.h"
#include "gateway/provider_wechatpay.h"

namespace {

namespace gw = lanegate::gateway;
namespace pki = lanegate::pki;

constexpr std::string_view kPlatformSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
constexpr std::string_view kOutTradeNo = "LG20261122000001";

struct World {
  std::filesystem::path dir;
  std::unique_ptr<httplib::SSLServer> server;
  int port = 0;
  lanegate::FakeClock clock;
  pki::PrivateKey platform_key;
  std::mutex mu;
  int status = 200;
  bool sign = true;
  std::string body;
  std::unique_ptr<gw::WechatPayClient> client;
  std::unique_ptr<gw::WechatPayClient> partner;  // the same box as a special merchant
};

World* world = nullptr;

void answer(const httplib::Request&, httplib::Response& res) {
  std::lock_guard lock(world->mu);
  res.status = world->status;
  res.set_content(world->body, "application/json");
  if (world->status >= 200 && world->status < 300 && world->sign) {
    const std::string timestamp = std::to_string(world->clock.unix_seconds());
    const std::string nonce = "fuzzreplynonce";
    auto sig = pki::sign_sha256_rsa_base64(world->platform_key,
                                           timestamp + "\n" + nonce + "\n" + world->body + "\n");
    if (!sig) {
      fuzz_pki::die("sign reply");
    }
    res.set_header("Wechatpay-Timestamp", timestamp);
    res.set_header("Wechatpay-Nonce", nonce);
    res.set_header("Wechatpay-Serial", std::string(kPlatformSerial));
    res.set_header("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048");
    res.set_header("Wechatpay-Signature", *sig);
  }
}

gw::ChargeRequest sample_charge() {
  gw::ChargeRequest r;
  r.product = gw::Product::kParking;
  r.out_trade_no = std::string(kOutTradeNo);
  r.description = "停车费";
  r.amount = lanegate::Money::from_fen(1500);
  r.parking.parking_id = "5K8264ILTKCH16CQ250";
  r.parking.plate_number = "粤B888888";
  r.parking.plate_color = "BLUE";
  r.parking.start_time = world->clock.now() - std::chrono::hours(2);
  r.parking.end_time = world->clock.now();
  r.parking.parking_name = "Fuzz lot";
  r.parking.charging_duration_s = 7200;
  r.parking.device_id = "exit-1";
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lanegate::log::set_min_level(lanegate::log::Level::kError);
  world = new World();
  world->dir = fuzz_pki::make_scratch_dir("provider-reply-fuzz");
  const auto platform = fuzz_pki::generate_rsa();
  const auto merchant = fuzz_pki::generate_rsa();
  const auto tls = fuzz_pki::generate_rsa(/*with_certificate=*/true);
  auto key = pki::private_key_from_pem(platform.private_pem);
  if (!key) {
    fuzz_pki::die("platform key");
  }
  world->platform_key = *key;
  fuzz_pki::write_secret(world->dir / "merchant.key", merchant.private_pem);
  fuzz_pki::write_secret(world->dir / "apiv3.key", "0123456789abcdef0123456789ABCDEF");
  fuzz_pki::write_secret(world->dir / "platform.pub", platform.public_pem);
  fuzz_pki::write_secret(world->dir / "tls.crt", tls.certificate_pem);
  fuzz_pki::write_secret(world->dir / "tls.key", tls.private_pem);

  world->server = std::make_unique<httplib::SSLServer>((world->dir / "tls.crt").c_str(),
                                                       (world->dir / "tls.key").c_str());
  if (!world->server->is_valid()) {
    fuzz_pki::die("SSLServer");
  }
  world->server->set_keep_alive_max_count(1'000'000);  // one TLS handshake, not one per input
  world->server->set_tcp_nodelay(true);  // headers and body go out in separate writes
  world->server->Get(".*", answer);
  world->server->Post(".*", answer);
  world->port = world->server->bind_to_any_port("127.0.0.1");
  if (world->port <= 0) {
    fuzz_pki::die("bind 127.0.0.1");
  }
  std::thread([] { world->server->listen_after_bind(); }).detach();

  lanegate::config::ProviderSection config;
  config.base_url = "https://127.0.0.1:" + std::to_string(world->port);
  config.mchid = "1900000001";
  config.appid = "wxfuzz";
  config.merchant_serial_no = "FUZZMERCHANTSERIAL";
  config.merchant_private_key_file = world->dir / "merchant.key";
  config.apiv3_key_file = world->dir / "apiv3.key";
  config.platform_keys = {{std::string(kPlatformSerial), world->dir / "platform.pub"}};
  config.notify_url = "https://gw.example.cn/notify/wechatpay";
  config.verify_tls = false;          // self-signed test certificate
  config.certificate_refresh_s = 0;   // no background GET /v3/certificates
  config.connect_timeout_ms = 2000;
  config.charge_deadline_ms = 5000;   // generous: ASan and a busy CI machine
  config.request_timeout_ms = 5000;
  auto client = gw::WechatPayClient::create(config, world->clock);
  if (!client) {
    fprintf(stderr, "provider_reply_fuzz: %s\n", client.error().message.c_str());
    fuzz_pki::die("WechatPayClient::create");
  }
  world->client = std::move(*client);
  config.mode = lanegate::config::ProviderMode::kPartner;
  config.sp_mchid = config.mchid;
  config.sp_appid = config.appid;
  config.mchid.clear();
  config.appid.clear();
  config.sub_mchid = "1900000109";
  config.etc.bound_state = "BOUND";
  auto partner = gw::WechatPayClient::create(config, world->clock);
  if (!partner) {
    fuzz_pki::die("WechatPayClient::create (partner)");
  }
  world->partner = std::move(*partner);
  atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(world->dir, ec);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) {
    return 0;
  }
  static constexpr int kStatuses[] = {200, 200, 202, 400, 401, 404, 429, 500};
  const int call = data[0] & 3;
  const int status = kStatuses[(data[0] >> 2) & 7];
  const bool sign = (data[0] & 0x20) == 0;
  const bool ok_status = status >= 200 && status < 300;
  {
    std::lock_guard lock(world->mu);
    world->status = status;
    world->sign = sign;
    world->body.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  }
  world->clock.advance(std::chrono::seconds(1));
  auto check_failure = [&](const gw::ProviderFailure& f, bool is_charge) {
    if (f.error.message.empty()) {
      __builtin_trap();
    }
    // kNotFound is classify_reply's answer to 404 / ORDER_NOT_EXIST whatever the call; the
    // uplink only ever charges with kAfterAmbiguity and retries on it (see the report).
    const bool not_found = f.outcome == gw::Outcome::kNotFound;
    if (f.outcome == gw::Outcome::kOk) {
      __builtin_trap();
    }
    if (is_charge && ok_status && f.outcome != gw::Outcome::kQueryFirst &&
        f.outcome != gw::Outcome::kPark) {
      __builtin_trap();  // invariant 3: a 2xx to a charge is never a plain refusal
    }
    if (is_charge && status >= 500 && f.outcome != gw::Outcome::kQueryFirst && !not_found) {
      __builtin_trap();  // a 5xx to a charge is ambiguous
    }
    if (status == 429 && f.outcome != gw::Outcome::kRetryLater && !not_found &&
        !(is_charge && f.outcome == gw::Outcome::kQueryFirst)) {
      __builtin_trap();
    }
  };
  auto require_signed_2xx = [&] {
    if (!ok_status || !sign) {
      __builtin_trap();  // a result from an unverified or non-2xx reply
    }
  };
  switch (call) {
    case 0:
    case 1: {
      const auto request = sample_charge();
      auto t = world->client->charge(request, call == 0 ? gw::ChargeAttempt::kFirst
                                                        : gw::ChargeAttempt::kAfterAmbiguity);
      if (t) {
        require_signed_2xx();
        if (t->out_trade_no != request.out_trade_no || t->amount != request.amount) {
          __builtin_trap();  // invariant 1: the result is for the money we sent
        }
      } else {
        check_failure(t.error(), /*is_charge=*/true);
      }
      break;
    }
    case 2: {
      // Bits 6-7 (free for this call): the in-cab payment calls, whose replies read_payment
      // reads. codepay: a signed 2xx is ok or unknown, never a refusal; a 5xx is unknown;
      // its auth_code never reaches the failure text.
      if ((data[0] & 0x40) != 0) {
        constexpr std::string_view kAuthCode = "134567890123456789";
        gw::CodepayRequest r;
        r.out_trade_no = std::string(kOutTradeNo);
        r.description = "出租车车费";
        r.auth_code = std::string(kAuthCode);
        r.amount = lanegate::Money::from_fen(2350);
        r.store_out_id = "gw-1";
        auto p = world->client->codepay(r);
        if (p) {
          require_signed_2xx();
          if (p->out_trade_no.empty()) {
            __builtin_trap();
          }
        } else {
          const auto& f = p.error();
          if (f.error.message.empty() || f.outcome == gw::Outcome::kOk ||
              (ok_status && f.outcome != gw::Outcome::kQueryFirst) ||
              (status >= 500 && f.outcome != gw::Outcome::kQueryFirst) ||
              f.error.to_string().find(kAuthCode) != std::string::npos) {
            __builtin_trap();
          }
        }
        break;
      }
      if ((data[0] & 0x80) != 0) {
        auto p = world->client->query_payment(gw::PayProduct::kNative, kOutTradeNo);
        if (p) {
          require_signed_2xx();
          if (p->out_trade_no.empty()) {
            __builtin_trap();
          }
        } else {
          check_failure(p.error(), /*is_charge=*/false);
        }
        break;
      }
      auto t = world->client->query_transaction(gw::Product::kParking, kOutTradeNo);
      if (t) {
        require_signed_2xx();
        if (t->out_trade_no.empty()) {
          __builtin_trap();
        }
      } else {
        check_failure(t.error(), /*is_charge=*/false);
      }
      break;
    }
    default: {
      const int which = (data[0] >> 6) & 3;
      if (which == 2) {
        constexpr std::string_view kContract = "wxd678ef4Fwxd678ef4Fwxd678ef4F21";
        auto c = world->partner->query_etc_contract(kContract);
        if (c) {
          require_signed_2xx();
          if (c->contract_id != kContract || c->bind_state.empty()) {
            __builtin_trap();  // a contract answer is about the contract asked, with a state
          }
        } else {
          check_failure(c.error(), false);
        }
        break;
      }
      if (which == 3) {
        gw::ChargeRequest r;
        r.product = gw::Product::kHighway;
        r.out_trade_no = std::string(kOutTradeNo);
        r.description = "通行费";
        r.amount = lanegate::Money::from_fen(4550);
        r.contract_id = "wxd678ef4Fwxd678ef4Fwxd678ef4F21";
        r.highway.plate_number = "粤B888888";
        r.highway.start_time = world->clock.now() - std::chrono::hours(1);
        r.highway.end_time = world->clock.now();
        r.highway.entrance = "广州北";
        r.highway.exit = "深圳南";
        auto t = world->partner->charge(r, gw::ChargeAttempt::kFirst);
        if (t) {
          require_signed_2xx();
          if (t->out_trade_no != r.out_trade_no || t->amount != r.amount) {
            __builtin_trap();
          }
        } else {
          check_failure(t.error(), /*is_charge=*/true);
        }
        break;
      }
      if (which == 0) {
        auto s = world->client->find_plate_service({"", "粤B888888", "BLUE", "oFuzzOpenId"});
        if (s) {
          require_signed_2xx();
        } else {
          check_failure(s.error(), false);
        }
      } else {
        gw::ParkingEntryRequest r;
        r.out_parking_no = "P20261122000001";
        r.plate_number = "粤B888888";
        r.plate_color = "BLUE";
        r.start_time = world->clock.now();
        r.parking_name = "Fuzz lot";
        auto e = world->client->create_parking_entry(r);
        if (e) {
          require_signed_2xx();
          if (e->id.empty()) {
            __builtin_trap();
          }
        } else {
          check_failure(e.error(), false);
        }
      }
      break;
    }
  }
  return 0;
}
