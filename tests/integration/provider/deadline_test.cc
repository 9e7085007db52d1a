// Issue 13: cpp-httplib's timeouts are per read, so a provider that trickles its reply (or
// its TLS handshake) one byte at a time kept a call -- and the outbox lease around it --
// alive for as long as it liked. Every call must end by connect_timeout_ms +
// request_timeout_ms, with the usual outcome: a charge cut after its request may have left
// is ambiguous (query first); a call cut before the TLS handshake completed never left.
//
// The peers here are raw sockets and OpenSSL, not cpp-httplib's server (whose constructor
// ignores SIGPIPE for the whole process and would hide a client that raises it). Timing
// assertions are generous bounds (3 x the deadline), never tight.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "provider_fixture.h"

namespace provider_test {
namespace {

using namespace lanegate::gateway;
using std::chrono::milliseconds;

constexpr milliseconds kTrickle{100};  // one byte per read, far below any per-read timeout

// A listening TCP socket on 127.0.0.1, port 0.
int listen_loopback(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// Accepts with a short poll so the loop notices `stop`; -1 when stopping.
int accept_or_stop(int listener, const std::atomic<bool>& stop) {
  while (!stop.load()) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 20) > 0) {
      int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        return fd;
      }
    }
  }
  return -1;
}

// Writes from peer threads to a client that hung up must not kill the test with SIGPIPE;
// the signal is blocked in the peer's own threads only.
void block_sigpipe_in_this_thread() {
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
}

// HTTPS on 127.0.0.1 with the demo server certificate: reads one request, then sends a
// complete HTTP reply one byte every kTrickle, each byte its own TLS record.
class TrickleTlsServer {
 public:
  explicit TrickleTlsServer(const std::filesystem::path& pki) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx_, (pki / "server.pem").c_str()), 1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx_, (pki / "server.key").c_str(), SSL_FILETYPE_PEM), 1);
    listener_ = listen_loopback(&port_);
    EXPECT_GE(listener_, 0);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~TrickleTlsServer() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : handlers_) {
      t.join();
    }
    ::close(listener_);
    SSL_CTX_free(ctx_);
  }

  int port() const { return port_; }
  // Requests read completely (headers and body): the request had left the client.
  int requests() const { return requests_.load(); }

 private:
  void accept_loop() {
    for (;;) {
      int fd = accept_or_stop(listener_, stop_);
      if (fd < 0) {
        return;
      }
      std::lock_guard lock(mu_);
      handlers_.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    block_sigpipe_in_this_thread();
    timeval tv{5, 0};  // a client that vanished must not hold the handler forever
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1 && read_request(ssl)) {
      requests_.fetch_add(1);
      const std::string body =
          R"({"code":"SLOW","message":"this reply arrives one byte every 100 ms, )"
          R"(far longer than any deadline the client may have"})";
      const std::string reply =
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
          "Content-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body;
      for (char c : reply) {
        if (stop_.load() || SSL_write(ssl, &c, 1) != 1) {
          break;
        }
        std::this_thread::sleep_for(kTrickle);
      }
    }
    SSL_free(ssl);
    ::close(fd);
  }

  // Headers up to the blank line, then Content-Length bytes of body.
  static bool read_request(SSL* ssl) {
    std::string in;
    std::size_t want = std::string::npos;
    char buf[4096];
    for (;;) {
      std::size_t end = in.find("\r\n\r\n");
      if (end != std::string::npos && want == std::string::npos) {
        want = end + 4;
        std::size_t at = in.find("Content-Length: ");
        if (at != std::string::npos && at < end) {
          want += std::stoul(in.substr(at + 16));
        }
      }
      if (want != std::string::npos && in.size() >= want) {
        return true;
      }
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) {
        return false;
      }
      in.append(buf, static_cast<std::size_t>(n));
    }
  }

  SSL_CTX* ctx_ = nullptr;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::mutex mu_;
  std::vector<std::thread> handlers_;
  std::thread acceptor_;
};

// A TCP relay to `upstream` that passes the client's bytes at once and the server's bytes one
// every kTrickle: the TLS handshake itself arrives a byte at a time.
class TrickleRelay {
 public:
  explicit TrickleRelay(int upstream_port) : upstream_(upstream_port) {
    listener_ = listen_loopback(&port_);
    EXPECT_GE(listener_, 0);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~TrickleRelay() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : pumps_) {
      t.join();
    }
    ::close(listener_);
  }
  int port() const { return port_; }

 private:
  void accept_loop() {
    for (;;) {
      int client = accept_or_stop(listener_, stop_);
      if (client < 0) {
        return;
      }
      int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<std::uint16_t>(upstream_));
      if (::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(server);
        ::close(client);
        continue;
      }
      // Shared by both pumps; closed by the last one out.
      auto open = std::make_shared<std::atomic<int>>(2);
      auto done = [open, client, server] {
        ::shutdown(client, SHUT_RDWR);
        ::shutdown(server, SHUT_RDWR);
        if (open->fetch_sub(1) == 1) {
          ::close(client);
          ::close(server);
        }
      };
      pumps_.emplace_back([this, client, server, done] {
        pump(client, server, milliseconds(0));
        done();
      });
      pumps_.emplace_back([this, client, server, done] {
        pump(server, client, kTrickle);
        done();
      });
    }
  }

  // Copies from `from` to `to`; with a period, one byte per period.
  void pump(int from, int to, milliseconds period) {
    char buf[4096];
    while (!stop_.load()) {
      pollfd p{from, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) {
        continue;
      }
      ssize_t n = ::recv(from, buf, period.count() > 0 ? 1 : sizeof buf, 0);
      if (n <= 0) {
        return;
      }
      if (::send(to, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) {
        return;
      }
      if (period.count() > 0) {
        std::this_thread::sleep_for(period);
      }
    }
  }

  int upstream_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> pumps_;  // only the acceptor thread adds, joined after it
  std::thread acceptor_;
};

class DeadlineTest : public ProviderFixture {
 protected:
  void SetUp() override {}  // no sandbox: the peers here misbehave on purpose

  // The fixture's deployment-like config against `port`: D = 500 + 1000 = 1500 ms.
  lanegate::config::ProviderSection slow_peer_config(int port) {
    lanegate::config::ProviderSection c;
    c.base_url = "https://127.0.0.1:" + std::to_string(port);
    c.mchid = kMchid;
    c.appid = kAppid;
    c.merchant_serial_no = trim(read_file(demo_pki() / "merchant.serial"));
    c.merchant_private_key_file = demo_pki() / "merchant.key";
    c.apiv3_key_file = demo_pki() / "apiv3.key";
    c.platform_keys = {
        {trim(read_file(demo_pki() / "platform.serial")), demo_pki() / "platform.pem"}};
    c.notify_url = "https://127.0.0.1:9/notify";
    c.ca_file = demo_pki() / "ca.pem";
    c.verify_tls = true;
    c.connect_timeout_ms = 500;
    c.request_timeout_ms = 1000;
    return c;
  }

  static constexpr milliseconds kDeadline{500 + 1000};
  static constexpr milliseconds kBound = 3 * kDeadline;  // generous: a loaded machine passes

  template <typename F>
  static milliseconds timed(F&& f) {
    const auto start = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
  }
};

TEST_F(DeadlineTest, AChargeWhoseReplyTricklesEndsByItsDeadlineAndIsQueriedFirst) {
  TrickleTlsServer server(demo_pki());
  auto c = client(slow_peer_config(server.port()));
  ASSERT_NE(c, nullptr);
  ProviderResult<ProviderTransaction> r;
  const milliseconds took =
      timed([&] { r = c->charge(parking_charge("LGSLOW0001", "P1", 300), ChargeAttempt::kFirst); });
  ASSERT_FALSE(r);
  // The request had left: the provider may hold the charge. Query before any resend.
  EXPECT_EQ(r.error().outcome, Outcome::kQueryFirst) << r.error().error.to_string();
  EXPECT_EQ(server.requests(), 1);
  EXPECT_NE(r.error().error.message.find("deadline of 1500 ms passed"), std::string::npos)
      << r.error().error.message;
  EXPECT_LT(took, kBound) << "the call did not end by its deadline";
}

TEST_F(DeadlineTest, AQueryWhoseReplyTricklesEndsByItsDeadlineAndRetriesLater) {
  TrickleTlsServer server(demo_pki());
  auto c = client(slow_peer_config(server.port()));
  ASSERT_NE(c, nullptr);
  ProviderResult<ProviderTransaction> r;
  const milliseconds took =
      timed([&] { r = c->query_transaction(Product::kParking, "LGSLOW0002"); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().outcome, Outcome::kRetryLater) << r.error().error.to_string();
  EXPECT_NE(r.error().error.message.find("deadline"), std::string::npos) << r.error().error.message;
  EXPECT_LT(took, kBound);

  // A connection cut at its deadline is not pooled: the next call opens a fresh one, and it
  // too ends by its deadline.
  const milliseconds again =
      timed([&] { r = c->query_transaction(Product::kParking, "LGSLOW0002"); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().outcome, Outcome::kRetryLater);
  EXPECT_LT(again, kBound);
  EXPECT_EQ(c->TEST_connections_opened(), 2);
}

TEST_F(DeadlineTest, AChargeWhoseTlsHandshakeTricklesEndsByItsDeadlineAndNeverLeft) {
  TrickleTlsServer server(demo_pki());
  TrickleRelay relay(server.port());
  auto c = client(slow_peer_config(relay.port()));
  ASSERT_NE(c, nullptr);
  ProviderResult<ProviderTransaction> r;
  const milliseconds took =
      timed([&] { r = c->charge(parking_charge("LGSLOW0003", "P1", 300), ChargeAttempt::kFirst); });
  ASSERT_FALSE(r);
  // Cut inside the handshake: the request was never written, so it is safe to send again.
  EXPECT_EQ(r.error().outcome, Outcome::kRetryLater) << r.error().error.to_string();
  EXPECT_EQ(r.error().http_status, 0);
  EXPECT_EQ(server.requests(), 0);
  EXPECT_LT(took, kBound) << "the call did not end by its deadline";
}

}  // namespace
}  // namespace provider_test
