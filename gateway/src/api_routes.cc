#include "gateway/api_routes.h"

#include <arpa/inet.h>

#include <boost/json.hpp>
#include <algorithm>
#include <charconv>
#include <expected>
#include <limits>

#include <fstream>
#include <sstream>

#include "core/metrics.h"
#include "audit/audit_files.h"
#include "core/time_format.h"
#include "invoice/claim_api.h"
#include "invoice/receipt.h"
#include "lane/drivers.h"

namespace lanegate::gateway {
namespace {

namespace json = boost::json;

json::object tx_json(const TxRecord& t, UtcOffset off) {
  boost::system::error_code ec;
  json::value detail = json::parse(t.detail, ec);
  json::object o{{"id", t.id},
                 {"out_trade_no", t.out_trade_no},
                 {"kind", to_string(t.kind)},
                 {"lane", t.lane},
                 {"plate", t.plate},
                 {"plate_colour", t.plate_colour},
                 {"amount", t.amount.to_string()},
                 {"amount_fen", t.amount.fen()},
                 {"state", to_string(t.state)},
                 {"decision", decision_text(t.decision)},
                 {"refund_due", t.refund_due},
                 {"decision_reason", t.decision_reason},
                 {"offline", t.offline},
                 {"arrears", t.arrears},
                 {"payment_method", t.payment_method},
                 {"provider_transaction_id", t.provider_transaction_id},
                 {"created_at", format_rfc3339(t.created_at, off)},
                 {"updated_at", format_rfc3339(t.updated_at, off)}};
  if (!ec) o["detail"] = std::move(detail);
  if (t.trip_number) o["trip_number"] = *t.trip_number;
  return o;
}

bool parse_int(const std::string& s, std::int64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

HttpResponse invoicing_disabled() {
  return HttpResponse::error(404, "invoicing_disabled",
                             "invoicing is not enabled on this gateway ([invoicing] enabled = false)");
}

HttpResponse from_reply(invoice::ApiReply reply) {
  HttpResponse r;
  r.status = reply.status;
  r.content_type = std::move(reply.content_type);
  r.body = std::move(reply.body);
  r.headers = std::move(reply.headers);
  return r;
}

// The client key the human-code guess limit counts against. An IPv6 client usually holds a
// whole /64, so the key is the /64 (one address each would give it 2^64 x the guesses);
// IPv4 (also IPv4-mapped) is the address itself.
std::string claim_client_key(const std::string& peer) {
  in6_addr a6{};
  if (peer.find(':') == std::string::npos || inet_pton(AF_INET6, peer.c_str(), &a6) != 1) return peer;
  if (IN6_IS_ADDR_V4MAPPED(&a6)) {
    char v4[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, &a6.s6_addr[12], v4, sizeof v4) != nullptr) return v4;
    return peer;
  }
  for (int i = 8; i < 16; ++i) a6.s6_addr[i] = 0;
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(AF_INET6, &a6, text, sizeof text) == nullptr) return peer;
  return std::string(text) + "/64";
}

// A toll trip as its receipt prints it, from the detail the toll lane recorded
// (site_toll.cc): station names as they were at the time; rows recorded before the lane
// kept names resolve through today's [[station]] table (or show the id), and rows without
// exit_time use the row's creation, which the lane commits at the exit.
Result<invoice::TollTrip> toll_trip_of(const TxRecord& tx, const config::Config& cfg) {
  boost::system::error_code ec;
  json::value v = json::parse(tx.detail, ec);
  if (ec || !v.is_object()) {
    return fail(Errc::kParse, "the toll transaction's detail is not a JSON object", "detail");
  }
  const json::object& d = v.as_object();
  auto text = [&](std::string_view key) -> std::string {
    const json::value* x = d.if_contains(key);
    return x != nullptr && x->is_string() ? std::string(x->as_string()) : std::string();
  };
  auto station = [&](std::string_view name_key, std::string_view id_key) -> std::string {
    if (std::string name = text(name_key); !name.empty()) return name;
    const json::value* x = d.if_contains(id_key);
    std::int64_t id = -1;
    if (x != nullptr && x->is_int64()) id = x->as_int64();
    if (x != nullptr && x->is_uint64()) id = static_cast<std::int64_t>(x->as_uint64());
    if (id < 0 || id > std::numeric_limits<std::uint32_t>::max()) return "?";
    if (const config::Station* st = cfg.find_station(static_cast<std::uint32_t>(id))) return st->name;
    return std::to_string(id);
  };
  invoice::TollTrip t;
  t.transaction_id = tx.out_trade_no;
  t.plate = tx.plate;
  t.amount = tx.amount;
  t.entry_station = station("entry_name", "entry_station");
  t.exit_station = station("exit_name", "exit_station");
  auto entry = parse_rfc3339(text("entry_time"));
  if (!entry) return fail(Errc::kParse, "the toll transaction has no entry time", "entry_time");
  t.entry_time = *entry;
  auto exit = parse_rfc3339(text("exit_time"));
  t.exit_time = exit ? *exit : tx.created_at;
  return t;
}

// One transaction's receipt, as the JSON and the HTML route serve it.
struct ReceiptAnswer {
  invoice::Receipt receipt;
  json::object body;  // the JSON route's answer
};

// Tolls first, from the transaction store, whether or not invoicing is enabled: the
// national toll e-bill platform issues their invoices, so the receipt shows the trip and
// sends the driver there (no claim, no QR; settlement.cc never claims a toll). Every
// other kind has a receipt only through its invoice claim.
std::expected<ReceiptAnswer, HttpResponse> receipt_of(const ApiServices& s, const std::string& out) {
  auto tx = s.store->find_transaction(out);
  if (!tx) return std::unexpected(HttpResponse::error(500, "internal", tx.error().message));
  if (*tx && (*tx)->kind == TxKind::kToll) {
    const TxRecord& t = **tx;
    if (t.state != ChargeState::kSuccess) {
      return std::unexpected(HttpResponse::error(
          404, "not_found",
          "no receipt for toll transaction " + out + ": it is " + std::string(to_string(t.state)) +
              " (a toll receipt is printed once the ETC deduction succeeded)",
          "out_trade_no"));
    }
    auto trip = toll_trip_of(t, *s.config);
    if (!trip) return std::unexpected(HttpResponse::error(500, "internal", trip.error().to_string()));
    auto receipt = invoice::make_toll_receipt(*trip, s.config->gateway.site_name, 32,
                                              UtcOffset{s.config->gateway.utc_offset_minutes});
    if (!receipt) return std::unexpected(HttpResponse::error(500, "internal", receipt.error().message));
    json::object o{{"out_trade_no", out},
                   {"kind", "toll"},
                   {"issuer", "national_toll_platform"},
                   {"claim_url", ""},
                   {"token", ""},
                   {"human_code", ""},
                   {"text", receipt->text},
                   {"qr_svg", ""}};
    return ReceiptAnswer{std::move(*receipt), std::move(o)};
  }
  if (s.claims == nullptr) return std::unexpected(invoicing_disabled());
  auto c = s.claims->find_by_transaction(out);
  if (!c) {
    if (c.error().code == Errc::kNotFound) {
      return std::unexpected(HttpResponse::error(
          404, "not_found",
          "no invoice claim for transaction " + out +
              " (unknown, not settled, or settled before invoicing was enabled)",
          "out_trade_no"));
    }
    return std::unexpected(HttpResponse::error(500, "internal", c.error().message));
  }
  auto receipt = invoice::make_receipt(*c, s.config->gateway.site_name, s.config->api.public_base_url);
  if (!receipt) return std::unexpected(HttpResponse::error(500, "internal", receipt.error().message));
  json::object o{{"out_trade_no", out},
                 {"kind", c->service},
                 {"issuer", "invoicing_platform"},
                 {"claim_url", receipt->url},
                 {"token", c->token},
                 {"human_code", invoice::format_human_code(c->human_code)},
                 {"text", receipt->text},
                 {"qr_svg", receipt->qr_svg}};
  return ReceiptAnswer{std::move(*receipt), std::move(o)};
}

// The passenger-facing claim routes and the operator's receipt. The claim API is pure
// request -> reply (invoice/claim_api.h); the client key for the human-code rate limit is
// the peer address (its /64 for IPv6: claim_client_key).
void add_invoice_routes(HttpApi& api, const ApiServices& s) {
  auto claim = [s](const HttpRequest& r) {
    if (s.claims == nullptr) return invoicing_disabled();
    return from_reply(invoice::handle_claim_api(*s.claims, r.method, r.path, r.body, claim_client_key(r.peer)));
  };
  api.add_route("GET", "/claim", Access::open(), claim);
  api.add_route("GET", "/claim/{token}", Access::open(), claim);
  api.add_route("GET", "/api/v1/claims/{token}", Access::open(), claim);
  api.add_route("POST", "/api/v1/claims/{token}", Access::open(), claim);
  api.add_route("POST", "/api/v1/claim-codes", Access::open(), claim);

  api.add_route("GET", "/api/v1/transactions/{out_trade_no}/receipt", Access::only({Role::kOperator}),
                [s](const HttpRequest& r) {
                  auto a = receipt_of(s, r.params.at("out_trade_no"));
                  if (!a) return std::move(a.error());
                  return HttpResponse::json(200, json::serialize(a->body));
                });
  // The same receipt as a page to print or show on a phone. No script may run on it: the
  // receipt text comes from the site's config and the transaction, and is escaped.
  api.add_route("GET", "/api/v1/transactions/{out_trade_no}/receipt.html", Access::only({Role::kOperator}),
                [s](const HttpRequest& r) {
                  const std::string& out = r.params.at("out_trade_no");
                  auto a = receipt_of(s, out);
                  if (!a) return std::move(a.error());
                  HttpResponse page;
                  page.content_type = "text/html; charset=utf-8";
                  page.body = invoice::receipt_html(a->receipt, s.config->gateway.site_name + " " + out);
                  page.headers.emplace_back("Content-Security-Policy", std::string(invoice::kReceiptPageCsp));
                  return page;
                });
}

}  // namespace

HttpResponse error_response(const Error& e) {
  const int status = e.code == Errc::kNotFound                                     ? 404
                     : e.code == Errc::kInvalidArgument                            ? 400
                     : e.code == Errc::kRejected || e.code == Errc::kAlreadyExists ? 409
                                                                                   : 503;
  return HttpResponse::error(status, std::string(errc_name(e.code)), e.message, e.field);
}

Result<std::int64_t> positive_id_param(const HttpRequest& r, const std::string& name) {
  const std::string& text = r.params.at(name);
  std::int64_t id = 0;
  if (!parse_int(text, id) || id < 1) {
    return fail(Errc::kInvalidArgument, "must be a positive integer (got '" + text + "')", name);
  }
  return id;
}

std::string url_path(std::string_view url) {
  auto scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) return "/";
  rest = rest.substr(slash);
  return std::string(rest.substr(0, rest.find('?')));
}

void add_api_routes(HttpApi& api, ApiServices s) {
  const UtcOffset off{s.config->gateway.utc_offset_minutes};

  api.add_route("GET", "/healthz", Access::open(), [](const HttpRequest&) {
    return HttpResponse::json(200, R"({"status":"ok"})");
  });

  api.add_route("GET", "/readyz", Access::open(), [s](const HttpRequest&) {
    if (s.site->attendant_mode()) {
      return HttpResponse::json(503, R"({"status":"attendant_mode","reason":"the database cannot commit"})");
    }
    return HttpResponse::json(200, R"({"status":"ready"})");
  });

  api.add_route("GET", "/metrics", Access::only({Role::kOperator, Role::kAuditor}), [s](const HttpRequest&) {
    (void)s.outbox->refresh_metrics();
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = metrics::Registry::global().render();
    return r;
  });

  api.add_route("GET", "/api/v1/status", Access::only({Role::kOperator}), [s](const HttpRequest&) {
    json::object o{{"gateway", s.config->gateway.id},
                   {"site", s.config->gateway.site_name},
                   {"version", LANEGATE_VERSION},
                   {"attendant_mode", s.site->attendant_mode()},
                   {"link", s.uplink == nullptr ? "not_configured" : (s.uplink->link_up() ? "up" : "down")}};
    boost::system::error_code ec;
    o["lanes"] = json::parse(s.site->lanes_json(), ec);
    json::array devices;
    for (const auto& d : s.config->devices) {
      std::string health = "unknown";
      if (s.cameras != nullptr && s.cameras->owns(d.id)) {
        if (auto h = s.cameras->health(d.id)) health = std::string(lane::health_name(*h));
      } else if (s.drivers != nullptr) {
        if (auto h = s.drivers->health(d.id)) health = std::string(lane::health_name(*h));
      }
      devices.push_back(json::object{{"id", d.id}, {"kind", config::to_string(d.kind)}, {"health", health}});
    }
    o["devices"] = std::move(devices);
    if (auto st = s.outbox->stats()) {
      json::object q{{"pending", st->pending},  {"leased", st->leased},       {"parked", st->parked},
                     {"acked", st->acked},      {"live_rows", st->live_rows}, {"live_bytes", st->live_bytes},
                     {"max_rows", s.config->queue.max_rows}};
      if (st->oldest_active_created) q["oldest_pending"] = format_rfc3339(*st->oldest_active_created, UtcOffset{s.config->gateway.utc_offset_minutes});
      o["queue"] = std::move(q);
    }
    if (auto c = s.store->passage_counts()) {
      o["passages"] = json::object{{"free", c->free},
                                   {"pass_online", c->pass_online},
                                   {"pass_offline", c->pass_offline},
                                   {"fallback", c->fallback},
                                   {"manual", c->manual}};
    }
    if (auto exp = s.store->site_exposure()) o["offline_exposure"] = exp->to_string();
    if (auto totals = s.store->totals_by_state()) {
      json::object charges;
      std::int64_t open = 0;
      for (const auto& [state, t] : *totals) {
        charges[to_string(state)] = json::object{{"count", t.count}, {"amount_fen", t.amount.fen()}};
        if (is_open(state)) open += t.count;
      }
      o["charges"] = std::move(charges);
      o["open_charges"] = open;
    }
    json::object latency;
    for (const char* d : {"pass_online", "pass_offline", "fallback", "free"}) {
      auto l = s.store->recent_latencies(d, 10000);
      if (!l || l->empty()) continue;
      std::sort(l->begin(), l->end());
      auto pct = [&](double q) { return (*l)[static_cast<std::size_t>(q * static_cast<double>(l->size() - 1))]; };
      latency[d] = json::object{{"count", l->size()}, {"p50_us", pct(0.5)}, {"p99_us", pct(0.99)}};
    }
    o["decision_latency"] = std::move(latency);
    if (auto arrears = s.store->list_transactions(TxFilter{.arrears_only = true, .limit = 1000})) {
      Money total;
      for (const auto& t : *arrears) total = total.add(t.amount).value_or(total);
      o["arrears"] = json::object{{"count", arrears->size()}, {"amount_fen", total.fen()}};
    }
    return HttpResponse::json(200, json::serialize(o));
  });

  api.add_route("GET", "/api/v1/transactions", Access::only({Role::kOperator}), [s, off](const HttpRequest& r) {
    TxFilter f;
    if (auto it = r.query.find("from"); it != r.query.end()) {
      auto t = parse_rfc3339(it->second);
      if (!t) return HttpResponse::error(400, "invalid_argument", t.error().message, "from");
      f.from = *t;
    }
    if (auto it = r.query.find("to"); it != r.query.end()) {
      auto t = parse_rfc3339(it->second);
      if (!t) return HttpResponse::error(400, "invalid_argument", t.error().message, "to");
      f.to = *t;
    }
    if (auto it = r.query.find("lane"); it != r.query.end()) f.lane = it->second;
    if (auto it = r.query.find("plate"); it != r.query.end()) f.plate = it->second;
    if (auto it = r.query.find("state"); it != r.query.end()) {
      auto st = parse_charge_state(it->second);
      if (!st) return HttpResponse::error(400, "invalid_argument", st.error().message, "state");
      f.state = *st;
    }
    if (auto it = r.query.find("arrears"); it != r.query.end()) f.arrears_only = it->second == "1";
    if (auto it = r.query.find("refund_due"); it != r.query.end()) f.refund_due_only = it->second == "1";
    if (auto it = r.query.find("after"); it != r.query.end()) {
      if (!parse_int(it->second, f.after_id) || f.after_id < 0) {
        return HttpResponse::error(400, "invalid_argument", "after must be a non-negative integer id", "after");
      }
    }
    if (auto it = r.query.find("limit"); it != r.query.end()) {
      std::int64_t limit = 0;
      if (!parse_int(it->second, limit) || limit < 1 || limit > 1000) {
        return HttpResponse::error(400, "invalid_argument", "limit must be an integer from 1 to 1000", "limit");
      }
      f.limit = static_cast<int>(limit);
    }
    for (const auto& [k, v] : r.query) {
      (void)v;
      if (k != "from" && k != "to" && k != "lane" && k != "plate" && k != "state" && k != "arrears" && k != "refund_due" && k != "after" &&
          k != "limit") {
        return HttpResponse::error(400, "invalid_argument", "unknown filter '" + k + "'", k);
      }
    }
    auto rows = s.store->list_transactions(f);
    if (!rows) return HttpResponse::error(500, "internal", rows.error().message);
    json::array items;
    for (const auto& t : *rows) items.push_back(tx_json(t, off));
    json::object o{{"items", std::move(items)}};
    if (static_cast<int>(rows->size()) == f.limit && !rows->empty()) o["next_after"] = rows->back().id;
    return HttpResponse::json(200, json::serialize(o));
  });

  api.add_route("POST", "/api/v1/lanes/{id}/open", Access::only({Role::kOperator}), [s](const HttpRequest& r) {
    boost::system::error_code ec;
    json::value body = json::parse(r.body, ec);
    if (ec || !body.is_object()) {
      return HttpResponse::error(400, "invalid_json", "the body must be a JSON object {\"reason\": \"...\"}");
    }
    std::string reason;
    for (const auto& [k, v] : body.as_object()) {
      if (k != "reason") return HttpResponse::error(400, "invalid_argument", "unknown field", std::string(k));
      if (!v.is_string()) return HttpResponse::error(400, "invalid_argument", "must be a string", "reason");
      reason = std::string(v.as_string());
    }
    if (reason.empty() || reason.size() > 500) {
      return HttpResponse::error(400, "invalid_argument", "a reason of 1 to 500 bytes is required", "reason");
    }
    auto id = s.site->manual_open(r.params.at("id"), r.caller, reason);
    if (!id) {
      const int status = id.error().code == Errc::kNotFound ? 404 : (id.error().code == Errc::kInvalidArgument ? 400 : 503);
      return HttpResponse::error(status, std::string(errc_name(id.error().code)), id.error().message, id.error().field);
    }
    return HttpResponse::json(200, json::serialize(json::object{{"passage_id", *id}, {"lane", r.params.at("id")}}));
  });

  add_passage_routes(api, s);

  // Auditors: settlement packages and reconciliation reports, read-only. Nothing here
  // (or anywhere in the API) writes to the ledger or the seals.
  api.add_route("GET", "/api/v1/audit/artifacts", Access::only({Role::kAuditor, Role::kOperator}),
                [s](const HttpRequest&) {
                  auto list = audit::list_artifacts(s.config->gateway.state_dir);
                  if (!list) return HttpResponse::error(500, "internal", list.error().message);
                  json::array items;
                  for (const auto& a : *list) {
                    json::array files;
                    for (const auto& f : a.files) files.push_back(json::string(f));
                    items.push_back(json::object{{"kind", a.kind}, {"name", a.name}, {"bytes", a.bytes},
                                                 {"files", std::move(files)}});
                  }
                  return HttpResponse::json(200, json::serialize(json::object{{"items", std::move(items)}}));
                });
  auto download = [s](std::string_view kind, const HttpRequest& r) {
    auto it = r.params.find("file");
    const std::string file = it == r.params.end() ? "" : it->second;
    auto path = audit::resolve_artifact(s.config->gateway.state_dir, kind, r.params.at("name"), file);
    if (!path) return HttpResponse::error(404, "not_found", path.error().message);
    std::ifstream in(*path, std::ios::binary);
    if (!in) return HttpResponse::error(404, "not_found", "no such file");
    std::stringstream ss;
    ss << in.rdbuf();
    HttpResponse resp;
    const std::string name = path->filename().string();
    resp.content_type = name.ends_with(".json") ? "application/json"
                        : name.ends_with(".csv") ? "text/csv; charset=utf-8"
                                                 : "text/plain; charset=utf-8";
    resp.body = ss.str();
    resp.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + name + "\"");
    return resp;
  };
  api.add_route("GET", "/api/v1/audit/packages/{name}/{file}", Access::only({Role::kAuditor, Role::kOperator}),
                [download](const HttpRequest& r) { return download("package", r); });
  api.add_route("GET", "/api/v1/audit/reports/{name}", Access::only({Role::kAuditor, Role::kOperator}),
                [download](const HttpRequest& r) { return download("report", r); });

  add_invoice_routes(api, s);
  add_invoice_operator_routes(api, s);

  if (s.notifications != nullptr && !s.config->provider.notify_url.empty()) {
    api.add_route("POST", url_path(s.config->provider.notify_url), Access::open(), [s](const HttpRequest& r) {
      NotificationRequest n;
      auto h = [&](const char* name) {
        auto it = r.headers.find(name);
        return it == r.headers.end() ? std::string() : it->second;
      };
      n.timestamp = h("wechatpay-timestamp");
      n.nonce = h("wechatpay-nonce");
      n.signature = h("wechatpay-signature");
      n.serial = h("wechatpay-serial");
      n.signature_type = h("wechatpay-signature-type");
      n.body = r.body;
      auto reply = s.notifications->handle(n, [s](Transaction& txn, const NotificationEvent& ev) {
        return s.uplink->apply_notification(txn, ev);
      });
      HttpResponse out;
      out.status = reply.status;
      out.body = reply.body;
      return out;
    });
  }
}

}  // namespace lanegate::gateway
