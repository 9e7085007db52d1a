#include "gateway/settlement.h"

#include <algorithm>

#include <boost/json.hpp>

#include "core/log.h"
#include "core/metrics.h"
#include "core/time_format.h"

namespace lanegate::gateway {
namespace {

namespace json = boost::json;

metrics::Counter& claim_hook_counter(std::string_view outcome) {
  return metrics::Registry::global().counter(
      "lanegate_invoice_settlement_claims_total",
      "Settled transactions seen by the invoice hook, by outcome",
      {{"outcome", std::string(outcome)}});
}

// "2026-11-22 08:12" in local time.
std::string local_minute(SystemTime t, UtcOffset offset) {
  const std::string s = format_rfc3339(t, offset);  // 2026-11-22T08:12:00+08:00
  if (s.size() < 16) return s;
  return s.substr(0, 10) + " " + s.substr(11, 5);
}

// The trip's period from two time members of its detail: RFC 3339 text as it is, or, with
// `minute_suffix`, the meter's local minute ("2026-11-22T08:30") completed by it. A member
// that is missing or does not read leaves its end of the period unknown, never guessed.
void read_period(std::string_view detail_json, std::string_view start_key, std::string_view end_key,
                 const std::string& minute_suffix, invoice::SettledTransaction& s) {
  boost::system::error_code ec;
  const json::value detail = json::parse(detail_json, ec);
  if (ec || !detail.is_object()) return;
  for (auto [key, slot] : {std::pair{start_key, &s.period_start}, std::pair{end_key, &s.period_end}}) {
    const json::value* v = detail.as_object().if_contains(key);
    if (v == nullptr || !v->is_string()) continue;
    std::string text(v->get_string());
    if (!minute_suffix.empty()) {
      if (text.size() != 16) continue;  // "YYYY-MM-DDThh:mm"
      text += minute_suffix;
    }
    if (auto t = parse_rfc3339(text); t) *slot = *t;
  }
}

bool storage_error(Errc c) {
  return c == Errc::kDatabase || c == Errc::kDiskFull || c == Errc::kBusy || c == Errc::kIo ||
         c == Errc::kQueueFull;
}

}  // namespace

std::string invoice_account(const TxRecord& tx) {
  if (!tx.contract_id.empty()) return tx.contract_id;
  if (tx.kind == TxKind::kParking || tx.kind == TxKind::kToll) return tx.plate;
  return {};
}

invoice::SettledTransaction settled_transaction(const TxRecord& tx, UtcOffset offset) {
  invoice::SettledTransaction s;
  s.transaction_id = tx.out_trade_no;
  s.account_id = invoice_account(tx);
  s.service = std::string(to_string(tx.kind));
  s.amount = tx.amount;
  s.settled_at = tx.updated_at;
  const std::string when = local_minute(tx.updated_at, offset);
  s.plate = tx.plate;
  switch (tx.kind) {
    case TxKind::kParking:
      s.description = "停车费 " + log::mask_plate(tx.plate) + " " + when;
      // The stay is the 06 lease period (spec "Parking → 06"): entry and exit as recorded
      // at the exit. A stay without them (exit without entry) has no period.
      read_period(tx.detail, "entry_time", "exit_time", "", s);
      break;
    case TxKind::kToll:
      s.description = "通行费 " + log::mask_plate(tx.plate) + " " + when;
      break;
    case TxKind::kTaxi:
      s.description = "出租车 " + when;
      if (tx.trip_number) s.description += " #" + std::to_string(*tx.trip_number);
      // Boarding and alighting as the meter reported them ("2026-11-22T08:30", the gateway's
      // local time): the 09 row's travel date when the passenger asks for one.
      read_period(tx.detail, "boarding", "alighting",
                  ":00" + format_rfc3339(tx.updated_at, offset).substr(19),  // ":00+08:00"
                  s);
      break;
  }
  return s;
}

std::string invoice_issue_payload(std::int64_t invoice_id) {
  return json::serialize(json::object{{"invoice_id", invoice_id}});
}

// An account with a default title ([[invoicing.default_title]]) gets its invoice without
// asking, in the settlement's own transaction (so "settled" and "invoice requested" are one
// commit). A buyer the rules refuse leaves the claim for the passenger: logged and counted,
// never holding up the settlement.
static Status invoice_default_title(Transaction& txn, invoice::ClaimStore& claims, const invoice::Claim& claim) {
  if (claim.account_id.empty() || claim.invoice_id) return {};
  const auto& titles = claims.section().default_titles;
  const auto it = std::find_if(titles.begin(), titles.end(),
                               [&](const config::DefaultTitle& d) { return d.account == claim.account_id; });
  if (it == titles.end()) return {};
  invoice::Buyer buyer;
  buyer.kind = it->kind == "person" ? invoice::BuyerKind::kPerson : invoice::BuyerKind::kCompany;
  buyer.title = it->title;
  buyer.tax_id = it->tax_id;
  buyer.email = it->email;
  buyer.phone = it->phone;
  auto made = claims.invoice_in(txn, claim, buyer);
  if (made) {
    claim_hook_counter("default_title").inc();
    return {};
  }
  if (storage_error(made.error().code)) return std::unexpected(made.error());
  claim_hook_counter("default_title_refused").inc();
  log::error("default title refused; the claim stays open for the passenger",
             {{"OUT_TRADE_NO", claim.transaction_id}, {"ERROR", made.error().to_string()}});
  return {};
}

void wire_invoicing(Store& store, invoice::ClaimStore& claims, queue::Outbox& outbox,
                    UtcOffset offset) {
  claims.set_issue_hook([&outbox](Transaction& txn, const invoice::InvoiceRecord& inv) -> Status {
    auto r = outbox.enqueue(txn, kTopicInvoiceIssue, inv.order_no, inv.order_no,
                            invoice_issue_payload(inv.id));
    if (!r) return std::unexpected(r.error());
    return {};
  });
  claims.set_reissue_hook([&outbox](Transaction& txn, const invoice::InvoiceRecord& red) -> Status {
    auto r = outbox.enqueue(txn, kTopicInvoiceReissue, red.order_no, "reissue:" + red.order_no,
                            json::serialize(json::object{{"red_invoice_id", red.id}}));
    if (!r) return std::unexpected(r.error());
    return {};
  });
  store.set_settlement_hook([&claims, &outbox, offset](Transaction& txn, const TxRecord& tx,
                                                       ChargeState from) -> Status {
    if (tx.state == ChargeState::kRefund) {
      auto r = claims.on_refund(txn, tx.out_trade_no);
      if (r) {
        claim_hook_counter(*r ? "red_letter" : "refund_voided").inc();
        return {};
      }
      // No claim: settled before invoicing was enabled, or a toll (never claimed, below).
      if (r.error().code == Errc::kNotFound) return {};
      if (r.error().code == Errc::kBusy) {
        // The invoice is being issued: reverse it once issuing settled. Ordered behind the
        // blue invoice's own issue item (same ordering key), so it runs after it.
        auto claim = claims.find_by_transaction(tx.out_trade_no);
        if (!claim) return std::unexpected(claim.error());
        std::string order_key = "refund:" + tx.out_trade_no;
        if (claim->invoice_id) {
          if (auto inv = claims.get_invoice(*claim->invoice_id)) order_key = inv->order_no;
        }
        auto q = outbox.enqueue(txn, kTopicInvoiceRefund, order_key, "refund:" + tx.out_trade_no,
                                json::serialize(json::object{{"transaction_id", tx.out_trade_no}}));
        if (!q) return std::unexpected(q.error());
        claim_hook_counter("refund_queued").inc();
        return {};
      }
      return std::unexpected(r.error());
    }
    (void)from;
    if (tx.amount.fen() <= 0) return {};
    if (tx.kind == TxKind::kToll) {
      // Spec "Tolls": the national toll e-bill platform issues toll invoices, never this
      // gateway. The receipt shows the trip and sends the driver there instead.
      claim_hook_counter("toll_national_platform").inc();
      return {};
    }
    auto c = claims.create_claim(settled_transaction(tx, offset));
    if (c) {
      claim_hook_counter("claimed").inc();
      return invoice_default_title(txn, claims, *c);
    }
    if (storage_error(c.error().code)) return std::unexpected(c.error());
    // A rule problem must not hold up settled money: the money is recorded, the claim can
    // be made by an operator later. Counted and logged.
    claim_hook_counter("refused").inc();
    log::error("no invoice claim for a settled transaction",
               {{"OUT_TRADE_NO", tx.out_trade_no}, {"ERROR", c.error().to_string()}});
    return {};
  });
}

}  // namespace lanegate::gateway
