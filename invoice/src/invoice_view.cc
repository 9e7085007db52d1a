#include "invoice/invoice_view.h"

#include <boost/json.hpp>

namespace lanegate::invoice {

namespace json = boost::json;

namespace {

json::object form_json(const RedConfirmation& f, UtcOffset off) {
  json::object o{{"attempt", f.attempt},
                 {"bill_id", f.bill_id},
                 {"state", std::string(to_string(f.state))},
                 {"bill_status", f.bill_status},
                 {"bill_status_text", std::string(bill_status_label(f.bill_status))},
                 {"bill_no", f.bill_no},
                 {"message", f.message},
                 {"created_at", format_rfc3339(f.created_at, off)},
                 {"updated_at", format_rfc3339(f.updated_at, off)}};
  if (f.applied_at) {
    o["applied_at"] = format_rfc3339(*f.applied_at, off);
    if (f.state == RedConfirmState::kAwaitingBuyer || f.state == RedConfirmState::kAwaitingSeller) {
      // The other side has 72 hours; after that the platform voids the form (07).
      o["deadline"] = format_rfc3339(*f.applied_at + kRedConfirmWindow, off);
    }
  }
  return o;
}

}  // namespace

Result<json::object> invoice_view_json(ClaimStore& store, std::int64_t id, UtcOffset off) {
  auto inv = store.get_invoice(id);
  if (!inv) {
    return std::unexpected(inv.error());
  }
  json::array lines;
  for (const InvoiceLine& l : inv->lines) {
    lines.push_back(json::object{{"transaction_id", l.transaction_id},
                                 {"service", l.service},
                                 {"item_name", l.item_name},
                                 {"tax_code", l.tax_code},
                                 {"rate_percent", l.rate_percent},
                                 {"favoured_policy_flag", l.favoured_policy_flag},
                                 {"excl", l.excl.to_string()},
                                 {"tax", l.tax.to_string()},
                                 {"incl", l.incl.to_string()}});
  }
  json::object o{{"id", inv->id},
                 {"order_no", inv->order_no},
                 {"kind", std::string(to_string(inv->kind))},
                 {"state", std::string(to_string(inv->state))},
                 {"buyer", json::object{{"kind", std::string(to_string(inv->buyer.kind))},
                                        {"title", inv->buyer.title},
                                        {"tax_id", inv->buyer.tax_id}}},
                 {"excl", inv->totals.excl.to_string()},
                 {"tax", inv->totals.tax.to_string()},
                 {"incl", inv->totals.incl.to_string()},
                 {"invoice_number", inv->invoice_number},
                 {"serial_num", inv->serial_num},
                 {"fail_reason", inv->fail_reason},
                 {"created_at", format_rfc3339(inv->created_at, off)},
                 {"updated_at", format_rfc3339(inv->updated_at, off)},
                 {"lines", std::move(lines)}};
  if (inv->issued_at) {
    o["issued_at"] = format_rfc3339(*inv->issued_at, off);
  }
  if (inv->kind == InvoiceKind::kBlue) {
    auto red = store.red_letter_of(inv->id);
    if (!red) {
      return std::unexpected(red.error());
    }
    if (*red) {
      o["red_invoice_id"] = **red;
    }
  }
  if (inv->kind == InvoiceKind::kRed) {
    if (inv->original_id) {
      o["original_id"] = *inv->original_id;
    }
    if (auto reason = red_reason_from_nuonuo(inv->red_reason)) {
      o["red_reason"] = json::object{{"name", std::string(to_string(*reason))},
                                     {"text", std::string(red_reason_label(*reason))},
                                     {"nuonuo", std::string(nuonuo_red_reason(*reason))},
                                     {"bureau", std::string(bureau_red_reason(*reason))}};
    }
    auto forms = store.red_confirmations(inv->id);
    if (!forms) {
      return std::unexpected(forms.error());
    }
    json::array fa;
    for (const RedConfirmation& f : *forms) {
      fa.push_back(form_json(f, off));
    }
    o["red_confirmations"] = std::move(fa);
  }
  return o;
}

Result<json::array> transaction_invoices_json(ClaimStore& store, std::string_view transaction_id,
                                             UtcOffset off) {
  auto claim = store.find_by_transaction(transaction_id);
  if (!claim) {
    return std::unexpected(claim.error());
  }
  json::array out;
  if (!claim->invoice_id) {
    return out;
  }
  auto blue = invoice_view_json(store, *claim->invoice_id, off);
  if (!blue) {
    return std::unexpected(blue.error());
  }
  std::optional<std::int64_t> red;
  if (const auto* r = blue->if_contains("red_invoice_id")) {
    red = r->as_int64();
  }
  out.push_back(std::move(*blue));
  if (red) {
    auto v = invoice_view_json(store, *red, off);
    if (!v) {
      return std::unexpected(v.error());
    }
    out.push_back(std::move(*v));
  }
  return out;
}

}  // namespace lanegate::invoice
