#pragma once
// A small blocking HTTPS client over OpenSSL for the hostile-input tests: unlike an HTTP
// library it sends exactly the bytes a test wants (oversized headers, bodies that never
// finish, one byte at a time), lets a test pin the TLS version and cipher offered, and
// binds a chosen loopback source address (another "client" for per-address limits).
// Every read is bounded by a receive timeout: no test can hang on it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace lanegate::hostile {

struct TlsOptions {
  int min_version = 0;  // e.g. TLS1_1_VERSION; 0: library default
  int max_version = 0;
  std::string cipher_list;     // TLS 1.2 and below; empty: default
  std::string ciphersuites;    // TLS 1.3; empty: default
  std::string source_address;  // e.g. "127.0.0.2"; empty: any
  std::chrono::milliseconds read_timeout{10000};
};

struct HttpReply {
  int status = 0;                              // 0: no (complete) answer
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class TlsConn {
 public:
  ~TlsConn() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }
  TlsConn(const TlsConn&) = delete;
  TlsConn& operator=(const TlsConn&) = delete;

  // Connects and completes the handshake; nullptr when either fails (error() says why).
  static std::unique_ptr<TlsConn> connect(int port, const std::string& ca_file, const TlsOptions& o,
                                          std::string* error = nullptr) {
    std::unique_ptr<TlsConn> c(new TlsConn());
    auto fail = [&](std::string why) -> std::unique_ptr<TlsConn> {
      unsigned long e = 0;
      while ((e = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        why += std::string(" | ") + buf;
      }
      if (error != nullptr) *error = why;
      return nullptr;
    };
    c->ctx_ = SSL_CTX_new(TLS_client_method());
    if (c->ctx_ == nullptr) return fail("SSL_CTX_new");
    // Security level 0 so that the refusal of old versions or weak ciphers comes from
    // the server, not from this client's own policy.
    SSL_CTX_set_security_level(c->ctx_, 0);
    if (o.min_version != 0) SSL_CTX_set_min_proto_version(c->ctx_, o.min_version);
    if (o.max_version != 0) SSL_CTX_set_max_proto_version(c->ctx_, o.max_version);
    if (!o.cipher_list.empty() && SSL_CTX_set_cipher_list(c->ctx_, o.cipher_list.c_str()) != 1) {
      return fail("cipher list");
    }
    if (!o.ciphersuites.empty() && SSL_CTX_set_ciphersuites(c->ctx_, o.ciphersuites.c_str()) != 1) {
      return fail("ciphersuites");
    }
    if (SSL_CTX_load_verify_locations(c->ctx_, ca_file.c_str(), nullptr) != 1)
      return fail("CA file");
    SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_PEER, nullptr);
    c->fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd_ < 0) return fail("socket");
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(o.read_timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((o.read_timeout.count() % 1000) * 1000);
    setsockopt(c->fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (!o.source_address.empty()) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      inet_pton(AF_INET, o.source_address.c_str(), &src.sin_addr);
      if (::bind(c->fd_, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0)
        return fail("bind source");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (::connect(c->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      return fail("connect");
    c->ssl_ = SSL_new(c->ctx_);
    SSL_set_fd(c->ssl_, c->fd_);
    SSL_set_tlsext_host_name(c->ssl_, "localhost");
    SSL_set1_host(c->ssl_, "127.0.0.1");
    if (SSL_connect(c->ssl_) != 1) return fail("handshake");
    return c;
  }

  std::string version() const { return SSL_get_version(ssl_); }
  std::string cipher() const { return SSL_CIPHER_get_name(SSL_get_current_cipher(ssl_)); }

  // False when the peer closed or the write failed.
  bool write(std::string_view bytes) {
    while (!bytes.empty()) {
      const int n = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Reads until the peer closes, an error, or the read timeout (then `timed_out`).
  std::string read_all(bool* timed_out = nullptr) {
    std::string out;
    char buf[16384];
    for (;;) {
      const int n = SSL_read(ssl_, buf, sizeof buf);
      if (n > 0) {
        out.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      const int err = SSL_get_error(ssl_, n);
      if (timed_out != nullptr) {
        *timed_out = err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK);
      }
      return out;
    }
  }

  // True when the server closed the connection (EOF or reset) before the read timeout.
  bool closed_by_peer() {
    bool timed_out = false;
    (void)read_all(&timed_out);
    return !timed_out;
  }

 private:
  TlsConn() = default;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
};

inline HttpReply parse_reply(const std::string& raw) {
  HttpReply r;
  const std::size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos || raw.size() < 12 || !raw.starts_with("HTTP/1.1 ")) return r;
  r.status = std::atoi(raw.substr(9, 3).c_str());
  std::size_t pos = raw.find("\r\n") + 2;
  while (pos < end) {
    const std::size_t eol = raw.find("\r\n", pos);
    const std::string line = raw.substr(pos, eol - pos);
    const std::size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers[name] = value;
    }
    pos = eol + 2;
  }
  r.body = raw.substr(end + 4);
  return r;
}

// Request text with Host, Connection: close and Content-Length set.
inline std::string request_text(std::string_view method, std::string_view target,
                                const std::map<std::string, std::string>& headers,
                                std::string_view body) {
  std::string s =
      std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  s += "Connection: close\r\n";
  for (const auto& [k, v] : headers) s += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST")
    s += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  s += "\r\n";
  s += body;
  return s;
}

}  // namespace lanegate::hostile
