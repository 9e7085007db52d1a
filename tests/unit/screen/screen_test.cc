// The taxi passenger screen: the board the lane writes, the feed the display polls, and
// the page and feed routes as the display's browser sees them (over a real socket).

#include "gateway/screen.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/crypto.h"
#include "gateway/http_api.h"
#include "invoice/receipt.h"

namespace lanegate::gateway {
namespace {

namespace json = boost::json;
using Phase = ScreenView::Phase;

constexpr const char* kCodeUrl = "weixin://wxpay/bizpayurl?pr=Ab3dE9xQz";
constexpr const char* kClaimUrl = "https://gw.example.cn/claim/Zq8v1Yb7Kx3nP0sD4fGh2A";

json::object feed(const ScreenView& v, std::uint64_t version = 1) {
  return json::parse(screen_json("taxi-1", ScreenBoard::Snapshot{v, version})).as_object();
}

// The module pattern of an SVG QR (its one path's d attribute): equal patterns encode
// the same text, whatever the image size.
std::string modules_of(std::string_view svg) {
  const auto d = svg.find(" d=\"");
  if (d == std::string_view::npos) return {};
  const auto end = svg.find('"', d + 4);
  return std::string(svg.substr(d + 4, end - d - 4));
}

std::string modules_for(std::string_view text) {
  auto m = invoice::encode_qr(text);
  EXPECT_TRUE(m);
  return m ? modules_of(invoice::qr_svg(*m)) : std::string();
}

std::string str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

ScreenView paid_view(Phase phase) {
  ScreenView v;
  v.phase = phase;
  v.fare = Money::from_fen(3560);
  v.qr_text = kCodeUrl;  // left over from the QR phase: must not be shown any more
  v.claim_url = kClaimUrl;
  v.claim_code = "7KQ4-M2XA";
  v.method = "native";
  v.reason = "network";
  return v;
}

TEST(ScreenBoard, VersionCountsEveryWriteOfOneLane) {
  ScreenBoard board;
  EXPECT_FALSE(board.get("taxi-1")) << "a lane never shown has no snapshot (the feed answers 404)";
  ScreenView fare{.phase = Phase::kFare, .fare = Money::from_fen(800)};
  board.set("taxi-1", fare);
  ASSERT_TRUE(board.get("taxi-1"));
  EXPECT_EQ(board.get("taxi-1")->version, 1u);
  board.set("taxi-1", fare);  // the same view again is still a write the page must see
  EXPECT_EQ(board.get("taxi-1")->version, 2u);
  board.set("taxi-1",
            ScreenView{.phase = Phase::kQr, .fare = Money::from_fen(800), .qr_text = kCodeUrl});
  const auto s = board.get("taxi-1");
  EXPECT_EQ(s->version, 3u);
  EXPECT_EQ(s->view.phase, Phase::kQr);
  EXPECT_EQ(s->view.qr_text, kCodeUrl);

  board.set("cab-b", ScreenView{});
  EXPECT_EQ(board.get("cab-b")->version, 1u) << "each lane counts its own writes";
  EXPECT_EQ(board.get("taxi-1")->version, 3u);
  EXPECT_EQ(board.lanes(), (std::vector<std::string>{"cab-b", "taxi-1"}));
}

TEST(ScreenBoard, WritersOnSeveralThreadsLoseNoWrite) {
  ScreenBoard board;
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&board, t] {
      for (int i = 0; i < 500; ++i) {
        board.set(t % 2 == 0 ? "a" : "b",
                  ScreenView{.phase = Phase::kFare, .fare = Money::from_fen(i)});
        (void)board.get("a");
      }
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(board.get("a")->version, 1000u);
  EXPECT_EQ(board.get("b")->version, 1000u);
}

TEST(ScreenJson, IdleAndFareAndConfirmingCarryOnlyTheFare) {
  for (Phase p : {Phase::kIdle, Phase::kFare, Phase::kConfirming}) {
    ScreenView v = paid_view(p);  // every optional field set: none may leak into these phases
    v.fare = Money::from_fen(800);
    const auto o = feed(v, 7);
    SCOPED_TRACE(std::string(phase_name(p)));
    EXPECT_EQ(str(o, "lane"), "taxi-1");
    EXPECT_EQ(o.at("version").to_number<std::uint64_t>(), 7u);
    EXPECT_EQ(str(o, "phase"), phase_name(p));
    EXPECT_EQ(o.at("fare_fen").to_number<std::int64_t>(), 800);
    EXPECT_EQ(str(o, "fare"), "8.00");
    for (const char* absent :
         {"qr_svg", "claim_qr_svg", "claim_url", "claim_code", "method", "reason"}) {
      EXPECT_FALSE(o.contains(absent)) << absent;
    }
  }
  EXPECT_EQ(str(feed(ScreenView{.phase = Phase::kConfirming}), "phase"), "confirming");
  EXPECT_EQ(str(feed(ScreenView{}), "phase"), "idle");
}

TEST(ScreenJson, QrPhaseDrawsTheCodeUrlAsAnSvgQrWithAQuietZone) {
  ScreenView v = paid_view(Phase::kQr);
  const auto o = feed(v);
  EXPECT_EQ(str(o, "phase"), "qr");
  EXPECT_EQ(str(o, "fare"), "35.60");
  const std::string svg = str(o, "qr_svg");
  ASSERT_NE(svg.find("<svg"), std::string::npos) << "no SVG QR in the QR phase";
  EXPECT_EQ(modules_of(svg), modules_for(kCodeUrl)) << "the QR does not encode the Native code_url";
  // The first dark module starts 4 modules in: the quiet zone a phone camera needs.
  EXPECT_TRUE(modules_of(svg).starts_with("M4 4")) << modules_of(svg).substr(0, 20);
  for (const char* absent : {"claim_qr_svg", "claim_url", "claim_code", "method", "reason"}) {
    EXPECT_FALSE(o.contains(absent)) << absent;
  }
}

TEST(ScreenJson, AQrPhaseWithoutACodeOrWithOneTooLongForAQrHasNoImage) {
  ScreenView v{.phase = Phase::kQr, .fare = Money::from_fen(800)};
  EXPECT_FALSE(feed(v).contains("qr_svg"));
  v.qr_text = std::string(8000, 'x');  // more than a version-40 symbol holds
  const auto o = feed(v);
  EXPECT_FALSE(o.contains("qr_svg"));
  EXPECT_EQ(str(o, "phase"), "qr") << "the page still shows the fare and asks to pay the driver";
  EXPECT_EQ(str(o, "fare"), "8.00");
}

TEST(ScreenJson, PaidAndMeterPaidShowTheMethodAndTheReceiptClaimQr) {
  for (Phase p : {Phase::kPaid, Phase::kMeterPaid}) {
    SCOPED_TRACE(std::string(phase_name(p)));
    ScreenView v = paid_view(p);
    v.method = p == Phase::kPaid ? "codepay" : "cash";
    const auto o = feed(v);
    EXPECT_EQ(str(o, "phase"), p == Phase::kPaid ? "paid" : "meter_paid");
    EXPECT_EQ(str(o, "fare"), "35.60");
    EXPECT_EQ(str(o, "method"), v.method);
    EXPECT_EQ(str(o, "claim_url"), kClaimUrl);
    EXPECT_EQ(str(o, "claim_code"), "7KQ4-M2XA");
    EXPECT_EQ(modules_of(str(o, "claim_qr_svg")), modules_for(kClaimUrl))
        << "the claim QR must open the claim URL";
    EXPECT_FALSE(o.contains("qr_svg")) << "a paid trip must not still offer the payment QR";
    EXPECT_FALSE(o.contains("reason"));
  }
}

TEST(ScreenJson, OfflineShowsTheClaimQrButNoMethod) {
  ScreenView v = paid_view(Phase::kOffline);
  const auto o = feed(v);
  EXPECT_EQ(str(o, "phase"), "offline");
  EXPECT_EQ(modules_of(str(o, "claim_qr_svg")), modules_for(kClaimUrl));
  EXPECT_EQ(str(o, "claim_code"), "7KQ4-M2XA");
  EXPECT_FALSE(o.contains("method"));
  EXPECT_FALSE(o.contains("qr_svg"));

  // Without a claim (invoicing disabled): no claim members at all, not empty ones.
  v.claim_url.clear();
  const auto bare = feed(v);
  for (const char* absent : {"claim_qr_svg", "claim_url", "claim_code"}) {
    EXPECT_FALSE(bare.contains(absent)) << absent;
  }
}

TEST(ScreenJson, DeclinedNamesTheReasonAndDefaultsToDeclined) {
  ScreenView v = paid_view(Phase::kDeclined);
  v.reason = "expired";
  auto o = feed(v);
  EXPECT_EQ(str(o, "phase"), "declined");
  EXPECT_EQ(str(o, "reason"), "expired");
  EXPECT_EQ(str(o, "fare"), "35.60");
  for (const char* absent : {"qr_svg", "claim_qr_svg", "claim_url", "claim_code", "method"}) {
    EXPECT_FALSE(o.contains(absent)) << absent;
  }
  v.reason.clear();
  EXPECT_EQ(str(feed(v), "reason"), "declined") << "the page always gets a reason it can translate";
}

std::string asset() {
  std::ifstream in(std::string(LANEGATE_SOURCE_DIR) + "/gateway/assets/screen.html",
                   std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ScreenPage, EmbeddedCopyMatchesAsset) {
  const std::string page = asset();
  ASSERT_FALSE(page.empty());
  EXPECT_EQ(page, screen_page_html()) << "run gateway/assets/embed.sh";
}

std::string hash_of_element(std::string_view page, std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">", close = "</" + std::string(tag) + ">";
  const auto a = page.find(open), b = page.find(close);
  if (a == std::string_view::npos || b == std::string_view::npos) return "missing";
  const auto d = crypto::sha256(page.substr(a + open.size(), b - a - open.size()));
  return "'sha256-" + crypto::base64_encode(std::span<const std::uint8_t>(d.data(), d.size())) +
         "'";
}

TEST(ScreenPage, PolicyAllowsExactlyThePagesOwnScriptAndStyle) {
  const std::string& csp = screen_page_csp();
  const std::string_view page = screen_page_html();
  EXPECT_NE(csp.find("script-src " + hash_of_element(page, "script") + ";"), std::string::npos)
      << csp;
  EXPECT_NE(csp.find("style-src " + hash_of_element(page, "style") + ";"), std::string::npos)
      << csp;
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
  EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos) << "the page must reach its feed";
  EXPECT_NE(csp.find("img-src data:"), std::string::npos) << "the QRs are data: URLs";
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos);
  // Server values are written as text or attributes, never parsed as markup.
  EXPECT_EQ(page.find("innerHTML"), std::string_view::npos);
  EXPECT_EQ(page.find("insertAdjacentHTML"), std::string_view::npos);
  EXPECT_EQ(page.find("http"), std::string_view::npos) << "the page loads nothing from elsewhere";
}

class ScreenRoutes : public ::testing::Test {
 protected:
  void SetUp() override {
    config::ApiSection cfg;
    cfg.listen_address = "127.0.0.1";
    cfg.listen_port = 0;
    api_ = std::make_unique<HttpApi>(io_, cfg);
    add_screen_routes(*api_, board_);
    auto port = api_->start();
    ASSERT_TRUE(port) << port.error().message;
    client_ = std::make_unique<httplib::Client>("127.0.0.1", *port);
    loop_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    boost::asio::post(io_, [this] { api_->stop(); });
    work_.reset();
    io_.stop();
    loop_.join();
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  ScreenBoard board_;
  std::unique_ptr<HttpApi> api_;
  std::unique_ptr<httplib::Client> client_;
  std::thread loop_;
};

TEST_F(ScreenRoutes, FeedFollowsTheBoardAndAnUnknownLaneIs404WithACode) {
  auto r = client_->Get("/api/v1/screen/taxi-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  auto err = json::parse(r->body).as_object().at("error").as_object();
  EXPECT_EQ(str(err, "code"), "unknown_lane");
  EXPECT_EQ(str(err, "field"), "lane");

  board_.set("taxi-1", ScreenView{.phase = Phase::kFare, .fare = Money::from_fen(800)});
  r = client_->Get("/api/v1/screen/taxi-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(r->get_header_value("Cache-Control"), "no-store")
      << "a display must never see a stale fare";
  auto o = json::parse(r->body).as_object();
  EXPECT_EQ(str(o, "phase"), "fare");
  EXPECT_EQ(o.at("version").to_number<std::uint64_t>(), 1u);

  board_.set("taxi-1", paid_view(Phase::kPaid));
  r = client_->Get("/api/v1/screen/taxi-1?t=1");
  ASSERT_TRUE(r);
  o = json::parse(r->body).as_object();
  EXPECT_EQ(str(o, "phase"), "paid");
  EXPECT_EQ(o.at("version").to_number<std::uint64_t>(), 2u);
  EXPECT_TRUE(o.contains("claim_qr_svg"));

  r = client_->Get("/api/v1/screen/other-cab");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404) << "another lane's board entry is not this one's";
}

TEST_F(ScreenRoutes, AnIdThatCannotBeALaneIs400NamingTheRule) {
  for (const char* target : {"/api/v1/screen/a%20b", "/screen/a%3Cb%3E",
                             "/api/v1/screen/0123456789012345678901234567890123"}) {
    SCOPED_TRACE(target);
    auto r = client_->Get(target);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    auto err = json::parse(r->body).as_object().at("error").as_object();
    EXPECT_EQ(str(err, "field"), "lane");
    EXPECT_NE(str(err, "message").find("1..32 characters"), std::string::npos);
    EXPECT_EQ(r->body.find('<'), std::string::npos) << "markup from the path is not reflected";
  }
}

TEST_F(ScreenRoutes, ThePageIsServedWithItsPolicyAndTheFeedIsReadOnly) {
  auto r =
      client_->Get("/screen/taxi-1");  // before the lane showed anything: the page says so itself
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(r->get_header_value("Content-Security-Policy"), screen_page_csp());
  EXPECT_EQ(r->body, screen_page_html());
  EXPECT_EQ(r->body.find("taxi-1"), std::string::npos)
      << "the lane is read from the URL, not reflected";

  auto p = client_->Post("/api/v1/screen/taxi-1", "{}", "application/json");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, 405);
}

}  // namespace
}  // namespace lanegate::gateway
