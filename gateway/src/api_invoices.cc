// The operator's invoice routes: see gateway/api_routes.h.
#include <boost/json.hpp>

#include "core/log.h"
#include "gateway/api_routes.h"
#include "invoice/invoice_view.h"

namespace lanegate::gateway {
namespace {

namespace json = boost::json;

HttpResponse view(invoice::ClaimStore& claims, std::int64_t id, UtcOffset off, int status = 200) {
  auto v = invoice::invoice_view_json(claims, id, off);
  if (!v) return error_response(v.error());
  return HttpResponse::json(status, json::serialize(*v));
}

HttpResponse disabled() {
  return HttpResponse::error(404, "invoicing_disabled",
                             "invoicing is not enabled on this gateway ([invoicing] enabled = false)");
}

}  // namespace

void add_invoice_operator_routes(HttpApi& api, const ApiServices& s) {
  const UtcOffset off{s.config->gateway.utc_offset_minutes};

  // The invoices of one transaction (?transaction_id=OUT_TRADE_NO): how an operator finds
  // the invoice a driver asks about.
  api.add_route("GET", "/api/v1/invoices", Access::only({Role::kOperator, Role::kAuditor}),
                [s, off](const HttpRequest& r) {
                  if (s.claims == nullptr) return disabled();
                  auto it = r.query.find("transaction_id");
                  if (it == r.query.end() || it->second.empty()) {
                    return HttpResponse::error(400, "invalid_argument",
                                               "give ?transaction_id=OUT_TRADE_NO", "transaction_id");
                  }
                  auto list = invoice::transaction_invoices_json(*s.claims, it->second, off);
                  if (!list) return error_response(list.error());
                  return HttpResponse::json(200, json::serialize(json::object{{"invoices", std::move(*list)}}));
                });

  api.add_route("GET", "/api/v1/invoices/{id}", Access::only({Role::kOperator, Role::kAuditor}),
                [s, off](const HttpRequest& r) {
                  if (s.claims == nullptr) return disabled();
                  auto id = positive_id_param(r);
                  if (!id) return error_response(id.error());
                  return view(*s.claims, *id, off);
                });

  // A red letter by hand (the refund path asks for one itself): body {"reason": "returned" |
  // "invoicing_error" | "service_stopped" | "discount"}. The red invoice and its outbox item
  // commit together; the answer is the red invoice with its first form.
  api.add_route("POST", "/api/v1/invoices/{id}/red-letter", Access::only({Role::kOperator}),
                [s, off](const HttpRequest& r) {
                  if (s.claims == nullptr) return disabled();
                  auto id = positive_id_param(r);
                  if (!id) return error_response(id.error());
                  boost::system::error_code ec;
                  json::value body = json::parse(r.body, ec);
                  const json::object* o = ec ? nullptr : body.if_object();
                  const json::value* reason = o ? o->if_contains("reason") : nullptr;
                  if (reason == nullptr || !reason->is_string()) {
                    return HttpResponse::error(400, "invalid_argument",
                                               "the body is {\"reason\": \"returned\" | \"invoicing_error\" | "
                                               "\"service_stopped\" | \"discount\"}",
                                               "reason");
                  }
                  auto why = invoice::parse_red_reason(std::string_view(reason->get_string()));
                  if (!why) return error_response(why.error());
                  auto red = s.claims->request_red_letter(*id, *why);
                  if (!red) return error_response(red.error());
                  log::notice("red letter requested by an operator",
                              {{"INVOICE_ID", *id}, {"RED_INVOICE_ID", red->id}, {"CALLER", r.caller},
                               {"REASON", std::string(invoice::to_string(*why))}});
                  return view(*s.claims, red->id, off, 201);
                });

  // FAILED -> CLAIMED again, queued; a red whose form ended void or refused gets a new form.
  api.add_route("POST", "/api/v1/invoices/{id}/retry", Access::only({Role::kOperator}),
                [s, off](const HttpRequest& r) {
                  if (s.claims == nullptr) return disabled();
                  auto id = positive_id_param(r);
                  if (!id) return error_response(id.error());
                  if (auto st = s.claims->retry_failed(*id); !st) return error_response(st.error());
                  log::notice("invoice retried by an operator", {{"INVOICE_ID", *id}, {"CALLER", r.caller}});
                  return view(*s.claims, *id, off);
                });
}

}  // namespace lanegate::gateway
