// Fuzz target: the local API's request handling (outside bytes from the lane LAN and,
// through the public notify/claim routes, from the internet). The first byte picks:
//   mode 0: query string and percent decoding (gateway/http_api.h parse_query,
//           percent_decode): never crash; percent_decode(percent_encode(x)) == x.
//   mode 1: the rest goes verbatim over a socket to a real HttpApi (Beast parser,
//           limits, token check, route matching).
//   mode 2: the rest is the request target of an authenticated GET/POST, so mutations
//           land in the path and query (path parameters, percent tricks, query decoding).
// Properties: every answer is an HTTP/1.1 status line; a handler only ever sees an
// authenticated caller of its role on token routes, path parameters without '/', and
// no "." or ".." parameter (no path tricks).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "core/crypto.h"
#include "core/log.h"
#include "gateway/http_api.h"
#include "gateway/provider_wechatpay.h"

namespace {

namespace gw = lanegate::gateway;

constexpr std::string_view kOperatorToken = "op-fuzz-token";
constexpr std::string_view kAuditorToken = "audit-fuzz-token";

struct Server {
  boost::asio::io_context io;
  std::unique_ptr<gw::HttpApi> api;
  std::uint16_t port = 0;
  std::thread thread;
};

Server* server = nullptr;

void check_params(const gw::HttpRequest& r) {
  for (const auto& [name, value] : r.params) {
    if (value.find('/') != std::string::npos || value == "." || value == "..") {
      __builtin_trap();  // a path trick reached a handler
    }
  }
}

gw::HttpResponse echo(const gw::HttpRequest& r, std::optional<gw::Role> required) {
  check_params(r);
  if (required && r.role != required) {
    __builtin_trap();  // an unauthenticated or wrong-role caller reached a token route
  }
  return gw::HttpResponse::json(200, "{\"n\":" + std::to_string(r.query.size() + r.body.size()) + "}");
}

void send_and_drain(std::string_view bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    abort();
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server->port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    abort();
  }
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      break;  // the server refused early (e.g. 431) and closed
    }
    sent += static_cast<std::size_t>(n);
  }
  shutdown(fd, SHUT_WR);  // end of request: the server must answer or close, never wait
  std::string reply;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  bool closed = false;
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) != 1) {
      continue;
    }
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      closed = true;
    } else {
      reply.append(buf, static_cast<std::size_t>(n));
    }
  }
  close(fd);
  if (!closed) {
    fprintf(stderr, "http_request_fuzz: server neither answered nor closed within 5 s\n");
    abort();
  }
  if (!reply.empty() && !reply.starts_with("HTTP/1.1 ")) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lanegate::log::set_min_level(lanegate::log::Level::kError);
  server = new Server();
  lanegate::config::ApiSection cfg;
  cfg.listen_address = "127.0.0.1";
  cfg.listen_port = 0;
  cfg.max_body_bytes = 4096;
  cfg.header_timeout_ms = 200;
  cfg.tokens = {{"alice", "operator", lanegate::crypto::sha256_hex(kOperatorToken)},
                {"audit-office", "auditor", lanegate::crypto::sha256_hex(kAuditorToken)}};
  server->api = std::make_unique<gw::HttpApi>(server->io, cfg);
  server->api->add_route("GET", "/healthz", gw::Access::open(),
                         [](const gw::HttpRequest& r) { return echo(r, std::nullopt); });
  server->api->add_route("POST", "/api/v1/lanes/{id}/open", gw::Access::only({gw::Role::kOperator}),
                         [](const gw::HttpRequest& r) { return echo(r, gw::Role::kOperator); });
  server->api->add_route("GET", "/api/v1/transactions", gw::Access::only({gw::Role::kOperator}),
                         [](const gw::HttpRequest& r) { return echo(r, gw::Role::kOperator); });
  server->api->add_route(
      "GET", "/api/v1/audit/packages/{name}/{file}", gw::Access::only({gw::Role::kAuditor}),
      [](const gw::HttpRequest& r) { return echo(r, gw::Role::kAuditor); });
  server->api->add_route("POST", "/notify/wechatpay", gw::Access::open(),
                         [](const gw::HttpRequest& r) { return echo(r, std::nullopt); });
  auto port = server->api->start();
  if (!port) {
    fprintf(stderr, "http_request_fuzz: start failed: %s\n", port.error().message.c_str());
    abort();
  }
  server->port = *port;
  server->thread = std::thread([] { server->io.run(); });
  server->thread.detach();  // runs until the fuzzer process exits
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) {
    return 0;
  }
  const int mode = data[0] % 3;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode == 0) {
    std::map<std::string, std::string> query;
    (void)gw::parse_query(rest, query);
    (void)gw::percent_decode(rest);
    auto round = gw::percent_decode(gw::percent_encode(rest));
    if (!round || *round != rest) {
      __builtin_trap();
    }
  } else if (mode == 1) {
    send_and_drain(rest);
  } else {
    if (rest.empty() || rest.find_first_of("\r\n") != std::string_view::npos) {
      return 0;
    }
    const bool post = (static_cast<std::uint8_t>(rest[0]) & 1) != 0;
    const bool auditor = (static_cast<std::uint8_t>(rest[0]) & 2) != 0;
    std::string request = std::string(post ? "POST " : "GET ") + std::string(rest.substr(1)) +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                          std::string(auditor ? kAuditorToken : kOperatorToken) +
                          "\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    send_and_drain(request);
  }
  return 0;
}
