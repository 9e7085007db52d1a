// Fuzz target: provider notifications (outside bytes from the internet, POSTed to the
// notify_url). The handler is the real one (gateway/provider_notify.h) on a real SQLite
// file, with a platform key and an APIv3 key generated in LLVMFuzzerInitialize, so the
// fuzzer also gets past the signature and the decryption:
//   mode 0 (first byte % 3 == 0): the rest is raw headers and body, split at '\n'
//          (timestamp, nonce, signature, serial, signature type, body) -> signature checks;
//   mode 1: the rest is the body, signed with the platform key -> envelope parsing;
//   mode 2: the rest is the decrypted resource JSON of an envelope of the event type the
//          second byte picks, encrypted with the APIv3 key and signed -> resource parsing,
//          deduplication and the database.
// Properties: never crashes or leaks an exception; the status is 204, 400, 401 or 500;
// a refusal has a FAIL body and no event; 204 carries the event; a transaction event has
// an out_trade_no; delivering the same accepted request again is answered 204 duplicate
// (invariant 2: applied exactly once) and `apply` ran at most once per event id.
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "fuzz_pki.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/pki.h"
#include "core/sqlite.h"
#include "gateway/provider_notify.h"
#include "gateway/provider_wechatpay.h"

namespace {

namespace gw = lanegate::gateway;
namespace pki = lanegate::pki;

constexpr std::string_view kSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
constexpr std::string_view kApiV3Key = "0123456789abcdef0123456789ABCDEF";  // 32 bytes

struct World {
  std::filesystem::path dir;
  lanegate::FakeClock clock;
  pki::PrivateKey platform_key;
  std::unique_ptr<lanegate::Database> db;
  std::unique_ptr<gw::NotificationHandler> handler;
  std::set<std::string> applied;  // event ids `apply` ran for
};

World* world = nullptr;

std::string timestamp_now() { return std::to_string(world->clock.unix_seconds()); }

gw::NotificationRequest signed_request(std::string body) {
  gw::NotificationRequest r;
  r.timestamp = timestamp_now();
  r.nonce = "fuzznonce";
  r.serial = std::string(kSerial);
  r.signature_type = "WECHATPAY2-SHA256-RSA2048";
  auto sig =
      pki::sign_sha256_rsa_base64(world->platform_key, r.timestamp + "\n" + r.nonce + "\n" + body +
                                                           "\n");
  if (!sig) {
    fuzz_pki::die("sign");
  }
  r.signature = *sig;
  r.body = std::move(body);
  return r;
}

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out + "\"";
}

void check(const gw::NotificationReply& reply) {
  switch (reply.status) {
    case 204:
      if (!reply.event || !reply.body.empty()) {
        __builtin_trap();
      }
      if (const auto* t = std::get_if<gw::TransactionEvent>(&reply.event->payload);
          t != nullptr && reply.event->event_type.starts_with("TRANSACTION.") &&
          t->transaction.out_trade_no.empty()) {
        __builtin_trap();
      }
      break;
    case 400:
    case 401:
    case 500:
      if (reply.event || reply.body.find("FAIL") == std::string::npos) {
        __builtin_trap();
      }
      break;
    default:
      __builtin_trap();
  }
}

lanegate::Status apply(lanegate::Transaction&, const gw::NotificationEvent& event) {
  if (!world->applied.insert(event.event_id).second) {
    __builtin_trap();  // applied twice
  }
  return {};
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Refusals are logged by design; the fuzzer's output stays readable without them.
  lanegate::log::set_min_level(lanegate::log::Level::kError);
  world = new World();
  world->dir = fuzz_pki::make_scratch_dir("notification-fuzz");
  auto key = pki::private_key_from_pem(fuzz_pki::generate_rsa().private_pem);
  if (!key) {
    fuzz_pki::die("private_key_from_pem");
  }
  world->platform_key = *key;
  auto pub = pki::public_key_of(*key);
  if (!pub) {
    fuzz_pki::die("public_key_of");
  }
  auto keys = std::make_shared<gw::PlatformKeySet>();
  keys->put(std::string(kSerial), *pub);
  auto db = lanegate::Database::open(world->dir / "gateway.db");
  if (!db) {
    fuzz_pki::die("Database::open");
  }
  world->db = std::make_unique<lanegate::Database>(std::move(*db));
  if (!world->db->migrate(gw::provider_schema_steps())) {
    fuzz_pki::die("migrate");
  }
  world->handler = std::make_unique<gw::NotificationHandler>(*world->db, keys,
                                                             std::string(kApiV3Key), world->clock);
  // The database file is scratch: removed at exit (even when the fuzzer stops on a crash
  // the directory is in /dev/shm and small).
  atexit([] {
    std::error_code ec;
    world->handler.reset();
    world->db.reset();
    std::filesystem::remove_all(world->dir, ec);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const int mode = data[0] % 3;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  world->clock.advance(std::chrono::seconds(1));  // distinct timestamps, never stale
  gw::NotificationRequest request;
  if (mode == 0) {
    std::string* parts[] = {&request.timestamp, &request.nonce,          &request.signature,
                            &request.serial,    &request.signature_type, &request.body};
    std::size_t i = 0;
    for (char c : rest) {
      if (c == '\n' && i + 1 < std::size(parts)) {
        ++i;
      } else {
        parts[i]->push_back(c);
      }
    }
  } else if (mode == 1) {
    request = signed_request(std::string(rest));
  } else {
    static constexpr std::string_view kTypes[] = {"TRANSACTION.SUCCESS", "TRANSACTION.PAY_BACK",
                                                  "VEHICLE.ENTRANCE_STATE_CHANGE",
                                                  "VEHICLE.USER_STATE_CHANGE"};
    const std::string_view type = kTypes[static_cast<std::uint8_t>(rest[0]) % std::size(kTypes)];
    const std::string_view plain = rest.substr(1);
    const std::string nonce = "0123456789ab";
    const std::string aad = "transaction";
    auto sealed = pki::aes256gcm_encrypt(kApiV3Key, nonce, aad, plain);
    if (!sealed) {
      fuzz_pki::die("aes256gcm_encrypt");
    }
    // Event ids repeat across inputs on purpose (the fuzzer reaches the dedup paths).
    const std::string id = "EV-" + lanegate::crypto::sha256_hex(plain).substr(0, 2);
    std::string body = "{\"id\":" + json_quote(id) + ",\"create_time\":\"2026-11-22T10:00:00+08:00\"," +
                       "\"event_type\":" + json_quote(type) +
                       ",\"resource_type\":\"encrypt-resource\",\"summary\":\"fuzz\"," +
                       "\"resource\":{\"algorithm\":\"AEAD_AES_256_GCM\",\"ciphertext\":" +
                       json_quote(lanegate::crypto::base64_encode(*sealed)) +
                       ",\"associated_data\":" + json_quote(aad) +
                       ",\"original_type\":\"transaction\",\"nonce\":" + json_quote(nonce) + "}}";
    request = signed_request(std::move(body));
  }
  auto reply = world->handler->handle(request, apply);
  check(reply);
  if (reply.status == 204) {
    auto again = world->handler->handle(request, apply);
    check(again);
    if (again.status != 204 || !again.event || !again.event->duplicate) {
      __builtin_trap();  // a redelivery must be recognised, never applied again
    }
  }
  return 0;
}
