#pragma once
// A provider sandbox on 127.0.0.1 (port 0, fresh state, the demo seed with its service
// provider's contract_notify_url pointed at a local receiver) and a raw HTTPS client that
// signs requests as the spec's "Signing a request" section says, written here from the
// spec and core/pki only: no gateway code, so these tests check the sandbox against the
// spec and nothing else.

#include <gtest/gtest.h>
#include <httplib.h>

#include <boost/json.hpp>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "../../unit/provider/provider_test_support.h"
#include "core/crypto.h"
#include "core/pki.h"
#include "core/time_format.h"
#include "sim/provider_sandbox.h"

namespace sandbox_test {

namespace json = boost::json;
using provider_test::demo_pki;
using provider_test::read_file;
using provider_test::trim;

// The demo seed (sim/seed/provider-demo.json).
inline const std::string kDirectMchid = "1900000001";
inline const std::string kDirectAppid = "wxd678efh567hg6787";
inline const std::string kSpMchid = "1900000100";
inline const std::string kSpAppid = "wxd678efh567hg6800";
inline const std::string kSubMchid = "1900000109";
inline const std::string kSubAppid = "wxd678efh567hg6909";
inline const std::string kPlate = "粤B12345";
inline const std::string kOpenid = "oLANEGATEdemo0001normal";
inline const std::string kSubOpenid = "oSUBdemo0001normal";
inline const std::string kContract = "wxLGdemoETCcontract0000000000001";         // 粤B12345
inline const std::string kOverdueContract = "wxLGdemoETCcontract0000000000003";  // 粤B66666
inline const std::string kUnboundContract = "wxLGdemoETCcontract0000000000009";  // 粤A00001

// Percent-encodes every byte outside RFC 3986's unreserved set, as a query value is sent
// and signed (spec: 粤B12345 -> %E7%B2%A4B12345).
inline std::string pct(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

struct HttpReply {
  int status = 0;
  std::string body;
  json::value json;  // null when the body is not JSON
  const json::object& obj() const { return json.as_object(); }
  std::string code() const {
    return json.is_object() && json.as_object().contains("code")
               ? std::string(json.at("code").as_string())
               : "";
  }
  std::string detail(std::string_view key) const {
    if (!json.is_object() || !json.as_object().contains("detail")) {
      return "";
    }
    const auto* v = json.at("detail").as_object().if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : "";
  }
};

inline std::set<std::string> keys(const json::object& o) {
  std::set<std::string> k;
  for (const auto& [key, value] : o) {
    k.emplace(key);
  }
  return k;
}

// An HTTPS notify receiver: records every POST, answers 204.
class Receiver {
 public:
  struct Delivery {
    httplib::Headers headers;
    std::string body;
  };
  Receiver() : server_((demo_pki() / "server.pem").c_str(), (demo_pki() / "server.key").c_str()) {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      deliveries_.push_back({req.headers, req.body});
      res.status = 204;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string url(std::string_view path) const {
    return "https://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  // Waits (bounded) for at least n deliveries.
  std::vector<Delivery> wait_for(std::size_t n) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(mu_);
        if (deliveries_.size() >= n) {
          return deliveries_;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::lock_guard lock(mu_);
    return deliveries_;
  }

 private:
  httplib::SSLServer server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Delivery> deliveries_;
};

class SandboxFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = lanegate::pki::load_private_key(demo_pki() / "merchant.key");
    ASSERT_TRUE(key);
    merchant_key_ = *key;
    merchant_serial_ = trim(read_file(demo_pki() / "merchant.serial"));
    auto platform = lanegate::pki::load_certificate(demo_pki() / "platform.pem");
    ASSERT_TRUE(platform);
    platform_ = *platform;
    apiv3_key_ = read_file(demo_pki() / "apiv3.key");
    // The demo seed, its provider's registered callback pointed at our receiver.
    std::string seed =
        read_file(std::filesystem::path(LANEGATE_SOURCE_DIR) / "sim/seed/provider-demo.json");
    const std::string from = "https://127.0.0.1:9/contract-notify";
    const auto at = seed.find(from);
    ASSERT_NE(at, std::string::npos) << "demo seed layout changed";
    seed.replace(at, from.size(), receiver_.url("/contract-notify"));
    provider_test::write_file(dir_.path() / "seed.json", seed);
    lanegate::sim::ProviderSandboxOptions o;
    o.pki_dir = demo_pki();
    o.seed_file = dir_.path() / "seed.json";
    o.db_file = dir_.path() / "sandbox.db";
    o.time_factor = 0.01;
    auto s = lanegate::sim::ProviderSandbox::start(o);
    ASSERT_TRUE(s) << s.error().to_string();
    sandbox_ = std::move(*s);
  }
  void TearDown() override {
    if (sandbox_) {
      sandbox_->stop();
    }
  }

  // Signs METHOD\nTARGET\nTIMESTAMP\nNONCE\nBODY\n with the merchant key (spec "Signing a
  // request"), sends it, and checks the reply's platform signature (spec "Verifying a
  // response") unless `signed_reply` is false (the bill file is not signed). No reply is a
  // test failure unless `expect_reply` is false (lost-reply faults); status stays 0.
  HttpReply call(const std::string& method, const std::string& target, const std::string& body = {},
                 const std::string& mchid = kSpMchid, bool signed_reply = true,
                 bool expect_reply = true) {
    const std::string ts = std::to_string(lanegate::SystemClock::instance().unix_seconds());
    const std::string nonce = *lanegate::crypto::random_token(32);
    auto sig = lanegate::pki::sign_sha256_rsa_base64(
        merchant_key_, method + "\n" + target + "\n" + ts + "\n" + nonce + "\n" + body + "\n");
    EXPECT_TRUE(sig);
    httplib::Headers headers{
        {"Authorization", "WECHATPAY2-SHA256-RSA2048 mchid=\"" + mchid + "\",nonce_str=\"" + nonce +
                              "\",timestamp=\"" + ts + "\",serial_no=\"" + merchant_serial_ +
                              "\",signature=\"" + sig.value_or("") + "\""},
        {"Accept", "application/json"}};
    httplib::SSLClient client("127.0.0.1", sandbox_->port());
    client.set_ca_cert_path((demo_pki() / "ca.pem").c_str());
    client.enable_server_certificate_verification(true);
    auto res = method == "GET" ? client.Get(target, headers)
                               : client.Post(target, headers, body, "application/json");
    HttpReply out;
    if (!res) {
      if (expect_reply) {
        ADD_FAILURE() << method << " " << target << ": no reply";
      }
      return out;
    }
    out.status = res->status;
    out.body = res->body;
    if (signed_reply) {
      const std::string message = res->get_header_value("Wechatpay-Timestamp") + "\n" +
                                  res->get_header_value("Wechatpay-Nonce") + "\n" + res->body +
                                  "\n";
      EXPECT_EQ(res->get_header_value("Wechatpay-Serial"), platform_.serial_hex);
      EXPECT_TRUE(lanegate::pki::verify_sha256_rsa_base64(
          platform_.public_key, message, res->get_header_value("Wechatpay-Signature")))
          << target;
    }
    boost::system::error_code ec;
    out.json = json::parse(out.body, ec);
    if (ec) {
      out.json = nullptr;
    }
    return out;
  }
  HttpReply post(const std::string& path, const json::object& body,
                 const std::string& mchid = kSpMchid) {
    return call("POST", path, json::serialize(body), mchid);
  }

  // Decrypts a notification envelope's resource with the APIv3 key (spec "Notifications").
  json::object open_resource(const std::string& envelope) {
    auto e = json::parse(envelope).as_object();
    const auto& r = e.at("resource").as_object();
    EXPECT_EQ(r.at("algorithm").as_string(), "AEAD_AES_256_GCM");
    auto sealed = lanegate::crypto::base64_decode(r.at("ciphertext").as_string());
    EXPECT_TRUE(sealed);
    auto plain =
        lanegate::pki::aes256gcm_decrypt(apiv3_key_, std::string(r.at("nonce").as_string()),
                                         std::string(r.at("associated_data").as_string()),
                                         std::string(sealed->begin(), sealed->end()));
    EXPECT_TRUE(plain) << (plain ? "" : plain.error().to_string());
    return plain ? json::parse(*plain).as_object() : json::object{};
  }

  std::string now_rfc3339(std::chrono::seconds offset = {}) const {
    return lanegate::format_rfc3339(lanegate::SystemClock::instance().now() + offset, {480});
  }
  std::string today() const {
    return lanegate::format_local_date(lanegate::SystemClock::instance().now(), {480});
  }

  provider_test::TempDir dir_;
  Receiver receiver_;
  lanegate::pki::PrivateKey merchant_key_;
  std::string merchant_serial_;
  lanegate::pki::Certificate platform_;
  std::string apiv3_key_;
  std::unique_ptr<lanegate::sim::ProviderSandbox> sandbox_;
};

}  // namespace sandbox_test
