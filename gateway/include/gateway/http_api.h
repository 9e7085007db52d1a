#pragma once
// The gateway's local HTTP API server (Boost.Beast), served on the io thread.
//
// What it guarantees to every route, so handlers only deal with valid requests:
//  - Slow clients: the whole request header must arrive within `header_timeout_ms`
//    (one deadline, not a per-read idle timer, so trickling bytes does not extend it);
//    the body then gets body_deadline(header_timeout_ms, announced length) — at least
//    kMinBodyBytesPerSecond. Late clients are disconnected (reason header_timeout /
//    body_timeout); a TLS handshake gets `header_timeout_ms` too (tls_handshake).
//    Other clients are served meanwhile (everything is asynchronous on the io thread).
//  - At most kMaxConnections connections at once, kMaxConnectionsPerPeer per client
//    address; more are closed at accept (too_many_connections).
//  - Headers over 8 KiB get 431, bodies over `max_body_bytes` get 413 (from the
//    Content-Length, or while reading a chunked body), malformed HTTP gets 400. Each
//    refusal is counted in lanegate_api_refused_total{reason}.
//  - Routes declare who may call them. Bearer tokens are compared by SHA-256 against
//    the configured hashes in constant time; a missing or unknown token gets 401, a
//    token of the wrong role 403 (lanegate_api_auth_failures_total{reason}).
//  - Unknown paths get 404, known paths with another method 405. Path parameters
//    ("/api/v1/lanes/{id}/open") are matched per segment; a parameter never spans a
//    '/'; percent-encoded dots, slashes, backslashes and NUL, and "." / ".." segments,
//    are refused with 400 (reason path_trick). Empty segments ("//") are ignored.
//  - Answers from handlers are counted in lanegate_api_requests_total{route,status};
//    4xx/5xx also in lanegate_api_errors_total{route,code} (code from the error body).
//  - Every response: Cache-Control: no-store, X-Content-Type-Options: nosniff,
//    Referrer-Policy: no-referrer; non-HTML responses also
//    Content-Security-Policy: default-src 'none' (HTML pages set their own).
//  - Optional TLS: TLS 1.2 with ECDHE + AEAD ciphers (AES-GCM, ChaCha20-Poly1305) and
//    TLS 1.3 only; server cipher order, no compression, no renegotiation.
//
// Threading: construct, add routes, start() and stop() on the io thread; handlers run
// on the io thread and must not block.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/error.h"

namespace lanegate::gateway {

enum class Role { kOperator, kAuditor };

// Who may call a route. kPublic: no token (health checks, the claim page, provider
// notifications, which carry their own signature).
struct Access {
  bool is_public = false;
  std::set<Role> roles;
  static Access open() { return Access{true, {}}; }
  static Access only(std::set<Role> r) { return Access{false, std::move(r)}; }
};

struct HttpRequest {
  std::string method;                          // "GET", "POST", …
  std::string path;                            // decoded path, without the query
  std::map<std::string, std::string> query;    // decoded query parameters
  std::map<std::string, std::string> params;   // path parameters from the route
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string peer;          // client address, for rate limits
  std::optional<Role> role;  // set for authenticated routes
  std::string caller;        // token name from config
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static HttpResponse json(int status, std::string body);
  // {"error": {"code": CODE, "message": MESSAGE, "field": FIELD}}
  static HttpResponse error(int status, std::string_view code, std::string_view message,
                            std::string_view field = {});
};

using Handler = std::function<HttpResponse(const HttpRequest&)>;
// A handler that answers later (a camera push answered once the lane decided): it must
// call `reply` exactly once, on the io thread, and bound its own wait.
using Reply = std::function<void(HttpResponse)>;
using AsyncHandler = std::function<void(const HttpRequest&, Reply reply)>;

class HttpApi {
 public:
  HttpApi(boost::asio::io_context& io, const config::ApiSection& config);
  ~HttpApi();
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  // REQUIRES: before start().
  void add_route(std::string method, std::string pattern, Access access, Handler handler);
  // An asynchronous route; `max_body_bytes` > 0 replaces the listener's body limit for it
  // (camera pushes carry images).
  void add_async_route(std::string method, std::string pattern, Access access,
                       AsyncHandler handler, std::int64_t max_body_bytes = 0);

  // Binds and starts accepting. Returns the bound port (useful with port 0).
  [[nodiscard]] Result<std::uint16_t> start();
  // Closes the listener; open connections finish their current request.
  void stop();

  // Replaces the token list (SIGHUP reload).
  void set_tokens(std::vector<config::ApiToken> tokens);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Slowest body upload accepted: a body of N bytes must arrive within
// header_timeout_ms + N / kMinBodyBytesPerSecond seconds of the end of its headers.
inline constexpr std::uint64_t kMinBodyBytesPerSecond = 16 * 1024;
inline constexpr std::size_t kMaxConnections = 512;
inline constexpr int kMaxConnectionsPerPeer = 128;

// The time a body of `body_bytes` gets after its headers (see above).
std::chrono::milliseconds body_deadline(int header_timeout_ms, std::uint64_t body_bytes);

// Splits "a=1&b=%E7%B2%A4" into decoded pairs; false on a malformed escape.
bool parse_query(std::string_view query, std::map<std::string, std::string>& out);
// Percent-decodes; nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view in);

}  // namespace lanegate::gateway
