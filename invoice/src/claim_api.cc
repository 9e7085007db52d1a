#include "invoice/claim_api.h"

#include <boost/json.hpp>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/time_format.h"

namespace lanegate::invoice {
namespace {

namespace json = boost::json;

constexpr char kClaimPageHtml[] =
#include "claim_page_html.inc"
    ;

// The page's one inline script, allowed by its hash rather than by 'unsafe-inline', so an
// injected script (should escaping ever fail) does not run.
const std::string& claim_page_csp() {
  static const std::string csp = [] {
    const std::string_view page(kClaimPageHtml);
    const auto open = page.find("<script>");
    const auto close = page.find("</script>");
    std::string script_src = "'none'";
    if (open != std::string_view::npos && close != std::string_view::npos && close > open) {
      const auto body = page.substr(open + 8, close - open - 8);
      const auto digest = crypto::sha256(body);
      script_src = "'sha256-" + crypto::base64_encode(std::span<const std::uint8_t>(digest.data(), digest.size())) + "'";
    }
    return "default-src 'none'; script-src " + script_src +
           "; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
           "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
  }();
  return csp;
}

metrics::Counter& rejected(std::string_view reason) {
  return metrics::Registry::global().counter("lanegate_invoice_api_rejected_total",
                                             "Claim API requests refused, by reason",
                                             {{"reason", std::string(reason)}});
}

ApiReply json_reply(int status, const json::value& v) {
  ApiReply r;
  r.status = status;
  r.body = json::serialize(v);
  return r;
}

ApiReply error_reply(int status, std::string_view field, std::string_view message,
                     std::string_view reason) {
  rejected(reason).inc();
  json::object err;
  err["code"] = reason;  // the same error shape as the rest of the gateway's API
  err["field"] = field;
  err["message"] = message;
  json::object o;
  o["error"] = std::move(err);
  return json_reply(status, o);
}

int status_for(const Error& e) {
  switch (e.code) {
    case Errc::kParse: return 400;
    case Errc::kNotFound: return 404;
    case Errc::kInvalidArgument: return 422;
    case Errc::kOutOfRange: return 422;
    case Errc::kPermission: return 403;
    case Errc::kAlreadyExists: return 409;
    case Errc::kBusy: return 503;
    case Errc::kQueueFull: return 503;
    default: return 500;
  }
}

ApiReply from_error(const Error& e) {
  if (e.code == Errc::kRejected && e.field == "service") {
    // A toll claim from before tolls were refused (claims.h I10): the trip is real, but
    // its invoice comes from the national toll e-bill platform.
    return error_reply(409, e.field, e.message, "toll");
  }
  if (e.code == Errc::kRejected && e.field == "trip") {
    // A parking stay without its entry or exit: a 06 invoice needs the lease period, and
    // lanegate does not invent one. The passenger is told why; nothing was created.
    return error_reply(422, e.field, e.message, "no_lease_period");
  }
  if (e.code == Errc::kRejected) {
    // Window closed -> 410 Gone; refunded -> 409 Conflict.
    const bool refunded = e.message.find("refunded") != std::string::npos;
    return error_reply(refunded ? 409 : 410, e.field, e.message,
                       refunded ? "refunded" : "expired");
  }
  const int status = status_for(e);
  if (status == 503) {
    log::warn("claim API deferred", {{"ERROR", e.to_string()}});
    return error_reply(status, "", "busy, please retry in a minute", "busy");
  }
  if (status >= 500) {
    log::error("claim API failure", {{"ERROR", e.to_string()}});
    return error_reply(status, "", "temporarily unavailable, please retry", "internal");
  }
  return error_reply(status, e.field, e.message, std::string(errc_name(e.code)));
}

std::string mask_email(std::string_view email) {
  const auto at = email.find('@');
  if (at == std::string_view::npos || at == 0) {
    return email.empty() ? "" : "***";
  }
  return std::string(email.substr(0, 1)) + "***" + std::string(email.substr(at));
}

std::string mask_phone(std::string_view phone) {
  if (phone.size() < 7) {
    return phone.empty() ? "" : "***";
  }
  return std::string(phone.substr(0, 3)) + "****" + std::string(phone.substr(phone.size() - 4));
}

// Splits "/api/v1/claims/{token}" etc. after removing any query string.
std::string_view path_of(std::string_view target) {
  const auto q = target.find_first_of("?#");
  return q == std::string_view::npos ? target : target.substr(0, q);
}

bool take_prefix(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) {
    return false;
  }
  s.remove_prefix(prefix.size());
  return true;
}

Result<json::object> parse_object(std::string_view body) {
  if (body.size() > kMaxClaimBodyBytes) {
    return fail(Errc::kOutOfRange,
                "request body larger than " + std::to_string(kMaxClaimBodyBytes) + " bytes",
                "body");
  }
  json::parse_options opt;
  opt.max_depth = 4;
  boost::system::error_code ec;
  json::value v;
  try {
    v = json::parse(json::string_view(body.data(), body.size()), ec, {}, opt);
  } catch (const std::exception& e) {  // allocation failure only
    return fail(Errc::kParse, std::string("cannot parse JSON: ") + e.what(), "body");
  }
  if (ec) {
    return fail(Errc::kParse, "not valid JSON: " + ec.message(), "body");
  }
  if (!v.is_object()) {
    return fail(Errc::kParse, "expected a JSON object", "body");
  }
  return std::move(v.as_object());
}

Result<std::string> string_member(const json::object& o, std::string_view key) {
  auto it = o.find(json::string_view(key.data(), key.size()));
  if (it == o.end() || it->value().is_null()) {
    return std::string();
  }
  if (!it->value().is_string()) {
    return fail(Errc::kInvalidArgument, "must be a string", std::string(key));
  }
  const auto& s = it->value().get_string();
  if (s.size() > 1024) {
    return fail(Errc::kInvalidArgument, "too long", std::string(key));
  }
  return std::string(s.data(), s.size());
}

std::string unix_rfc3339(SystemTime t) { return format_rfc3339(t, UtcOffset{480}); }

}  // namespace

std::string_view claim_page_html() { return {kClaimPageHtml, sizeof(kClaimPageHtml) - 1}; }

Result<Buyer> parse_claim_body(std::string_view body) {
  auto o = parse_object(body);
  if (!o) {
    return std::unexpected(o.error());
  }
  for (const auto& kv : *o) {
    const std::string_view k(kv.key().data(), kv.key().size());
    if (k != "kind" && k != "title" && k != "tax_id" && k != "email" && k != "phone" &&
        k != "traveller_name" && k != "traveller_card_no" && k != "travel_place" &&
        k != "arrive_place") {
      std::string shown(k.substr(0, 40));
      return fail(Errc::kInvalidArgument,
                  "unknown member '" + shown +
                      "' (allowed: kind, title, tax_id, email, phone, traveller_name, "
                      "traveller_card_no, travel_place, arrive_place)",
                  "body");
    }
  }
  Buyer b;
  auto kind = string_member(*o, "kind");
  if (!kind) {
    return std::unexpected(kind.error());
  }
  if (*kind == "person") {
    b.kind = BuyerKind::kPerson;
  } else if (*kind == "company") {
    b.kind = BuyerKind::kCompany;
  } else {
    return fail(Errc::kInvalidArgument, "must be \"person\" or \"company\"", "kind");
  }
  for (auto [key, dest] : {std::pair<std::string_view, std::string*>{"title", &b.title},
                           {"tax_id", &b.tax_id},
                           {"email", &b.email},
                           {"phone", &b.phone}}) {
    auto v = string_member(*o, key);
    if (!v) {
      return std::unexpected(v.error());
    }
    *dest = std::move(*v);
  }
  return b;
}

Result<std::optional<TravellerInput>> parse_traveller(std::string_view body) {
  auto o = parse_object(body);
  if (!o) {
    return std::unexpected(o.error());
  }
  TravellerInput t;
  int given = 0;
  for (auto [key, dest] : {std::pair<std::string_view, std::string*>{"traveller_name", &t.name},
                           {"traveller_card_no", &t.card_no},
                           {"travel_place", &t.travel_place},
                           {"arrive_place", &t.arrive_place}}) {
    auto v = string_member(*o, key);
    if (!v) {
      return std::unexpected(v.error());
    }
    *dest = std::move(*v);
    given += dest->empty() ? 0 : 1;
  }
  if (given == 0) {
    return std::optional<TravellerInput>{};
  }
  // All four or none: a half-filled identity is a mistake to show, not a plain invoice.
  // make_traveller() then names the first one missing.
  return std::optional<TravellerInput>(std::move(t));
}

std::string claim_view_json(const Claim& claim, const InvoiceRecord* invoice,
                            bool traveller_offered) {
  json::object o;
  o["token"] = claim.token;
  o["service"] = claim.service;
  // Who issues this trip's invoice: tolls never come from here (claims.h I10).
  o["issuer"] = claim.service == kTollService ? "national_toll_platform" : "invoicing_platform";
  o["amount"] = claim.amount.to_string();
  o["description"] = claim.description;
  o["settled_at"] = unix_rfc3339(claim.settled_at);
  o["expires_at"] = unix_rfc3339(claim.expires_at);
  o["refunded"] = claim.voided;
  o["state"] = invoice ? std::string(to_string(invoice->state)) : "none";
  // What the invoice will say about the trip: a parking stay is a 06 lease of that period;
  // a taxi trip may carry the passenger's identity (09) when the passenger asks.
  if (claim.period_start || claim.period_end) {
    json::object period;
    if (claim.period_start) period["start"] = unix_rfc3339(*claim.period_start);
    if (claim.period_end) period["end"] = unix_rfc3339(*claim.period_end);
    o["period"] = std::move(period);
  }
  o["traveller_offered"] = traveller_offered && claim.service == "taxi" && !invoice;
  if (invoice) {
    json::object inv;
    inv["kind"] = to_string(invoice->kind);
    inv["buyer_kind"] = to_string(invoice->buyer.kind);
    inv["title"] = invoice->buyer.title;
    inv["tax_id"] = invoice->buyer.tax_id;
    inv["email"] = mask_email(invoice->buyer.email);
    inv["phone"] = mask_phone(invoice->buyer.phone);
    inv["total_excl"] = invoice->totals.excl.to_string();
    inv["total_tax"] = invoice->totals.tax.to_string();
    inv["total"] = invoice->totals.incl.to_string();
    auto cap = chinese_capital_amount(invoice->totals.incl);
    inv["total_capitals"] = cap ? *cap : "";
    inv["lines"] = static_cast<std::int64_t>(invoice->lines.size());
    inv["invoice_number"] = invoice->invoice_number;
    inv["pdf_url"] = invoice->pdf_url;
    inv["fail_reason"] = invoice->fail_reason;
    inv["specific_business"] = std::string(bureau_code(invoice->specific.factor));  // "06" | "09" | ""
    o["invoice"] = std::move(inv);
  }
  return json::serialize(o);
}

ApiReply handle_claim_api(ClaimStore& store, std::string_view method, std::string_view target,
                          std::string_view body, std::string_view client_key) {
  std::string_view path = path_of(target);
  try {
    if (path == "/claim" || take_prefix(path, "/claim/")) {
      if (method != "GET" && method != "HEAD") {
        return error_reply(405, "", "use GET", "method");
      }
      ApiReply r;
      r.content_type = "text/html; charset=utf-8";
      r.body = std::string(claim_page_html());
      r.headers.emplace_back("Cache-Control", "no-store");
      r.headers.emplace_back("Referrer-Policy", "no-referrer");  // the token is in the URL
      r.headers.emplace_back("Content-Security-Policy", claim_page_csp());
      return r;
    }
    if (path == "/api/v1/claim-codes") {
      if (method != "POST") {
        return error_reply(405, "", "use POST", "method");
      }
      if (auto wait = store.retry_after(client_key)) {
        ApiReply r = error_reply(429, "code",
                                 "too many wrong codes; try again in " +
                                     std::to_string(wait->count()) + " s",
                                 "locked");
        r.headers.emplace_back("Retry-After", std::to_string(wait->count()));
        return r;
      }
      auto o = parse_object(body);
      if (!o) {
        return from_error(o.error());
      }
      auto code = string_member(*o, "code");
      if (!code) {
        return from_error(code.error());
      }
      auto claim = store.find_by_human_code(*code, client_key);
      if (!claim) {
        if (claim.error().code == Errc::kPermission) {
          auto wait = store.retry_after(client_key);
          ApiReply r = error_reply(429, "code", claim.error().message, "locked");
          r.headers.emplace_back("Retry-After", std::to_string(wait ? wait->count() : 60));
          return r;
        }
        return from_error(claim.error());
      }
      json::object out;
      out["token"] = claim->token;
      return json_reply(200, out);
    }
    if (take_prefix(path, "/api/v1/claims/")) {
      const std::string_view token = path;
      if (method == "GET") {
        auto claim = store.find_by_token(token);
        if (!claim) {
          return from_error(claim.error());
        }
        std::optional<InvoiceRecord> inv;
        if (claim->invoice_id) {
          auto r = store.current_invoice(*claim->invoice_id);
          if (!r) {
            return from_error(r.error());
          }
          inv = std::move(*r);
        }
        ApiReply r;
        r.body = claim_view_json(*claim, inv ? &*inv : nullptr, store.section().taxi.offer_traveller);
        r.headers.emplace_back("Cache-Control", "no-store");
        return r;
      }
      if (method == "POST") {
        auto buyer = parse_claim_body(body);
        if (!buyer) {
          if (buyer.error().code == Errc::kOutOfRange) {
            return error_reply(413, "body", buyer.error().message, "too_large");
          }
          return from_error(buyer.error());
        }
        auto traveller = parse_traveller(body);
        if (!traveller) {
          return from_error(traveller.error());
        }
        auto submitted = store.submit(token, *buyer, *traveller);
        if (!submitted) {
          return from_error(submitted.error());
        }
        auto claim = store.find_by_token(token);
        if (!claim) {
          return from_error(claim.error());
        }
        ApiReply r;
        r.status = submitted->created ? 201 : 200;
        r.body = claim_view_json(*claim, &submitted->invoice, store.section().taxi.offer_traveller);
        r.headers.emplace_back("Cache-Control", "no-store");
        return r;
      }
      return error_reply(405, "", "use GET or POST", "method");
    }
    return error_reply(404, "", "no such resource", "route");
  } catch (const std::exception& e) {  // allocation failure; never leak out of the module
    log::error("claim API exception", {{"ERROR", e.what()}});
    return error_reply(500, "", "temporarily unavailable, please retry", "internal");
  }
}

}  // namespace lanegate::invoice
