// Plate camera pushes (sim/cameras.h) read back independently of the encoder: Boost.JSON
// for the JSON vendors, plain text search for the Hikvision XML, httplib's server-side
// multipart parser for the form posts, and the Base64 reader of tests/support/wire_text.h. Expected values
// come from the spec (lane-devices.md "ANPR cameras over HTTP") and the lead's decisions.
#include "sim/cameras.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include "support/wire_text.h"

namespace lanegate::sim {
namespace {

using ::lanegate::wire_test::looks_like_jpeg;
using ::lanegate::wire_test::unbase64;

namespace json = boost::json;

// 2023-07-26 19:41:00.123 at UTC+08:00.
constexpr std::int64_t kCaptureMs = 1'690'371'660'123;

CameraShot shot(std::string vendor) {
  CameraShot s;
  s.vendor = std::move(vendor);
  s.serial = "CAM-1";
  s.ip = "192.168.1.70";
  s.event_no = 7;
  s.plate = "京A12345";
  s.capture_unix_ms = kCaptureMs;
  return s;
}

json::object parse_object(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  EXPECT_FALSE(ec) << body.substr(0, 200);
  EXPECT_TRUE(v.is_object());
  return v.is_object() ? v.as_object() : json::object{};
}

const json::object& obj(const json::object& o, std::string_view key) {
  static const json::object kEmpty;
  const json::value* v = o.if_contains(key);
  EXPECT_TRUE(v != nullptr && v->is_object()) << key;
  return v != nullptr && v->is_object() ? v->as_object() : kEmpty;
}

std::int64_t integer(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  EXPECT_TRUE(v != nullptr && (v->is_int64() || v->is_uint64())) << key << " is no integer";
  if (v == nullptr) {
    return -1;
  }
  return v->is_int64()    ? v->as_int64()
         : v->is_uint64() ? static_cast<std::int64_t>(v->as_uint64())
                          : -1;
}

std::string text(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  EXPECT_TRUE(v != nullptr && v->is_string()) << key << " is no string";
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

// What a receiver saw of one request.
struct Seen {
  std::string path;
  std::string query_token;
  bool has_token = false;
  std::string authorization;
  std::string content_type;
  std::string body;
  std::multimap<std::string, httplib::MultipartFormData> files;
};

// An httplib server on a free loopback port that records every POST and answers
// `reply_status` / `reply_body`.
class Receiver {
 public:
  Receiver() {
    server_.Post(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      Seen s{req.path,
             req.get_param_value("token"),
             req.has_param("token"),
             req.get_header_value("Authorization"),
             req.get_header_value("Content-Type"),
             req.body,
             {req.files.begin(), req.files.end()}};
      seen_.push_back(std::move(s));
      res.status = reply_status;
      res.set_content(reply_body, "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }

  int port() const { return port_; }
  std::vector<Seen> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

  int reply_status = 200;
  std::string reply_body = "{}";

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<Seen> seen_;
};

Seen post_once(const HttpPush& push) {
  Receiver r;
  auto a = send_push("127.0.0.1", r.port(), "", false, "CAM-1", push, std::chrono::seconds(5));
  EXPECT_TRUE(a) << a.error().to_string();
  auto seen = r.seen();
  EXPECT_EQ(seen.size(), 1u);
  return seen.empty() ? Seen{} : seen.front();
}

// --- Vzenith ---------------------------------------------------------------------------

TEST(VzenithPush, PlateResultHasTheSpecFieldsAndTypes) {
  auto push = encode_plate(shot("vzenith"));
  ASSERT_TRUE(push) << push.error().to_string();
  EXPECT_EQ(push->path, "/anpr/vzenith");
  EXPECT_EQ(push->content_type, "application/json");
  const json::object root = parse_object(push->body);
  const json::object& a = obj(root, "AlarmInfoPlate");
  EXPECT_EQ(text(a, "serialno"), "CAM-1");
  EXPECT_FALSE(text(a, "deviceName").empty());
  EXPECT_EQ(text(a, "ipaddr"), "192.168.1.70");
  EXPECT_EQ(integer(a, "channel"), 0);
  const json::object& r = obj(obj(a, "result"), "PlateResult");
  EXPECT_EQ(text(r, "license"), "京A12345");
  EXPECT_EQ(integer(r, "colorType"), 1);  // blue
  EXPECT_EQ(integer(r, "type"), 1);       // blue car
  EXPECT_EQ(integer(r, "confidence"), 95);
  EXPECT_EQ(integer(r, "plateid"), 7);
  EXPECT_EQ(integer(r, "isoffline"), 0);
  const auto trigger = integer(r, "triggerType");
  EXPECT_TRUE(trigger == 1 || trigger == 2 || trigger == 4 || trigger == 8) << trigger;
  const auto direction = integer(r, "direction");
  EXPECT_TRUE(direction >= 0 && direction <= 4) << direction;
  const json::object& tv = obj(obj(r, "timeStamp"), "Timeval");
  EXPECT_EQ(integer(tv, "sec"), 1'690'371'660);
  EXPECT_EQ(integer(tv, "usec"), 123'000);
  EXPECT_EQ(integer(tv, "decyear"), 2023);
  EXPECT_EQ(integer(tv, "decmon"), 7);
  EXPECT_EQ(integer(tv, "decday"), 26);
  EXPECT_EQ(integer(tv, "dechour"), 19);
  EXPECT_EQ(integer(tv, "decmin"), 41);
  EXPECT_EQ(integer(tv, "decsec"), 0);
  const std::string full = unbase64(text(r, "imageFile"));
  const std::string crop = unbase64(text(r, "imageFragmentFile"));
  EXPECT_TRUE(looks_like_jpeg(full));
  EXPECT_TRUE(looks_like_jpeg(crop));
  EXPECT_GT(full.size(), crop.size());
  EXPECT_EQ(integer(r, "imageFileLen"), static_cast<std::int64_t>(full.size()));
  EXPECT_EQ(integer(r, "imageFragmentFileLen"), static_cast<std::int64_t>(crop.size()));
}

TEST(VzenithPush, OfflineNoImagesAndNoPlate) {
  CameraShot s = shot("vzenith");
  s.offline = true;
  s.images = false;
  s.plate.clear();
  auto push = encode_plate(s);
  ASSERT_TRUE(push) << push.error().to_string();
  const json::object root = parse_object(push->body);
  const json::object& r = obj(obj(obj(root, "AlarmInfoPlate"), "result"), "PlateResult");
  EXPECT_EQ(integer(r, "isoffline"), 1);
  EXPECT_EQ(text(r, "license"), "_无_");
  EXPECT_EQ(integer(r, "type"), 31);
  EXPECT_FALSE(r.contains("imageFile"));
  EXPECT_FALSE(r.contains("imageFragmentFile"));
  EXPECT_FALSE(text(r, "imagePath").empty());
}

TEST(VzenithPush, ColourTypeAndPlateTypeFollowTheTables) {
  struct Case {
    std::string plate;
    std::string colour;
    int color_type;
    int type;
  };
  const std::vector<Case> cases = {
      {"京A12345", "BLUE", 1, 1},        {"京A12345", "YELLOW", 2, 3},
      {"京A12345", "BLACK", 4, 2},       {"京A1234警", "WHITE", 3, 5},
      {"京A1234学", "YELLOW", 2, 13},    {"粤Z1234港", "BLACK", 4, 11},
      {"粤Z1234澳", "BLACK", 4, 14},     {"京A1234领", "BLACK", 4, 22},
      {"使123456", "BLACK", 4, 10},      {"京AD12345", "GREEN", 5, 19},
      {"京AD12345", "LIMEGREEN", 6, 20}, {"京A12345", "UNKNOWN", 0, 0},
  };
  for (const auto& c : cases) {
    CameraShot s = shot("vzenith");
    s.plate = c.plate;
    s.colour = c.colour;
    auto push = encode_plate(s);
    ASSERT_TRUE(push) << c.plate;
    const json::object root = parse_object(push->body);
    const json::object& r = obj(obj(obj(root, "AlarmInfoPlate"), "result"), "PlateResult");
    EXPECT_EQ(integer(r, "colorType"), c.color_type) << c.plate << " " << c.colour;
    EXPECT_EQ(integer(r, "type"), c.type) << c.plate << " " << c.colour;
  }
}

TEST(VzenithPush, HeartbeatIsAMultipartFormWithTheSpecFields) {
  auto push = encode_heartbeat("vzenith", "CAM-1", "192.168.1.70", "installer", "s3cret");
  ASSERT_TRUE(push) << push.error().to_string();
  EXPECT_EQ(push->path, "/anpr/vzenith");
  EXPECT_TRUE(push->content_type.starts_with("multipart/form-data; boundary="));
  const Seen s = post_once(*push);
  for (const char* field :
       {"device_name", "ipaddr", "port", "user_name", "pass_wd", "serialno", "channel_num"}) {
    EXPECT_EQ(s.files.count(field), 1u) << field;
  }
  auto value = [&](const char* f) {
    auto it = s.files.find(f);
    return it == s.files.end() ? std::string() : it->second.content;
  };
  EXPECT_EQ(value("serialno"), "CAM-1");
  EXPECT_EQ(value("ipaddr"), "192.168.1.70");
  EXPECT_EQ(value("user_name"), "installer");
  EXPECT_EQ(value("pass_wd"), "s3cret");
  EXPECT_FALSE(value("port").empty());
}

// --- Hikvision -------------------------------------------------------------------------

TEST(HikvisionPush, MultipartCarriesAnprXmlAndTwoJpegs) {
  auto push = encode_plate(shot("hikvision"));
  ASSERT_TRUE(push) << push.error().to_string();
  EXPECT_EQ(push->path, "/anpr/hikvision");
  EXPECT_TRUE(push->content_type.starts_with("multipart/form-data; boundary="));
  const Seen s = post_once(*push);
  ASSERT_EQ(s.files.count("anpr.xml"), 1u);
  const auto& xml_part = s.files.find("anpr.xml")->second;
  EXPECT_EQ(xml_part.filename, "anpr.xml");
  EXPECT_TRUE(xml_part.content_type.ends_with("xml")) << xml_part.content_type;
  for (const char* name : {"licensePlatePicture.jpg", "detectionPicture.jpg"}) {
    ASSERT_EQ(s.files.count(name), 1u) << name;
    const auto& part = s.files.find(name)->second;
    EXPECT_EQ(part.content_type, "image/jpeg") << name;
    EXPECT_EQ(part.filename, name);
    EXPECT_TRUE(looks_like_jpeg(part.content)) << name;
  }

  const std::string& x = xml_part.content;
  EXPECT_TRUE(x.starts_with("<?xml")) << x;
  for (const char* element : {"<EventNotificationAlert",
                              "<ipAddress>192.168.1.70</ipAddress>",
                              "<channelID>1</channelID>",
                              "<dateTime>2023-07-26T19:41:00+08:00</dateTime>",
                              "<eventType>ANPR</eventType>",
                              "<eventState>active</eventState>",
                              "<ANPR>",
                              "<licensePlate>京A12345</licensePlate>",
                              "<confidenceLevel>95</confidenceLevel>",
                              "<line>",
                              "<direction>forward</direction>",
                              "<plateType>",
                              "<plateColor>blue</plateColor>",
                              "<vehicleType>",
                              "<country>",
                              "<vehicleInfo>",
                              "<color>",
                              "</vehicleInfo>",
                              "<vehicleListName>",
                              "</ANPR>",
                              "</EventNotificationAlert>"}) {
    EXPECT_NE(x.find(element), std::string::npos) << element;
  }
  std::smatch m;
  ASSERT_TRUE(std::regex_search(x, m, std::regex("<macAddress>([^<]*)</macAddress>")));
  EXPECT_TRUE(std::regex_match(m[1].str(), std::regex("([0-9a-f]{2}:){5}[0-9a-f]{2}"))) << m[1];
  EXPECT_EQ(m[1].str(), camera_mac("CAM-1"));
}

TEST(HikvisionPush, ASerialThatIsAMacIsTheMacAddress) {
  EXPECT_EQ(camera_mac("44:19:B6:0A:0b:0C"), "44:19:b6:0a:0b:0c");
  EXPECT_EQ(camera_mac("44-19-B6-0A-0B-0C"), "44:19:b6:0a:0b:0c");
  EXPECT_EQ(camera_mac("CAM-1"), camera_mac("CAM-1"));
  EXPECT_NE(camera_mac("CAM-1"), camera_mac("CAM-2"));
  CameraShot s = shot("hikvision");
  s.serial = "44:19:B6:0A:0B:0C";
  auto push = encode_plate(s, true);
  ASSERT_TRUE(push);
  EXPECT_NE(push->body.find("<macAddress>44:19:b6:0a:0b:0c</macAddress>"), std::string::npos);
}

TEST(HikvisionPush, ColourNamesAreLowerCaseEnglish) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"BLUE", "blue"},   {"YELLOW", "yellow"}, {"BLACK", "black"},
      {"WHITE", "white"}, {"GREEN", "green"},   {"LIMEGREEN", "yellowgreen"}};
  for (const auto& [provider, hik] : cases) {
    CameraShot s = shot("hikvision");
    s.colour = provider;
    auto push = encode_plate(s, true);
    ASSERT_TRUE(push) << provider;
    EXPECT_NE(push->body.find("<plateColor>" + hik + "</plateColor>"), std::string::npos)
        << provider;
  }
}

TEST(HikvisionPush, XmlOnlyFirmwarePostsApplicationXml) {
  auto push = encode_plate(shot("hikvision"), true);
  ASSERT_TRUE(push) << push.error().to_string();
  EXPECT_EQ(push->path, "/anpr/hikvision");
  EXPECT_EQ(push->content_type, "application/xml");
  EXPECT_TRUE(push->body.starts_with("<?xml"));
  EXPECT_NE(push->body.find("<licensePlate>京A12345</licensePlate>"), std::string::npos);
  EXPECT_EQ(push->body.find("--lanegate-sim"), std::string::npos);
}

TEST(HikvisionPush, NoImagesLeavesOnlyTheXmlPart) {
  CameraShot s = shot("hikvision");
  s.images = false;
  auto push = encode_plate(s);
  ASSERT_TRUE(push);
  const Seen seen = post_once(*push);
  EXPECT_EQ(seen.files.size(), 1u);
  EXPECT_EQ(seen.files.count("anpr.xml"), 1u);
}

TEST(HikvisionPush, PlateTextIsXmlEscaped) {
  CameraShot s = shot("hikvision");
  s.plate = "A<&>B";
  auto push = encode_plate(s, true);
  ASSERT_TRUE(push);
  EXPECT_NE(push->body.find("<licensePlate>A&lt;&amp;&gt;B</licensePlate>"), std::string::npos);
}

// --- Dahua -----------------------------------------------------------------------------

TEST(DahuaPush, TollgateInfoHasTheSpecFieldsAndTypes) {
  CameraShot s = shot("dahua");
  s.colour = "LIMEGREEN";
  s.plate = "京AD12345";
  auto push = encode_plate(s);
  ASSERT_TRUE(push) << push.error().to_string();
  EXPECT_EQ(push->path, "/NotificationInfo/TollgateInfo");
  EXPECT_EQ(push->content_type, "application/json");
  const json::object root = parse_object(push->body);
  const json::object& p = obj(root, "Picture");
  const json::object& plate = obj(p, "Plate");
  EXPECT_EQ(text(plate, "PlateNumber"), "京AD12345");
  EXPECT_EQ(text(plate, "PlateColor"), "YellowGreen");
  EXPECT_EQ(integer(plate, "Confidence"), 95);
  const json::object& snap = obj(p, "SnapInfo");
  EXPECT_EQ(text(snap, "DeviceID"), "CAM-1");
  EXPECT_EQ(text(snap, "SnapTime"), "2023-07-26 19:41:00");
  EXPECT_TRUE(text(snap, "AccurateTime").starts_with("2023-07-26 19:41:00"));
  EXPECT_TRUE(snap.contains("Direction"));
  EXPECT_TRUE(p.contains("Vehicle") && p.at("Vehicle").is_object());
  EXPECT_TRUE(looks_like_jpeg(unbase64(text(obj(p, "NormalPic"), "Content"))));
  EXPECT_TRUE(looks_like_jpeg(unbase64(text(obj(p, "CutoutPic"), "Content"))));
}

TEST(DahuaPush, ColourNames) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"BLUE", "Blue"},   {"YELLOW", "Yellow"}, {"BLACK", "Black"},
      {"WHITE", "White"}, {"GREEN", "Green"},   {"LIMEGREEN", "YellowGreen"}};
  for (const auto& [provider, dahua] : cases) {
    CameraShot s = shot("dahua");
    s.colour = provider;
    s.images = false;
    auto push = encode_plate(s);
    ASSERT_TRUE(push) << provider;
    const json::object root = parse_object(push->body);
    EXPECT_EQ(text(obj(obj(root, "Picture"), "Plate"), "PlateColor"), dahua);
    EXPECT_FALSE(obj(root, "Picture").contains("NormalPic"));
  }
}

TEST(DahuaPush, KeepAlive) {
  auto push = encode_heartbeat("dahua", "CAM-1", "192.168.1.70");
  ASSERT_TRUE(push) << push.error().to_string();
  EXPECT_EQ(push->path, "/NotificationInfo/KeepAlive");
  EXPECT_EQ(push->content_type, "application/json");
  const json::object o = parse_object(push->body);
  EXPECT_EQ(text(o, "DeviceID"), "CAM-1");
  EXPECT_TRUE(o.contains("Active"));
}

// --- Generic ---------------------------------------------------------------------------

TEST(GenericPush, EventHasTheAdapterFieldsAndTypes) {
  CameraShot s = shot("generic");
  s.plate = "京a 12345";
  s.colour = "YELLOW";
  s.offline = true;
  auto push = encode_plate(s);
  ASSERT_TRUE(push) << push.error().to_string();
  EXPECT_EQ(push->path, "/anpr/events");
  EXPECT_EQ(push->content_type, "application/json");
  const json::object o = parse_object(push->body);
  EXPECT_EQ(text(o, "camera_id"), "CAM-1");
  ASSERT_TRUE(o.contains("event_id"));
  const json::value& id = o.at("event_id");
  EXPECT_TRUE(id.is_string() ? id.as_string() == "7" : id.to_number<std::int64_t>() == 7);
  EXPECT_EQ(text(o, "time"), "2023-07-26T19:41:00+08:00");
  EXPECT_EQ(text(o, "plate"), "京A12345");
  EXPECT_EQ(text(o, "plate_raw"), "京a 12345");
  EXPECT_EQ(text(o, "plate_color"), "YELLOW");
  EXPECT_EQ(integer(o, "confidence"), 95);
  const std::string dir = text(o, "direction");
  EXPECT_TRUE(dir == "in" || dir == "out" || dir == "unknown") << dir;
  ASSERT_TRUE(o.contains("offline") && o.at("offline").is_bool());
  EXPECT_TRUE(o.at("offline").as_bool());
  ASSERT_TRUE(o.contains("images") && o.at("images").is_array());
  const json::array& images = o.at("images").as_array();
  ASSERT_EQ(images.size(), 2u);
  for (const json::value& i : images) {
    ASSERT_TRUE(i.is_object());
    EXPECT_FALSE(text(i.as_object(), "kind").empty());
    EXPECT_TRUE(looks_like_jpeg(unbase64(text(i.as_object(), "base64"))));
  }
}

TEST(GenericPush, NoImagesMeansNoImagesKey) {
  CameraShot s = shot("generic");
  s.images = false;
  auto push = encode_plate(s);
  ASSERT_TRUE(push);
  EXPECT_FALSE(parse_object(push->body).contains("images"));
}

// --- Refusals --------------------------------------------------------------------------

TEST(CameraEncode, RefusesWhatTheSpecDoesNotHave) {
  EXPECT_EQ(encode_heartbeat("hikvision", "CAM-1", "1.2.3.4").error().code, Errc::kInvalidArgument);
  EXPECT_EQ(encode_heartbeat("generic", "CAM-1", "1.2.3.4").error().code, Errc::kInvalidArgument);
  EXPECT_EQ(encode_heartbeat("acme", "CAM-1", "1.2.3.4").error().field, "vendor");
  CameraShot s = shot("acme");
  EXPECT_EQ(encode_plate(s).error().field, "vendor");
  s = shot("dahua");
  s.colour = "PURPLE";
  EXPECT_EQ(encode_plate(s).error().field, "colour");
  s = shot("dahua");
  EXPECT_EQ(encode_plate(s, true).error().field, "xml_only");
  s.confidence = 101;
  EXPECT_EQ(encode_plate(s).error().code, Errc::kOutOfRange);
  s = shot("vzenith");
  s.confidence = 0;
  EXPECT_EQ(encode_plate(s).error().field, "confidence");
  s = shot("generic");
  s.serial.clear();
  EXPECT_EQ(encode_plate(s).error().field, "serial");
}

// A camera resending a record (retry, offline replay) sends the same event: every field the
// gateway may deduplicate on is the same.
TEST(CameraEncode, AResendRepeatsTheEvent) {
  for (const char* vendor : {"vzenith", "dahua", "generic"}) {
    auto a = encode_plate(shot(vendor));
    auto b = encode_plate(shot(vendor));
    ASSERT_TRUE(a && b) << vendor;
    EXPECT_EQ(a->body, b->body) << vendor;
  }
  auto a = encode_plate(shot("hikvision"), true);
  auto b = encode_plate(shot("hikvision"), true);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->body, b->body);
  CameraShot other = shot("hikvision");
  other.event_no = 8;
  auto c = encode_plate(other, true);
  ASSERT_TRUE(c);
  EXPECT_NE(a->body, c->body);  // another event has another UUID
}

TEST(FakeJpeg, DeterministicMarkersAndSize) {
  const std::string a = fake_jpeg(42, 3000);
  EXPECT_EQ(a.size(), 3000u);
  EXPECT_EQ(a.substr(0, 4), std::string("\xFF\xD8\xFF\xE0", 4));
  EXPECT_EQ(a.substr(a.size() - 2), "\xFF\xD9");
  EXPECT_EQ(a, fake_jpeg(42, 3000));
  EXPECT_NE(a, fake_jpeg(43, 3000));
  // No marker byte between the header and EOI.
  EXPECT_EQ(a.find('\xFF', 20), a.size() - 2);
  EXPECT_TRUE(looks_like_jpeg(fake_jpeg(1, 0)));
}

// --- Vzenith replies -------------------------------------------------------------------

CameraShot vz(bool offline) {
  CameraShot s = shot("vzenith");
  s.offline = offline;
  return s;
}

Result<bool> check(std::string_view body, bool offline) {
  auto r = read_vzenith_reply(body);
  if (!r) {
    return std::unexpected(r.error());
  }
  return check_vzenith_reply(*r, vz(offline));
}

TEST(VzenithReply, OnlineOkWithItsPlateidOpens) {
  auto r = check(R"({"Response_AlarmInfoPlate":{"info":"ok","plateid":7}})", false);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(*r);
}

TEST(VzenithReply, OnlineNoStaysShut) {
  auto r = check(R"({"Response_AlarmInfoPlate":{"info":"no","plateid":7}})", false);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(*r);
}

TEST(VzenithReply, WrongOrMissingPlateidIsRefused) {
  EXPECT_EQ(check(R"({"Response_AlarmInfoPlate":{"info":"ok","plateid":8}})", false).error().field,
            "plateid");
  EXPECT_EQ(check(R"({"Response_AlarmInfoPlate":{"info":"ok"}})", false).error().field, "plateid");
}

// {"Response_AlarmInfoPlate":{<inner>}}
std::string reply(std::string_view inner) {
  return R"({"Response_AlarmInfoPlate":{)" + std::string(inner) + "}}";
}

template <typename T>
std::string refused_field(const Result<T>& r) {
  EXPECT_FALSE(r);
  return r ? std::string("(accepted)") : r.error().field;
}

TEST(VzenithReply, OfflineNeedsContinuePushOffline) {
  auto good = check(reply(R"("info":"no","ContinuePushOffline":{"plateid":7,"continue":1})"), true);
  ASSERT_TRUE(good) << good.error().to_string();
  EXPECT_FALSE(*good);
  EXPECT_EQ(refused_field(check(reply(R"("info":"no","plateid":7)"), true)), "ContinuePushOffline");
  EXPECT_EQ(refused_field(check(
                reply(R"("info":"no","ContinuePushOffline":{"plateid":6,"continue":1})"), true)),
            "ContinuePushOffline");
  EXPECT_EQ(refused_field(check(
                reply(R"("info":"no","ContinuePushOffline":{"plateid":7,"continue":0})"), true)),
            "ContinuePushOffline");
}

TEST(VzenithReply, OfflineMustNotOpen) {
  EXPECT_EQ(refused_field(check(
                reply(R"("info":"ok","ContinuePushOffline":{"plateid":7,"continue":1})"), true)),
            "info");
}

TEST(VzenithReply, MalformedRepliesAreRefused) {
  EXPECT_EQ(read_vzenith_reply("not json").error().code, Errc::kParse);
  EXPECT_EQ(refused_field(read_vzenith_reply(R"({"info":"ok","plateid":7})")),
            "Response_AlarmInfoPlate");
  EXPECT_EQ(refused_field(read_vzenith_reply(R"({"Response_AlarmInfoPlate":"ok"})")),
            "Response_AlarmInfoPlate");
  EXPECT_EQ(refused_field(read_vzenith_reply(reply(R"("info":"yes","plateid":7)"))), "info");
  EXPECT_EQ(refused_field(read_vzenith_reply(reply(R"("plateid":7)"))), "info");
  EXPECT_EQ(refused_field(read_vzenith_reply(reply(R"("info":"ok","plateid":"7")"))), "plateid");
  EXPECT_EQ(refused_field(read_vzenith_reply(reply(R"("info":"ok","plateid":-7)"))), "plateid");
  EXPECT_EQ(refused_field(
                read_vzenith_reply(reply(R"("info":"ok","ContinuePushOffline":{"plateid":7})"))),
            "ContinuePushOffline");
  EXPECT_EQ(refused_field(read_vzenith_reply(reply(
                R"("info":"ok","serialData":[{"serialChannel":0,"data":"QUJD","dataLen":4}])"))),
            "serialData");
  EXPECT_EQ(refused_field(read_vzenith_reply(reply(
                R"("info":"ok","serialData":[{"serialChannel":0,"data":"Q*JD","dataLen":3}])"))),
            "serialData");
}

TEST(VzenithReply, SerialDataIsDecoded) {
  auto r = read_vzenith_reply(reply(
      R"("info":"ok","plateid":7,"serialData":[{"serialChannel":1,"data":"QUJD","dataLen":3}])"));
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->serial_data.size(), 1u);
  EXPECT_EQ(r->serial_data[0].channel, 1);
  EXPECT_EQ(r->serial_data[0].bytes, "ABC");
  EXPECT_EQ(r->plateid, 7u);
}

TEST(VzenithReply, CheckRefusesAnotherVendorsShot) {
  VzenithReply r;
  r.plateid = 7;
  EXPECT_EQ(check_vzenith_reply(r, shot("dahua")).error().code, Errc::kInvalidArgument);
}

// --- send_push -------------------------------------------------------------------------

TEST(SendPush, TokenGoesInTheQuery) {
  Receiver r;
  r.reply_body = R"({"accepted":true,"duplicate":false})";
  auto push = encode_plate(shot("generic"));
  ASSERT_TRUE(push);
  auto a =
      send_push("127.0.0.1", r.port(), "tok 42/+", false, "CAM-1", *push, std::chrono::seconds(5));
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_EQ(a->status, 200);
  EXPECT_EQ(a->body, r.reply_body);
  EXPECT_GE(a->ms, 0.0);
  const auto seen = r.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "/anpr/events");
  EXPECT_EQ(seen[0].query_token, "tok 42/+");
  EXPECT_TRUE(seen[0].authorization.empty());
  EXPECT_EQ(seen[0].content_type, "application/json");
  EXPECT_EQ(seen[0].body, push->body);
}

TEST(SendPush, BasicAuthUsesSerialAndToken) {
  Receiver r;
  r.reply_status = 401;
  auto push = encode_plate(shot("dahua"));
  ASSERT_TRUE(push);
  auto a =
      send_push("127.0.0.1", r.port(), "tok-42", true, "CAM-1", *push, std::chrono::seconds(5));
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_EQ(a->status, 401);  // any status is an answer
  const auto seen = r.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "/NotificationInfo/TollgateInfo");
  EXPECT_FALSE(seen[0].has_token);
  EXPECT_EQ(seen[0].authorization, "Basic Q0FNLTE6dG9rLTQy");  // base64("CAM-1:tok-42")
  EXPECT_EQ(seen[0].body, push->body);
}

TEST(SendPush, BasicWithoutTokenIsRefused) {
  HttpPush p{"/anpr/events", "application/json", "{}"};
  EXPECT_EQ(send_push("127.0.0.1", 1, "", true, "CAM-1", p, std::chrono::seconds(1)).error().code,
            Errc::kInvalidArgument);
}

TEST(SendPush, NoListenerIsUnavailable) {
  int port = 0;
  {
    Receiver r;  // a port that was free a moment ago and is closed now
    port = r.port();
  }
  HttpPush p{"/anpr/events", "application/json", "{}"};
  auto a = send_push("127.0.0.1", port, "t", false, "CAM-1", p, std::chrono::seconds(2));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, Errc::kUnavailable);
}

// --- CLI -------------------------------------------------------------------------------

int cli(std::vector<std::string> args) { return run_camera(args); }

TEST(CameraCli, HelpAndBadArguments) {
  testing::internal::CaptureStdout();
  EXPECT_EQ(cli({"--help"}), 0);
  EXPECT_NE(testing::internal::GetCapturedStdout().find("usage: lanegate-sim camera"),
            std::string::npos);
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"--vendor", "vzenith", "--host", "h", "--port", "x", "--serial", "S", "--no-plate"},
       "--port"},
      {{"--vendor", "vzenith", "--host", "h", "--port", "80", "--no-plate"}, "--serial"},
      {{"--vendor", "acme", "--host", "h", "--port", "80", "--serial", "S", "--no-plate"},
       "--vendor"},
      {{"--vendor", "dahua", "--host", "h", "--port", "80", "--serial", "S", "--plate", "P",
        "--colour", "RED"},
       "--colour"},
      {{"--vendor", "dahua", "--host", "h", "--port", "80", "--serial", "S"}, "--plate"},
      {{"--vendor", "dahua", "--host", "h", "--port", "80", "--serial", "S", "--no-plate",
        "--frobnicate"},
       "--frobnicate"},
      {{"--vendor", "hikvision", "--host", "h", "--port", "80", "--serial", "S", "--heartbeat"},
       "--vendor"},
      {{"--vendor", "dahua", "--host", "h", "--port", "80", "--serial", "S", "--no-plate",
        "--basic"},
       "--basic"},
  };
  for (const auto& [args, named] : bad) {
    testing::internal::CaptureStderr();
    EXPECT_EQ(cli(args), 2) << named;
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find(named), std::string::npos) << err;
  }
}

TEST(CameraCli, VzenithPushPrintsTheBarrierDecision) {
  Receiver r;
  r.reply_body = R"({"Response_AlarmInfoPlate":{"info":"ok","plateid":9}})";
  const std::string port = std::to_string(r.port());
  testing::internal::CaptureStdout();
  const int rc = cli({"--vendor", "vzenith", "--host", "127.0.0.1", "--port", port, "--token", "t1",
                      "--serial", "CAM-9", "--plate", "京A12345", "--event", "9"});
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(out.starts_with("status=200 open=yes ms=")) << out;
  EXPECT_NE(out.find("\n" + r.reply_body + "\n"), std::string::npos) << out;
  const auto seen = r.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].query_token, "t1");

  // A reply that echoes another record breaks the spec: exit 1, open=-.
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  const int rc2 = cli({"--vendor", "vzenith", "--host", "127.0.0.1", "--port", port, "--serial",
                       "CAM-9", "--plate", "京A12345", "--event", "10"});
  const std::string out2 = testing::internal::GetCapturedStdout();
  const std::string err2 = testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc2, 1);
  EXPECT_TRUE(out2.starts_with("status=200 open=- ")) << out2;
  EXPECT_NE(err2.find("plateid"), std::string::npos) << err2;
}

TEST(CameraCli, NonSuccessStatusExitsOne) {
  Receiver r;
  r.reply_status = 503;
  testing::internal::CaptureStdout();
  const int rc = cli({"--vendor", "dahua", "--host", "127.0.0.1", "--port",
                      std::to_string(r.port()), "--serial", "CAM-1", "--heartbeat"});
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(out.starts_with("status=503 open=- ")) << out;
}

}  // namespace
}  // namespace lanegate::sim
