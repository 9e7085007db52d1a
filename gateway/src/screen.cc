#include "gateway/screen.h"

#include <boost/json.hpp>

#include "core/crypto.h"
#include "core/log.h"
#include "gateway/http_api.h"
#include "invoice/receipt.h"

namespace lanegate::gateway {
namespace {

namespace json = boost::json;

constexpr char kScreenPageHtml[] =
#include "screen_page_html.inc"
    ;

// Module size of the SVG's width/height attributes; the page scales the image to the
// screen, so this only matters to someone opening the SVG alone.
constexpr int kQrModulePx = 8;

// The body of the page's first <tag>…</tag> as a CSP hash source, or 'none'.
std::string hash_source(std::string_view page, std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">";
  const std::string close = "</" + std::string(tag) + ">";
  const auto a = page.find(open);
  const auto b = page.find(close);
  if (a == std::string_view::npos || b == std::string_view::npos || b < a) {
    return "'none'";
  }
  const auto digest = crypto::sha256(page.substr(a + open.size(), b - a - open.size()));
  return "'sha256-" +
         crypto::base64_encode(std::span<const std::uint8_t>(digest.data(), digest.size())) + "'";
}

std::optional<std::string> qr_svg_of(std::string_view text, std::string_view what) {
  auto m = invoice::encode_qr(text);
  if (!m) {
    // A lane bug or a provider answer far outside the spec; the passenger is told to
    // pay the driver instead of seeing a broken image. Not the text: it may be a link.
    log::error("passenger screen: cannot draw the " + std::string(what) + " QR",
               {{"ERROR", m.error().message}});
    return std::nullopt;
  }
  return invoice::qr_svg(*m, kQrModulePx);
}

bool has_receipt(ScreenView::Phase p) {
  return p == ScreenView::Phase::kPaid || p == ScreenView::Phase::kMeterPaid ||
         p == ScreenView::Phase::kOffline;
}

// Lane ids follow the config's id rule; anything else cannot name a lane.
bool valid_lane_id(std::string_view id) {
  if (id.empty() || id.size() > 32) return false;
  for (char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

HttpResponse bad_lane() {
  return HttpResponse::error(400, "invalid_argument", "must be 1..32 characters of A-Z a-z 0-9 _ -",
                             "lane");
}

}  // namespace

std::string_view phase_name(ScreenView::Phase phase) {
  switch (phase) {
    case ScreenView::Phase::kIdle:
      return "idle";
    case ScreenView::Phase::kFare:
      return "fare";
    case ScreenView::Phase::kQr:
      return "qr";
    case ScreenView::Phase::kConfirming:
      return "confirming";
    case ScreenView::Phase::kPaid:
      return "paid";
    case ScreenView::Phase::kDeclined:
      return "declined";
    case ScreenView::Phase::kMeterPaid:
      return "meter_paid";
    case ScreenView::Phase::kOffline:
      return "offline";
  }
  return "idle";
}

void ScreenBoard::set(const std::string& lane, ScreenView view) {
  std::lock_guard lock(mu_);
  Snapshot& s = lanes_[lane];
  s.view = std::move(view);
  ++s.version;
}

std::optional<ScreenBoard::Snapshot> ScreenBoard::get(const std::string& lane) const {
  std::lock_guard lock(mu_);
  auto it = lanes_.find(lane);
  if (it == lanes_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> ScreenBoard::lanes() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  out.reserve(lanes_.size());
  for (const auto& [lane, s] : lanes_) out.push_back(lane);
  return out;
}

std::string screen_json(const std::string& lane, const ScreenBoard::Snapshot& snapshot) {
  using Phase = ScreenView::Phase;
  const ScreenView& v = snapshot.view;
  json::object o{{"lane", lane},
                 {"version", snapshot.version},
                 {"phase", phase_name(v.phase)},
                 {"fare_fen", v.fare.fen()},
                 {"fare", v.fare.to_string()}};
  if (v.phase == Phase::kQr && !v.qr_text.empty()) {
    if (auto svg = qr_svg_of(v.qr_text, "payment")) o["qr_svg"] = *svg;
  }
  if (has_receipt(v.phase) && !v.claim_url.empty()) {
    o["claim_url"] = v.claim_url;
    if (auto svg = qr_svg_of(v.claim_url, "invoice claim")) o["claim_qr_svg"] = *svg;
    if (!v.claim_code.empty()) o["claim_code"] = v.claim_code;
  }
  if ((v.phase == Phase::kPaid || v.phase == Phase::kMeterPaid) && !v.method.empty())
    o["method"] = v.method;
  if (v.phase == Phase::kDeclined) o["reason"] = v.reason.empty() ? "declined" : v.reason;
  return json::serialize(o);
}

std::string_view screen_page_html() { return {kScreenPageHtml, sizeof(kScreenPageHtml) - 1}; }

const std::string& screen_page_csp() {
  // The page's script and style by hash, never 'unsafe-inline': should a server value
  // ever reach the markup, it cannot run or restyle the page. QRs arrive as data: URLs.
  static const std::string csp =
      "default-src 'none'; script-src " + hash_source(screen_page_html(), "script") +
      "; style-src " + hash_source(screen_page_html(), "style") +
      "; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; "
      "form-action 'none'";
  return csp;
}

void add_screen_routes(HttpApi& api, const ScreenBoard& board) {
  api.add_route("GET", "/screen/{lane}", Access::open(), [](const HttpRequest& r) {
    if (!valid_lane_id(r.params.at("lane"))) return bad_lane();
    // Any valid id gets the page: a display may be switched on before its lane first
    // shows something; the page says so from the feed's 404 and keeps polling.
    HttpResponse resp;
    resp.content_type = "text/html; charset=utf-8";
    resp.body = std::string(screen_page_html());
    resp.headers.emplace_back("Content-Security-Policy", screen_page_csp());
    return resp;
  });
  api.add_route("GET", "/api/v1/screen/{lane}", Access::open(), [&board](const HttpRequest& r) {
    const std::string& lane = r.params.at("lane");
    if (!valid_lane_id(lane)) return bad_lane();
    auto snap = board.get(lane);
    if (!snap) {
      return HttpResponse::error(404, "unknown_lane", "no passenger screen for lane '" + lane + "'",
                                 "lane");
    }
    return HttpResponse::json(200, screen_json(lane, *snap));
  });
}

}  // namespace lanegate::gateway
