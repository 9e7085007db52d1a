// Plate cameras that push over HTTP, against the real lanegated: each vendor's push as the
// simulated camera sends it (sim/cameras.h, written from the spec apart from the gateway's
// parsers), the lane's loop, barrier and display on the devices simulator (real Modbus TCP),
// and what an operator and an auditor then see through the API.
//
// One daemon per test: a parking lot of four entry lanes, one per vendor, the Vzenith lane
// with a loop detector and a display for the no-plate flow. The simulator serves the lane
// hardware from its own config, in which the Vzenith lane's camera is a Modbus camera that
// the daemon never polls: vehicle_arrives() then only raises the loop, as a car that the
// camera does not read.

#include <gtest/gtest.h>
#include <httplib.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "support/run_command.h"
#include "../daemon/daemon_fixture.h"
#include "config/config.h"
#include "core/crypto.h"
#include "sim/cameras.h"
#include "sim/devices.h"

namespace {

using namespace lanegate;
using namespace lanegate::daemon_test;
namespace json = boost::json;

constexpr const char* kOperatorToken = "operator-token-1";
constexpr const char* kAuditorToken = "auditor-token-1";

struct CamDef {
  const char* id;
  const char* vendor;
  const char* serial;
  const char* token;
  const char* lane;
  const char* barrier;
  int barrier_unit;
};

// Hikvision names itself by its MAC: the serial is one, so config, XML and Basic agree.
constexpr CamDef kCams[] = {
    {"cam-vz", "vzenith", "e5f3a1b2-40c1d2e3", "vz-secret-1", "in-vz", "bar-vz", 2},
    {"cam-hik", "hikvision", "44:19:b6:01:02:03", "hik-secret-1", "in-hik", "bar-hik", 3},
    {"cam-dh", "dahua", "DH-ITC-0001", "dh-secret-1", "in-dh", "bar-dh", 4},
    {"cam-gen", "generic", "GEN-0001", "gen-secret-1", "in-gen", "bar-gen", 5},
};

const CamDef& cam(std::string_view vendor) {
  for (const auto& c : kCams) {
    if (vendor == c.vendor) return c;
  }
  throw std::logic_error("no camera of vendor " + std::string(vendor));
}

bool eventually(const std::function<bool()>& f, std::chrono::milliseconds timeout = 8s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(25ms);
  }
  return f();
}

class CameraDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "lanegated-cam-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    bus_port_ = free_tcp_port();
    api_port_ = free_tcp_port();
    cam_port_ = free_tcp_port();
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      if (!wait_status(pid_, 10s)) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
      }
    }
    sim_.reset();
    fs::remove_all(dir_);
  }

  // The lane hardware, in the daemon's config (`for_sim` false) or the simulator's.
  std::string config_text(bool for_sim) const {
    const std::string pki = demo_pki_dir().string();
    std::ostringstream o;
    o << "[gateway]\nid = \"cam-gw\"\nsite_name = \"Camera lot\"\nstate_dir = \""
      << (dir_ / "state").string() << "\"\n"
      << "[api]\nlisten_address = \"127.0.0.1\"\nlisten_port = " << api_port_ << "\n"
      << "[[api.token]]\nname = \"attendant-li\"\nrole = \"operator\"\nsha256 = \""
      << crypto::sha256_hex(kOperatorToken) << "\"\n"
      << "[[api.token]]\nname = \"auditor-wang\"\nrole = \"auditor\"\nsha256 = \""
      << crypto::sha256_hex(kAuditorToken) << "\"\n"
      << "[cameras]\nlisten_address = \"127.0.0.1\"\nlisten_port = " << cam_port_
      << "\nmax_body_bytes = 262144\n"
      << "[provider]\nbase_url = \"https://127.0.0.1:9\"\nmchid = \"1900000001\"\nappid = "
         "\"wxtest\"\n"
      << "merchant_serial_no = \"0123456789ABCDEF\"\nmerchant_private_key_file = \"" << pki
      << "/merchant.key\"\napiv3_key_file = \"" << pki
      << "/apiv3.key\"\nnotify_url = \"https://127.0.0.1:8443/notify\"\nca_file = \"" << pki
      << "/ca.pem\"\n[[provider.platform_key]]\nid = \"PUB_KEY_ID_0001\"\nfile = \"" << pki
      << "/pubkey.pub.pem\"\n"
      << "[[bus]]\nid = \"bus-1\"\ntransport = \"tcp\"\nhost = \"127.0.0.1\"\nport = "
      << bus_port_ << "\n"
      << "[[device]]\nid = \"loop-vz\"\nkind = \"loop\"\nbus = \"bus-1\"\nunit_id = 2\n"
      << "[[device]]\nid = \"display-vz\"\nkind = \"display\"\nbus = \"bus-1\"\nunit_id = 6\n";
    if (for_sim) {
      o << "[[device]]\nid = \"cam-vz\"\nkind = \"camera\"\nbus = \"bus-1\"\nunit_id = 9\n";
    }
    for (const auto& c : kCams) {
      if (!for_sim) {
        o << "[[device]]\nid = \"" << c.id << "\"\nkind = \"camera\"\nprotocol = \"" << c.vendor
          << "\"\nserial = \"" << c.serial << "\"\ntoken_sha256 = \""
          << crypto::sha256_hex(c.token) << "\"\n";
        if (std::string_view(c.vendor) == "hikvision") {
          // The spec leaves Hikvision's and Dahua's colour strings unconfirmed: the operator
          // maps what the camera sends.
          o << "colours = { blue = \"BLUE\", yellow = \"YELLOW\", green = \"GREEN\" }\n";
        } else if (std::string_view(c.vendor) == "dahua") {
          o << "heartbeat_timeout_s = 10\n";
          o << "colours = { Blue = \"BLUE\", Yellow = \"YELLOW\", Green = \"GREEN\" }\n";
        }
      }
      o << "[[device]]\nid = \"" << c.barrier << "\"\nkind = \"barrier\"\nbus = \"bus-1\"\n"
        << "unit_id = " << c.barrier_unit << "\n";
    }
    for (const auto& c : kCams) {
      if (for_sim && std::string_view(c.id) != "cam-vz") continue;
      o << "[[lane]]\nid = \"" << c.lane << "\"\nmode = \"parking-entry\"\ncamera = \"" << c.id
        << "\"\nbarrier = \"" << c.barrier << "\"\ntariff = \"lot\"\n";
      if (std::string_view(c.id) == "cam-vz") {
        o << "loop = \"loop-vz\"\ndisplay = \"display-vz\"\nno_plate_after_ms = 1000\n";
      }
    }
    o << "[[tariff.parking]]\nid = \"lot\"\n";
    return o.str();
  }

  void start() {
    const std::string sim_text = config_text(true);
    auto sim_cfg = config::load_string(sim_text, "sim.toml");
    ASSERT_TRUE(sim_cfg.has_value()) << sim_cfg.error().front().to_string();
    sim::DevicesSimOptions so;
    so.control_port = -1;
    so.barrier_open_delay_ms = 20;
    so.barrier_hold_ms = 200;
    auto sim = sim::DevicesSim::start(*sim_cfg, so);
    ASSERT_TRUE(sim.has_value()) << sim.error().message;
    sim_ = std::move(*sim);

    const fs::path config = dir_ / "lanegate.toml";
    {
      std::ofstream out(config);
      out << config_text(false);
    }
    SpawnOptions o;
    o.stderr_file = dir_ / "stderr.log";
    pid_ = spawn({binary("lanegated"), "--config", config.string()}, o);
    ASSERT_GT(pid_, 0);
    ASSERT_TRUE(eventually([&] { return get("/readyz", kOperatorToken).first == 200; }, 15s))
        << read_file(dir_ / "stderr.log");
  }

  // The simulated camera `vendor` pushes `shot` (serial and vendor filled in).
  sim::PushAnswer push(sim::CameraShot shot, std::string_view token = {},
                       bool basic_auth = false) {
    const CamDef& c = cam(shot.vendor);
    shot.serial = c.serial;
    auto p = sim::encode_plate(shot);
    EXPECT_TRUE(p.has_value()) << p.error().message;
    return send(*p, c, token.empty() ? std::string(c.token) : std::string(token), basic_auth);
  }

  sim::PushAnswer send(const sim::HttpPush& p, const CamDef& c, const std::string& token,
                       bool basic_auth = false) {
    auto a = sim::send_push("127.0.0.1", cam_port_, token, basic_auth, c.serial, p, 5s);
    EXPECT_TRUE(a.has_value()) << a.error().message;
    return a.value_or(sim::PushAnswer{});
  }

  std::pair<int, std::string> get(const std::string& path, const char* token) {
    httplib::Client cli("127.0.0.1", api_port_);
    cli.set_connection_timeout(2s);
    cli.set_read_timeout(5s);
    auto r = cli.Get(path, {{"Authorization", std::string("Bearer ") + token}});
    if (!r) return {0, ""};
    return {r->status, r->body};
  }

  std::pair<int, std::string> post(const std::string& path, const std::string& body,
                                   const char* token) {
    httplib::Client cli("127.0.0.1", api_port_);
    cli.set_read_timeout(5s);
    auto r = cli.Post(path, {{"Authorization", std::string("Bearer ") + token}}, body,
                      "application/json");
    if (!r) return {0, ""};
    return {r->status, r->body};
  }

  int opens(const CamDef& c) {
    auto b = sim_->barrier(c.barrier);
    EXPECT_TRUE(b.has_value());
    return b ? b->open_commands : -1;
  }

  json::array passages(const char* token = kAuditorToken) {
    auto [status, body] = get("/api/v1/passages", token);
    EXPECT_EQ(status, 200) << body;
    boost::system::error_code ec;
    json::value v = json::parse(body, ec);
    if (ec) return {};
    if (v.is_array()) return v.as_array();
    if (v.is_object() && v.as_object().contains("passages")) return v.at("passages").as_array();
    return {};
  }

  // The passages of `lane`, newest first as the API lists them.
  json::array passages_of(std::string_view lane, const char* token = kAuditorToken) {
    json::array out;
    for (const auto& p : passages(token)) {
      if (p.at("lane").as_string() == lane) out.push_back(p);
    }
    return out;
  }

  json::object lane_status(std::string_view lane) {
    auto [status, body] = get("/api/v1/status", kOperatorToken);
    boost::system::error_code ec;
    json::value v = json::parse(body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("lanes")) return {};
    for (const auto& l : v.at("lanes").as_array()) {
      if (l.at("id").as_string() == lane) return l.as_object();
    }
    return {};
  }

  // `lanegate --config FILE ARGS` with the token in LANEGATE_TOKEN: exit code and stdout.
  std::pair<int, std::string> cli(const std::string& args, const char* token) {
    return lanegate::testing::run_command("LANEGATE_TOKEN=" + std::string(token) + " " +
                                          binary("lanegate") + " --config " +
                                          (dir_ / "lanegate.toml").string() + " " + args);
  }

  std::string metrics() { return get("/metrics", kAuditorToken).second; }

  std::string device_health(std::string_view device) {
    auto [status, body] = get("/api/v1/status", kOperatorToken);
    boost::system::error_code ec;
    json::value v = json::parse(body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("devices")) return "";
    for (const auto& d : v.at("devices").as_array()) {
      if (d.at("id").as_string() == device) return std::string(d.at("health").as_string());
    }
    return "";
  }

  fs::path dir_;
  int bus_port_ = 0, api_port_ = 0, cam_port_ = 0;
  pid_t pid_ = -1;
  std::unique_ptr<sim::DevicesSim> sim_;
};

sim::CameraShot shot(std::string_view vendor, std::uint64_t event, std::string plate) {
  sim::CameraShot s;
  s.vendor = vendor;
  s.serial = cam(vendor).serial;
  s.event_no = event;
  s.plate = std::move(plate);
  // Fixed at the shot, not at each push: a camera resending a record resends its capture time,
  // and Dahua's records are known by time and plate (a resend a second later is a new record).
  s.capture_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return s;
}

TEST_F(CameraDaemonTest, VzenithPlateOpensTheBarrierAndTheReplyPulsesTheRelay) {
  start();
  const auto s = shot("vzenith", 101, "粤B12345");
  const auto a = push(s);
  ASSERT_EQ(a.status, 200) << a.body;
  auto reply = sim::read_vzenith_reply(a.body);
  ASSERT_TRUE(reply.has_value()) << a.body;
  auto open = sim::check_vzenith_reply(*reply, s);
  ASSERT_TRUE(open.has_value()) << open.error().message << ": " << a.body;
  EXPECT_TRUE(*open) << "lanegate opened, so the camera's relay must pulse: " << a.body;
  EXPECT_TRUE(eventually([&] { return opens(cam("vzenith")) == 1; }));
}

TEST_F(CameraDaemonTest, EveryVendorsPushOpensItsLaneOnceAndKeepsItsImages) {
  start();
  int n = 0;
  for (const auto& c : kCams) {
    SCOPED_TRACE(c.vendor);
    const std::string plate = "粤B1234" + std::to_string(++n);
    const auto a = push(shot(c.vendor, 200 + n, plate));
    ASSERT_EQ(a.status, 200) << a.body;
    EXPECT_TRUE(eventually([&] { return opens(c) == 1; }))
        << a.body << "\n" << read_file(dir_ / "stderr.log");

    // The auditor sees the passage with its plate, its camera event and both images.
    json::array ps;
    ASSERT_TRUE(eventually([&] {
      ps = passages_of(c.lane);
      return !ps.empty() && ps.front().at("images").as_array().size() == 2;
    })) << json::serialize(ps);
    const auto& p = ps.front().as_object();
    EXPECT_EQ(p.at("plate").as_string(), plate);
    EXPECT_GT(p.at("camera_event").as_int64(), 0);
    for (const auto& img : p.at("images").as_array()) {
      const std::string sha(img.at("sha256").as_string());
      std::pair<int, std::string> file;
      ASSERT_TRUE(eventually([&] {
        file = get(std::string(img.at("url").as_string()), kAuditorToken);
        return file.first == 200;
      })) << file.second;
      EXPECT_EQ(crypto::sha256_hex(file.second), sha) << "the file is the image its hash names";
      EXPECT_EQ(file.second.substr(0, 2), std::string("\xFF\xD8", 2));
    }
    // The operator sees the same passage with the plate masked, and no image.
    const auto masked = passages_of(c.lane, kOperatorToken);
    ASSERT_FALSE(masked.empty());
    EXPECT_NE(masked.front().at("plate").as_string(), plate);
    const std::string url(p.at("images").as_array().front().at("url").as_string());
    EXPECT_EQ(get(url, kOperatorToken).first, 403);
  }
}

TEST_F(CameraDaemonTest, ADuplicatePushIsAnsweredAndNeverOpensTwice) {
  start();
  int n = 0;
  for (const auto& c : kCams) {
    SCOPED_TRACE(c.vendor);
    ++n;
    const auto s = shot(c.vendor, 300 + n, "粤B2345" + std::to_string(n));
    ASSERT_EQ(push(s).status, 200);
    ASSERT_TRUE(eventually([&] { return opens(c) == 1; }));
    // A camera resends after its own reply timeout: across a second boundary, so a record
    // known by its capture time (Dahua) must still be the same record.
    std::this_thread::sleep_for(1100ms);
    const auto again = push(s);
    EXPECT_EQ(again.status, 200) << "the camera must stop resending: " << again.body;
    if (std::string_view(c.vendor) == "vzenith") {
      auto reply = sim::read_vzenith_reply(again.body);
      ASSERT_TRUE(reply.has_value());
      EXPECT_FALSE(reply->open) << "a duplicate never pulses the relay";
    } else {
      EXPECT_NE(again.body.find("\"duplicate\":true"), std::string::npos) << again.body;
    }
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(opens(c), 1);
    EXPECT_EQ(passages_of(c.lane).size(), 1u);
  }
  EXPECT_NE(metrics().find(R"(lanegate_camera_pushes_total{vendor="dahua",device="cam-dh",result="duplicate"} 1)"),
            std::string::npos)
      << metrics();
}

TEST_F(CameraDaemonTest, ARecordResentAfterTheCameraWasOfflineIsRecordedAndNeverOpens) {
  start();
  for (const char* vendor : {"vzenith", "generic"}) {
    SCOPED_TRACE(vendor);
    const CamDef& c = cam(vendor);
    auto s = shot(vendor, 400, std::string_view(vendor) == "vzenith" ? "粤B34561" : "粤B34562");
    s.offline = true;
    s.capture_unix_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(
            (std::chrono::system_clock::now() - std::chrono::hours(2)).time_since_epoch())
            .count();
    const auto a = push(s);
    ASSERT_EQ(a.status, 200) << a.body;
    if (std::string_view(vendor) == "vzenith") {
      auto reply = sim::read_vzenith_reply(a.body);
      ASSERT_TRUE(reply.has_value()) << a.body;
      auto open = sim::check_vzenith_reply(*reply, s);
      ASSERT_TRUE(open.has_value()) << open.error().message << ": " << a.body;
      EXPECT_FALSE(*open);
    }
    json::array ps;
    ASSERT_TRUE(eventually([&] {
      ps = passages_of(c.lane);
      return !ps.empty();
    }));
    EXPECT_EQ(ps.front().at("decision").as_string(), "recorded") << json::serialize(ps);
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(opens(c), 0) << "the car left hours ago: the barrier must not open for nobody";
  }
}

TEST_F(CameraDaemonTest, AMalformedPushIsRefusedNamingTheFieldAndCounted) {
  start();
  for (const auto& c : kCams) {
    SCOPED_TRACE(c.vendor);
    auto p = sim::encode_plate(shot(c.vendor, 500, "粤B45678")).value();
    const std::string xml_or_json = std::string_view(c.vendor) == "hikvision" ? "<Event" : "{\"";
    p.body = p.content_type.starts_with("multipart")
                 ? p.body.substr(0, p.body.size() / 3)  // cut inside the first part
                 : xml_or_json;
    const auto a = send(p, c, c.token);
    EXPECT_EQ(a.status, 400) << a.body;
    EXPECT_NE(a.body.find("malformed_push"), std::string::npos) << a.body;
    EXPECT_EQ(opens(c), 0);
  }
  EXPECT_NE(metrics().find(R"(lanegate_camera_pushes_total{vendor="generic",device="cam-gen",result="malformed"} 1)"),
            std::string::npos);
  EXPECT_TRUE(passages().empty());
}

TEST_F(CameraDaemonTest, AnOversizedPushIsRefusedWithoutStoppingTheReceiver) {
  start();
  const CamDef& c = cam("generic");
  auto p = sim::encode_plate(shot("generic", 600, "粤B56789")).value();
  sim::HttpPush big = p;
  big.body.insert(big.body.size() - 1, ",\"pad\":\"" + std::string(300'000, 'x') + "\"");
  EXPECT_EQ(send(big, c, c.token).status, 413);
  EXPECT_EQ(opens(c), 0);
  // The same camera's next, normal push goes through.
  EXPECT_EQ(send(p, c, c.token).status, 200);
  EXPECT_TRUE(eventually([&] { return opens(c) == 1; }));
}

TEST_F(CameraDaemonTest, WrongCredentialsAreRefusedAndNothingIsStored) {
  start();
  for (const auto& c : kCams) {
    SCOPED_TRACE(c.vendor);
    auto s = shot(c.vendor, 700, "粤B6789" + std::string(1, c.vendor[0] == 'v' ? '1' : '2'));
    if (std::string_view(c.vendor) == "hikvision") s.plate = "粤B67893";
    if (std::string_view(c.vendor) == "dahua") s.plate = "粤B67894";
    EXPECT_EQ(push(s, "not-the-token").status, 401);
    EXPECT_EQ(push(s, "not-the-token", /*basic_auth=*/true).status, 401);
    // Another camera's token does not do either: the vendor and the identity must match.
    const CamDef& other = &c == &kCams[0] ? kCams[1] : kCams[0];
    EXPECT_NE(push(s, other.token).status, 200);
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(opens(c), 0);
    // Nothing was stored: the same event, now with the right token, is new and opens.
    // (A MAC cannot be a Basic user name, RFC 7617: the Hikvision camera uses the URL token.)
    const bool basic = std::string_view(c.vendor) != "hikvision";
    EXPECT_EQ(push(s, {}, basic).status, 200);
    EXPECT_TRUE(eventually([&] { return opens(c) == 1; }));
  }
  EXPECT_NE(metrics().find("result=\"unauthorized\"}"),
            std::string::npos);
}

TEST_F(CameraDaemonTest, AVehicleWithoutAReadIsToldToWaitAndTheAttendantEntersItsPlate) {
  start();
  const CamDef& c = cam("vzenith");
  const auto writes_before = sim_->display_writes("display-vz").value_or(0);
  // The loop sees a car; the camera reads nothing.
  sim::VehicleArrival v;
  v.camera = "cam-vz";
  v.plate = "粤B00000";
  ASSERT_TRUE(sim_->vehicle_arrives(v).has_value());
  json::object lane;
  ASSERT_TRUE(eventually([&] {
    lane = lane_status(c.lane);
    return lane.contains("no_plate") && lane.at("no_plate").is_object();
  })) << json::serialize(lane) << read_file(dir_ / "stderr.log");
  EXPECT_EQ(lane.at("no_plate").at("reason").as_string(), "no_read");
  EXPECT_TRUE(eventually([&] {
    auto texts = sim_->display_texts("display-vz", writes_before)
                     .value_or(std::vector<std::string>{});
    for (const auto& t : texts) {
      if (t.find("未识别车牌") != std::string::npos) return true;
    }
    return false;
  })) << "the driver is told what happens";
  EXPECT_NE(metrics().find(R"(lanegate_no_plate_total{lane="in-vz",reason="no_read"} 1)"),
            std::string::npos);
  EXPECT_EQ(opens(c), 0);

  // The attendant types the plate: it needs a reason, and the auditor sees who and why.
  EXPECT_EQ(post("/api/v1/lanes/in-vz/plate", R"({"plate":"粤Z1234港"})", kOperatorToken).first,
            400);
  EXPECT_EQ(post("/api/v1/lanes/in-vz/plate", R"({"plate":"粤Z1234港","reason":"x"})",
                 kAuditorToken)
                .first,
            403);
  // From the CLI, as the attendant does it.
  const auto [rc, out] =
      cli("lanes plate in-vz 粤Z1234港 --reason 'plate covered in mud'", kOperatorToken);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"accepted\":true"), std::string::npos) << out;
  EXPECT_TRUE(eventually([&] { return opens(c) == 1; }));
  json::array ps;
  ASSERT_TRUE(eventually([&] {
    ps = passages_of(c.lane);
    return !ps.empty();
  }));
  const auto& p = ps.front().as_object();
  EXPECT_EQ(p.at("plate").as_string(), "粤Z1234港");
  EXPECT_EQ(p.at("entered_by").as_string(), "attendant-li");
  EXPECT_EQ(p.at("entered_reason").as_string(), "plate covered in mud");
  EXPECT_TRUE(eventually([&] { return lane_status(c.lane).at("no_plate").is_null(); }));
  const auto [rc2, listed] = cli("passages --lane in-vz", kAuditorToken);
  EXPECT_EQ(rc2, 0);
  EXPECT_NE(listed.find("plate covered in mud"), std::string::npos) << listed;
}

TEST_F(CameraDaemonTest, ACamerasNoPlateAndARefusedPlateStartTheNoPlateFlowAtOnce) {
  start();
  const CamDef& c = cam("vzenith");
  const auto a = push(shot("vzenith", 800, ""));
  ASSERT_EQ(a.status, 200) << a.body;
  auto reply = sim::read_vzenith_reply(a.body);
  ASSERT_TRUE(reply.has_value());
  EXPECT_FALSE(reply->open);
  json::object lane;
  ASSERT_TRUE(eventually([&] {
    lane = lane_status(c.lane);
    return lane.contains("no_plate") && lane.at("no_plate").is_object();
  })) << json::serialize(lane);
  EXPECT_EQ(lane.at("no_plate").at("reason").as_string(), "no_plate");
  EXPECT_GT(lane.at("no_plate").at("camera_event").as_int64(), 0);

  // The generic lane: a plate no rule accepts is refused, counted by reason, and the lane
  // waits for an attendant instead of a closed barrier and silence.
  const CamDef& g = cam("generic");
  ASSERT_EQ(push(shot("generic", 801, "粤B12")).status, 200);
  ASSERT_TRUE(eventually([&] {
    lane = lane_status(g.lane);
    return lane.contains("no_plate") && lane.at("no_plate").is_object();
  })) << json::serialize(lane);
  EXPECT_NE(metrics().find("lanegate_plate_rejected_total{device=\"cam-gen\""), std::string::npos);
  EXPECT_EQ(opens(g), 0);
}

TEST_F(CameraDaemonTest, HeartbeatsKeepACameraUpAndSilenceTakesItDown) {
  start();
  EXPECT_EQ(device_health("cam-dh"), "down") << "never heard yet";
  for (const char* vendor : {"vzenith", "dahua"}) {
    const CamDef& c = cam(vendor);
    auto hb = sim::encode_heartbeat(vendor, c.serial, "192.168.1.64", "admin", "hb-pass-9931");
    ASSERT_TRUE(hb.has_value()) << hb.error().message;
    EXPECT_EQ(send(*hb, c, c.token).status, 200);
  }
  EXPECT_TRUE(eventually([&] { return device_health("cam-vz") == "up"; }));
  EXPECT_TRUE(eventually([&] { return device_health("cam-dh") == "up"; }));
  EXPECT_NE(metrics().find(R"(lanegate_device_health{device="cam-dh"} 2)"), std::string::npos);
  EXPECT_EQ(read_file(dir_ / "stderr.log").find("hb-pass-9931"), std::string::npos)
      << "the camera's password reached the log";
  // cam-dh (heartbeat_timeout_s = 10) hears nothing more: down, with the Modbus devices' log
  // line.
  EXPECT_TRUE(eventually([&] { return device_health("cam-dh") == "down"; }, 25s));
  const std::string log = read_file(dir_ / "stderr.log");
  EXPECT_NE(log.find("device health changed device=cam-dh via=http from=up to=down"),
            std::string::npos)
      << log;
}

TEST_F(CameraDaemonTest, VehiclesTheLoopSeesWithoutAReadMakeTheCameraDegraded) {
  start();
  const CamDef& c = cam("vzenith");
  auto hb = sim::encode_heartbeat("vzenith", c.serial, "192.168.1.64");
  ASSERT_EQ(send(*hb, c, c.token).status, 200);
  ASSERT_TRUE(eventually([&] { return device_health("cam-vz") == "up"; }));
  for (int i = 0; i < 3; ++i) {
    sim::VehicleArrival v;
    v.camera = "cam-vz";
    v.plate = "粤B00000";
    ASSERT_TRUE(sim_->vehicle_arrives(v).has_value());
    ASSERT_TRUE(eventually([&] { return lane_status(c.lane).at("no_plate").is_object(); }));
    ASSERT_TRUE(sim_->vehicle_leaves(c.lane).has_value());
    ASSERT_TRUE(eventually([&] { return lane_status(c.lane).at("no_plate").is_null(); }));
  }
  EXPECT_TRUE(eventually([&] { return device_health("cam-vz") == "degraded"; }))
      << read_file(dir_ / "stderr.log");
  // The camera reads the next car: up again.
  ASSERT_EQ(push(shot("vzenith", 900, "粤B99887")).status, 200);
  EXPECT_TRUE(eventually([&] { return device_health("cam-vz") == "up"; }));
}

}  // namespace
