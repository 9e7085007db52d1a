#include "gateway/http_api.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::use_awaitable;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

constexpr std::uint32_t kHeaderLimit = 8 * 1024;
// Writing a response gets this long (a client that stops reading is cut off).
constexpr auto kWriteTimeout = std::chrono::seconds(30);
// After an early refusal (413, 431, 400) the unread rest of the request is read and
// discarded for at most this long / this many bytes before closing, so that closing with
// unread data (a TCP reset) does not destroy the error response before the client reads it.
constexpr auto kDrainTimeout = std::chrono::seconds(1);
constexpr std::size_t kDrainLimit = 256 * 1024;
// TLS 1.2: ECDHE key exchange (forward secrecy) with AEAD ciphers only.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
// TLS 1.3: every suite is AEAD with (EC)DHE; listed so no build default can widen it.
constexpr const char* kTls13Suites =
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
constexpr const char* kTlsGroups = "X25519:P-256:P-384";

void count_refused(std::string_view reason) {
  metrics::Registry::global()
      .counter("lanegate_api_refused_total", "HTTP requests refused before reaching a handler",
               {{"reason", std::string(reason)}})
      .inc();
}

// Errors answered by a handler (bad JSON, unknown field, not found, ...), by route and
// the error code of the body, so refusals past the gate are countable per reason too.
void count_handler_error(const std::string& route, const HttpResponse& resp) {
  std::string code = "none";
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(resp.body, ec);
  if (!ec && v.is_object()) {
    if (const auto* err = v.as_object().if_contains("error"); err != nullptr && err->is_object()) {
      if (const auto* c = err->as_object().if_contains("code"); c != nullptr && c->is_string()) {
        code = std::string(c->as_string());
      }
    }
  }
  metrics::Registry::global()
      .counter("lanegate_api_errors_total",
               "API requests a handler refused, by route and error code",
               {{"route", route}, {"code", code}})
      .inc();
}

void count_auth_failure(std::string_view reason) {
  metrics::Registry::global()
      .counter("lanegate_api_auth_failures_total", "API authentication and authorisation failures",
               {{"reason", std::string(reason)}})
      .inc();
}

struct Route {
  std::string method;
  std::vector<std::string> segments;  // "{name}" marks a parameter
  std::string pattern;
  Access access;
  Handler handler;
  AsyncHandler async_handler;  // set instead of `handler` for asynchronous routes
  std::int64_t max_body_bytes = 0;  // 0: the listener's limit
};

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    const std::size_t j = path.find('/', i);
    out.emplace_back(path.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) break;
    i = j;
  }
  return out;
}

bool match(const Route& r, const std::vector<std::string>& segs,
           std::map<std::string, std::string>& params) {
  if (r.segments.size() != segs.size()) return false;
  std::map<std::string, std::string> found;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const std::string& want = r.segments[i];
    if (want.size() > 2 && want.front() == '{' && want.back() == '}') {
      found[want.substr(1, want.size() - 2)] = segs[i];
    } else if (want != segs[i]) {
      return false;
    }
  }
  params = std::move(found);
  return true;
}

}  // namespace

HttpResponse HttpResponse::json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::error(int status, std::string_view code, std::string_view message,
                                 std::string_view field) {
  boost::json::object err{{"code", code}, {"message", message}};
  if (!field.empty()) err["field"] = field;
  return json(status, boost::json::serialize(boost::json::object{{"error", err}}));
}

std::chrono::milliseconds body_deadline(int header_timeout_ms, std::uint64_t body_bytes) {
  const std::uint64_t capped = std::min<std::uint64_t>(body_bytes, std::uint64_t{1} << 40);
  return std::chrono::milliseconds(header_timeout_ms) +
         std::chrono::milliseconds(capped * 1000 / kMinBodyBytesPerSecond);
}

std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = hex(in[i + 1]);
      const int lo = hex(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (in[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

bool parse_query(std::string_view query, std::map<std::string, std::string>& out) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    auto k = percent_decode(pair.substr(0, eq));
    auto v =
        percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!k || !v) return false;
    out[*k] = *v;
  }
  return true;
}

struct HttpApi::Impl : std::enable_shared_from_this<HttpApi::Impl> {
  asio::io_context& io;
  config::ApiSection config;
  std::vector<Route> routes;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::ssl::context> tls;
  bool stopped = false;
  std::size_t open_connections = 0;     // sessions running
  std::map<std::string, int> per_peer;  // sessions running per client address

  Impl(asio::io_context& i, const config::ApiSection& c) : io(i), config(c) {}

  // Authenticates against the configured token hashes in constant time.
  const config::ApiToken* find_token(std::string_view presented) const {
    const std::string digest = crypto::sha256_hex(presented);
    const config::ApiToken* found = nullptr;
    for (const auto& t : config.tokens) {
      if (crypto::equal_constant_time(digest, t.sha256_hex)) found = &t;
    }
    return found;
  }

  // An asynchronous route sets *deferred and *deferred_request and returns an empty
  // response: the caller runs it with run_deferred().
  HttpResponse dispatch(http::request<http::string_body>& req, const std::string& peer,
                        const Route** deferred, HttpRequest* deferred_request) {
    const std::string_view target(req.target().data(), req.target().size());
    const std::size_t q = target.find('?');
    const std::string_view raw_path = target.substr(0, q);
    if (raw_path.empty() || raw_path.front() != '/') {
      count_refused("bad_target");
      return HttpResponse::error(400, "bad_request", "request target must be an absolute path");
    }
    // Refuse encoded separators and dot segments outright: no path tricks.
    for (std::string_view bad : {"%2f", "%2F", "%2e", "%2E", "%5c", "%5C", "%00", "\\"}) {
      if (raw_path.find(bad) != std::string_view::npos) {
        count_refused("path_trick");
        return HttpResponse::error(400, "bad_request",
                                   "encoded separators or dots are not allowed in the path");
      }
    }
    auto path = percent_decode(raw_path);
    if (!path) {
      count_refused("bad_escape");
      return HttpResponse::error(400, "bad_request", "malformed percent-encoding in the path");
    }
    const auto segs = split_path(*path);
    for (const auto& s : segs) {
      if (s == "." || s == "..") {
        count_refused("path_trick");
        return HttpResponse::error(400, "bad_request", "dot segments are not allowed in the path");
      }
    }
    HttpRequest r;
    r.method = std::string(req.method_string());
    r.path = *path;
    r.peer = peer;
    if (q != std::string_view::npos && !parse_query(target.substr(q + 1), r.query)) {
      count_refused("bad_escape");
      return HttpResponse::error(400, "bad_request", "malformed percent-encoding in the query");
    }
    const Route* route = nullptr;
    bool path_known = false;
    for (const auto& candidate : routes) {
      std::map<std::string, std::string> params;
      if (match(candidate, segs, params)) {
        path_known = true;
        if (candidate.method == r.method) {
          route = &candidate;
          r.params = std::move(params);
          break;
        }
      }
    }
    if (route == nullptr) {
      if (path_known) {
        count_refused("method");
        return HttpResponse::error(405, "method_not_allowed",
                                   "method " + r.method + " is not allowed here");
      }
      count_refused("not_found");
      return HttpResponse::error(404, "not_found", "no such endpoint");
    }
    if (!route->access.is_public) {
      const auto auth = req[http::field::authorization];
      constexpr std::string_view kBearer = "Bearer ";
      if (auth.empty() || auth.size() <= kBearer.size() ||
          auth.substr(0, kBearer.size()) != kBearer) {
        count_auth_failure("missing_token");
        auto resp = HttpResponse::error(401, "unauthorized", "a bearer token is required");
        resp.headers.emplace_back("WWW-Authenticate", "Bearer");
        return resp;
      }
      const config::ApiToken* token =
          find_token(std::string_view(auth.data(), auth.size()).substr(kBearer.size()));
      if (token == nullptr) {
        count_auth_failure("unknown_token");
        auto resp = HttpResponse::error(401, "unauthorized", "the bearer token is not valid");
        resp.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
        return resp;
      }
      const Role role = token->role == "auditor" ? Role::kAuditor : Role::kOperator;
      if (!route->access.roles.contains(role)) {
        count_auth_failure("wrong_role");
        return HttpResponse::error(
            403, "forbidden", "the token's role '" + token->role + "' may not call this endpoint");
      }
      r.role = role;
      r.caller = token->name;
    }
    for (const auto& field : req) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(field.value());
    }
    r.body = std::move(req.body());
    if (route->async_handler) {
      *deferred = route;
      *deferred_request = std::move(r);
      return HttpResponse{};
    }
    HttpResponse resp = route->handler(r);
    count_answer(*route, resp);
    return resp;
  }

  static void count_answer(const Route& route, const HttpResponse& resp) {
    metrics::Registry::global()
        .counter("lanegate_api_requests_total", "API requests by route and status",
                 {{"route", route.pattern}, {"status", std::to_string(resp.status)}})
        .inc();
    if (resp.status >= 400) count_handler_error(route.pattern, resp);
  }

  // The body limit of the route a target names (any method), else the listener's.
  std::uint64_t body_limit_for(std::string_view target) const {
    const auto q = target.find('?');
    const auto segs = split_path(target.substr(0, q));
    for (const auto& candidate : routes) {
      std::map<std::string, std::string> params;
      if (candidate.max_body_bytes > 0 && match(candidate, segs, params)) {
        return static_cast<std::uint64_t>(candidate.max_body_bytes);
      }
    }
    return static_cast<std::uint64_t>(config.max_body_bytes);
  }

  // Runs an asynchronous route and waits (without blocking the io thread) for its reply.
  asio::awaitable<HttpResponse> run_deferred(const Route& route, HttpRequest request) {
    auto answer = std::make_shared<std::optional<HttpResponse>>();
    auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor,
                                                      asio::steady_timer::time_point::max());
    route.async_handler(request, [answer, timer](HttpResponse r) {
      if (*answer) return;
      *answer = std::move(r);
      timer->cancel();
    });
    while (!*answer) {
      co_await timer->async_wait(kTuple);
    }
    HttpResponse out = std::move(**answer);
    count_answer(route, out);
    co_return out;
  }

  // Reads and discards what is left of a refused request (bounded), see kDrainTimeout.
  template <typename Stream>
  asio::awaitable<void> drain(Stream& stream, beast::tcp_stream& tcp_layer,
                              beast::flat_buffer& buffer) {
    std::size_t drained = buffer.size();
    buffer.consume(buffer.size());
    tcp_layer.expires_after(kDrainTimeout);
    while (drained < kDrainLimit) {
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(16 * 1024), kTuple);
      if (ec) break;
      drained += n;
    }
  }

  template <typename Stream>
  asio::awaitable<void> serve(Stream& stream, beast::tcp_stream& tcp_layer, std::string peer) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(kHeaderLimit);
      parser.body_limit(static_cast<std::uint64_t>(config.max_body_bytes));
      // One deadline for the whole header, however the bytes trickle in.
      tcp_layer.expires_after(std::chrono::milliseconds(config.header_timeout_ms));
      auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kTuple);
      (void)n;
      std::optional<HttpResponse> early;
      if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
          ec == asio::error::eof || ec == asio::error::connection_reset ||
          ec == asio::ssl::error::stream_truncated) {
        // A keep-alive connection that just stays idle is closed without counting it.
        if (ec == beast::error::timeout && (parser.got_some() || buffer.size() > 0)) {
          count_refused("header_timeout");
        }
        co_return;
      }
      if (ec == http::error::header_limit) {
        count_refused("header_too_large");
        early = HttpResponse::error(431, "header_too_large", "request headers exceed 8 KiB");
      } else if (ec == http::error::body_limit) {
        count_refused("body_too_large");
        early = HttpResponse::error(
            413, "body_too_large",
            "request body exceeds " + std::to_string(config.max_body_bytes) + " bytes");
      } else if (ec) {
        count_refused("malformed");
        early = HttpResponse::error(400, "bad_request", "malformed HTTP request");
      }
      std::uint64_t body_limit = static_cast<std::uint64_t>(config.max_body_bytes);
      if (!early) {
        body_limit = body_limit_for(std::string_view(parser.get().target()));
        parser.body_limit(body_limit);
        const auto len = parser.content_length();
        if (len && *len > body_limit) {
          count_refused("body_too_large");
          early = HttpResponse::error(
              413, "body_too_large",
              "request body exceeds " + std::to_string(body_limit) + " bytes");
        }
      }
      if (!early) {
        // The body gets its own deadline, sized by what was announced (chunked: the limit).
        const auto len = parser.content_length();
        tcp_layer.expires_after(
            body_deadline(config.header_timeout_ms, len ? *len : body_limit));
        auto [ec2, n2] = co_await http::async_read(stream, buffer, parser, kTuple);
        (void)n2;
        if (ec2 == beast::error::timeout) {
          count_refused("body_timeout");
          co_return;
        }
        if (ec2 == http::error::body_limit) {
          count_refused("body_too_large");
          early = HttpResponse::error(
              413, "body_too_large", "request body exceeds " + std::to_string(body_limit) + " bytes");
        } else if (ec2) {
          count_refused("malformed");
          early = HttpResponse::error(400, "bad_request", "malformed HTTP request");
        }
      }
      auto& req = parser.get();
      const bool keep_alive = !early && req.keep_alive();
      const Route* deferred = nullptr;
      HttpRequest deferred_request;
      HttpResponse out =
          early ? std::move(*early) : dispatch(req, peer, &deferred, &deferred_request);
      if (deferred != nullptr) {
        out = co_await run_deferred(*deferred, std::move(deferred_request));
      }
      http::response<http::string_body> resp{static_cast<http::status>(out.status), 11};
      resp.set(http::field::server, "lanegate");
      resp.set(http::field::content_type, out.content_type);
      resp.set(http::field::cache_control, "no-store");
      resp.set("X-Content-Type-Options", "nosniff");
      // Claim links carry a token in the path: never leak it to another site.
      resp.set("Referrer-Policy", "no-referrer");
      if (!out.content_type.starts_with("text/html")) {
        // JSON, CSV and text are data, never a page to render or frame. HTML pages (the
        // claim page) set their own policy.
        resp.set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
      }
      for (const auto& [k, v] : out.headers) resp.set(k, v);
      resp.keep_alive(keep_alive);
      resp.body() = std::move(out.body);
      resp.prepare_payload();
      tcp_layer.expires_after(kWriteTimeout);
      auto [wec, wn] = co_await http::async_write(stream, resp, kTuple);
      (void)wn;
      if (wec) co_return;
      if (early) co_await drain(stream, tcp_layer, buffer);
      if (!keep_alive) co_return;
    }
  }

  // Releases a connection slot when its session ends, however it ends.
  struct Slot {
    std::shared_ptr<Impl> owner;
    std::string peer;
    ~Slot() {
      --owner->open_connections;
      if (--owner->per_peer[peer] <= 0) owner->per_peer.erase(peer);
    }
  };

  asio::awaitable<void> session(tcp::socket socket, std::string peer) {
    Slot slot{shared_from_this(), peer};
    if (tls) {
      beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), *tls);
      beast::get_lowest_layer(stream).expires_after(
          std::chrono::milliseconds(config.header_timeout_ms));
      auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
      if (ec) {
        count_refused("tls_handshake");
        co_return;
      }
      co_await serve(stream, beast::get_lowest_layer(stream), peer);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
      co_await stream.async_shutdown(kTuple);
    } else {
      beast::tcp_stream stream(std::move(socket));
      co_await serve(stream, stream, peer);
      boost::system::error_code ec;
      stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    while (!stopped && acceptor && acceptor->is_open()) {
      auto [ec, socket] = co_await acceptor->async_accept(kTuple);
      if (ec) {
        if (stopped) co_return;
        continue;
      }
      std::string peer;
      boost::system::error_code pec;
      auto ep = socket.remote_endpoint(pec);
      if (!pec) peer = ep.address().to_string();
      // Many held-open connections (slow clients) must not exhaust the box: a cap in
      // total and per client address. The refused connection is closed at once.
      if (open_connections >= kMaxConnections || per_peer[peer] >= kMaxConnectionsPerPeer) {
        if (per_peer[peer] == 0) per_peer.erase(peer);
        count_refused("too_many_connections");
        boost::system::error_code cec;
        socket.close(cec);
        continue;
      }
      ++open_connections;
      ++per_peer[peer];
      asio::co_spawn(io, session(std::move(socket), std::move(peer)), asio::detached);
    }
  }
};

HttpApi::HttpApi(asio::io_context& io, const config::ApiSection& config)
    : impl_(std::make_shared<Impl>(io, config)) {}

HttpApi::~HttpApi() { stop(); }

void HttpApi::add_async_route(std::string method, std::string pattern, Access access,
                              AsyncHandler handler, std::int64_t max_body_bytes) {
  Route r{std::move(method), split_path(pattern), pattern, std::move(access), {},
          std::move(handler), max_body_bytes};
  impl_->routes.push_back(std::move(r));
}

void HttpApi::add_route(std::string method, std::string pattern, Access access, Handler handler) {
  Route r{std::move(method), split_path(pattern), pattern, std::move(access), std::move(handler)};
  impl_->routes.push_back(std::move(r));
}

void HttpApi::set_tokens(std::vector<config::ApiToken> tokens) {
  impl_->config.tokens = std::move(tokens);
}

Result<std::uint16_t> HttpApi::start() {
  Impl& d = *impl_;
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(d.config.listen_address, ec);
  if (ec) {
    return fail(Errc::kInvalidArgument, "not an IP address: " + d.config.listen_address,
                "api.listen_address");
  }
  if (d.config.tls) {
    d.tls.emplace(asio::ssl::context::tls_server);
    d.tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use |
                       asio::ssl::context::no_compression);
    SSL_CTX* native = d.tls->native_handle();
    // Our order wins; no renegotiation (a CPU lever for a client, and a past CVE source).
    SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1 ||
        SSL_CTX_set_ciphersuites(native, kTls13Suites) != 1 ||
        SSL_CTX_set1_groups_list(native, kTlsGroups) != 1) {
      return fail(Errc::kCrypto, "cannot apply the TLS settings: " + crypto::last_openssl_error(),
                  "api.tls");
    }
    d.tls->use_certificate_chain_file(d.config.tls->cert_file.string(), ec);
    if (ec) {
      return fail(
          Errc::kCrypto,
          "cannot load certificate " + d.config.tls->cert_file.string() + ": " + ec.message(),
          "api.tls.cert_file");
    }
    d.tls->use_private_key_file(d.config.tls->key_file.string(), asio::ssl::context::pem, ec);
    if (ec) {
      return fail(Errc::kCrypto,
                  "cannot load key " + d.config.tls->key_file.string() + ": " + ec.message(),
                  "api.tls.key_file");
    }
  }
  d.acceptor.emplace(d.io);
  const tcp::endpoint ep(addr, static_cast<std::uint16_t>(d.config.listen_port));
  d.acceptor->open(ep.protocol(), ec);
  if (!ec) d.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) d.acceptor->bind(ep, ec);
  if (!ec) d.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail(Errc::kIo,
                "cannot listen on " + d.config.listen_address + ":" +
                    std::to_string(d.config.listen_port) + ": " + ec.message(),
                "api.listen_port");
  }
  const auto port = d.acceptor->local_endpoint().port();
  asio::co_spawn(d.io, d.accept_loop(), asio::detached);
  log::info("API listening",
            {{"ADDRESS", d.config.listen_address}, {"PORT", port}, {"TLS", d.tls ? "on" : "off"}});
  return port;
}

void HttpApi::stop() {
  if (!impl_) return;
  impl_->stopped = true;
  if (impl_->acceptor) {
    boost::system::error_code ec;
    impl_->acceptor->close(ec);
  }
}

}  // namespace lanegate::gateway
