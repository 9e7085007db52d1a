// Hostile HTTP clients against the real lanegated API (TLS on, as in production):
// oversized headers and bodies, slow clients, malformed JSON, unknown fields, path
// tricks, missing/wrong tokens and a token of the wrong role. Each gets a clear error, is
// counted in a metric read back from /metrics, and leaves the stored money unchanged.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "hostile_site.h"

namespace lanegate::hostile {
namespace {

using namespace std::string_literals;

[[maybe_unused]] const auto* const kCleanup =
    ::testing::AddGlobalTestEnvironment(new HostileSiteCleanup);

std::string refused(std::string_view reason) { return "reason=\"" + std::string(reason) + "\""; }

TEST_F(HostileTest, OversizedBodyGets413AndIsCounted) {
  const std::string money = site().money_snapshot();
  const double before = site().metric("lanegate_api_refused_total", refused("body_too_large"));
  // Announced too large: refused from the Content-Length alone.
  const std::string body = "{\"reason\":\"" + std::string(kMaxBody * 4, 'x') + "\"}";
  HttpReply r = site().post_json_as(kOperatorToken, "/api/v1/lanes/entry-1/open", body);
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_NE(r.body.find("\"body_too_large\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(std::to_string(kMaxBody)), std::string::npos) << r.body;
  // Chunked, so the limit is hit while reading.
  std::string why;
  auto c = TlsConn::connect(site().api_port(), site().ca(), {}, &why);
  ASSERT_TRUE(c) << why;
  std::string req =
      "POST /api/v1/lanes/entry-1/open HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
      std::string(kOperatorToken) + "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  for (int i = 0; i < 8; ++i) req += "400\r\n" + std::string(0x400, 'y') + "\r\n";
  req += "0\r\n\r\n";
  c->write(req);
  r = parse_reply(c->read_all());
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_EQ(site().metric("lanegate_api_refused_total", refused("body_too_large")), before + 2);
  EXPECT_EQ(site().money_snapshot(), money);
}

TEST_F(HostileTest, OversizedHeadersGet431AndAreCounted) {
  const double before = site().metric("lanegate_api_refused_total", refused("header_too_large"));
  const HttpReply r =
      site().request("GET", "/healthz", {{"X-Padding", std::string(16 * 1024, 'h')}});
  EXPECT_EQ(r.status, 431) << r.body;
  EXPECT_NE(r.body.find("8 KiB"), std::string::npos) << r.body;
  // Many small headers add up the same way.
  std::map<std::string, std::string> many;
  for (int i = 0; i < 400; ++i) many["X-H" + std::to_string(i)] = std::string(30, 'v');
  EXPECT_EQ(site().request("GET", "/healthz", many).status, 431);
  EXPECT_EQ(site().metric("lanegate_api_refused_total", refused("header_too_large")), before + 2);
}

TEST_F(HostileTest, ClientTricklingHeadersIsCutOffWhileOthersAreServed) {
  const double before = site().metric("lanegate_api_refused_total", refused("header_timeout"));
  std::string why;
  TlsOptions slow;
  slow.read_timeout = 15s;
  auto c = TlsConn::connect(site().api_port(), site().ca(), slow, &why);
  ASSERT_TRUE(c) << why;
  const std::string head = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
  ASSERT_TRUE(c->write(head));
  // One byte every 200 ms: each byte would reset a per-read idle timer; the header
  // deadline (header_timeout_ms = 1000) is for the whole header.
  bool cut = false;
  const auto give_up = std::chrono::steady_clock::now() + 12s;
  while (std::chrono::steady_clock::now() < give_up) {
    if (!c->write("a")) {
      cut = true;
      break;
    }
    // Meanwhile another client is served normally.
    EXPECT_EQ(site().request("GET", "/healthz").status, 200);
    std::this_thread::sleep_for(200ms);
  }
  if (!cut) cut = c->closed_by_peer();
  EXPECT_TRUE(cut) << "a client trickling its headers kept the connection for 12 s";
  EXPECT_EQ(site().metric("lanegate_api_refused_total", refused("header_timeout")), before + 1);
}

TEST_F(HostileTest, ClientTricklingTheBodyIsCutOffWhileOthersAreServed) {
  const std::string money = site().money_snapshot();
  const double before = site().metric("lanegate_api_refused_total", refused("body_timeout"));
  std::string why;
  TlsOptions slow;
  slow.read_timeout = 20s;
  auto c = TlsConn::connect(site().api_port(), site().ca(), slow, &why);
  ASSERT_TRUE(c) << why;
  const std::string body = "{\"reason\":\"slow body\"}";
  ASSERT_TRUE(
      c->write("POST /api/v1/lanes/entry-1/open HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
               std::string(kOperatorToken) + "\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\n\r\n"));
  bool cut = false;
  const auto give_up = std::chrono::steady_clock::now() + 15s;
  for (std::size_t i = 0; i + 1 < body.size() && std::chrono::steady_clock::now() < give_up; ++i) {
    if (!c->write(body.substr(i, 1))) {
      cut = true;
      break;
    }
    EXPECT_EQ(site().request("GET", "/healthz").status, 200);
    std::this_thread::sleep_for(300ms);
  }
  if (!cut) cut = c->closed_by_peer();
  EXPECT_TRUE(cut) << "a client trickling its body kept the connection";
  EXPECT_EQ(site().metric("lanegate_api_refused_total", refused("body_timeout")), before + 1);
  // The half-sent manual open never happened.
  EXPECT_EQ(site().money_snapshot(), money);
}

TEST_F(HostileTest, MalformedJsonAndUnknownFieldsGet400NamingTheField) {
  const std::string money = site().money_snapshot();
  const std::string labels = "route=\"/api/v1/lanes/{id}/open\",status=\"400\"";
  const double before = site().metric("lanegate_api_requests_total", labels);
  struct Case {
    std::string body;
    std::string code;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"{\"reason\": \"x\"", "invalid_json", ""},
      {"[\"reason\"]", "invalid_json", ""},
      {"{\"reason\": \"\\ud800\"}", "invalid_json", ""},
      {"{\"reason\": \"a\0b\"}"s, "invalid_json", ""},
      {"{\"reason\": \"ok\", \"amount\": \"-5.00\"}", "invalid_argument", "amount"},
      {"{\"reason\": 42}", "invalid_argument", "reason"},
      {"{\"reason\": \"\"}", "invalid_argument", "reason"},
      {"{\"reason\": \"" + std::string(600, 'r') + "\"}", "invalid_argument", "reason"},
      {std::string(2000, '['), "invalid_json", ""},
  };
  int bad = 0;
  for (const auto& c : cases) {
    const HttpReply r = site().post_json_as(kOperatorToken, "/api/v1/lanes/entry-1/open", c.body);
    ++bad;
    EXPECT_EQ(r.status, 400) << c.body << " -> " << r.body;
    EXPECT_NE(r.body.find("\"code\":\"" + c.code + "\""), std::string::npos) << r.body;
    if (!c.field.empty()) {
      EXPECT_NE(r.body.find("\"field\":\"" + c.field + "\""), std::string::npos) << r.body;
    }
  }
  EXPECT_GE(site().metric("lanegate_api_requests_total", labels), before + bad);
  EXPECT_EQ(site().money_snapshot(), money);
}

TEST_F(HostileTest, PathTricksAreRefusedOrNeverReachAFile) {
  const double before = site().metric("lanegate_api_refused_total", refused("path_trick"));
  const std::vector<std::string> tricks = {
      "/api/v1/audit/reports/..%2f..%2flanegate.toml",
      "/api/v1/audit/reports/%2e%2e",
      "/api/v1/audit/packages/../../state",
      "/api/v1/audit/packages/x/%2E%2E%2Flanegate.db",
      "/api/v1/audit/reports/a%00.json",
      "/api/v1/audit/reports/..\\..\\lanegate.toml",
      "/api/v1/./status",
      "/api/v1/lanes/entry-1/../../status",
  };
  for (const auto& t : tricks) {
    const HttpReply r = site().get_as(kOperatorToken, t);
    EXPECT_EQ(r.status, 400) << t << " -> " << r.status << " " << r.body;
    EXPECT_NE(r.body.find("\"bad_request\""), std::string::npos) << t << " -> " << r.body;
  }
  EXPECT_EQ(site().metric("lanegate_api_refused_total", refused("path_trick")),
            before + static_cast<double>(tricks.size()));
  // Double slashes do not open another route or skip authentication.
  EXPECT_EQ(site().request("GET", "//api//v1//status").status, 401);
  EXPECT_EQ(site().request("GET", "/api/v1/status/").status, 401);
  // A raw NUL or space in the request line is malformed HTTP.
  const double malformed = site().metric("lanegate_api_refused_total", refused("malformed"));
  std::string why;
  auto c = TlsConn::connect(site().api_port(), site().ca(), {}, &why);
  ASSERT_TRUE(c) << why;
  c->write("GET /api/v1/st\0atus HTTP/1.1\r\nHost: x\r\n\r\n"s);
  const HttpReply r = parse_reply(c->read_all());
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(site().metric("lanegate_api_refused_total", refused("malformed")), malformed + 1);
  // Nothing under the state dir was served: the config and the database stay private.
  const HttpReply list = site().get_as(kAuditorToken, "/api/v1/audit/reports/lanegate.toml");
  EXPECT_EQ(list.status, 404) << list.body;
}

TEST_F(HostileTest, MissingOrWrongTokensGet401AndTheWrongRole403) {
  const std::string money = site().money_snapshot();
  const double missing =
      site().metric("lanegate_api_auth_failures_total", refused("missing_token"));
  const double unknown =
      site().metric("lanegate_api_auth_failures_total", refused("unknown_token"));
  const double role = site().metric("lanegate_api_auth_failures_total", refused("wrong_role"));
  const std::string open = "/api/v1/lanes/entry-1/open";
  const std::string body = "{\"reason\":\"attack\"}";
  HttpReply r = site().request("POST", open, {{"Content-Type", "application/json"}}, body);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("www-authenticate"), "Bearer");
  r = site().request("POST", open, {{"Authorization", "Basic b3BzOm9wcw=="}}, body);
  EXPECT_EQ(r.status, 401);
  r = site().request("POST", open, {{"Authorization", "Bearer "}}, body);
  EXPECT_EQ(r.status, 401);
  r = site().post_json_as("hostile-operator-token-0123456788", open, body);
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.header("www-authenticate").find("invalid_token"), std::string::npos);
  // The token's SHA-256 (what the config stores) is not the token.
  r = site().post_json_as(crypto::sha256_hex(kOperatorToken).c_str(), open, body);
  EXPECT_EQ(r.status, 401);
  r = site().post_json_as(kAuditorToken, open, body);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("auditor"), std::string::npos) << r.body;
  EXPECT_EQ(site().get_as(kAuditorToken, "/api/v1/transactions").status, 403);
  EXPECT_EQ(site().metric("lanegate_api_auth_failures_total", refused("missing_token")),
            missing + 3);
  EXPECT_EQ(site().metric("lanegate_api_auth_failures_total", refused("unknown_token")),
            unknown + 2);
  EXPECT_EQ(site().metric("lanegate_api_auth_failures_total", refused("wrong_role")), role + 2);
  // No barrier opened by any of them.
  EXPECT_EQ(site().money_snapshot(), money);
}

TEST_F(HostileTest, ManyHeldConnectionsFromOneAddressDoNotLockOthersOut) {
  const double before =
      site().metric("lanegate_api_refused_total", refused("too_many_connections"));
  // 140 connections from 127.0.0.3 that never say anything (over the per-address cap).
  std::vector<int> fds;
  for (int i = 0; i < 140; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.3", &src.sin_addr);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src), 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(site().api_port()));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    fds.push_back(fd);
  }
  // Another client is served meanwhile.
  EXPECT_EQ(site().request("GET", "/healthz").status, 200);
  EXPECT_GE(site().metric("lanegate_api_refused_total", refused("too_many_connections")),
            before + 1);
  // Every one of them is closed by the server (at accept, or at the handshake deadline).
  for (int fd : fds) {
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[64];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    EXPECT_TRUE(n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        << "connection left open";
    ::close(fd);
  }
}

}  // namespace
}  // namespace lanegate::hostile
