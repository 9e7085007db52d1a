#pragma once
// The gateway's API endpoints, mounted on an HttpApi:
//
//   GET  /healthz                    public     the io loop answers
//   GET  /readyz                     public     503 while in attendant mode (database cannot commit)
//   GET  /metrics                    operator, auditor   Prometheus text
//   GET  /api/v1/status              operator   lanes, devices, link, queue, attendant mode
//   GET  /api/v1/transactions        operator   filters: from, to (RFC 3339), lane, plate, state,
//                                               arrears=1, after (id), limit (1..1000)
//   POST /api/v1/lanes/{id}/open     operator   {"reason": "..."}: manual open, recorded
//   POST /api/v1/lanes/{id}/plate    operator   {"plate", "colour"?, "reason"}: an attendant
//                                               types the plate of a no-plate vehicle
//   GET  /api/v1/passages            operator, auditor   newest first: lane, limit (1..500)
//   GET  /api/v1/passages/{id}       operator, auditor   one passage, its camera event, images
//                                    (plates masked except for the auditor)
//   GET  /api/v1/evidence/{sha256}   auditor    an evidence image (image/jpeg)
//   GET  /api/v1/audit/artifacts     auditor, operator   settlement packages and reports
//   GET  /api/v1/audit/packages/{name}/{file}   auditor, operator   one file of a package
//   GET  /api/v1/audit/reports/{name}           auditor, operator   one reconciliation report
//   GET  /api/v1/transactions/{out_trade_no}/receipt  operator   the passenger's receipt:
//                                    {out_trade_no, kind, issuer, claim_url, token,
//                                    human_code, text, qr_svg}. A toll (SUCCESS) gets the
//                                    trip and the national toll e-bill platform
//                                    (issuer "national_toll_platform", no claim, no QR),
//                                    whether or not invoicing is enabled.
//   GET  /api/v1/transactions/{out_trade_no}/receipt.html  operator   the same receipt as a
//                                    printable page (text, inline SVG QR; a CSP that runs
//                                    no script)
//   GET  /claim, /claim/{token}      public     the invoice claim page (docs/INVOICE.md)
//   GET|POST /api/v1/claims/{token}  public     claim status / submit the buyer
//   POST /api/v1/claim-codes         public     typed human code -> token; rate-limited per
//                                               client address (HttpRequest::peer)
//     Invoicing disabled ([invoicing] enabled = false): the claim routes and the receipt
//     of anything but a toll answer 404 {"error":{"code":"invoicing_disabled",...}}.
//   POST <path of provider.notify_url>  public (signed by the provider)
// The auditor role reaches the audit routes and /metrics only; no route alters the ledger.
//
// Threading: handlers run on the io thread.

#include <functional>

#include "config/config.h"
#include "gateway/camera_receiver.h"
#include "gateway/evidence.h"
#include "gateway/http_api.h"
#include "gateway/provider_notify.h"
#include "gateway/site.h"
#include "gateway/store.h"
#include "gateway/uplink.h"
#include "invoice/claims.h"
#include "offline_queue/queue.h"

namespace lanegate::lane {
class LaneDrivers;
}

namespace lanegate::gateway {

struct ApiServices {
  const config::Config* config = nullptr;
  Store* store = nullptr;
  queue::Outbox* outbox = nullptr;
  Site* site = nullptr;
  Uplink* uplink = nullptr;                    // null without a configured provider
  NotificationHandler* notifications = nullptr;  // null without a configured provider
  lane::LaneDrivers* drivers = nullptr;        // null when the box has no devices
  invoice::ClaimStore* claims = nullptr;       // null when invoicing is disabled
  EvidenceStore* evidence = nullptr;           // null when no camera sends images
  CameraReceiver* cameras = nullptr;           // null when no camera pushes over HTTP
};

// The passage and evidence routes (api_passages.cc), part of add_api_routes.
void add_passage_routes(HttpApi& api, const ApiServices& s);

// The operator's invoice routes (api_invoices.cc), part of add_api_routes: an invoice with
// its red-letter forms, a red letter by hand, and a retry of a failed invoice.
void add_invoice_operator_routes(HttpApi& api, const ApiServices& s);

// An error as the API answers it: 404 not found, 400 a broken rule (the field named),
// 409 a state that forbids it (kRejected, kAlreadyExists), 503 anything else (local
// trouble: try again).
HttpResponse error_response(const Error& e);

// A path parameter that must be a positive integer (an id): kInvalidArgument naming it.
Result<std::int64_t> positive_id_param(const HttpRequest& r, const std::string& name = "id");

// REQUIRES: every pointer in `services` outlives the HttpApi.
void add_api_routes(HttpApi& api, ApiServices services);

// Path part of a URL ("https://h/x/y?z" -> "/x/y"); "/" when there is none.
std::string url_path(std::string_view url);

}  // namespace lanegate::gateway
