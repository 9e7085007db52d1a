// The local API as a client sees it, over a real socket.

#include "gateway/http_api.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <boost/asio/post.hpp>

#include "core/crypto.h"
#include "core/metrics.h"

namespace lanegate::gateway {
namespace {

using namespace std::chrono_literals;

constexpr const char* kOperatorToken = "op-secret-token";
constexpr const char* kAuditorToken = "audit-secret-token";

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::ApiSection cfg;
    cfg.listen_address = "127.0.0.1";
    cfg.listen_port = 0;
    cfg.max_body_bytes = 1024;
    cfg.header_timeout_ms = 300;
    cfg.tokens = {{"alice", "operator", crypto::sha256_hex(kOperatorToken)},
                  {"audit-office", "auditor", crypto::sha256_hex(kAuditorToken)}};
    api_ = std::make_unique<HttpApi>(io_, cfg);
    api_->add_route("GET", "/healthz", Access::open(), [](const HttpRequest&) {
      return HttpResponse::json(200, R"({"ok":true})");
    });
    api_->add_route("POST", "/api/v1/lanes/{id}/open", Access::only({Role::kOperator}), [](const HttpRequest& r) {
      return HttpResponse::json(200, "{\"lane\":\"" + r.params.at("id") + "\",\"by\":\"" + r.caller + "\",\"body\":" +
                                         std::to_string(r.body.size()) + "}");
    });
    api_->add_route("GET", "/api/v1/audit/packages", Access::only({Role::kAuditor}), [](const HttpRequest& r) {
      return HttpResponse::json(200, "{\"q\":\"" + (r.query.contains("date") ? r.query.at("date") : "") + "\"}");
    });
    auto port = api_->start();
    ASSERT_TRUE(port) << port.error().message;
    port_ = *port;
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    boost::asio::post(io_, [this] { api_->stop(); });
    io_.stop();
    thread_.join();
  }

  int connect_client() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    return fd;
  }

  // Reads until the server closes or `timeout` passes.
  static std::string read_all(int fd, std::chrono::milliseconds timeout = 5s, bool* closed = nullptr) {
    std::string out;
    if (closed != nullptr) *closed = false;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) != 1) continue;
      char buf[4096];
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        if (closed != nullptr) *closed = true;
        break;
      }
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }

  std::string raw(const std::string& request) {
    const int fd = connect_client();
    EXPECT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
    std::string resp = read_all(fd);
    close(fd);
    return resp;
  }

  std::string get(const std::string& target, const std::string& token = "") {
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
    if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
    return raw(req + "\r\n");
  }

  std::string post(const std::string& target, const std::string& body, const std::string& token = "") {
    std::string req = "POST " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n";
    if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
    return raw(req + "\r\n" + body);
  }

  static int status(const std::string& resp) { return resp.size() > 12 ? std::stoi(resp.substr(9, 3)) : 0; }

  boost::asio::io_context io_;
  std::unique_ptr<HttpApi> api_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

TEST_F(ApiTest, PublicRouteNeedsNoToken) {
  const auto r = get("/healthz");
  EXPECT_EQ(status(r), 200);
  EXPECT_NE(r.find(R"({"ok":true})"), std::string::npos);
}

TEST_F(ApiTest, MissingOrUnknownTokenIs401AndTheWrongRoleIs403) {
  const auto none = post("/api/v1/lanes/exit-1/open", "{}");
  EXPECT_EQ(status(none), 401);
  EXPECT_NE(none.find("WWW-Authenticate: Bearer"), std::string::npos);
  EXPECT_EQ(status(post("/api/v1/lanes/exit-1/open", "{}", "guess")), 401);
  const auto wrong_role = post("/api/v1/lanes/exit-1/open", "{}", kAuditorToken);
  EXPECT_EQ(status(wrong_role), 403);
  EXPECT_NE(wrong_role.find("auditor"), std::string::npos);
  EXPECT_EQ(status(get("/api/v1/audit/packages", kOperatorToken)), 403);
  EXPECT_GE(metrics::Registry::global().value("lanegate_api_auth_failures_total", {{"reason", "wrong_role"}}), 2);
}

TEST_F(ApiTest, TheRightTokenReachesTheHandlerWithPathParamsAndCaller) {
  const auto r = post("/api/v1/lanes/exit-1/open", "{\"reason\":\"x\"}", kOperatorToken);
  EXPECT_EQ(status(r), 200);
  EXPECT_NE(r.find(R"("lane":"exit-1","by":"alice","body":14)"), std::string::npos) << r;
  const auto q = get("/api/v1/audit/packages?date=2026-11-22", kAuditorToken);
  EXPECT_NE(q.find(R"("q":"2026-11-22")"), std::string::npos) << q;
}

TEST_F(ApiTest, UnknownPathIs404AndWrongMethodIs405) {
  EXPECT_EQ(status(get("/nope")), 404);
  EXPECT_EQ(status(get("/api/v1/lanes/exit-1/open", kOperatorToken)), 405);
}

TEST_F(ApiTest, OversizedBodyIs413AndOversizedHeadersAre431) {
  EXPECT_EQ(status(post("/api/v1/lanes/exit-1/open", std::string(2000, 'x'), kOperatorToken)), 413);
  const std::string big = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(10000, 'a') + "\r\n\r\n";
  EXPECT_EQ(status(raw(big)), 431);
}

TEST_F(ApiTest, PathTricksAreRefused) {
  EXPECT_EQ(status(get("/api/v1/lanes/..%2f..%2fetc/open", kOperatorToken)), 400);
  EXPECT_EQ(status(get("/api/v1/lanes/%2e%2e/open", kOperatorToken)), 400);
  EXPECT_EQ(status(post("/api/v1/lanes/../open", "", kOperatorToken)), 400);
  EXPECT_EQ(status(get("/healthz%zz")), 400);
  EXPECT_EQ(status(raw("GET healthz HTTP/1.1\r\nHost: x\r\n\r\n")), 400);
}

TEST_F(ApiTest, MalformedHttpIs400) {
  EXPECT_EQ(status(raw("NONSENSE\r\n\r\n")), 400);
}

TEST_F(ApiTest, ASlowClientIsDisconnectedAfterTheHeaderTimeout) {
  const int fd = connect_client();
  const std::string partial = "GET /healthz HTTP/1.1\r\nHost: x\r\n";  // never finishes its headers
  send(fd, partial.data(), partial.size(), MSG_NOSIGNAL);
  bool closed = false;
  // The configured header timeout is 300 ms; 10 s is only a bound on the test itself.
  const std::string got = read_all(fd, 10s, &closed);
  close(fd);
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(closed) << "the server kept a silent client open";
}

TEST(PercentDecode, DecodesAndRejectsMalformedEscapes) {
  EXPECT_EQ(*percent_decode("%E7%B2%A4B12345"), "粤B12345");
  EXPECT_FALSE(percent_decode("%E"));
  EXPECT_FALSE(percent_decode("%zz"));
  std::map<std::string, std::string> q;
  EXPECT_TRUE(parse_query("plate=%E7%B2%A4B12345&state=SUCCESS&empty", q));
  EXPECT_EQ(q["plate"], "粤B12345");
  EXPECT_EQ(q["state"], "SUCCESS");
  EXPECT_EQ(q["empty"], "");
}

}  // namespace
}  // namespace lanegate::gateway
