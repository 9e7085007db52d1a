// The worker: settles accepted parking charges a moment later (the "deduction" of
// the real service) and delivers notifications over HTTPS with the spec's retry schedule,
// sealed with the merchant's APIv3 key (AES-256-GCM) and signed with the platform key.
#include <regex>

#include "core/crypto.h"
#include "provider_sandbox_impl.h"

namespace lanegate::sim {
using namespace sandbox;
using Impl = ProviderSandbox::Impl;

namespace {

// 15s, 15s, 30s, 3m, 10m, 20m, 30m, 30m, 30m, 60m, 3h, 3h, 3h, 6h, 6h.
constexpr std::int64_t kRetryScheduleSeconds[] = {
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600};

struct Pending {
  std::int64_t seq;
  std::string url, body;
  int attempts;
};

}  // namespace

// Settles due ACCEPTED transactions (invariant 4: the notification is queued in the
// same SQLite transaction as the state change). The resource is the parking Transaction
// as a query would return it, partner fields included.
void Impl::settle_due() {
  std::lock_guard lock(db_mu);
  auto txn = db().begin();
  if (!txn) {
    return;
  }
  auto st = db().prepare("SELECT " + std::string(kTxColumns) +
                         " FROM transactions WHERE trade_state='ACCEPTED' AND due_ms <= ? "
                         "ORDER BY seq LIMIT 200");
  if (!st) {
    return;
  }
  st->bind_all(real_now_ms());
  std::vector<TxRow> due;
  while (true) {
    auto row = st->step();
    if (!row || !*row) {
      break;
    }
    due.push_back(read_tx(*st));
  }
  for (auto& t : due) {
    bool overdue = false;
    if (auto a = db().prepare("SELECT overdue FROM accounts WHERE openid=?")) {
      a->bind_all(t.openid);
      if (auto row = a->step(); row && *row) {
        overdue = a->column_int64(0) != 0;
      }
    }
    t.trade_state = overdue ? "PAY_FAIL" : "SUCCESS";
    if (overdue) {
      t.trade_state_description = "用户账户欠费，扣款失败";
    } else {
      t.success_time = now_text();
    }
    auto up = db().prepare(
        "UPDATE transactions SET trade_state=?, trade_state_description=?, success_time=? "
        "WHERE seq=?");
    if (!up) {
      return;
    }
    if (!up->bind_all(t.trade_state, t.trade_state_description, t.success_time, t.seq).run()) {
      return;
    }
    if (t.notify_url.empty()) {
      continue;
    }
    auto merchant = find_merchant(t.mchid);
    if (!merchant) {
      continue;
    }
    const std::string event_type = overdue ? "TRANSACTION.FAIL" : "TRANSACTION.SUCCESS";
    if (!queue_notification(*merchant, t.notify_url, event_type, overdue ? "扣款失败" : "支付成功",
                            "transaction", json::serialize(parking_transaction_json(t)))) {
      return;
    }
  }
  (void)txn->commit();
}

Result<bool> Impl::queue_notification(const Merchant& m, const std::string& url,
                                      const std::string& event_type, std::string_view summary,
                                      std::string_view original_type, const std::string& resource) {
  auto body = notification_body(m, event_type, summary, original_type, resource);
  if (!body) {
    return false;
  }
  auto ins = db().prepare(
      "INSERT INTO notifications(event_id, event_type, mchid, url, body, next_ms) "
      "VALUES(?,?,?,?,?,?)");
  if (!ins) {
    return std::unexpected(ins.error());
  }
  if (auto r =
          ins->bind_all(body->first, event_type, m.mchid, url, body->second, real_now_ms()).run();
      !r) {
    return std::unexpected(r.error());
  }
  return true;
}

// {event id, envelope JSON}
std::optional<std::pair<std::string, std::string>> Impl::notification_body(
    const Merchant& m, std::string_view event_type, std::string_view summary,
    std::string_view original_type, const std::string& resource) {
  std::string nonce = crypto::random_token(12).value_or("000000000000");
  std::string aad = std::string(original_type);
  auto sealed = pki::aes256gcm_encrypt(m.apiv3_key, nonce, aad, resource);
  if (!sealed) {
    return std::nullopt;
  }
  std::string id = "EV-" + digits(8) + "-" + crypto::random_token(12).value_or("x");
  json::object res;
  res["original_type"] = original_type;
  res["algorithm"] = "AEAD_AES_256_GCM";
  res["ciphertext"] = crypto::base64_encode(std::string_view(*sealed));
  res["associated_data"] = aad;
  res["nonce"] = nonce;
  json::object o;
  o["id"] = id;
  o["create_time"] = now_text();
  o["resource_type"] = "encrypt-resource";
  o["event_type"] = event_type;
  o["summary"] = summary;
  o["resource"] = std::move(res);
  return std::pair{id, json::serialize(o)};
}

void Impl::deliver_due() {
  if (current_faults().notifications_paused) {
    return;
  }
  std::vector<Pending> pending;
  {
    std::lock_guard lock(db_mu);
    auto st = db().prepare(
        "SELECT seq, url, body, attempts FROM notifications WHERE state='pending' AND "
        "next_ms <= ? ORDER BY seq LIMIT 50");
    if (!st) {
      return;
    }
    st->bind_all(real_now_ms());
    while (true) {
      auto row = st->step();
      if (!row || !*row) {
        break;
      }
      pending.push_back({st->column_int64(0), st->column_text(1), st->column_text(2),
                         static_cast<int>(st->column_int64(3))});
    }
  }
  for (const auto& p : pending) {
    if (stopping_now()) {
      return;
    }
    int status = post_notification(p.url, p.body);
    bool ok = status >= 200 && status < 300;
    int attempts = p.attempts + 1;
    std::string state = "pending";
    std::int64_t next = 0;
    if (ok) {
      state = "delivered";
    } else if (attempts > static_cast<int>(std::size(kRetryScheduleSeconds))) {
      state = "abandoned";
    } else {
      next = real_now_ms() + static_cast<std::int64_t>(kRetryScheduleSeconds[attempts - 1] * 1000 *
                                                       time_factor.load());
    }
    std::lock_guard lock(db_mu);
    if (auto up = db().prepare("UPDATE notifications SET attempts=?, state=?, next_ms=?, "
                               "last_status=? WHERE seq=?")) {
      (void)up->bind_all(attempts, state, next, status, p.seq).run();
    }
  }
}

// HTTPS POST with the platform signature headers; returns the HTTP status or 0.
int Impl::post_notification(const std::string& url, const std::string& body) {
  static const std::regex kUrl(R"(^https://([^/:]+)(?::(\d+))?(/.*)?$)");
  std::smatch m;
  if (!std::regex_match(url, m, kUrl)) {
    return 0;
  }
  std::string host = m[1];
  int port = m[2].matched ? std::stoi(m[2]) : 443;
  std::string path = m[3].matched ? std::string(m[3]) : "/";
  httplib::SSLClient client(host, port);
  client.set_ca_cert_path(ca_file.string());
  client.enable_server_certificate_verification(true);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(5, 0);  // the provider waits 5 s for the acknowledgement
  std::string timestamp = std::to_string(options.clock->unix_seconds());
  std::string nonce = crypto::random_token(32).value_or("nonce");
  auto signature =
      pki::sign_sha256_rsa_base64(platform_key, timestamp + "\n" + nonce + "\n" + body + "\n");
  httplib::Headers headers{{"Wechatpay-Timestamp", timestamp},
                           {"Wechatpay-Nonce", nonce},
                           {"Wechatpay-Signature", signature.value_or("")},
                           {"Wechatpay-Serial", platform_cert.serial_hex},
                           {"Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048"}};
  auto res = client.Post(path.c_str(), headers, body, "application/json");
  return res ? res->status : 0;
}

bool Impl::stopping_now() {
  std::lock_guard lock(worker_mu);
  return stopping;
}

void Impl::worker_loop() {
  while (true) {
    {
      std::unique_lock lock(worker_mu);
      worker_cv.wait_for(lock, std::chrono::milliseconds(10), [this] { return stopping; });
      if (stopping) {
        return;
      }
    }
    settle_due();
    advance_payments();
    deliver_due();
  }
}

}  // namespace lanegate::sim
