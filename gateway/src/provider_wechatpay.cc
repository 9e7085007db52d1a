// WeChat Pay API v3 client over cpp-httplib (see gateway/provider_wechatpay.h).
#include "gateway/provider_wechatpay.h"

#include <fcntl.h>
#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <boost/json.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <regex>
#include <thread>

#include "core/text.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/time_format.h"
#include "provider_json.h"

namespace lanegate::gateway {
namespace json = boost::json;

namespace {

constexpr UtcOffset kChina{480};
constexpr std::string_view kSignatureType = "WECHATPAY2-SHA256-RSA2048";
constexpr std::int64_t kUnknownKeyRefreshMinSeconds = 60;

metrics::Counter& verify_failures(VerifyCheck check) {
  return metrics::Registry::global().counter(
      "lanegate_provider_verify_failures_total",
      "Provider replies/notifications refused by signature verification",
      {{"check", std::string(verify_check_name(check))}});
}

metrics::Counter& call_outcomes(std::string_view call, Outcome outcome) {
  return metrics::Registry::global().counter(
      "lanegate_provider_calls_total", "Provider calls by call and outcome",
      {{"call", std::string(call)}, {"outcome", std::string(outcome_name(outcome))}});
}

using provider_json::failure;
using provider_json::get_string;
using provider_json::reply_object;

std::string trim_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

// --- whole-call deadlines ------------------------------------------------------------------
//
// cpp-httplib 0.11's timeouts bound each connect, read and write, not a call: a peer that
// trickles one byte per read keeps a call alive for as long as it likes. Its stop() cannot
// help either: it waits for the mutex send() holds through the connect and TLS handshake.
// So every connection keeps a descriptor of its own for the socket cpp-httplib opened
// (SocketShutdown) and one thread per client (DeadlineWatchdog) shuts that socket down when
// a call's deadline passes; every blocking step inside cpp-httplib then fails at once and
// send() returns its usual error, classified as before.

// A connection's current socket, as a descriptor we own: a dup(), so its number cannot be
// reused for another file while the watchdog may still shut it down. Thread-safe.
class SocketShutdown {
 public:
  SocketShutdown() = default;
  SocketShutdown(const SocketShutdown&) = delete;
  SocketShutdown& operator=(const SocketShutdown&) = delete;
  ~SocketShutdown() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  // cpp-httplib created a socket for this connection (before connecting it).
  void adopt(int sock) {
    std::lock_guard lock(mu_);
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = ::fcntl(sock, F_DUPFD_CLOEXEC, 0);
    if (fd_ < 0) {
      // Without a handle the call could not be ended at its deadline: refuse it now (the
      // connect fails; nothing was sent).
      ::shutdown(sock, SHUT_RDWR);
    } else if (expired_) {
      ::shutdown(fd_, SHUT_RDWR);  // a reconnect after the deadline ends at once
    }
  }

  // The call's deadline passed: end whatever the socket is doing. Sticky until arm().
  void expire() {
    std::lock_guard lock(mu_);
    expired_ = true;
    if (fd_ >= 0) {
      ::shutdown(fd_, SHUT_RDWR);
    }
  }

  void arm() {
    std::lock_guard lock(mu_);
    expired_ = false;
  }

  bool expired() const {
    std::lock_guard lock(mu_);
    return expired_;
  }

 private:
  mutable std::mutex mu_;
  int fd_ = -1;
  bool expired_ = false;
};

// One thread that expires sockets at their calls' deadlines. Deadlines are on the real
// steady clock, not the Clock seam: they bound real socket I/O. Thread-safe.
class DeadlineWatchdog {
 public:
  using Deadline = std::chrono::steady_clock::time_point;

  DeadlineWatchdog() : thread_([this] { run(); }) {}
  DeadlineWatchdog(const DeadlineWatchdog&) = delete;
  DeadlineWatchdog& operator=(const DeadlineWatchdog&) = delete;
  ~DeadlineWatchdog() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  // Expires `socket` at `deadline` unless disarm(ticket) comes first.
  std::uint64_t arm(Deadline deadline, std::shared_ptr<SocketShutdown> socket) {
    std::lock_guard lock(mu_);
    const std::uint64_t ticket = ++last_ticket_;
    armed_.emplace(std::pair(deadline, ticket), std::move(socket));
    wake_.notify_one();
    return ticket;
  }

  void disarm(Deadline deadline, std::uint64_t ticket) {
    std::lock_guard lock(mu_);
    armed_.erase(std::pair(deadline, ticket));
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (armed_.empty()) {
        wake_.wait(lock);
        continue;
      }
      auto first = armed_.begin();
      if (std::chrono::steady_clock::now() < first->first.first) {
        wake_.wait_until(lock, first->first.first);
        continue;
      }
      first->second->expire();
      armed_.erase(first);
    }
  }

  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::uint64_t last_ticket_ = 0;
  std::map<std::pair<Deadline, std::uint64_t>, std::shared_ptr<SocketShutdown>> armed_;
  std::thread thread_;  // last: starts after the members it uses
};

// OpenSSL writes to the socket with write(2), so a write after the watchdog's shutdown() (or
// after the peer reset the connection) raises SIGPIPE, which ends a process that does not
// ignore it. Every lanegate binary ignores it (core/process.h), but the client is a library
// that tests and other programs embed too, so it does not rely on that: for the duration of
// one call this blocks SIGPIPE in the
// calling thread and discards one raised meanwhile -- libpq's technique; no process-wide
// signal disposition is changed.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &saved_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;
  ~SigpipeBlock() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
  }

 private:
  sigset_t pipe_;
  sigset_t saved_;
  bool was_pending_ = false;
};

// --- in-cab payments: local checks and reply classes ----------------------------------------

// codepay error replies. Spec "Errors" lists the refusals that commit nothing; the codepay
// pages (wechatpay-im/website openapi/v3/pay/{,partner/}transactions/codepay.md) document no
// codes of their own. Spec "Ambiguous results": how v3 signals USERPAYING at pay time is
// *unconfirmed*, so anything neither SUCCESS nor a documented refusal is unknown: query.
Outcome classify_codepay_reply(CallKind, int http_status, std::string_view code) {
  if (code == "USERPAYING") {
    return Outcome::kQueryFirst;
  }
  if ((http_status == 400 && (code == "PARAM_ERROR" || code == "INVALID_REQUEST")) ||
      (http_status == 401 && code == "SIGN_ERROR") || (http_status == 403 && code == "NO_AUTH")) {
    // Refused as a whole: nothing was taken, the passenger is asked for another payment. A
    // SIGN_ERROR parks too (a parking charge retries it): a payment code expires in a minute.
    return Outcome::kPark;
  }
  if (http_status == 429) {
    return Outcome::kRetryLater;  // rate limited: refused as a whole
  }
  return Outcome::kQueryFirst;
}

// Native create: an order that may exist is queried before anything else, a 404 included.
Outcome classify_native_reply(CallKind kind, int http_status, std::string_view code) {
  const Outcome o = classify_reply(kind, http_status, code);
  return o == Outcome::kNotFound ? Outcome::kQueryFirst : o;
}

// A request the provider would refuse, caught before anything leaves: parked, naming the
// field and the rule.
ProviderFailure refused_locally(std::string field, std::string rule) {
  return failure(Outcome::kPark, Errc::kInvalidArgument, std::move(rule), std::move(field));
}

// out_trade_no: spec "<= 32 of [0-9A-Za-z_*-]".
std::optional<ProviderFailure> check_out_trade_no(std::string_view no) {
  const bool ok = !no.empty() && no.size() <= 32 &&
                  std::all_of(no.begin(), no.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' ||
                           c == '*' || c == '-';
                  });
  if (!ok) {
    return refused_locally("out_trade_no", "must be 1 to 32 of [0-9A-Za-z_*-]");
  }
  return std::nullopt;
}

// description: required, at most 127 characters (UTF-8 code points).
std::optional<ProviderFailure> check_description(std::string_view text) {
  const std::size_t chars = code_points(text);
  if (chars == 0 || chars > 127) {
    return refused_locally("description", "must be 1 to 127 characters");
  }
  return std::nullopt;
}

std::optional<ProviderFailure> check_amount(Money amount) {
  if (amount.fen() <= 0) {
    return refused_locally("amount.total", "must be a positive number of fen");
  }
  return std::nullopt;
}

// Spec "Payment code": 18 digits; WeChat codes start with 10-15. The message never carries
// the code itself.
std::optional<ProviderFailure> check_auth_code(std::string_view code) {
  const bool digits = code.size() == 18 && std::all_of(code.begin(), code.end(), [](char c) {
                        return c >= '0' && c <= '9';
                      });
  if (!digits || code[0] != '1' || code[1] > '5') {
    return refused_locally("payer.auth_code",
                           "must be 18 digits starting with 10 to 15 (a WeChat payment code)");
  }
  return std::nullopt;
}

// Replaces every occurrence of `secret` in `text` (a provider message may echo a request).
void redact(std::string& text, std::string_view secret) {
  if (secret.empty()) {
    return;
  }
  constexpr std::string_view kMark = "[redacted]";
  for (auto at = text.find(secret); at != std::string::npos;
       at = text.find(secret, at + kMark.size())) {
    text.replace(at, secret.size(), kMark);
  }
}

ProviderFailure without_secret(ProviderFailure f, std::string_view secret) {
  redact(f.error.message, secret);
  redact(f.error.field, secret);
  redact(f.provider_code, secret);
  return f;
}

}  // namespace

// --- signing -------------------------------------------------------------------------------

std::string request_sign_message(std::string_view method, std::string_view target,
                                 std::string_view timestamp, std::string_view nonce,
                                 std::string_view body) {
  std::string m;
  m.reserve(method.size() + target.size() + timestamp.size() + nonce.size() + body.size() + 5);
  m.append(method).append("\n").append(target).append("\n").append(timestamp).append("\n");
  m.append(nonce).append("\n").append(body).append("\n");
  return m;
}

Result<std::string> authorization_header(const pki::PrivateKey& key, std::string_view mchid,
                                         std::string_view serial_no, std::string_view method,
                                         std::string_view target, std::string_view timestamp,
                                         std::string_view nonce, std::string_view body) {
  auto signature = pki::sign_sha256_rsa_base64(
      key, request_sign_message(method, target, timestamp, nonce, body));
  if (!signature) {
    return std::unexpected(signature.error());
  }
  std::string h(kSignatureType);
  h += " mchid=\"" + std::string(mchid) + "\",nonce_str=\"" + std::string(nonce) +
       "\",timestamp=\"" + std::string(timestamp) + "\",serial_no=\"" + std::string(serial_no) +
       "\",signature=\"" + *signature + "\"";
  return h;
}

// --- key set and verification --------------------------------------------------------------

void PlatformKeySet::put(const std::string& id, const pki::PublicKey& key) {
  std::unique_lock lock(mu_);
  keys_[id] = key;
}

std::optional<pki::PublicKey> PlatformKeySet::find(std::string_view id) const {
  std::shared_lock lock(mu_);
  auto it = keys_.find(id);
  if (it == keys_.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::vector<std::string> PlatformKeySet::ids() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [id, key] : keys_) {
    out.push_back(id);
  }
  return out;
}

std::size_t PlatformKeySet::size() const {
  std::shared_lock lock(mu_);
  return keys_.size();
}

std::string_view verify_check_name(VerifyCheck check) {
  switch (check) {
    case VerifyCheck::kMissingHeader:
      return "missing_header";
    case VerifyCheck::kSignatureType:
      return "signature_type";
    case VerifyCheck::kSignTestProbe:
      return "signtest_probe";
    case VerifyCheck::kBadTimestamp:
      return "bad_timestamp";
    case VerifyCheck::kSkew:
      return "skew";
    case VerifyCheck::kUnknownKey:
      return "unknown_key";
    case VerifyCheck::kBadSignature:
      return "bad_signature";
  }
  return "unknown";
}

std::string VerifyFailure::to_string() const {
  return "signature check failed: " + std::string(verify_check_name(check)) + " (key_id=" + key_id +
         ", skew_s=" + std::to_string(skew_s) + ")";
}

std::expected<void, VerifyFailure> ResponseVerifier::verify(const SignedMessage& m,
                                                            std::string_view context) const {
  VerifyFailure f;
  f.key_id = m.serial;
  std::int64_t ts = 0;
  bool ts_ok = false;
  if (!m.timestamp.empty()) {
    char* end = nullptr;
    errno = 0;
    long long parsed = std::strtoll(m.timestamp.c_str(), &end, 10);
    ts_ok = errno == 0 && end != nullptr && *end == '\0';
    ts = parsed;
  }
  if (ts_ok) {
    f.skew_s = clock_->unix_seconds() - ts;
  }
  auto refuse = [&](VerifyCheck check) -> std::expected<void, VerifyFailure> {
    f.check = check;
    verify_failures(check).inc();
    log::warn("provider signature refused",
              {{"CONTEXT", context},
               {"CHECK", verify_check_name(check)},
               {"KEY_ID", f.key_id.empty() ? std::string("-") : f.key_id},
               {"SKEW_S", f.skew_s}});
    return std::unexpected(f);
  };
  if (m.timestamp.empty() || m.nonce.empty() || m.signature.empty() || m.serial.empty()) {
    return refuse(VerifyCheck::kMissingHeader);
  }
  if (!m.signature_type.empty() && m.signature_type != kSignatureType) {
    return refuse(VerifyCheck::kSignatureType);
  }
  // Deliberate probe traffic from the provider: it must never verify.
  if (m.signature.starts_with("WECHATPAY/SIGNTEST/")) {
    return refuse(VerifyCheck::kSignTestProbe);
  }
  if (!ts_ok) {
    return refuse(VerifyCheck::kBadTimestamp);
  }
  if (std::llabs(f.skew_s) > kMaxSignatureSkewSeconds) {
    return refuse(VerifyCheck::kSkew);
  }
  auto key = keys_->find(m.serial);
  if (!key) {
    return refuse(VerifyCheck::kUnknownKey);
  }
  std::string message = m.timestamp + "\n" + m.nonce + "\n" + m.body + "\n";
  if (!pki::verify_sha256_rsa_base64(*key, message, m.signature)) {
    return refuse(VerifyCheck::kBadSignature);
  }
  return {};
}

// --- client --------------------------------------------------------------------------------

struct WechatPayClient::Impl {
  config::ProviderSection config;
  const Clock* clock = nullptr;
  std::string host;
  int port = 443;
  pki::PrivateKey merchant_key;
  std::shared_ptr<PlatformKeySet> keys;
  std::string apiv3_key;

  // A keep-alive HTTPS connection and the handle that ends its socket at a deadline.
  struct Connection {
    std::shared_ptr<SocketShutdown> socket;
    std::unique_ptr<httplib::SSLClient> client;
  };

  std::mutex pool_mu;
  std::vector<Connection> idle;
  std::atomic<std::int64_t> opened{0};

  // One certificate download at a time. A caller that finds one running waits for it (one
  // call deadline at most) and takes its result instead of starting another, so no call
  // waits behind more than one download (the bound in the header's TIME BOUNDS).
  std::mutex refresh_mu;
  std::condition_variable refresh_ended;
  bool refreshing = false;                  // guarded by refresh_mu
  std::uint64_t refreshes_ended = 0;        // guarded by refresh_mu
  ProviderResult<std::size_t> last_result;  // guarded by refresh_mu
  std::atomic<std::int64_t> last_refresh_s{0};
  std::int64_t last_unknown_refresh_s = -1'000'000;  // guarded by refresh_mu

  DeadlineWatchdog watchdog;  // after everything its armed sockets' calls use

  ~Impl() {
    // Closing pooled connections sends TLS close_notify, maybe to a peer that is gone.
    SigpipeBlock no_sigpipe;
    std::lock_guard lock(pool_mu);
    idle.clear();
  }

  // Every call ends by this long after it starts: connect and TLS within connect_timeout_ms
  // per step, and the whole exchange within the sum.
  std::chrono::milliseconds call_deadline() const {
    return std::chrono::milliseconds(config.connect_timeout_ms + config.request_timeout_ms);
  }

  // `reused` tells whether the connection came from the pool (it may have gone stale).
  Connection borrow(bool* reused, bool fresh_only = false) {
    *reused = false;
    if (!fresh_only) {
      std::lock_guard lock(pool_mu);
      if (!idle.empty()) {
        Connection c = std::move(idle.back());
        idle.pop_back();
        *reused = true;
        return c;
      }
    }
    Connection c{std::make_shared<SocketShutdown>(),
                 std::make_unique<httplib::SSLClient>(host, port)};
    opened.fetch_add(1);
    if (config.ca_file) {
      c.client->set_ca_cert_path(config.ca_file->string());
    }
    c.client->enable_server_certificate_verification(config.verify_tls);
    c.client->set_keep_alive(true);
    c.client->set_tcp_nodelay(true);  // headers and body go out in separate writes
    c.client->set_url_encode(false);  // targets are percent-encoded here, exactly as signed
    // Per step: the connect and each TLS handshake wait, each read and each write. The
    // watchdog bounds their sum (call_deadline()).
    c.client->set_connection_timeout(std::chrono::milliseconds(config.connect_timeout_ms));
    c.client->set_read_timeout(std::chrono::milliseconds(config.request_timeout_ms));
    c.client->set_write_timeout(std::chrono::milliseconds(config.request_timeout_ms));
    // Called with every socket cpp-httplib opens for this connection, before it connects.
    c.client->set_socket_options([socket = c.socket](socket_t sock) { socket->adopt(sock); });
    return c;
  }

  void give_back(Connection c) {
    std::lock_guard lock(pool_mu);
    if (idle.size() < 32) {
      idle.push_back(std::move(c));
    }
  }

  // One send on `c` that ends by `deadline`. `expired` tells whether the watchdog cut it.
  bool send_by(DeadlineWatchdog::Deadline deadline, Connection& c, httplib::Request& req,
               httplib::Response& res, httplib::Error& err, bool* expired) {
    c.socket->arm();
    const std::uint64_t ticket = watchdog.arm(deadline, c.socket);
    const bool ok = c.client->send(req, res, err);
    watchdog.disarm(deadline, ticket);
    *expired = c.socket->expired();
    return ok;
  }

  struct Reply {
    int status = 0;
    std::string body;
    SignedMessage signed_parts;
  };

  // One signed HTTPS exchange, ended by call_deadline() after it starts. `verify` = check the
  // platform signature of 2xx replies.
  // `classify` maps an error reply's status and code to the outcome (the in-cab payment
  // calls have their own tables).
  using Classifier = Outcome (*)(CallKind, int, std::string_view);
  ProviderResult<Reply> exchange(std::string_view call, CallKind kind, const std::string& method,
                                 const std::string& target, const std::string& body,
                                 bool verify = true, Classifier classify = classify_reply) {
    if (verify && call != "certificates") {
      maybe_periodic_refresh();
    }
    std::string timestamp = std::to_string(clock->unix_seconds());
    auto nonce = crypto::random_token(32);
    if (!nonce) {
      return std::unexpected(
          failure(Outcome::kRetryLater, nonce.error().code, nonce.error().message));
    }
    auto auth = authorization_header(merchant_key, config.caller_mchid(), config.merchant_serial_no, method,
                                     target, timestamp, *nonce, body);
    if (!auth) {
      return std::unexpected(failure(Outcome::kPark, auth.error().code, auth.error().message));
    }
    httplib::Request req;
    req.method = method;
    req.path = target;
    req.headers = {{"Authorization", *auth},
                   {"Accept", "application/json"},
                   {"User-Agent", "lanegate/0.1 (WeChatPay-APIv3)"}};
    if (!config.public_key_id.empty()) {
      // Ask for replies signed with the provider public key.
      req.headers.emplace("Wechatpay-Serial", config.public_key_id);
    }
    if (method == "POST") {
      req.body = body;
      req.headers.emplace("Content-Type", "application/json");
    }
    // The whole exchange, the stale keep-alive retry included, ends by one deadline.
    const auto deadline = std::chrono::steady_clock::now() + call_deadline();
    // Before the connection: the client's destructor may write (TLS close_notify).
    SigpipeBlock no_sigpipe;
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    bool reused = false;
    bool expired = false;
    Connection conn = borrow(&reused);
    bool ok = send_by(deadline, conn, req, res, err, &expired);
    if (!ok && reused && err == httplib::Error::Write && !expired) {
      // A pooled keep-alive connection the server had already closed: the request could
      // not be written, so it was never complete at the provider. Once more, fresh.
      conn = borrow(&reused, /*fresh_only=*/true);
      res = httplib::Response();
      err = httplib::Error::Success;
      ok = send_by(deadline, conn, req, res, err, &expired);
    }
    if (!ok) {
      // Connect refused / handshake failed (also when the deadline cut them): the request
      // never reached the provider. Anything later may have left: a charge is ambiguous.
      bool not_sent =
          err == httplib::Error::Connection || err == httplib::Error::ConnectionTimeout ||
          err == httplib::Error::SSLConnection || err == httplib::Error::SSLServerVerification ||
          err == httplib::Error::SSLLoadingCerts;
      Outcome outcome =
          kind == CallKind::kCharge && !not_sent ? Outcome::kQueryFirst : Outcome::kRetryLater;
      std::string what = "transport: " + httplib::to_string(err);
      if (expired) {
        what =
            "deadline of " + std::to_string(call_deadline().count()) + " ms passed (" + what + ")";
      }
      log::warn("provider call failed in transport", {{"CALL", call},
                                                      {"ERROR", httplib::to_string(err)},
                                                      {"DEADLINE_PASSED", expired ? "yes" : "no"},
                                                      {"OUTCOME", outcome_name(outcome)}});
      return std::unexpected(failure(
          outcome, not_sent && !expired ? Errc::kUnavailable : Errc::kTimeout, std::move(what)));
    }
    if (!expired) {
      give_back(std::move(conn));  // a socket cut at the deadline is useless, even after a reply
    }
    Reply reply;
    reply.status = res.status;
    reply.body = std::move(res.body);
    reply.signed_parts = SignedMessage{
        res.get_header_value("Wechatpay-Timestamp"),      res.get_header_value("Wechatpay-Nonce"),
        res.get_header_value("Wechatpay-Signature"),      res.get_header_value("Wechatpay-Serial"),
        res.get_header_value("Wechatpay-Signature-Type"), reply.body};
    if (res.status < 200 || res.status >= 300) {
      return std::unexpected(
          provider_error(call, kind, reply, method, target, timestamp, *nonce, body, classify));
    }
    if (verify) {
      if (auto v = verify_reply(reply.signed_parts, call); !v) {
        // Invariant 3: an unverifiable 2xx to a charge is ambiguous, never a refusal.
        Outcome outcome = kind == CallKind::kCharge ? Outcome::kQueryFirst : Outcome::kRetryLater;
        return std::unexpected(failure(outcome, Errc::kCrypto, v.error().to_string(),
                                       "Wechatpay-Signature", res.status));
      }
    }
    return reply;
  }

  std::expected<void, VerifyFailure> verify_reply(const SignedMessage& m, std::string_view call) {
    ResponseVerifier verifier(keys, *clock);
    auto v = verifier.verify(m, call);
    if (!v && v.error().check == VerifyCheck::kUnknownKey) {
      // A rotated platform certificate: get the current ones and verify again (the keys may
      // also have arrived by another thread's download since the first try).
      refresh_for_unknown_key();
      v = verifier.verify(m, call);
    }
    return v;
  }

  ProviderFailure provider_error(std::string_view call, CallKind kind, const Reply& reply,
                                 const std::string& method, const std::string& target,
                                 const std::string& timestamp, const std::string& nonce,
                                 const std::string& body, Classifier classify) {
    std::string code;
    std::string message;
    std::string field;
    boost::system::error_code ec;
    json::value v = json::parse(reply.body, ec);
    if (!ec && v.is_object()) {
      const auto& o = v.as_object();
      code = get_string(o, "code").value_or("");
      message = get_string(o, "message").value_or("");
      if (const auto* d = o.if_contains("detail"); d != nullptr && d->is_object()) {
        field = get_string(d->as_object(), "field").value_or("");
        if (code == "SIGN_ERROR") {
          // Compare what the provider verified with what we signed, without logging the
          // message itself (it can carry plates and openids).
          std::string ours = request_sign_message(method, target, timestamp, nonce, body);
          std::string theirs;
          if (const auto* si = d->as_object().if_contains("sign_information");
              si != nullptr && si->is_object()) {
            theirs = get_string(si->as_object(), "truncated_sign_message").value_or("");
          }
          bool prefix = !theirs.empty() && ours.starts_with(theirs);
          log::error("provider refused our request signature (SIGN_ERROR)",
                     {{"CALL", call},
                      {"SERIAL_NO", config.merchant_serial_no},
                      {"OUR_MESSAGE_BYTES", static_cast<std::int64_t>(ours.size())},
                      {"PROVIDER_MESSAGE_IS_OUR_PREFIX", prefix ? "yes" : "no"},
                      {"ISSUE", get_string(d->as_object(), "issue").value_or("")}});
        }
      }
    }
    Outcome outcome = classify(kind, reply.status, code);
    log::warn("provider replied with an error", {{"CALL", call},
                                                 {"HTTP_STATUS", reply.status},
                                                 {"CODE", code},
                                                 {"OUTCOME", outcome_name(outcome)}});
    Errc errc = reply.status == 401 || reply.status == 403 ? Errc::kPermission
                : reply.status == 404                      ? Errc::kNotFound
                : reply.status >= 500                      ? Errc::kUnavailable
                                                           : Errc::kRejected;
    return failure(outcome, errc, code + ": " + message, field, reply.status, code);
  }

  void maybe_periodic_refresh() {
    std::int64_t now = clock->unix_seconds();
    if (config.certificate_refresh_s <= 0 ||
        now - last_refresh_s.load() < config.certificate_refresh_s) {
      return;
    }
    std::unique_lock lock(refresh_mu);
    if (refreshing || now - last_refresh_s.load() < config.certificate_refresh_s) {
      return;  // another thread is at it, or just was
    }
    // A failed refresh keeps the old keys and is retried at the next period.
    (void)run_refresh(lock);
  }

  // Downloads the certificates, or waits for the download already running and returns its
  // result.
  ProviderResult<std::size_t> refresh() {
    std::unique_lock lock(refresh_mu);
    if (refreshing) {
      return wait_for_refresh(lock);
    }
    return run_refresh(lock);
  }

  // A reply named a key we do not have: waits for the download running now, else starts
  // one -- at most one such download per 60 s, so a stream of bad replies cannot turn into
  // a stream of downloads.
  void refresh_for_unknown_key() {
    std::unique_lock lock(refresh_mu);
    if (refreshing) {
      (void)wait_for_refresh(lock);
      return;
    }
    const std::int64_t now = clock->unix_seconds();
    if (now - last_unknown_refresh_s < kUnknownKeyRefreshMinSeconds) {
      return;
    }
    last_unknown_refresh_s = now;
    (void)run_refresh(lock);
  }

  // REQUIRES: `lock` holds refresh_mu and a download is running.
  ProviderResult<std::size_t> wait_for_refresh(std::unique_lock<std::mutex>& lock) {
    const std::uint64_t ended = refreshes_ended;
    refresh_ended.wait(lock, [&] { return refreshes_ended != ended; });
    return last_result;
  }

  // REQUIRES: `lock` holds refresh_mu and no download is running. Downloads without the lock.
  ProviderResult<std::size_t> run_refresh(std::unique_lock<std::mutex>& lock) {
    refreshing = true;
    last_refresh_s = clock->unix_seconds();
    lock.unlock();
    auto result = download_platform_keys();
    lock.lock();
    refreshing = false;
    ++refreshes_ended;
    last_result = result;
    refresh_ended.notify_all();
    return result;
  }

  // REQUIRES: called only by run_refresh() (one download at a time).
  ProviderResult<std::size_t> download_platform_keys() {
    auto reply = exchange("certificates", CallKind::kRead, "GET", "/v3/certificates", "",
                          /*verify=*/false);
    if (!reply) {
      return std::unexpected(reply.error());
    }
    boost::system::error_code ec;
    json::value v = json::parse(reply->body, ec);
    if (ec || !v.is_object() || v.as_object().if_contains("data") == nullptr ||
        !v.as_object().at("data").is_array()) {
      return std::unexpected(failure(Outcome::kRetryLater, Errc::kProtocol,
                                     "certificates reply has no data array", "data"));
    }
    auto candidate = std::make_shared<PlatformKeySet>();
    for (const auto& id : keys->ids()) {
      candidate->put(id, *keys->find(id));
    }
    std::vector<std::pair<std::string, pki::PublicKey>> fresh;
    for (const auto& item : v.as_object().at("data").as_array()) {
      if (!item.is_object()) {
        continue;
      }
      const auto& o = item.as_object();
      auto serial = get_string(o, "serial_no");
      const auto* enc = o.if_contains("encrypt_certificate");
      if (!serial || enc == nullptr || !enc->is_object()) {
        continue;
      }
      const auto& e = enc->as_object();
      auto sealed = crypto::base64_decode(get_string(e, "ciphertext").value_or(""));
      if (!sealed) {
        continue;
      }
      auto pem = pki::aes256gcm_decrypt(
          apiv3_key, get_string(e, "nonce").value_or(""),
          get_string(e, "associated_data").value_or(""),
          std::string_view(reinterpret_cast<const char*>(sealed->data()), sealed->size()));
      if (!pem) {
        log::warn("platform certificate does not decrypt (APIv3 key?)", {{"SERIAL", *serial}});
        continue;
      }
      auto cert = pki::certificate_from_pem(*pem);
      if (!cert || cert->serial_hex != *serial) {
        log::warn("platform certificate serial does not match its serial_no",
                  {{"SERIAL", *serial}});
        continue;
      }
      if (cert->not_after < clock->now()) {
        continue;  // expired
      }
      candidate->put(*serial, cert->public_key);
      fresh.emplace_back(*serial, cert->public_key);
    }
    // The reply must verify with a key it delivered or one already trusted.
    ResponseVerifier verifier(candidate, *clock);
    if (auto ok = verifier.verify(reply->signed_parts, "certificates"); !ok) {
      return std::unexpected(failure(Outcome::kRetryLater, Errc::kCrypto, ok.error().to_string(),
                                     "Wechatpay-Signature"));
    }
    for (const auto& [id, key] : fresh) {
      keys->put(id, key);
    }
    log::info("platform keys refreshed", {{"KEYS", static_cast<std::int64_t>(keys->size())}});
    return keys->size();
  }

  // --- partner fields (spec "Direct merchant vs service provider") ----------------------

  // Partner POST bodies name the special merchant (and its app, where the call has one).
  void add_sub_merchant(json::object& o, bool with_app) const {
    if (config.partner()) {
      o["sub_mchid"] = config.sub_mchid;
      if (with_app && !config.sub_appid.empty()) {
        o["sub_appid"] = config.sub_appid;
      }
    }
  }
  // Partner GETs take sub_mchid in the query: "?sub_mchid=…" / "&sub_mchid=…"; "" direct.
  std::string sub_merchant_query(char separator) const {
    if (!config.partner()) {
      return "";
    }
    return std::string(1, separator) + "sub_mchid=" + percent_encode(config.sub_mchid);
  }
  // ETC calls exist only in the service-provider API.
  std::optional<ProviderFailure> etc_needs_partner() const {
    if (config.partner()) {
      return std::nullopt;
    }
    return failure(Outcome::kPark, Errc::kInvalidArgument,
                   "ETC highway calls are a service-provider API: [provider] mode must be partner",
                   "provider.mode");
  }

  // --- in-cab payments (spec "Taxi: in-cab payment") ------------------------------------

  // Spec "Direct merchant vs service provider", payment code / Native row.
  std::string pay_base() const {
    return config.partner() ? "/v3/pay/partner/transactions" : "/v3/pay/transactions";
  }
  // Pay, Native and reverse bodies: direct appid, mchid; partner sp_appid, sp_mchid,
  // sub_appid (when configured), sub_mchid.
  void add_pay_merchant(json::object& o) const {
    if (config.partner()) {
      o["sp_appid"] = config.sp_appid;
      o["sp_mchid"] = config.sp_mchid;
      if (!config.sub_appid.empty()) {
        o["sub_appid"] = config.sub_appid;
      }
      o["sub_mchid"] = config.sub_mchid;
    } else {
      o["appid"] = config.appid;
      o["mchid"] = config.mchid;
    }
  }
  // Query: "?mchid=…" (direct) or "?sp_mchid=…&sub_mchid=…" (partner), encoded as signed.
  std::string pay_merchant_query() const {
    if (config.partner()) {
      return "?sp_mchid=" + percent_encode(config.sp_mchid) +
             "&sub_mchid=" + percent_encode(config.sub_mchid);
    }
    return "?mchid=" + percent_encode(config.mchid);
  }
  std::string pay_order_path(std::string_view out_trade_no) const {
    return pay_base() + "/out-trade-no/" + percent_encode(out_trade_no);
  }

  // --- JSON mapping -------------------------------------------------------------------
  ProviderResult<ProviderTransaction> parse_transaction(Product product, const std::string& body) {
    return read_transaction(product, body);
  }

  std::optional<std::string> car_type(int vehicle_class) const {
    for (const auto& c : config.etc.car_types) {
      if (c.vehicle_class == vehicle_class) {
        return c.value;
      }
    }
    return std::nullopt;
  }

  // Checks what the provider would refuse, before anything leaves.
  std::optional<ProviderFailure> check_highway(const ChargeRequest& r) const {
    if (auto f = etc_needs_partner()) {
      return f;
    }
    const auto& allowed = config.etc.channel_types;
    if (std::find(allowed.begin(), allowed.end(), config.etc.channel_type) == allowed.end()) {
      return failure(Outcome::kPark, Errc::kInvalidArgument,
                     "channel_type \"" + config.etc.channel_type + "\" is not one of channel_types",
                     "provider.etc.channel_type");
    }
    if (r.contract_id.empty() || r.highway.entrance.empty() || r.highway.plate_number.empty()) {
      return failure(Outcome::kPark, Errc::kInvalidArgument,
                     "an ETC deduction needs contract_id, highway_info.plate_number and "
                     "highway_info.entrance (the entry station's name)",
                     "highway_info.entrance");
    }
    return std::nullopt;
  }

  std::string charge_body(const ChargeRequest& r) {
    json::object o;
    o["appid"] = config.caller_appid();
    add_sub_merchant(o, /*with_app=*/true);
    o["description"] = r.description;
    o["out_trade_no"] = r.out_trade_no;
    if (r.product != Product::kHighway) {
      // Spec: the ETC deduction has no notify_url (its result is the reply or a query).
      o["notify_url"] = r.notify_url.empty() ? config.notify_url : r.notify_url;
    }
    if (r.attach) {
      o["attach"] = *r.attach;
    }
    json::object amount;
    amount["total"] = r.amount.fen();
    amount["currency"] = "CNY";
    o["amount"] = std::move(amount);
    if (r.product == Product::kParking) {
      o["trade_scene"] = "PARKING";
      json::object p;
      p["parking_id"] = r.parking.parking_id;
      p["plate_number"] = r.parking.plate_number;
      p["plate_color"] = r.parking.plate_color;
      p["start_time"] = format_rfc3339(r.parking.start_time, kChina);
      p["end_time"] = format_rfc3339(r.parking.end_time, kChina);
      p["parking_name"] = r.parking.parking_name;
      p["charging_duration"] = r.parking.charging_duration_s;
      p["device_id"] = r.parking.device_id;
      o["parking_info"] = std::move(p);
    } else {
      // Spec "ETC highway deduction": entrance and exit are station names; start_time is
      // the entry, end_time the exit. No plate_color in highway_info.
      o["contract_id"] = r.contract_id;
      json::object h;
      h["plate_number"] = r.highway.plate_number;
      h["start_time"] = format_rfc3339(r.highway.start_time, kChina);
      h["end_time"] = format_rfc3339(r.highway.end_time, kChina);
      h["channel_type"] = config.etc.channel_type;
      if (auto ct = car_type(r.highway.vehicle_class)) {
        h["car_type"] = *ct;
      }
      h["entrance"] = r.highway.entrance;
      if (!r.highway.exit.empty()) {
        h["exit"] = r.highway.exit;
      }
      o["highway_info"] = std::move(h);
    }
    return json::serialize(o);
  }

  ProviderResult<ProviderTransaction> send_charge(const ChargeRequest& r) {
    if (r.product == Product::kHighway) {
      if (auto refused = check_highway(r)) {
        return std::unexpected(*refused);
      }
    }
    std::string path = r.product == Product::kParking ? "/v3/vehicle/transactions/parking"
                                                      : "/v3/vehicle/etc/transactions/highway";
    auto reply = exchange("charge", CallKind::kCharge, "POST", path, charge_body(r));
    if (!reply) {
      return std::unexpected(reply.error());
    }
    auto t = parse_transaction(r.product, reply->body);
    if (!t) {
      // A 2xx we cannot read: the charge may exist. Ambiguous -- except a state the spec
      // does not list, which stays parked for an operator (parse_transaction).
      auto f = t.error();
      if (f.provider_code != kUnknownTradeState) {
        f.outcome = Outcome::kQueryFirst;
      }
      return std::unexpected(f);
    }
    return check_same_money(r, std::move(*t));
  }

  ProviderResult<ProviderTransaction> check_same_money(const ChargeRequest& r,
                                                       ProviderTransaction t) {
    if (t.out_trade_no != r.out_trade_no || t.amount != r.amount) {
      log::error("provider transaction does not match the charge we sent",
                 {{"OUT_TRADE_NO", r.out_trade_no},
                  {"SENT_FEN", r.amount.fen()},
                  {"PROVIDER_FEN", t.amount.fen()}});
      return std::unexpected(failure(Outcome::kPark, Errc::kProtocol,
                                     "provider transaction differs from the charge (amount or "
                                     "out_trade_no)",
                                     "amount.total"));
    }
    return t;
  }
};

WechatPayClient::WechatPayClient(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), keys_(impl_->keys), apiv3_key_(impl_->apiv3_key) {}

WechatPayClient::~WechatPayClient() = default;

Result<std::unique_ptr<WechatPayClient>> WechatPayClient::create(
    const config::ProviderSection& config, const Clock& clock) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->clock = &clock;
  static const std::regex kUrl(R"(^https://([^/:]+)(?::(\d{1,5}))?/?$)");
  std::smatch m;
  if (!std::regex_match(config.base_url, m, kUrl)) {
    return fail(Errc::kInvalidArgument, "must be https://HOST[:PORT] without a path",
                "provider.base_url");
  }
  impl->host = m[1];
  impl->port = m[2].matched ? std::stoi(m[2]) : 443;
  if (config.caller_mchid().empty() || config.caller_appid().empty() ||
      config.merchant_serial_no.empty()) {
    return fail(Errc::kInvalidArgument,
                "the merchant id and app id (direct: mchid, appid; partner: sp_mchid, sp_appid) "
                "and merchant_serial_no are required",
                "provider");
  }
  if (config.partner() && config.sub_mchid.empty()) {
    return fail(Errc::kInvalidArgument, "partner mode needs sub_mchid", "provider.sub_mchid");
  }
  auto key = pki::load_private_key(config.merchant_private_key_file);
  if (!key) {
    return std::unexpected(key.error());
  }
  impl->merchant_key = *key;
  auto apiv3 = pki::read_file(config.apiv3_key_file);
  if (!apiv3) {
    return std::unexpected(apiv3.error());
  }
  impl->apiv3_key = trim_line(*apiv3);
  if (impl->apiv3_key.size() != 32) {
    return fail(Errc::kInvalidArgument, "APIv3 key must be exactly 32 bytes",
                config.apiv3_key_file.string());
  }
  impl->keys = std::make_shared<PlatformKeySet>();
  for (const auto& pk : config.platform_keys) {
    auto pub = pki::load_public_key(pk.file);
    if (!pub) {
      return std::unexpected(pub.error());
    }
    impl->keys->put(pk.id, *pub);
  }
  // Configured keys count as fresh: the timer refresh starts one period from now.
  impl->last_refresh_s = clock.unix_seconds();
  return std::unique_ptr<WechatPayClient>(new WechatPayClient(std::move(impl)));
}

ProviderResult<PlateServiceState> WechatPayClient::find_plate_service(const PlateServiceQuery& q) {
  if (!is_plate_color(q.plate_color)) {
    return std::unexpected(failure(Outcome::kPark, Errc::kInvalidArgument,
                                   "not one of BLUE, GREEN, YELLOW, BLACK, WHITE, LIMEGREEN",
                                   "plate_color"));
  }
  std::string target = "/v3/vehicle/parking/services/find?appid=" +
                       percent_encode(q.appid.empty() ? impl_->config.caller_appid() : q.appid) +
                       "&plate_number=" + percent_encode(q.plate_number) +
                       "&plate_color=" + percent_encode(q.plate_color) +
                       "&openid=" + percent_encode(q.openid) + impl_->sub_merchant_query('&');
  auto reply = impl_->exchange("find_plate_service", CallKind::kRead, "GET", target, "");
  call_outcomes("find_plate_service", reply ? Outcome::kOk : reply.error().outcome).inc();
  if (!reply) {
    return std::unexpected(reply.error());
  }
  auto parsed = reply_object(reply->body);
  if (!parsed) {
    return std::unexpected(parsed.error());
  }
  const json::object& o = *parsed;
  PlateServiceState s{get_string(o, "plate_number").value_or(""),
                      get_string(o, "plate_color").value_or(""),
                      get_string(o, "openid").value_or(""), get_string(o, "service_open_time"),
                      get_string(o, "service_state").value_or("")};
  if (s.service_state != "NORMAL" && s.service_state != "PAUSE" &&
      s.service_state != "OUT_SERVICE") {
    return std::unexpected(failure(Outcome::kRetryLater, Errc::kProtocol,
                                   "service_state not NORMAL, PAUSE or OUT_SERVICE",
                                   "service_state"));
  }
  return s;
}

ProviderResult<ParkingEntry> WechatPayClient::create_parking_entry(const ParkingEntryRequest& r) {
  json::object o;
  impl_->add_sub_merchant(o, /*with_app=*/false);  // the entry call has no sub_appid
  o["out_parking_no"] = r.out_parking_no;
  o["plate_number"] = r.plate_number;
  o["plate_color"] = r.plate_color;
  o["notify_url"] = r.notify_url.empty() ? impl_->config.notify_url : r.notify_url;
  o["start_time"] = format_rfc3339(r.start_time, kChina);
  o["parking_name"] = r.parking_name;
  o["free_duration"] = r.free_duration_s;
  auto reply = impl_->exchange("create_parking_entry", CallKind::kIdempotent, "POST",
                               "/v3/vehicle/parking/parkings", json::serialize(o));
  call_outcomes("create_parking_entry", reply ? Outcome::kOk : reply.error().outcome).inc();
  if (!reply) {
    return std::unexpected(reply.error());
  }
  auto parsed = reply_object(reply->body);
  if (!parsed) {
    return std::unexpected(parsed.error());
  }
  const json::object& p = *parsed;
  ParkingEntry e{get_string(p, "id").value_or(""), get_string(p, "out_parking_no").value_or(""),
                 get_string(p, "state").value_or(""), get_string(p, "block_reason")};
  if (e.id.empty() || (e.state != "NORMAL" && e.state != "BLOCKED")) {
    return std::unexpected(failure(Outcome::kRetryLater, Errc::kProtocol,
                                   "parking entry reply lacks id or a known state", "state"));
  }
  return e;
}

ProviderResult<ProviderTransaction> WechatPayClient::charge(const ChargeRequest& r,
                                                            ChargeAttempt attempt) {
  ProviderResult<ProviderTransaction> result;
  if (attempt == ChargeAttempt::kAfterAmbiguity) {
    // Invariant 2: query the same out_trade_no before any resend.
    auto found = query_transaction(r.product, r.out_trade_no);
    if (found) {
      result = impl_->check_same_money(r, std::move(*found));
    } else if (found.error().outcome == Outcome::kNotFound) {
      log::info("ambiguous charge never arrived; resending the same out_trade_no",
                {{"OUT_TRADE_NO", r.out_trade_no}});
      result = impl_->send_charge(r);
    } else {
      auto f = found.error();
      if (f.outcome == Outcome::kRetryLater) {
        f.outcome = Outcome::kQueryFirst;  // still ambiguous: keep querying
      }
      result = std::unexpected(f);
    }
  } else {
    result = impl_->send_charge(r);
  }
  call_outcomes("charge", result ? Outcome::kOk : result.error().outcome).inc();
  return result;
}

ProviderResult<ProviderTransaction> WechatPayClient::query_transaction(
    Product product, std::string_view out_trade_no) {
  if (product == Product::kHighway) {
    if (auto f = impl_->etc_needs_partner()) {
      return std::unexpected(*f);
    }
  }
  std::string target =
      (product != Product::kHighway ? "/v3/vehicle/transactions/out-trade-no/"
                                    : "/v3/vehicle/etc/transactions/out-trade-no/") +
      percent_encode(out_trade_no) + impl_->sub_merchant_query('?');
  auto reply = impl_->exchange("query", CallKind::kRead, "GET", target, "");
  call_outcomes("query", reply ? Outcome::kOk : reply.error().outcome).inc();
  if (!reply) {
    return std::unexpected(reply.error());
  }
  return impl_->parse_transaction(product, reply->body);
}

ProviderResult<TradeBill> WechatPayClient::download_trade_bill(std::string_view bill_date) {
  // Partner: the special merchant's bill (optional sub_mchid query of the spec).
  std::string target = "/v3/bill/tradebill?bill_date=" + percent_encode(bill_date) +
                       "&bill_type=ALL" + impl_->sub_merchant_query('&');
  auto reply = impl_->exchange("tradebill", CallKind::kRead, "GET", target, "");
  if (!reply) {
    return std::unexpected(reply.error());
  }
  auto parsed = reply_object(reply->body);
  if (!parsed) {
    return std::unexpected(parsed.error());
  }
  auto url = get_string(*parsed, "download_url").value_or("");
  auto hash = get_string(*parsed, "hash_value").value_or("");
  static const std::regex kUrl(R"(^https://([^/:]+)(?::(\d{1,5}))?(/.*)$)");
  std::smatch m;
  if (!std::regex_match(url, m, kUrl) || hash.empty()) {
    return std::unexpected(failure(Outcome::kRetryLater, Errc::kProtocol,
                                   "tradebill reply lacks download_url or hash_value",
                                   "download_url"));
  }
  // The client's connections go to base_url's host: a download_url elsewhere is refused
  // rather than fetched from the wrong host or sent our signature (the spec's URL is on
  // the API host, /v3/billdownload/file?token=...).
  const int url_port = m[2].matched ? std::stoi(m[2]) : 443;
  if (m[1] != impl_->host || url_port != impl_->port) {
    return std::unexpected(failure(Outcome::kRetryLater, Errc::kProtocol,
                                   "download_url is on " + std::string(m[1]) +
                                       ", not the provider host of base_url",
                                   "download_url"));
  }
  // hash_value is hex; its letter case is not specified.
  std::transform(hash.begin(), hash.end(), hash.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // The file reply is not signed; its SHA-1 from the signed reply protects it.
  auto file = impl_->exchange("billdownload", CallKind::kRead, "GET", m[3], "",
                              /*verify=*/false);
  if (!file) {
    return std::unexpected(file.error());
  }
  if (pki::sha1_hex(file->body) != hash) {
    return std::unexpected(failure(Outcome::kRetryLater, Errc::kCrypto,
                                   "trade bill SHA-1 does not match hash_value", "hash_value"));
  }
  return TradeBill{std::move(file->body), hash};
}

ProviderResult<EtcContract> WechatPayClient::query_etc_contract(std::string_view contract_id) {
  if (auto f = impl_->etc_needs_partner()) {
    return std::unexpected(*f);
  }
  std::string target = "/v3/vehicle/etc/contracts/" + percent_encode(contract_id) +
                       impl_->sub_merchant_query('?');
  auto reply = impl_->exchange("etc_contract", CallKind::kRead, "GET", target, "");
  call_outcomes("etc_contract", reply ? Outcome::kOk : reply.error().outcome).inc();
  if (!reply) {
    return std::unexpected(reply.error());
  }
  auto parsed = reply_object(reply->body);
  if (!parsed) {
    return std::unexpected(parsed.error());
  }
  const json::object& o = *parsed;
  EtcContract c{get_string(o, "contract_id").value_or(""),
                get_string(o, "plate_number").value_or(""),
                get_string(o, "bind_state").value_or(""),
                get_string(o, "sp_mchid").value_or(""),
                get_string(o, "sub_mchid").value_or(""),
                get_string(o, "sp_openid").value_or(""),
                reply->body};
  if (c.contract_id != contract_id || c.bind_state.empty() || c.plate_number.empty()) {
    return std::unexpected(failure(Outcome::kRetryLater, Errc::kProtocol,
                                   "contract reply lacks this contract_id, bind_state or plate_number",
                                   "bind_state"));
  }
  return c;
}

ProviderResult<Payment> WechatPayClient::codepay(const CodepayRequest& r) {
  auto result = [&]() -> ProviderResult<Payment> {
    for (auto refused : {check_out_trade_no(r.out_trade_no), check_description(r.description),
                         check_amount(r.amount), check_auth_code(r.auth_code)}) {
      if (refused) {
        return std::unexpected(*refused);
      }
    }
    if (r.store_out_id.empty()) {
      // store_info is required and both its fields are optional: out_id is what we send.
      return std::unexpected(refused_locally("scene_info.store_info.out_id",
                                             "is required (the gateway id names the store)"));
    }
    json::object o;
    impl_->add_pay_merchant(o);
    o["description"] = r.description;
    o["out_trade_no"] = r.out_trade_no;
    if (r.attach) {
      o["attach"] = *r.attach;
    }
    o["payer"] = json::object{{"auth_code", r.auth_code}};
    o["amount"] = json::object{{"total", r.amount.fen()}, {"currency", "CNY"}};
    json::object scene;
    if (!r.device_id.empty()) {
      scene["device_id"] = r.device_id;
    }
    scene["store_info"] = json::object{{"out_id", r.store_out_id}};
    o["scene_info"] = std::move(scene);
    // One exchange: a payment code is never resent by the client (spec "Ambiguous results":
    // do not resubmit; query, then reverse).
    auto reply = impl_->exchange("codepay", CallKind::kCharge, "POST",
                                 impl_->pay_base() + "/codepay", json::serialize(o),
                                 /*verify=*/true, classify_codepay_reply);
    if (!reply) {
      return std::unexpected(reply.error());
    }
    auto paid = read_payment(PayProduct::kCodepay, reply->body);
    if (!paid) {
      // A verified 2xx we cannot use: the order may exist and may be paid. Never "refused"
      // (that would ask the passenger to pay again); an unknown trade_state keeps its
      // provider_code for the alarm.
      auto f = paid.error();
      f.outcome = Outcome::kQueryFirst;
      return std::unexpected(f);
    }
    return paid;
  }();
  if (!result) {
    result = std::unexpected(without_secret(result.error(), r.auth_code));
  }
  call_outcomes("codepay", result ? Outcome::kOk : result.error().outcome).inc();
  return result;
}

ProviderResult<std::string> WechatPayClient::create_native(const NativeRequest& r) {
  auto result = [&]() -> ProviderResult<std::string> {
    for (auto refused : {check_out_trade_no(r.out_trade_no), check_description(r.description),
                         check_amount(r.amount)}) {
      if (refused) {
        return std::unexpected(*refused);
      }
    }
    const std::string& notify_url = r.notify_url.empty() ? impl_->config.notify_url : r.notify_url;
    if (!notify_url.starts_with("https://")) {
      return std::unexpected(
          refused_locally("notify_url", "is required and must be an https:// URL"));
    }
    json::object o;
    impl_->add_pay_merchant(o);
    o["description"] = r.description;
    o["out_trade_no"] = r.out_trade_no;
    if (r.time_expire) {
      o["time_expire"] = format_rfc3339(*r.time_expire, kChina);
    }
    if (r.attach) {
      o["attach"] = *r.attach;
    }
    o["notify_url"] = notify_url;
    o["amount"] = json::object{{"total", r.amount.fen()}, {"currency", "CNY"}};
    if (!r.device_id.empty()) {
      o["scene_info"] = json::object{{"device_id", r.device_id}};
    }
    auto reply = impl_->exchange("native", CallKind::kCharge, "POST",
                                 impl_->pay_base() + "/native", json::serialize(o),
                                 /*verify=*/true, classify_native_reply);
    if (!reply) {
      return std::unexpected(reply.error());
    }
    auto parsed = reply_object(reply->body);
    auto code_url = parsed ? get_string(*parsed, "code_url") : std::nullopt;
    if (!code_url || code_url->empty()) {
      // The order was created or not; only a query tells.
      return std::unexpected(failure(Outcome::kQueryFirst, Errc::kProtocol,
                                     "native reply lacks code_url", "code_url"));
    }
    return *code_url;
  }();
  call_outcomes("native", result ? Outcome::kOk : result.error().outcome).inc();
  return result;
}

ProviderResult<Payment> WechatPayClient::query_payment(PayProduct product,
                                                       std::string_view out_trade_no) {
  auto reply = impl_->exchange("payment_query", CallKind::kRead, "GET",
                               impl_->pay_order_path(out_trade_no) + impl_->pay_merchant_query(),
                               "");
  ProviderResult<Payment> result = reply ? read_payment(product, reply->body)
                                         : ProviderResult<Payment>(std::unexpected(reply.error()));
  call_outcomes("payment_query", result ? Outcome::kOk : result.error().outcome).inc();
  return result;
}

ProviderResult<std::monostate> WechatPayClient::reverse_payment(std::string_view out_trade_no) {
  json::object o;
  impl_->add_pay_merchant(o);
  // Spec: "repeat the reverse until it succeeds": repeatable, so a lost reply is retry_later.
  auto reply = impl_->exchange("reverse", CallKind::kIdempotent, "POST",
                               impl_->pay_order_path(out_trade_no) + "/reverse",
                               json::serialize(o));
  call_outcomes("reverse", reply ? Outcome::kOk : reply.error().outcome).inc();
  if (!reply) {
    return std::unexpected(reply.error());
  }
  return std::monostate{};
}

ProviderResult<std::monostate> WechatPayClient::close_payment(PayProduct,
                                                              std::string_view out_trade_no) {
  // Spec: close body {mchid} (partner {sp_mchid, sub_mchid}): no app ids.
  json::object o;
  if (impl_->config.partner()) {
    o["sp_mchid"] = impl_->config.sp_mchid;
    o["sub_mchid"] = impl_->config.sub_mchid;
  } else {
    o["mchid"] = impl_->config.mchid;
  }
  auto reply = impl_->exchange("close", CallKind::kIdempotent, "POST",
                               impl_->pay_order_path(out_trade_no) + "/close",
                               json::serialize(o));
  call_outcomes("close", reply ? Outcome::kOk : reply.error().outcome).inc();
  if (!reply) {
    return std::unexpected(reply.error());
  }
  return std::monostate{};
}

ProviderResult<std::size_t> WechatPayClient::refresh_platform_keys() { return impl_->refresh(); }

std::int64_t WechatPayClient::TEST_connections_opened() const { return impl_->opened.load(); }

}  // namespace lanegate::gateway
