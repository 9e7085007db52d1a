// Passages with their camera evidence, evidence images, and the attendant's typed plate:
// see gateway/api_routes.h.
#include <boost/json.hpp>

#include "core/log.h"
#include "core/time_format.h"
#include "gateway/api_routes.h"
#include "lane/plate.h"

namespace lanegate::gateway {
namespace {

namespace json = boost::json;

std::optional<lane::PlateColour> colour_named(std::string_view name) {
  using lane::PlateColour;
  if (name == "BLUE") return PlateColour::kBlue;
  if (name == "YELLOW") return PlateColour::kYellow;
  if (name == "BLACK") return PlateColour::kBlack;
  if (name == "WHITE") return PlateColour::kWhite;
  if (name == "GREEN") return PlateColour::kGreen;
  if (name == "LIMEGREEN") return PlateColour::kYellowGreen;
  return std::nullopt;
}

json::object passage_json(const Store::PassageRow& p, bool full_plate, UtcOffset off) {
  boost::system::error_code ec;
  json::value images = json::parse(p.images, ec);
  if (ec || !images.is_array()) images = json::array();
  for (auto& i : images.as_array()) {
    if (i.is_object() && i.as_object().contains("sha256") && i.at("sha256").is_string()) {
      i.as_object()["url"] = "/api/v1/evidence/" + std::string(i.at("sha256").as_string());
    }
  }
  return json::object{{"id", p.id},
                      {"lane", p.lane},
                      {"plate", full_plate ? p.plate : log::mask_plate(p.plate)},
                      {"decision", p.decision},
                      {"reason", p.reason},
                      {"out_trade_no", p.out_trade_no},
                      {"state", p.state},
                      {"latency_us", p.latency_us},
                      {"created_at", format_rfc3339(p.created_at, off)},
                      {"camera_event", p.camera_event},
                      {"entered_by", p.entered_by},
                      {"entered_reason", p.entered_reason},
                      {"images", std::move(images)}};
}

}  // namespace

void add_passage_routes(HttpApi& api, const ApiServices& s) {
  const UtcOffset off{s.config->gateway.utc_offset_minutes};

  api.add_route(
      "POST", "/api/v1/lanes/{id}/plate", Access::only({Role::kOperator}),
      [s](const HttpRequest& r) {
        boost::system::error_code ec;
        json::value body = json::parse(r.body, ec);
        if (ec || !body.is_object()) {
          return HttpResponse::error(
              400, "invalid_json",
              "the body must be a JSON object {\"plate\": \"...\", \"reason\": \"...\"}");
        }
        std::string plate;
        std::string reason;
        std::optional<lane::PlateColour> colour;
        for (const auto& [k, v] : body.as_object()) {
          if (k != "plate" && k != "reason" && k != "colour") {
            return HttpResponse::error(400, "invalid_argument", "unknown field", std::string(k));
          }
          if (!v.is_string()) {
            return HttpResponse::error(400, "invalid_argument", "must be a string", std::string(k));
          }
          const std::string text(v.as_string());
          if (k == "plate") plate = text;
          if (k == "reason") reason = text;
          if (k == "colour") {
            colour = colour_named(text);
            if (!colour) {
              return HttpResponse::error(
                  400, "invalid_argument",
                  "must be one of BLUE, YELLOW, BLACK, WHITE, GREEN, LIMEGREEN", "colour");
            }
          }
        }
        if (plate.empty()) {
          return HttpResponse::error(400, "invalid_argument", "the plate is required", "plate");
        }
        if (reason.empty() || reason.size() > 500) {
          return HttpResponse::error(400, "invalid_argument",
                                     "a reason of 1 to 500 bytes is required", "reason");
        }
        if (auto st = s.site->enter_plate(r.params.at("id"), plate, colour, r.caller, reason);
            !st) {
          return error_response(st.error());
        }
        return HttpResponse::json(
            202, json::serialize(json::object{{"lane", r.params.at("id")}, {"accepted", true}}));
      });

  api.add_route("GET", "/api/v1/passages", Access::only({Role::kOperator, Role::kAuditor}),
                [s, off](const HttpRequest& r) {
                  std::string lane;
                  int limit = 50;
                  if (auto it = r.query.find("lane"); it != r.query.end()) lane = it->second;
                  if (auto it = r.query.find("limit"); it != r.query.end()) {
                    char* end = nullptr;
                    const long v = std::strtol(it->second.c_str(), &end, 10);
                    if (it->second.empty() || *end != '\0' || v < 1 || v > 500) {
                      return HttpResponse::error(400, "invalid_argument",
                                                 "must be an integer 1..500", "limit");
                    }
                    limit = static_cast<int>(v);
                  }
                  auto rows = s.store->recent_passages(lane, limit);
                  if (!rows) return error_response(rows.error());
                  json::array out;
                  const bool full = r.role == Role::kAuditor;
                  for (const auto& p : *rows) out.push_back(passage_json(p, full, off));
                  return HttpResponse::json(200, json::serialize(json::object{{"passages", out}}));
                });

  api.add_route(
      "GET", "/api/v1/passages/{id}", Access::only({Role::kOperator, Role::kAuditor}),
      [s, off](const HttpRequest& r) {
        auto id = positive_id_param(r);
        if (!id) return error_response(id.error());
        auto row = s.store->find_passage(*id);
        if (!row) return error_response(row.error());
        if (!*row) return HttpResponse::error(404, "not_found", "no passage with this id", "id");
        const bool full = r.role == Role::kAuditor;
        json::object o = passage_json(**row, full, off);
        if ((*row)->camera_event != 0) {
          if (auto ev = s.store->find_camera_event((*row)->camera_event); ev && *ev) {
            const auto& e = **ev;
            json::object c{{"id", e.id},
                           {"device", e.device},
                           {"vendor", e.vendor},
                           {"event_id", e.event_id},
                           {"received_at", format_rfc3339(e.received_at, off)},
                           {"plate_raw", full ? e.plate_raw : log::mask_plate(e.plate_raw)},
                           {"colour", e.colour},
                           {"confidence", e.confidence},
                           {"offline", e.offline},
                           {"outcome", e.outcome}};
            if (e.capture_ms) {
              c["captured_at"] =
                  format_rfc3339(SystemTime(std::chrono::milliseconds(*e.capture_ms)), off);
            }
            o["camera"] = std::move(c);
          }
        }
        if (s.evidence != nullptr && o.at("images").is_array()) {
          for (auto& i : o["images"].as_array()) {
            if (i.is_object() && i.as_object().contains("sha256")) {
              i.as_object()["kept"] =
                  s.evidence->has(std::string(i.at("sha256").as_string()));
            }
          }
        }
        return HttpResponse::json(200, json::serialize(o));
      });

  api.add_route("GET", "/api/v1/evidence/{sha256}", Access::only({Role::kAuditor}),
                [s](const HttpRequest& r) {
                  if (s.evidence == nullptr) {
                    return HttpResponse::error(404, "not_found", "no evidence images are kept");
                  }
                  auto bytes = s.evidence->read(r.params.at("sha256"));
                  if (!bytes) return error_response(bytes.error());
                  HttpResponse resp;
                  resp.content_type = "image/jpeg";
                  resp.body = std::move(*bytes);
                  return resp;
                });
}

}  // namespace lanegate::gateway
