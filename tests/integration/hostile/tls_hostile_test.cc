// The API's TLS settings as a client sees them: TLS 1.0/1.1 and TLS 1.2 ciphers without
// forward secrecy or without AEAD are refused at the handshake (and counted); TLS 1.2
// ECDHE with AES-GCM or ChaCha20-Poly1305, and TLS 1.3, are accepted.

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <string>

#include "hostile_site.h"

namespace lanegate::hostile {
namespace {

bool handshake(const TlsOptions& o, std::string* version = nullptr, std::string* cipher = nullptr) {
  HostileSite& s = HostileSite::get();
  std::string why;
  auto c = TlsConn::connect(s.api_port(), s.ca(), o, &why);
  if (!c) return false;
  if (version != nullptr) *version = c->version();
  if (cipher != nullptr) *cipher = c->cipher();
  // The connection is usable for a request.
  c->write(request_text("GET", "/healthz", {}, {}));
  return parse_reply(c->read_all()).status == 200;
}

TlsOptions tls12(const char* ciphers) {
  TlsOptions o;
  o.min_version = TLS1_2_VERSION;
  o.max_version = TLS1_2_VERSION;
  o.cipher_list = ciphers;
  return o;
}

TEST_F(HostileTest, OldProtocolVersionsAreRefused) {
  const double before = site().metric("lanegate_api_refused_total", "reason=\"tls_handshake\"");
  for (int v : {TLS1_VERSION, TLS1_1_VERSION}) {
    TlsOptions o;
    o.min_version = v;
    o.max_version = v;
    o.cipher_list = "ALL:@SECLEVEL=0";
    EXPECT_FALSE(handshake(o)) << "TLS version " << std::hex << v << " was accepted";
  }
  EXPECT_EQ(site().metric("lanegate_api_refused_total", "reason=\"tls_handshake\""), before + 2);
}

TEST_F(HostileTest, CiphersWithoutForwardSecrecyOrAeadAreRefused) {
  for (const char* weak :
       {"AES128-GCM-SHA256",        // RSA key exchange: no forward secrecy
        "AES256-SHA256",            // no FS, CBC
        "ECDHE-RSA-AES128-SHA",     // FS but CBC + SHA-1 MAC
        "ECDHE-RSA-AES256-SHA384",  // FS but CBC
        "DHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-DES-CBC3-SHA", "RC4-SHA", "NULL-SHA256"}) {
    EXPECT_FALSE(handshake(tls12((std::string(weak) + ":@SECLEVEL=0").c_str())))
        << weak << " was accepted";
  }
}

TEST_F(HostileTest, ModernTlsIsAccepted) {
  std::string version, cipher;
  for (const char* good : {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                           "ECDHE-RSA-CHACHA20-POLY1305"}) {
    EXPECT_TRUE(handshake(tls12(good), &version, &cipher)) << good;
    EXPECT_EQ(version, "TLSv1.2");
    EXPECT_EQ(cipher, good);
  }
  TlsOptions o;
  o.min_version = TLS1_3_VERSION;
  EXPECT_TRUE(handshake(o, &version, &cipher));
  EXPECT_EQ(version, "TLSv1.3");
  // A client offering everything gets TLS 1.3.
  EXPECT_TRUE(handshake(TlsOptions{}, &version));
  EXPECT_EQ(version, "TLSv1.3");
}

TEST_F(HostileTest, AClientThatNeverHandshakesIsCutOff) {
  const double before = site().metric("lanegate_api_refused_total", "reason=\"tls_handshake\"");
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(site().api_port()));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  // Plain HTTP on the TLS port, then silence.
  const std::string plain = "GET /healthz HTTP/1.1\r\n";
  ASSERT_EQ(::write(fd, plain.data(), plain.size()), static_cast<ssize_t>(plain.size()));
  char buf[256];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
  }
  EXPECT_EQ(n, 0) << "the server did not close a connection that never completed TLS";
  ::close(fd);
  EXPECT_GE(site().metric("lanegate_api_refused_total", "reason=\"tls_handshake\""), before + 1);
}

}  // namespace
}  // namespace lanegate::hostile
