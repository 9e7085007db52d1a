// The simulated lane hardware with HTTP push cameras beside Modbus devices: a vehicle at a
// push camera's lane sets the lane's loop (seen by the real lane drivers over Modbus TCP)
// and is POSTed to a stand-in gateway in the camera's vendor format. The stand-in checks
// the wire against the spec (lane-devices.md "ANPR cameras over HTTP") with Boost.JSON,
// plain text search and httplib's multipart parser, and cross-checks with the gateway's
// own parser (lane/camera_push.h; sim/ itself never includes it).
#include <gtest/gtest.h>
#include <httplib.h>

#include <boost/json.hpp>
#include <limits>
#include <map>
#include <mutex>

#include "core/crypto.h"
#include "lane/camera_push.h"
#include "lane/drivers.h"
#include "lane_it_support.h"
#include "sim/devices.h"
#include "support/wire_text.h"

namespace lanegate::lane {
namespace {

using ::lanegate::wire_test::looks_like_jpeg;
using ::lanegate::wire_test::unbase64;

using namespace testing;
namespace json = boost::json;

constexpr std::string_view kPlate = "粤B12345";

// What the stand-in gateway saw of one request.
struct Seen {
  std::string path;
  std::string token;          // ?token=
  std::string authorization;  // the header, as sent
  std::string content_type;
  std::string body;
  std::map<std::string, std::string> files;  // multipart: part name -> content
};

// A multipart body written back from the parts httplib's server read (it takes a multipart
// request apart and keeps no raw body), for the gateway parser's cross-check.
std::string multipart_body(const std::string& content_type,
                           const std::vector<httplib::MultipartFormData>& parts) {
  std::string boundary = content_type.substr(content_type.find("boundary=") + 9);
  std::string out;
  for (const auto& p : parts) {
    out += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + p.name + "\"";
    if (!p.filename.empty()) out += "; filename=\"" + p.filename + "\"";
    out += "\r\n";
    if (!p.content_type.empty()) out += "Content-Type: " + p.content_type + "\r\n";
    out += "\r\n" + p.content + "\r\n";
  }
  return out + "--" + boundary + "--\r\n";
}

// A camera receiver stand-in: records every POST and answers like a gateway (Vzenith: the
// spec's Response_AlarmInfoPlate echoing the plateid, with `info` as told).
class FakeGateway {
 public:
  FakeGateway() {
    server_.Post(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res,
                                  const httplib::ContentReader& reader) {
      const std::string content_type = req.get_header_value("Content-Type");
      std::string raw;
      std::vector<httplib::MultipartFormData> parts;
      if (req.is_multipart_form_data()) {
        reader(
            [&](const httplib::MultipartFormData& header) {
              parts.push_back(header);
              return true;
            },
            [&](const char* data, std::size_t n) {
              parts.back().content.append(data, n);
              return true;
            });
        raw = multipart_body(content_type, parts);
      } else {
        reader([&](const char* data, std::size_t n) {
          raw.append(data, n);
          return true;
        });
      }
      Seen s{req.path,
             req.has_param("token") ? req.get_param_value("token") : "",
             req.get_header_value("Authorization"),
             content_type,
             raw,
             {}};
      for (const auto& p : parts) s.files[p.name] = p.content;
      std::string body = R"({"accepted":true,"duplicate":false})";
      int status = 200;
      {
        std::lock_guard lock(mu_);
        status = status_;
        if (req.path == "/anpr/vzenith" && raw.starts_with("{")) {
          boost::system::error_code ec;
          auto v = json::parse(raw, ec);
          const auto* plate = ec ? nullptr : v.as_object().if_contains("AlarmInfoPlate");
          std::uint64_t id = 0;
          if (plate != nullptr) {
            id = plate->at("result").at("PlateResult").at("plateid").to_number<std::uint64_t>();
          }
          body = json::serialize(json::object{
              {"Response_AlarmInfoPlate",
               json::object{{"info", open_ ? "ok" : "no"}, {"plateid", id + plateid_skew_}}}});
        }
        seen_.push_back(std::move(s));
      }
      res.status = status;
      res.set_content(body, "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) {
      std::this_thread::sleep_for(1ms);
    }
  }
  ~FakeGateway() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<Seen> seen(std::string_view path = {}) {
    std::lock_guard lock(mu_);
    std::vector<Seen> out;
    for (const auto& s : seen_) {
      if (path.empty() || s.path == path) out.push_back(s);
    }
    return out;
  }
  void answer(int status, bool open = true, std::uint64_t plateid_skew = 0) {
    std::lock_guard lock(mu_);
    status_ = status;
    open_ = open;
    plateid_skew_ = plateid_skew;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<Seen> seen_;
  int status_ = 200;
  bool open_ = true;
  std::uint64_t plateid_skew_ = 0;
};

std::string token_for(std::string_view vendor) { return "tok-" + std::string(vendor) + "-7"; }

std::string serial_for(std::string_view vendor) {
  // Hikvision cameras are identified by their MAC address.
  return vendor == "hikvision" ? "44:19:b6:00:00:07" : "SIM-" + std::string(vendor) + "-7";
}

// A parking lane: a push camera of `vendor` (no bus) and a Modbus loop and barrier.
config::Config push_lane_config(std::string_view vendor) {
  config::Config cfg;
  cfg.buses.push_back(tcp_bus("lan"));
  config::DeviceSection cam;
  cam.id = "push-cam";
  cam.kind = config::DeviceKind::kCamera;
  cam.protocol = std::string(vendor);
  cam.serial = serial_for(vendor);
  cam.token_sha256 = crypto::sha256_hex(token_for(vendor));
  cam.reply_wait_ms = 500;
  cfg.devices.push_back(cam);
  cfg.devices.push_back(device("push-loop", config::DeviceKind::kLoop, "lan", 2));
  cfg.devices.push_back(device("push-bar", config::DeviceKind::kBarrier, "lan", 2));
  config::LaneSection lane;
  lane.id = "gate";
  lane.camera = "push-cam";
  lane.loop = "push-loop";
  lane.barrier = "push-bar";
  cfg.lanes.push_back(lane);
  return cfg;
}

sim::DevicesSimOptions options_for(std::string_view vendor, int gateway_port) {
  sim::DevicesSimOptions so;
  so.control_port = -1;
  so.gateway_host = "127.0.0.1";
  so.gateway_port = gateway_port;
  so.camera_tokens["push-cam"] = token_for(vendor);
  so.heartbeat_interval_ms = 0;  // the heartbeat test turns them on
  so.push_timeout_ms = 3000;
  return so;
}

// The spec's facts of one vendor's plate push for kPlate, serial and `event`.
void expect_vendor_wire(std::string_view vendor, const Seen& s, std::uint64_t event) {
  SCOPED_TRACE(std::string(vendor));
  const std::string serial = serial_for(vendor);
  if (vendor == "vzenith") {
    EXPECT_EQ(s.path, "/anpr/vzenith");
    EXPECT_EQ(s.token, token_for(vendor));  // in its configured URL
    auto v = json::parse(s.body).as_object();
    const auto& a = v.at("AlarmInfoPlate").as_object();
    EXPECT_EQ(a.at("serialno").as_string(), serial);
    const auto& r = a.at("result").as_object().at("PlateResult").as_object();
    EXPECT_EQ(r.at("license").as_string(), kPlate);
    EXPECT_EQ(r.at("colorType").to_number<int>(), 1);  // spec: 1 blue
    EXPECT_EQ(r.at("plateid").to_number<std::uint64_t>(), event);
    EXPECT_EQ(r.at("isoffline").to_number<int>(), 0);
    const auto confidence = r.at("confidence").to_number<int>();
    EXPECT_GE(confidence, 1);
    EXPECT_LE(confidence, 100);
    EXPECT_TRUE(looks_like_jpeg(unbase64(r.at("imageFile").as_string())));
    EXPECT_TRUE(looks_like_jpeg(unbase64(r.at("imageFragmentFile").as_string())));
  } else if (vendor == "hikvision") {
    EXPECT_EQ(s.path, "/anpr/hikvision");
    EXPECT_TRUE(s.token.empty());
    EXPECT_TRUE(s.authorization.starts_with("Basic "));
    EXPECT_EQ(unbase64(s.authorization.substr(6)), serial + ":" + token_for(vendor));
    EXPECT_TRUE(s.content_type.starts_with("multipart/form-data"));
    auto xml = s.files.find("anpr.xml");
    ASSERT_NE(xml, s.files.end());
    const std::string& x = xml->second;
    EXPECT_NE(x.find("<EventNotificationAlert"), std::string::npos);
    EXPECT_NE(x.find("<eventType>ANPR</eventType>"), std::string::npos);
    EXPECT_NE(x.find("<licensePlate>" + std::string(kPlate) + "</licensePlate>"),
              std::string::npos);
    EXPECT_NE(x.find("<macAddress>" + serial + "</macAddress>"), std::string::npos);
    int jpegs = 0;
    for (const auto& [name, part] : s.files) {
      if (name != "anpr.xml") {
        EXPECT_TRUE(looks_like_jpeg(part)) << name;
        ++jpegs;
      }
    }
    EXPECT_GE(jpegs, 1);
  } else if (vendor == "dahua") {
    EXPECT_EQ(s.path, "/NotificationInfo/TollgateInfo");
    EXPECT_EQ(unbase64(s.authorization.substr(6)), serial + ":" + token_for(vendor));
    auto v = json::parse(s.body).as_object();
    const auto& p = v.at("Picture").as_object();
    EXPECT_EQ(p.at("Plate").at("PlateNumber").as_string(), kPlate);
    EXPECT_EQ(p.at("SnapInfo").at("DeviceID").as_string(), serial);
    EXPECT_TRUE(looks_like_jpeg(unbase64(p.at("NormalPic").at("Content").as_string())));
  } else {
    EXPECT_EQ(s.path, "/anpr/events");
    EXPECT_EQ(s.token, token_for(vendor));
    EXPECT_TRUE(s.content_type.starts_with("application/json"));
    auto v = json::parse(s.body).as_object();
    EXPECT_EQ(v.at("camera_id").as_string(), serial);
    EXPECT_EQ(v.at("event_id").as_string(), std::to_string(event));
    EXPECT_EQ(v.at("plate_raw").as_string(), kPlate);
    EXPECT_EQ(v.at("plate_color").as_string(), "BLUE");
    EXPECT_FALSE(v.at("offline").as_bool());
    EXPECT_FALSE(v.at("images").as_array().empty());
  }
  // The gateway's parser takes it too, with the plate, the camera and the images.
  auto vendor_id = parse_vendor(vendor);
  ASSERT_TRUE(vendor_id);
  auto push = parse_push(*vendor_id, s.path, s.content_type, s.body);
  ASSERT_TRUE(push) << push.error().to_string();
  EXPECT_EQ(push->kind, CameraPush::Kind::kPlate);
  EXPECT_EQ(push->plate_raw, kPlate);
  EXPECT_FALSE(push->images.empty());
  if (vendor == "vzenith" || vendor == "generic") {
    EXPECT_EQ(push->event_id, std::to_string(event));
  }
}

class PushCameraSim : public ::testing::TestWithParam<std::string> {};

TEST_P(PushCameraSim, VehiclePushesInTheVendorFormatAndSetsTheLoop) {
  const std::string vendor = GetParam();
  FakeGateway gw;
  config::Config cfg = push_lane_config(vendor);
  auto sim = sim::DevicesSim::start(cfg, options_for(vendor, gw.port()));
  ASSERT_TRUE(sim) << sim.error().to_string();
  cfg.buses[0].port = *(*sim)->tcp_port("lan");

  // The real lane drivers poll the loop over Modbus and leave the push camera alone.
  RecordingSink sink;
  auto drivers = LaneDrivers::create(cfg, sink, SystemClock::instance(), DriverOptions{});
  ASSERT_TRUE(drivers) << drivers.error().to_string();
  ASSERT_TRUE((*drivers)->start());
  ASSERT_TRUE(sink.wait_health("push-loop", Health::kUp));

  sim::VehicleArrival va;
  va.lane = "gate";
  va.plate = std::string(kPlate);
  va.colour = 0;  // register code 0: blue
  auto seq = (*sim)->vehicle_arrives(va);
  ASSERT_TRUE(seq) << seq.error().to_string();
  EXPECT_EQ(*seq, 1);
  EXPECT_EQ((*sim)->record_read("push-cam").value_or(0), 1);  // delivered on the 2xx

  auto state = (*sim)->push_camera("push-cam");
  ASSERT_TRUE(state);
  EXPECT_EQ(state->protocol, vendor);
  EXPECT_EQ(state->pushes, 1);
  EXPECT_EQ(state->push_failures, 0);
  if (vendor == "vzenith") {
    EXPECT_EQ(state->relay_pulses, 1);
    EXPECT_EQ(state->last_relay, std::optional<bool>(true));
  } else {
    EXPECT_FALSE(state->last_relay.has_value());
  }
  const auto pushes = gw.seen();
  ASSERT_EQ(pushes.size(), 1u);
  expect_vendor_wire(vendor, pushes[0], state->last_event);

  EXPECT_TRUE(sink.wait_for<VehiclePresent>(
      [](const VehiclePresent& p) { return p.lane == "gate" && p.present; }));

  // The next vehicle is a fresh event of the same camera.
  va.plate = "粤B54321";
  auto seq2 = (*sim)->vehicle_arrives(va);
  ASSERT_TRUE(seq2) << seq2.error().to_string();
  EXPECT_EQ(*seq2, 2);
  auto state2 = (*sim)->push_camera("push-cam");
  EXPECT_GT(state2->last_event, state->last_event);
  EXPECT_EQ(gw.seen().size(), 2u);
  (*drivers)->stop();
}

INSTANTIATE_TEST_SUITE_P(Vendors, PushCameraSim,
                         ::testing::Values("vzenith", "hikvision", "dahua", "generic"));

TEST(PushCameraSimFailures, ANonSuccessAnswerIsAnErrorNamingTheCamera) {
  FakeGateway gw;
  gw.answer(401);
  auto sim = sim::DevicesSim::start(push_lane_config("generic"), options_for("generic", gw.port()));
  ASSERT_TRUE(sim) << sim.error().to_string();
  sim::VehicleArrival va;
  va.camera = "push-cam";
  va.plate = std::string(kPlate);
  auto r = (*sim)->vehicle_arrives(va);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRejected);
  EXPECT_NE(r.error().message.find("push-cam"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("401"), std::string::npos) << r.error().message;
  EXPECT_EQ((*sim)->record_read("push-cam").value_or(99), 0);  // not delivered
  auto st = (*sim)->push_camera("push-cam");
  EXPECT_EQ(st->pushes, 0);
  EXPECT_EQ(st->push_failures, 1);
  EXPECT_NE(st->last_error.find("401"), std::string::npos);
  // GET /state carries it.
  EXPECT_NE((*sim)->state_json().find("\"push_failures\":1"), std::string::npos);

  // The gateway takes it again: delivered.
  gw.answer(200);
  auto ok = (*sim)->vehicle_arrives(va);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ((*sim)->record_read("push-cam").value_or(0), *ok);
  EXPECT_TRUE((*sim)->push_camera("push-cam")->last_error.empty());
}

TEST(PushCameraSimFailures, NoGatewayListeningIsAnErrorNamingTheCamera) {
  int port = 0;
  {
    FakeGateway gone;  // a port that was free a moment ago and is closed now
    port = gone.port();
  }
  auto sim = sim::DevicesSim::start(push_lane_config("vzenith"), options_for("vzenith", port));
  ASSERT_TRUE(sim) << sim.error().to_string();
  sim::VehicleArrival va;
  va.lane = "gate";
  va.plate = std::string(kPlate);
  auto r = (*sim)->vehicle_arrives(va);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  EXPECT_NE(r.error().message.find("push-cam"), std::string::npos) << r.error().message;
  EXPECT_EQ((*sim)->push_camera("push-cam")->push_failures, 1);
}

TEST(PushCameraSimFailures, WithoutATokenNothingIsSent) {
  FakeGateway gw;
  auto so = options_for("dahua", gw.port());
  so.camera_tokens.clear();
  auto sim = sim::DevicesSim::start(push_lane_config("dahua"), so);
  ASSERT_TRUE(sim) << sim.error().to_string();  // a push camera without a token starts
  sim::VehicleArrival va;
  va.lane = "gate";
  va.plate = std::string(kPlate);
  auto r = (*sim)->vehicle_arrives(va);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  EXPECT_NE(r.error().message.find("push-cam"), std::string::npos);
  EXPECT_TRUE(gw.seen().empty());
  ASSERT_TRUE((*sim)->set_camera_token("push-cam", token_for("dahua")));
  EXPECT_TRUE((*sim)->vehicle_arrives(va));
  EXPECT_EQ(gw.seen().size(), 1u);
  EXPECT_FALSE((*sim)->set_camera_token("push-loop", "x"));  // not a push camera
}

TEST(PushCameraSimFailures, SilentCameraPushesNothing) {
  FakeGateway gw;
  auto sim = sim::DevicesSim::start(push_lane_config("generic"), options_for("generic", gw.port()));
  ASSERT_TRUE(sim);
  ASSERT_TRUE((*sim)->set_silent("push-cam", true));
  sim::VehicleArrival va;
  va.lane = "gate";
  va.plate = std::string(kPlate);
  auto r = (*sim)->vehicle_arrives(va);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  EXPECT_TRUE(gw.seen().empty());
}

TEST(PushCameraSimFailures, ATimeNoCameraCouldStateIsRefused) {
  FakeGateway gw;
  auto sim = sim::DevicesSim::start(push_lane_config("generic"), options_for("generic", gw.port()));
  ASSERT_TRUE(sim);
  sim::VehicleArrival va;
  va.lane = "gate";
  va.plate = std::string(kPlate);
  for (std::int64_t t : {std::int64_t{-1}, std::numeric_limits<std::int64_t>::max()}) {
    va.time = t;
    auto r = (*sim)->vehicle_arrives(va);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kOutOfRange);
  }
  EXPECT_TRUE(gw.seen().empty());
  va.time = 1'690'371'660;  // a past capture is fine (a record sent late)
  EXPECT_TRUE((*sim)->vehicle_arrives(va));
  EXPECT_EQ(gw.seen().size(), 1u);
}

TEST(PushCameraSimVzenith, TheReplyDecidesTheRelay) {
  FakeGateway gw;
  gw.answer(200, /*open=*/false);
  auto sim = sim::DevicesSim::start(push_lane_config("vzenith"), options_for("vzenith", gw.port()));
  ASSERT_TRUE(sim);
  sim::VehicleArrival va;
  va.lane = "gate";
  va.plate = std::string(kPlate);
  ASSERT_TRUE((*sim)->vehicle_arrives(va));
  auto st = (*sim)->push_camera("push-cam");
  EXPECT_EQ(st->relay_pulses, 0);
  EXPECT_EQ(st->relay_kept_shut, 1);
  EXPECT_EQ(st->last_relay, std::optional<bool>(false));

  // A reply echoing another record's plateid breaks the spec: an error, counted, though
  // the record was delivered.
  gw.answer(200, true, /*plateid_skew=*/5);
  auto r = (*sim)->vehicle_arrives(va);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kProtocol);
  EXPECT_NE(r.error().message.find("push-cam"), std::string::npos);
  st = (*sim)->push_camera("push-cam");
  EXPECT_EQ(st->bad_replies, 1);
  EXPECT_EQ(st->pushes, 2);
  EXPECT_EQ((*sim)->record_read("push-cam").value_or(0), 2);
}

TEST(PushCameraSimHeartbeats, VzenithAndDahuaBeatAtStartAndWhenTheyReturnFromSilence) {
  FakeGateway gw;
  config::Config cfg = push_lane_config("vzenith");
  config::DeviceSection dahua = cfg.devices[0];
  dahua.id = "push-dahua";
  dahua.protocol = "dahua";
  dahua.serial = serial_for("dahua");
  dahua.token_sha256 = crypto::sha256_hex(token_for("dahua"));
  cfg.devices.push_back(dahua);
  config::DeviceSection generic = cfg.devices[0];
  generic.id = "push-generic";
  generic.protocol = "generic";
  generic.serial = serial_for("generic");
  generic.token_sha256 = crypto::sha256_hex(token_for("generic"));
  cfg.devices.push_back(generic);
  auto so = options_for("vzenith", gw.port());
  so.camera_tokens["push-dahua"] = token_for("dahua");
  so.camera_tokens["push-generic"] = token_for("generic");
  // Long (with the default heartbeat_timeout_s of 90 a beat every 30 s): every heartbeat
  // seen below is one sent at start or on a return, never a periodic one.
  so.heartbeat_interval_ms = 60'000;
  auto sim = sim::DevicesSim::start(cfg, so);
  ASSERT_TRUE(sim) << sim.error().to_string();

  auto vzenith_beats = [&] {
    std::vector<Seen> out;
    for (const auto& s : gw.seen("/anpr/vzenith")) {
      if (s.content_type.starts_with("multipart/form-data")) out.push_back(s);
    }
    return out;
  };
  ASSERT_TRUE(eventually([&] { return gw.seen("/NotificationInfo/KeepAlive").size() == 1; }));
  ASSERT_TRUE(eventually([&] { return vzenith_beats().size() == 1; }));
  // Dahua KeepAlive: {"DeviceID", "Active"} (spec), HTTP Basic with its serial and token.
  const Seen ka = gw.seen("/NotificationInfo/KeepAlive").front();
  auto v = json::parse(ka.body).as_object();
  EXPECT_EQ(v.at("DeviceID").as_string(), serial_for("dahua"));
  EXPECT_TRUE(v.contains("Active"));
  EXPECT_EQ(unbase64(ka.authorization.substr(6)),
            serial_for("dahua") + ":" + token_for("dahua"));
  // Vzenith heartbeat: a multipart form with the spec's fields, the token in the URL.
  const Seen vz = vzenith_beats().front();
  EXPECT_EQ(vz.token, token_for("vzenith"));
  for (const char* field :
       {"device_name", "ipaddr", "port", "user_name", "pass_wd", "serialno", "channel_num"}) {
    EXPECT_TRUE(vz.files.contains(field)) << field;
  }
  EXPECT_EQ(vz.files.at("serialno"), serial_for("vzenith"));
  ASSERT_TRUE(eventually([&] { return (*sim)->push_camera("push-dahua")->heartbeats == 1; }));
  EXPECT_EQ((*sim)->push_camera("push-dahua")->heartbeat_failures, 0);
  // The spec gives generic cameras no heartbeat.
  EXPECT_EQ((*sim)->push_camera("push-generic")->heartbeats, 0);
  EXPECT_TRUE(gw.seen("/anpr/events").empty());

  // Silent, then back: one heartbeat at once, long before the interval.
  ASSERT_TRUE((*sim)->set_silent("push-dahua", true));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(gw.seen("/NotificationInfo/KeepAlive").size(), 1u);
  ASSERT_TRUE((*sim)->set_silent("push-dahua", false));
  EXPECT_TRUE(eventually([&] { return gw.seen("/NotificationInfo/KeepAlive").size() == 2; }, 2s));
  EXPECT_EQ(vzenith_beats().size(), 1u);
}

TEST(PushCameraSimHeartbeats, ACameraBeatsWellWithinTheGatewaysTimeout) {
  FakeGateway gw;
  config::Config cfg = push_lane_config("dahua");
  cfg.devices[0].heartbeat_timeout_s = 10;  // the minimum: a beat every 3.3 s at most
  auto so = options_for("dahua", gw.port());
  so.heartbeat_interval_ms = 60'000;
  auto sim = sim::DevicesSim::start(cfg, so);
  ASSERT_TRUE(sim) << sim.error().to_string();
  EXPECT_TRUE(eventually([&] { return gw.seen("/NotificationInfo/KeepAlive").size() >= 2; }, 6s));
}

TEST(PushCameraSimHeartbeats, AGatewayThatIsNotThereCountsFailedHeartbeats) {
  int port = 0;
  {
    FakeGateway gone;
    port = gone.port();
  }
  auto so = options_for("dahua", port);
  so.heartbeat_interval_ms = 50;
  auto sim = sim::DevicesSim::start(push_lane_config("dahua"), so);
  ASSERT_TRUE(sim) << sim.error().to_string();
  ASSERT_TRUE(eventually([&] { return (*sim)->push_camera("push-cam")->heartbeat_failures >= 2; }));
  const auto st = (*sim)->push_camera("push-cam");
  EXPECT_EQ(st->heartbeats, 0);
  EXPECT_NE(st->last_error.find("push-cam"), std::string::npos) << st->last_error;
}

TEST(PushCameraSimHttp, ControlApiReportsAFailedPushAndTakesATokenAndShowsState) {
  FakeGateway gw;
  auto so = options_for("generic", gw.port());
  so.control_port = 0;
  so.camera_tokens.clear();
  auto sim = sim::DevicesSim::start(push_lane_config("generic"), so);
  ASSERT_TRUE(sim) << sim.error().to_string();
  httplib::Client http("127.0.0.1", (*sim)->control_port());
  http.set_read_timeout(5, 0);
  const std::string vehicle = R"({"lane":"gate","plate":"粤B12345","colour":0})";
  // No token yet: refused before sending, the camera named.
  auto res = http.Post("/vehicle", vehicle, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("push-cam"), std::string::npos) << res->body;
  res = http.Post("/camera/push-cam/token", R"({"token":"tok-generic-7"})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  res = http.Post("/camera/push-loop/token", R"({"token":"x"})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  // The gateway refuses: 502 naming the camera.
  gw.answer(503);
  res = http.Post("/vehicle", vehicle, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
  EXPECT_NE(res->body.find("push-cam"), std::string::npos) << res->body;
  gw.answer(200);
  res = http.Post("/vehicle", vehicle, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(gw.seen().size(), 2u);
  EXPECT_EQ(gw.seen().back().token, "tok-generic-7");
  res = http.Get("/state");
  ASSERT_TRUE(res);
  auto st = json::parse(res->body).as_object();
  const auto& cam = st.at("devices").at("push-cam").as_object();
  EXPECT_EQ(cam.at("protocol").as_string(), "generic");
  EXPECT_EQ(cam.at("pushes").to_number<int>(), 1);
  EXPECT_EQ(cam.at("push_failures").to_number<int>(), 2);
  EXPECT_EQ(cam.at("record_read").to_number<int>(), cam.at("sequence").to_number<int>());
}

TEST(PushCameraSimConfig, GatewayAddressDefaultsToTheCamerasListenerElseTheApi) {
  // [cameras] listener set: pushes go there without DevicesSimOptions::gateway_*.
  FakeGateway gw;
  config::Config cfg = push_lane_config("generic");
  cfg.cameras.listen_address = "127.0.0.1";
  cfg.cameras.listen_port = gw.port();
  cfg.api.listen_port = 1;  // not the camera receiver
  auto so = options_for("generic", 0);
  so.gateway_host.clear();
  auto sim = sim::DevicesSim::start(cfg, so);
  ASSERT_TRUE(sim);
  sim::VehicleArrival va;
  va.lane = "gate";
  va.plate = std::string(kPlate);
  ASSERT_TRUE((*sim)->vehicle_arrives(va));
  EXPECT_EQ(gw.seen().size(), 1u);
  (*sim)->stop();

  // No [cameras] listener: the API's.
  FakeGateway api;
  cfg.cameras.listen_address.clear();
  cfg.cameras.listen_port = 0;
  cfg.api.listen_address = "127.0.0.1";
  cfg.api.listen_port = api.port();
  auto sim2 = sim::DevicesSim::start(cfg, so);
  ASSERT_TRUE(sim2);
  ASSERT_TRUE((*sim2)->vehicle_arrives(va));
  EXPECT_EQ(api.seen().size(), 1u);
}

}  // namespace
}  // namespace lanegate::lane

namespace lanegate::sim {
namespace {

TEST(DevicesSimCli, PushCameraArgumentsAreChecked) {
  ::testing::internal::CaptureStderr();
  const std::vector<std::vector<std::string>> bad = {
      {"--config", "x.toml", "--gateway", "127.0.0.1"},
      {"--config", "x.toml", "--gateway", ":8080"},
      {"--config", "x.toml", "--gateway", "127.0.0.1:0"},
      {"--config", "x.toml", "--gateway", "127.0.0.1:80x"},
      {"--config", "x.toml", "--camera-token", "cam"},
      {"--config", "x.toml", "--camera-token", "=tok"},
      {"--config", "x.toml", "--camera-token", "cam="},
      {"--config", "x.toml", "--heartbeat-s", "-1"},
      {"--config", "x.toml", "--camera-token"},
  };
  for (const auto& args : bad) {
    EXPECT_EQ(run_devices_sim(args), 2) << args[2] << " " << (args.size() > 3 ? args[3] : "");
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("--gateway: want HOST:PORT"), std::string::npos) << err;
  EXPECT_NE(err.find("--camera-token: want ID=TOKEN"), std::string::npos) << err;
  EXPECT_NE(err.find("--heartbeat-s: want 0..3600"), std::string::npos) << err;
}

}  // namespace
}  // namespace lanegate::sim
