// Camera pushes (lane/camera_push.h). Every request body below is written out by hand from
// the spec (lane-devices.md "ANPR cameras over HTTP"), not produced by an encoder of ours.
#include "lane/camera_push.h"

#include <gtest/gtest.h>

#include <string>

using namespace lanegate;
using namespace lanegate::lane;
using namespace std::string_literals;

namespace {

// The bytes the Base64 texts in the bodies below decode to.
// "/9j/4AAQSkZJRg==": FF D8 FF E0 00 10 "JFIF".
const std::string kJpegA = "\xff\xd8\xff\xe0\x00\x10JFIF"s;
// "/9j/cGxhdGUA2Q==": FF D8 FF "plate" 00 D9.
const std::string kJpegB = "\xff\xd8\xffplate\x00\xd9"s;
// "/9h2ZWhpY2xl" (no padding): FF D8 "vehicle".
const std::string kJpegC = "\xff\xd8vehicle"s;

// 2026-12-07T08:30:01+08:00 in unix seconds.
constexpr std::int64_t kCaptureSec = 1796603401;

Result<CameraPush> vzenith(std::string_view body,
                           std::string_view content_type = "application/json") {
  return parse_push(CameraVendor::kVzenith, "/vz/push", content_type, body);
}
Result<CameraPush> hikvision(std::string_view content_type, std::string_view body) {
  return parse_push(CameraVendor::kHikvision, "/hik/anpr", content_type, body);
}
Result<CameraPush> dahua(std::string_view path, std::string_view body) {
  return parse_push(CameraVendor::kDahua, path, "application/json", body);
}
Result<CameraPush> generic(std::string_view body) {
  return parse_push(CameraVendor::kGeneric, "/anpr/events", "application/json", body);
}

void expect_error(const Result<CameraPush>& r, Errc code, std::string_view field) {
  ASSERT_FALSE(r.has_value()) << "accepted; expected " << errc_name(code) << " on " << field;
  EXPECT_EQ(r.error().code, code) << r.error().to_string();
  EXPECT_EQ(r.error().field, field) << r.error().to_string();
}

// True when `needle` occurs in any text a CameraPush carries.
bool carries(const CameraPush& p, std::string_view needle) {
  for (const std::string* s :
       {&p.camera, &p.ip, &p.event_id, &p.plate_raw, &p.colour_raw, &p.direction}) {
    if (s->find(needle) != std::string::npos) {
      return true;
    }
  }
  for (const PushImage& image : p.images) {
    if (image.kind.find(needle) != std::string::npos ||
        image.bytes.find(needle) != std::string::npos) {
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------- vendor names

TEST(CameraPushVendor, NamesRoundTrip) {
  for (CameraVendor v : {CameraVendor::kVzenith, CameraVendor::kHikvision, CameraVendor::kDahua,
                         CameraVendor::kGeneric}) {
    auto parsed = parse_vendor(vendor_name(v));
    ASSERT_TRUE(parsed) << vendor_name(v);
    EXPECT_EQ(*parsed, v);
  }
  EXPECT_EQ(vendor_name(CameraVendor::kVzenith), "vzenith");
  auto bad = parse_vendor("uniview");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(bad.error().field, "vendor");
}

// ---------------------------------------------------------------- Vzenith

std::string vzenith_body(std::string_view plate_result_fields) {
  return R"({"AlarmInfoPlate":{"serialno":"e4b3c2a1-0f9d8e7c","deviceName":"IVS",)"
         R"("ipaddr":"192.168.1.100","channel":0,"result":{"PlateResult":{)" +
         std::string(plate_result_fields) + "}}}}";
}

TEST(CameraPushVzenith, PlateResultMapsEveryField) {
  const std::string body = vzenith_body(
      R"("license":"京A12345","colorType":1,"type":1,"confidence":95,"plateid":1234,)"
      R"("isoffline":0,"triggerType":1,"direction":1,)"
      R"("timeStamp":{"Timeval":{"sec":1796603401,"usec":500000,"decyear":2026,"decmon":12,)"
      R"("decday":7,"dechour":8,"decmin":30,"decsec":1}},)"
      R"("imageFile":"/9j/4AAQSkZJRg==","imageFileLen":16,)"
      R"("imageFragmentFile":"/9j/cGxhdGUA2Q==","imageFragmentFileLen":16)");
  auto r = vzenith(body);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->kind, CameraPush::Kind::kPlate);
  EXPECT_EQ(r->vendor, CameraVendor::kVzenith);
  EXPECT_EQ(r->camera, "e4b3c2a1-0f9d8e7c");
  EXPECT_EQ(r->ip, "192.168.1.100");
  EXPECT_EQ(r->event_id, "1234");
  EXPECT_EQ(r->plate_raw, "京A12345");
  EXPECT_FALSE(r->no_plate);
  EXPECT_EQ(r->colour, PlateColour::kBlue);
  EXPECT_EQ(r->colour_raw, "1");
  EXPECT_EQ(r->confidence, 950);
  EXPECT_FALSE(r->offline);
  EXPECT_EQ(r->direction, "unknown");  // 1 = left in the image, not in/out
  EXPECT_EQ(r->capture_ms, kCaptureSec * 1000 + 500);
  ASSERT_EQ(r->images.size(), 2u);
  EXPECT_EQ(r->images[0].kind, "full");
  EXPECT_EQ(r->images[0].bytes, kJpegA);
  EXPECT_EQ(r->images[1].kind, "plate");
  EXPECT_EQ(r->images[1].bytes, kJpegB);
}

TEST(CameraPushVzenith, ColourCodes) {
  const std::pair<int, std::optional<PlateColour>> cases[] = {{0, std::nullopt},
                                                              {1, PlateColour::kBlue},
                                                              {2, PlateColour::kYellow},
                                                              {3, PlateColour::kWhite},
                                                              {4, PlateColour::kBlack},
                                                              {5, PlateColour::kGreen},
                                                              {6, PlateColour::kYellowGreen},
                                                              {9, std::nullopt}};
  for (const auto& [code, colour] : cases) {
    auto r = vzenith(
        vzenith_body(R"("license":"京A12345","plateid":7,"colorType":)" + std::to_string(code)));
    ASSERT_TRUE(r) << code;
    EXPECT_EQ(r->colour, colour) << code;
    EXPECT_EQ(r->colour_raw, std::to_string(code));
  }
  // Without colorType nothing is claimed.
  auto r = vzenith(vzenith_body(R"("license":"京A12345","plateid":7)"));
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->colour);
  EXPECT_EQ(r->colour_raw, "");
  EXPECT_FALSE(r->capture_ms);
  EXPECT_TRUE(r->images.empty());
}

TEST(CameraPushVzenith, NoPlate) {
  for (const char* fields :
       {R"("license":"_无_","plateid":8,"type":0)", R"("license":"","plateid":8)",
        R"("license":"京A12345","plateid":8,"type":31)"}) {
    auto r = vzenith(vzenith_body(fields));
    ASSERT_TRUE(r) << fields << ": " << r.error().to_string();
    EXPECT_TRUE(r->no_plate) << fields;
    EXPECT_EQ(r->event_id, "8");
  }
}

TEST(CameraPushVzenith, OfflineRecord) {
  auto r = vzenith(vzenith_body(
      R"("license":"苏E0A123","colorType":2,"plateid":901,"isoffline":1,"confidence":88)"));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->offline);
  EXPECT_EQ(r->event_id, "901");
  EXPECT_EQ(r->colour, PlateColour::kYellow);
  EXPECT_EQ(r->confidence, 880);
}

TEST(CameraPushVzenith, ReplyBytes) {
  auto online = vzenith(vzenith_body(R"("license":"京A12345","plateid":1234,"isoffline":0)"));
  ASSERT_TRUE(online);
  EXPECT_EQ(vzenith_reply(*online, true),
            R"({"Response_AlarmInfoPlate":{"info":"ok","plateid":1234}})");
  EXPECT_EQ(vzenith_reply(*online, false),
            R"({"Response_AlarmInfoPlate":{"info":"no","plateid":1234}})");

  auto offline = vzenith(vzenith_body(R"("license":"京A12345","plateid":77,"isoffline":1)"));
  ASSERT_TRUE(offline);
  const std::string expected = R"({"Response_AlarmInfoPlate":{"info":"no",)"
                               R"("ContinuePushOffline":{"plateid":77,"continue":1}}})";
  EXPECT_EQ(vzenith_reply(*offline, false), expected);
  // An offline record is history: it never opens, whatever the caller decided.
  EXPECT_EQ(vzenith_reply(*offline, true), expected);
}

constexpr std::string_view kHeartbeatType = "multipart/form-data; boundary=----VzHb7MA4YWxkTrZu0gW";
const std::string kHeartbeatBody =
    "------VzHb7MA4YWxkTrZu0gW\r\n"
    "Content-Disposition: form-data; name=\"device_name\"\r\n\r\n"
    "IVS\r\n"
    "------VzHb7MA4YWxkTrZu0gW\r\n"
    "Content-Disposition: form-data; name=\"ipaddr\"\r\n\r\n"
    "192.168.1.100\r\n"
    "------VzHb7MA4YWxkTrZu0gW\r\n"
    "Content-Disposition: form-data; name=\"port\"\r\n\r\n"
    "80\r\n"
    "------VzHb7MA4YWxkTrZu0gW\r\n"
    "Content-Disposition: form-data; name=\"user_name\"\r\n\r\n"
    "admin-Kq7\r\n"
    "------VzHb7MA4YWxkTrZu0gW\r\n"
    "Content-Disposition: form-data; name=\"pass_wd\"\r\n\r\n"
    "S3cr3t-Pa55w0rd\r\n"
    "------VzHb7MA4YWxkTrZu0gW\r\n"
    "Content-Disposition: form-data; name=\"serialno\"\r\n\r\n"
    "e4b3c2a1-0f9d8e7c\r\n"
    "------VzHb7MA4YWxkTrZu0gW\r\n"
    "Content-Disposition: form-data; name=\"channel_num\"\r\n\r\n"
    "1\r\n"
    "------VzHb7MA4YWxkTrZu0gW--\r\n";

TEST(CameraPushVzenith, MultipartHeartbeatKeepsNoCredentials) {
  auto r = vzenith(kHeartbeatBody, kHeartbeatType);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->kind, CameraPush::Kind::kHeartbeat);
  EXPECT_EQ(r->vendor, CameraVendor::kVzenith);
  EXPECT_EQ(r->camera, "e4b3c2a1-0f9d8e7c");
  EXPECT_EQ(r->ip, "192.168.1.100");
  EXPECT_FALSE(carries(*r, "S3cr3t-Pa55w0rd"));
  EXPECT_FALSE(carries(*r, "Pa55"));
  EXPECT_FALSE(carries(*r, "admin-Kq7"));
  EXPECT_EQ(vzenith_reply(*r, true), "");
}

TEST(CameraPushVzenith, UrlEncodedHeartbeatKeepsNoCredentials) {
  auto r = vzenith(
      "device_name=IVS&ipaddr=192.168.1.100&port=80&user_name=admin-Kq7&pass_wd=S3cr3t%2DPa55w0rd"
      "&serialno=e4b3c2a1-0f9d8e7c&channel_num=1",
      "application/x-www-form-urlencoded");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->kind, CameraPush::Kind::kHeartbeat);
  EXPECT_EQ(r->camera, "e4b3c2a1-0f9d8e7c");
  EXPECT_EQ(r->ip, "192.168.1.100");
  EXPECT_FALSE(carries(*r, "Pa55"));
  EXPECT_FALSE(carries(*r, "admin-Kq7"));
}

TEST(CameraPushVzenith, HeartbeatErrorsNameNoCredentials) {
  // No serialno: refused, and the message does not quote the form.
  const std::string body =
      "--b\r\nContent-Disposition: form-data; name=\"pass_wd\"\r\n\r\nS3cr3t-Pa55w0rd\r\n--b--\r\n";
  auto r = vzenith(body, "multipart/form-data; boundary=b");
  expect_error(r, Errc::kInvalidArgument, "serialno");
  EXPECT_EQ(r.error().to_string().find("Pa55"), std::string::npos);

  auto bad = vzenith("pass_wd=S3cr3t-Pa55w0rd&serialno=%ZZ", "application/x-www-form-urlencoded");
  expect_error(bad, Errc::kParse, "serialno");
  EXPECT_EQ(bad.error().to_string().find("Pa55"), std::string::npos);
}

TEST(CameraPushVzenith, TruncatedMultipartHeartbeat) {
  const std::string truncated = kHeartbeatBody.substr(0, kHeartbeatBody.size() / 2);
  expect_error(vzenith(truncated, kHeartbeatType), Errc::kParse, "");
  // Wrong boundary: no part is found.
  expect_error(vzenith(kHeartbeatBody, "multipart/form-data; boundary=other"), Errc::kParse, "");
  // No boundary at all.
  expect_error(vzenith(kHeartbeatBody, "multipart/form-data"), Errc::kParse, "");
  // A header smuggled into the content type.
  expect_error(vzenith(kHeartbeatBody, "multipart/form-data; boundary=x\r\nX-Evil: 1"),
               Errc::kInvalidArgument, "Content-Type");
}

TEST(CameraPushVzenith, MalformedBodies) {
  expect_error(vzenith(R"({"AlarmInfoPlate":{"serialno":"x",)"), Errc::kParse, "");
  expect_error(vzenith("[1,2]"), Errc::kInvalidArgument, "body");
  expect_error(vzenith(R"({"Other":{}})"), Errc::kInvalidArgument, "AlarmInfoPlate");
  expect_error(vzenith(R"({"AlarmInfoPlate":[]})"), Errc::kInvalidArgument, "AlarmInfoPlate");
  expect_error(
      vzenith(
          R"({"AlarmInfoPlate":{"result":{"PlateResult":{"license":"京A12345","plateid":1}}}})"),
      Errc::kInvalidArgument, "AlarmInfoPlate.serialno");
  expect_error(vzenith(R"({"AlarmInfoPlate":{"serialno":"",)"
                       R"("result":{"PlateResult":{"license":"京A12345","plateid":1}}}})"),
               Errc::kInvalidArgument, "AlarmInfoPlate.serialno");
  expect_error(vzenith(R"({"AlarmInfoPlate":{"serialno":"a\tb",)"
                       R"("result":{"PlateResult":{"license":"京A12345","plateid":1}}}})"),
               Errc::kInvalidArgument, "AlarmInfoPlate.serialno");
  expect_error(vzenith(R"({"AlarmInfoPlate":{"serialno":"x"}})"), Errc::kInvalidArgument,
               "AlarmInfoPlate.result");
  expect_error(vzenith(R"({"AlarmInfoPlate":{"serialno":"x","result":{}}})"),
               Errc::kInvalidArgument, "AlarmInfoPlate.result.PlateResult");
  expect_error(vzenith(vzenith_body(R"("license":"京A12345")")), Errc::kInvalidArgument,
               "AlarmInfoPlate.result.PlateResult.plateid");
  expect_error(vzenith(vzenith_body(R"("license":"京A12345","plateid":"1234")")),
               Errc::kInvalidArgument, "AlarmInfoPlate.result.PlateResult.plateid");
  expect_error(vzenith(vzenith_body(R"("license":"京A12345","plateid":-1)")),
               Errc::kInvalidArgument, "AlarmInfoPlate.result.PlateResult.plateid");
  expect_error(vzenith(vzenith_body(R"("license":"京A12345","plateid":1.5)")),
               Errc::kInvalidArgument, "AlarmInfoPlate.result.PlateResult.plateid");
  expect_error(vzenith(vzenith_body(R"("plateid":1)")), Errc::kInvalidArgument,
               "AlarmInfoPlate.result.PlateResult.license");
  expect_error(vzenith(vzenith_body(R"("license":12345,"plateid":1)")), Errc::kInvalidArgument,
               "AlarmInfoPlate.result.PlateResult.license");
  expect_error(vzenith(vzenith_body(R"("license":"京A12345","plateid":1,"confidence":"95")")),
               Errc::kInvalidArgument, "AlarmInfoPlate.result.PlateResult.confidence");
  expect_error(vzenith(vzenith_body(R"("license":"京A12345","plateid":1,"confidence":101)")),
               Errc::kInvalidArgument, "AlarmInfoPlate.result.PlateResult.confidence");
  expect_error(vzenith(vzenith_body(R"("license":"京A12345","plateid":1,"isoffline":2)")),
               Errc::kInvalidArgument, "AlarmInfoPlate.result.PlateResult.isoffline");
  expect_error(vzenith(vzenith_body(
                   R"("license":"京A12345","plateid":1,"timeStamp":{"Timeval":{"usec":1}})")),
               Errc::kInvalidArgument, "AlarmInfoPlate.result.PlateResult.timeStamp.Timeval.sec");
  expect_error(vzenith(vzenith_body(R"("license":"京A12345","plateid":1,"imageFile":7)")),
               Errc::kInvalidArgument, "AlarmInfoPlate.result.PlateResult.imageFile");
  // 65 bytes of plate text.
  expect_error(vzenith(vzenith_body(R"("plateid":1,"license":")" + std::string(65, 'A') + "\"")),
               Errc::kInvalidArgument, "AlarmInfoPlate.result.PlateResult.license");
  expect_error(vzenith(vzenith_body(R"("plateid":1,"license":"A\u0001B")")), Errc::kInvalidArgument,
               "AlarmInfoPlate.result.PlateResult.license");
  // Invalid UTF-8 never gets past the JSON parser.
  expect_error(vzenith(vzenith_body("\"plateid\":1,\"license\":\"\xbe\xa9\"")), Errc::kParse, "");
}

TEST(CameraPushVzenith, BadAndOversizedImagesAreDropped) {
  auto r = vzenith(vzenith_body(R"("license":"京A12345","plateid":3,"imageFile":"not base64!",)"
                                R"("imageFragmentFile":"/9j/cGxhdGUA2Q==")"));
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->images.size(), 1u);
  EXPECT_EQ(r->images[0].kind, "plate");
  EXPECT_EQ(r->images[0].bytes, kJpegB);

  // 2 MiB + 3 bytes once decoded.
  const std::string big((kMaxPushImageBytes / 3 + 1) * 4, 'A');
  auto over = vzenith(vzenith_body(R"("license":"京A12345","plateid":3,"imageFile":")" + big +
                                   "\"," + R"("imageFragmentFile":"/9j/cGxhdGUA2Q==")"));
  ASSERT_TRUE(over) << over.error().to_string();
  ASSERT_EQ(over->images.size(), 1u);
  EXPECT_EQ(over->images[0].kind, "plate");
}

// ---------------------------------------------------------------- Hikvision

const std::string kAnprXml =
    R"(<?xml version="1.0" encoding="UTF-8"?>
<EventNotificationAlert version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<ipAddress>192.168.1.64</ipAddress>
<portNo>80</portNo>
<protocol>HTTP</protocol>
<macAddress>44:19:B6:0A:BC:DE</macAddress>
<channelID>1</channelID>
<dateTime>2026-12-07T08:30:01+08:00</dateTime>
<activePostCount>1</activePostCount>
<eventType>ANPR</eventType>
<eventState>active</eventState>
<eventDescription>ANPR</eventDescription>
<channelName>Entrance</channelName>
<ANPR>
<country>CHN</country>
<licensePlate>浙A12345</licensePlate>
<line>1</line>
<direction>forward</direction>
<confidenceLevel>97</confidenceLevel>
<plateType>92TypeCivil</plateType>
<plateColor>blue</plateColor>
<licenseBright>0</licenseBright>
<vehicleType>vehicle</vehicleType>
<vehicleInfo><index>3</index><colorDepth>2</colorDepth><color>white</color>
<length>0</length></vehicleInfo>
<vehicleListName>otherList</vehicleListName>
</ANPR>
</EventNotificationAlert>
)";

constexpr std::string_view kHikType = "multipart/form-data; boundary=boundaryHik0x1";

std::string hik_part(std::string_view name, std::string_view type, std::string_view content) {
  return "--boundaryHik0x1\r\nContent-Disposition: form-data; name=\"" + std::string(name) +
         "\"; filename=\"" + std::string(name) + "\"\r\nContent-Type: " + std::string(type) +
         "\r\nContent-Length: " + std::to_string(content.size()) + "\r\n\r\n" +
         std::string(content) + "\r\n";
}
const std::string kHikEnd = "--boundaryHik0x1--\r\n";

TEST(CameraPushHikvision, MultipartMapsEveryField) {
  const std::string body = hik_part("anpr.xml", "application/xml", kAnprXml) +
                           hik_part("licensePlatePicture.jpg", "image/jpeg", kJpegB) +
                           hik_part("detectionPicture.jpg", "image/jpeg", kJpegA) +
                           hik_part("pedestrianDetectionPicture.jpg", "image/jpeg", kJpegC) +
                           kHikEnd;
  auto r = hikvision(kHikType, body);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->kind, CameraPush::Kind::kPlate);
  EXPECT_EQ(r->vendor, CameraVendor::kHikvision);
  EXPECT_EQ(r->camera, "44:19:b6:0a:bc:de");
  EXPECT_EQ(r->ip, "192.168.1.64");
  EXPECT_EQ(r->event_id, "1/2026-12-07T08:30:01+08:00/浙A12345");
  EXPECT_EQ(r->plate_raw, "浙A12345");
  EXPECT_FALSE(r->no_plate);
  EXPECT_FALSE(r->colour);
  EXPECT_EQ(r->colour_raw, "blue");
  EXPECT_EQ(r->confidence, 970);
  EXPECT_FALSE(r->offline);
  EXPECT_EQ(r->direction, "unknown");
  EXPECT_EQ(r->capture_ms, kCaptureSec * 1000);
  ASSERT_EQ(r->images.size(), 3u);
  EXPECT_EQ(r->images[0].kind, "plate");
  EXPECT_EQ(r->images[0].bytes, kJpegB);
  EXPECT_EQ(r->images[1].kind, "full");
  EXPECT_EQ(r->images[1].bytes, kJpegA);
  EXPECT_EQ(r->images[2].kind, "vehicle");
  EXPECT_EQ(r->images[2].bytes, kJpegC);
}

TEST(CameraPushHikvision, XmlAlone) {
  for (std::string_view type : {"application/xml", "text/xml; charset=UTF-8", "Application/XML"}) {
    auto r = hikvision(type, kAnprXml);
    ASSERT_TRUE(r) << type << ": " << r.error().to_string();
    EXPECT_EQ(r->plate_raw, "浙A12345");
    EXPECT_TRUE(r->images.empty());
  }
}

TEST(CameraPushHikvision, XmlPartFoundByTypeAndPrefixedNames) {
  const std::string xml =
      R"(<?xml version="1.0" encoding="UTF-8"?>)"
      R"(<hik:EventNotificationAlert xmlns:hik="http://www.hikvision.com/ver20/XMLSchema">)"
      R"(<hik:ipAddress>10.0.0.9</hik:ipAddress><hik:channelID>2</hik:channelID>)"
      R"(<hik:dateTime>2026-12-07T00:30:01.250Z</hik:dateTime><hik:eventType>ANPR</hik:eventType>)"
      R"(<hik:ANPR><hik:licensePlate><![CDATA[粤B12345]]></hik:licensePlate></hik:ANPR>)"
      R"(</hik:EventNotificationAlert>)";
  const std::string body = hik_part("event", "text/xml", xml) + kHikEnd;
  auto r = hikvision(kHikType, body);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->camera, "10.0.0.9");  // no macAddress: the stated IP address
  EXPECT_EQ(r->ip, "10.0.0.9");
  EXPECT_EQ(r->plate_raw, "粤B12345");
  EXPECT_EQ(r->event_id, "2/2026-12-07T00:30:01.250Z/粤B12345");
  EXPECT_EQ(r->capture_ms, kCaptureSec * 1000 + 250);
  EXPECT_EQ(r->confidence, 0);
  EXPECT_EQ(r->colour_raw, "");
}

std::string replaced(std::string_view from, std::string_view to) {
  std::string xml = kAnprXml;
  const std::size_t at = xml.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  xml.replace(at, from.size(), to);
  return xml;
}

TEST(CameraPushHikvision, NoPlate) {
  for (std::string_view plate : {"", "unknown", "UNKNOWN"}) {
    std::string xml = kAnprXml;
    xml.replace(xml.find("浙A12345"), std::string_view("浙A12345").size(), plate);
    auto r = hikvision("application/xml", xml);
    ASSERT_TRUE(r) << plate << ": " << r.error().to_string();
    EXPECT_TRUE(r->no_plate) << plate;
  }
}

TEST(CameraPushHikvision, LayoutWhitespaceAroundThePlateIsNotPartOfIt) {
  auto r = hikvision("application/xml", replaced("<licensePlate>浙A12345</licensePlate>",
                                                 "<licensePlate>\n  浙A12345\n</licensePlate>"));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->plate_raw, "浙A12345");
  EXPECT_EQ(r->event_id, "1/2026-12-07T08:30:01+08:00/浙A12345");
}

TEST(CameraPushHikvision, TimeWithoutOffsetGivesNoCaptureTime) {
  std::string xml = kAnprXml;
  xml.replace(xml.find("+08:00"), 6, "");
  auto r = hikvision("application/xml", xml);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(r->capture_ms);
  EXPECT_EQ(r->event_id, "1/2026-12-07T08:30:01/浙A12345");
}

TEST(CameraPushHikvision, MalformedBodies) {
  // Not well-formed.
  expect_error(hikvision("application/xml", kAnprXml.substr(0, kAnprXml.size() / 2)), Errc::kParse,
               "");
  expect_error(
      hikvision("application/xml", "<EventNotificationAlert><ANPR></EventNotificationAlert>"),
      Errc::kParse, "");
  expect_error(hikvision("application/xml", ""), Errc::kParse, "");
  // Not an alert; not ANPR.
  expect_error(hikvision("application/xml", "<Other/>"), Errc::kInvalidArgument,
               "EventNotificationAlert");
  expect_error(hikvision("application/xml", replaced("<eventType>ANPR</eventType>",
                                                     "<eventType>videoloss</eventType>")),
               Errc::kInvalidArgument, "EventNotificationAlert.eventType");
  expect_error(hikvision("application/xml", replaced("<eventType>ANPR</eventType>", "")),
               Errc::kInvalidArgument, "EventNotificationAlert.eventType");
  // Missing or wrong fields.
  expect_error(hikvision("application/xml", replaced("<licensePlate>浙A12345</licensePlate>", "")),
               Errc::kInvalidArgument, "EventNotificationAlert.ANPR.licensePlate");
  expect_error(
      hikvision("application/xml", replaced("<dateTime>2026-12-07T08:30:01+08:00</dateTime>", "")),
      Errc::kInvalidArgument, "EventNotificationAlert.dateTime");
  expect_error(hikvision("application/xml", replaced("<confidenceLevel>97</confidenceLevel>",
                                                     "<confidenceLevel>high</confidenceLevel>")),
               Errc::kInvalidArgument, "EventNotificationAlert.ANPR.confidenceLevel");
  expect_error(hikvision("application/xml", replaced("<confidenceLevel>97</confidenceLevel>",
                                                     "<confidenceLevel>101</confidenceLevel>")),
               Errc::kInvalidArgument, "EventNotificationAlert.ANPR.confidenceLevel");
  std::string no_ids = kAnprXml;
  for (std::string_view tag :
       {"<ipAddress>192.168.1.64</ipAddress>", "<macAddress>44:19:B6:0A:BC:DE</macAddress>"}) {
    no_ids.erase(no_ids.find(tag), tag.size());
  }
  expect_error(hikvision("application/xml", no_ids), Errc::kInvalidArgument,
               "EventNotificationAlert.macAddress");
  // Plate text: invalid UTF-8 (GBK bytes of 浙), too long.
  expect_error(hikvision("application/xml", replaced("浙A12345",
                                                     "\xd5\xe3"
                                                     "A12345")),
               Errc::kInvalidArgument, "EventNotificationAlert.ANPR.licensePlate");
  expect_error(hikvision("application/xml", replaced("浙A12345", std::string(65, 'B'))),
               Errc::kInvalidArgument, "EventNotificationAlert.ANPR.licensePlate");
  // Content types.
  expect_error(hikvision("application/json", kAnprXml), Errc::kInvalidArgument, "Content-Type");
}

TEST(CameraPushHikvision, MalformedMultipart) {
  const std::string body = hik_part("anpr.xml", "application/xml", kAnprXml) +
                           hik_part("licensePlatePicture.jpg", "image/jpeg", kJpegB) + kHikEnd;
  // Cut inside the image part: no closing boundary.
  expect_error(hikvision(kHikType, body.substr(0, body.size() - kHikEnd.size() - 4)), Errc::kParse,
               "");
  // Only images.
  expect_error(
      hikvision(kHikType, hik_part("licensePlatePicture.jpg", "image/jpeg", kJpegB) + kHikEnd),
      Errc::kInvalidArgument, "anpr.xml");
  // The XML part itself is not well-formed.
  expect_error(hikvision(kHikType, hik_part("anpr.xml", "application/xml", "<a><b></a>") + kHikEnd),
               Errc::kParse, "");
  expect_error(hikvision(kHikType, "not a multipart body at all"), Errc::kParse, "");
}

TEST(CameraPushHikvision, OversizedAndSurplusImagesAreDropped) {
  const std::string big(kMaxPushImageBytes + 1, '\xd8');
  std::string body = hik_part("anpr.xml", "application/xml", kAnprXml) +
                     hik_part("detectionPicture.jpg", "image/jpeg", big);
  for (int i = 0; i < 6; ++i) {
    body += hik_part("licensePlatePicture.jpg", "image/jpeg", kJpegB);
  }
  body += kHikEnd;
  auto r = hikvision(kHikType, body);
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->images.size(), kMaxPushImages);
  for (const PushImage& image : r->images) {
    EXPECT_EQ(image.kind, "plate");
    EXPECT_EQ(image.bytes, kJpegB);
  }
}

// ---------------------------------------------------------------- Dahua

constexpr std::string_view kTollgate = "/NotificationInfo/TollgateInfo";

std::string dahua_body(std::string_view plate, std::string_view snap) {
  return R"({"Picture":{"Plate":{)" + std::string(plate) + R"(},"SnapInfo":{)" + std::string(snap) +
         R"(},"Vehicle":{"VehicleColor":"White"}})" + "}";
}

TEST(CameraPushDahua, TollgateMapsEveryField) {
  const std::string body =
      R"({"Picture":{"Plate":{"PlateNumber":"沪A12345","PlateColor":"Blue","Confidence":91},)"
      R"("SnapInfo":{"DeviceID":"7C0A8B9D1E2F","SnapTime":"2026-12-07 08:30:01","Direction":"1"},)"
      R"("Vehicle":{"VehicleColor":"White"},)"
      R"("NormalPic":{"Content":"/9j/4AAQSkZJRg=="},"CutoutPic":{"Content":"/9j/cGxhdGUA2Q=="},)"
      R"("VehiclePic":{"Content":"/9h2ZWhpY2xl"}}})";
  auto r = dahua(kTollgate, body);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->kind, CameraPush::Kind::kPlate);
  EXPECT_EQ(r->vendor, CameraVendor::kDahua);
  EXPECT_EQ(r->camera, "7C0A8B9D1E2F");
  EXPECT_EQ(r->ip, "");
  EXPECT_EQ(r->event_id, "2026-12-07 08:30:01/沪A12345");
  EXPECT_EQ(r->plate_raw, "沪A12345");
  EXPECT_FALSE(r->no_plate);
  EXPECT_FALSE(r->colour);
  EXPECT_EQ(r->colour_raw, "Blue");
  EXPECT_EQ(r->confidence, 910);
  EXPECT_FALSE(r->offline);
  EXPECT_EQ(r->direction, "unknown");
  EXPECT_FALSE(r->capture_ms);  // local time without a zone
  ASSERT_EQ(r->images.size(), 3u);
  EXPECT_EQ(r->images[0].kind, "full");
  EXPECT_EQ(r->images[0].bytes, kJpegA);
  EXPECT_EQ(r->images[1].kind, "plate");
  EXPECT_EQ(r->images[1].bytes, kJpegB);
  EXPECT_EQ(r->images[2].kind, "vehicle");
  EXPECT_EQ(r->images[2].bytes, kJpegC);
}

TEST(CameraPushDahua, UnixSecondsAndAccurateTime) {
  auto r = dahua(kTollgate, dahua_body(R"("PlateNumber":"沪A12345")",
                                       R"("DeviceID":"D1","SnapTime":1796603401)"));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->capture_ms, kCaptureSec * 1000);
  EXPECT_EQ(r->event_id, "1796603401/沪A12345");

  auto s = dahua(kTollgate, dahua_body(R"("PlateNumber":"沪A12345")",
                                       R"("DeviceID":"D1","AccurateTime":"1796603401")"));
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->capture_ms, kCaptureSec * 1000);

  auto t =
      dahua(kTollgate, dahua_body(R"("PlateNumber":"沪A12345")",
                                  R"("DeviceID":"D1","AccurateTime":"2026-12-07 08:30:01.123")"));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_FALSE(t->capture_ms);
  EXPECT_EQ(t->event_id, "2026-12-07 08:30:01.123/沪A12345");
}

TEST(CameraPushDahua, ColourStringIsKeptAsSent) {
  // The PlateColor strings are unconfirmed: any short text is kept for the device mapping.
  auto r = dahua(kTollgate, dahua_body(R"("PlateNumber":"沪A12345","PlateColor":"蓝色")",
                                       R"("DeviceID":"D1","SnapTime":1796603401)"));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(r->colour);
  EXPECT_EQ(r->colour_raw, "蓝色");
  expect_error(dahua(kTollgate, dahua_body(R"("PlateNumber":"沪A12345","PlateColor":")" +
                                               std::string(33, 'b') + "\"",
                                           R"("DeviceID":"D1","SnapTime":1796603401)")),
               Errc::kInvalidArgument, "Picture.Plate.PlateColor");
}

TEST(CameraPushDahua, NoPlate) {
  auto r = dahua(kTollgate, dahua_body(R"("PlateNumber":"")",
                                       R"("DeviceID":"D1","SnapTime":"2026-12-07 08:30:01")"));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->no_plate);
  EXPECT_EQ(r->event_id, "2026-12-07 08:30:01/");
}

TEST(CameraPushDahua, KeepAlive) {
  auto r = dahua("/NotificationInfo/KeepAlive", R"({"DeviceID":"7C0A8B9D1E2F","Active":1})");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->kind, CameraPush::Kind::kHeartbeat);
  EXPECT_EQ(r->vendor, CameraVendor::kDahua);
  EXPECT_EQ(r->camera, "7C0A8B9D1E2F");
  // A query string does not change the route.
  auto q = dahua("/NotificationInfo/KeepAlive?x=1", R"({"DeviceID":"7C0A8B9D1E2F"})");
  ASSERT_TRUE(q) << q.error().to_string();
  expect_error(dahua("/NotificationInfo/KeepAlive", R"({"Active":1})"), Errc::kInvalidArgument,
               "DeviceID");
  expect_error(dahua("/NotificationInfo/KeepAlive", R"({"DeviceID":12})"), Errc::kInvalidArgument,
               "DeviceID");
}

TEST(CameraPushDahua, MalformedBodies) {
  const std::string snap = R"("DeviceID":"D1","SnapTime":"2026-12-07 08:30:01")";
  expect_error(dahua("/NotificationInfo/Other", dahua_body(R"("PlateNumber":"沪A12345")", snap)),
               Errc::kInvalidArgument, "path");
  expect_error(dahua(kTollgate, R"({"Picture":{"Plate":)"), Errc::kParse, "");
  expect_error(dahua(kTollgate, R"({})"), Errc::kInvalidArgument, "Picture");
  expect_error(dahua(kTollgate, R"({"Picture":{"SnapInfo":{}}})"), Errc::kInvalidArgument,
               "Picture.Plate");
  expect_error(dahua(kTollgate, dahua_body(R"("PlateNumber":"沪A12345")", R"("SnapTime":1)")),
               Errc::kInvalidArgument, "Picture.SnapInfo.DeviceID");
  expect_error(dahua(kTollgate, dahua_body(R"("PlateColor":"Blue")", snap)), Errc::kInvalidArgument,
               "Picture.Plate.PlateNumber");
  expect_error(dahua(kTollgate, dahua_body(R"("PlateNumber":"沪A12345","Confidence":"91")", snap)),
               Errc::kInvalidArgument, "Picture.Plate.Confidence");
  expect_error(dahua(kTollgate, dahua_body(R"("PlateNumber":"沪A12345")", R"("DeviceID":"D1")")),
               Errc::kInvalidArgument, "Picture.SnapInfo.SnapTime");
  expect_error(dahua(kTollgate, dahua_body(R"("PlateNumber":"沪A12345")",
                                           R"("DeviceID":"D1","SnapTime":"07/12/2026 08:30")")),
               Errc::kInvalidArgument, "Picture.SnapInfo.SnapTime");
  expect_error(dahua(kTollgate, dahua_body(R"("PlateNumber":"沪A12345")",
                                           R"("DeviceID":"D1","SnapTime":1.5)")),
               Errc::kInvalidArgument, "Picture.SnapInfo.SnapTime");
  expect_error(dahua(kTollgate, dahua_body(R"("PlateNumber":"沪A12345")",
                                           R"("DeviceID":"D1","SnapTime":99999999999999)")),
               Errc::kInvalidArgument, "Picture.SnapInfo.SnapTime");
}

TEST(CameraPushDahua, BadImageIsDropped) {
  const std::string body =
      R"({"Picture":{"Plate":{"PlateNumber":"沪A12345"},)"
      R"("SnapInfo":{"DeviceID":"D1","SnapTime":1796603401},)"
      R"("NormalPic":{"Content":"@@@@"},"CutoutPic":{"Content":"/9j/cGxhdGUA2Q=="}}})";
  auto r = dahua(kTollgate, body);
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->images.size(), 1u);
  EXPECT_EQ(r->images[0].kind, "plate");
  EXPECT_EQ(r->images[0].bytes, kJpegB);
}

// ---------------------------------------------------------------- generic

TEST(CameraPushGeneric, MapsEveryField) {
  const std::string body =
      R"({"camera_id":"cam-entry-1","event_id":"ev-000123","time":"2026-12-07T08:30:01.500+08:00",)"
      R"("plate":"京AD12345","plate_raw":"京AD12345","plate_color":"GREEN","confidence":93,)"
      R"("direction":"in","lane":"L1","offline":true,"images":[)"
      R"({"kind":"full","base64":"/9j/4AAQSkZJRg=="},)"
      R"({"kind":"plate","url":"http://10.0.0.5/p.jpg"},)"
      R"({"kind":"vehicle","base64":"/9h2ZWhpY2xl"}]})";
  auto r = generic(body);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->kind, CameraPush::Kind::kPlate);
  EXPECT_EQ(r->vendor, CameraVendor::kGeneric);
  EXPECT_EQ(r->camera, "cam-entry-1");
  EXPECT_EQ(r->event_id, "ev-000123");
  EXPECT_EQ(r->plate_raw, "京AD12345");
  EXPECT_FALSE(r->no_plate);
  EXPECT_EQ(r->colour, PlateColour::kGreen);
  EXPECT_EQ(r->colour_raw, "GREEN");
  EXPECT_EQ(r->confidence, 930);
  EXPECT_EQ(r->direction, "in");
  EXPECT_TRUE(r->offline);
  EXPECT_EQ(r->capture_ms, kCaptureSec * 1000 + 500);
  ASSERT_EQ(r->images.size(), 2u);  // the url image is not fetched
  EXPECT_EQ(r->images[0].kind, "full");
  EXPECT_EQ(r->images[0].bytes, kJpegA);
  EXPECT_EQ(r->images[1].kind, "vehicle");
  EXPECT_EQ(r->images[1].bytes, kJpegC);
}

TEST(CameraPushGeneric, DefaultsAndColours) {
  auto r = generic(
      R"({"camera_id":"c","event_id":"e","time":"2026-12-07T00:30:01Z","plate":"京A12345"})");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->plate_raw, "京A12345");
  EXPECT_EQ(r->direction, "unknown");
  EXPECT_FALSE(r->offline);
  EXPECT_FALSE(r->colour);
  EXPECT_EQ(r->confidence, 0);
  EXPECT_EQ(r->capture_ms, kCaptureSec * 1000);

  const std::pair<const char*, std::optional<PlateColour>> cases[] = {
      {"BLUE", PlateColour::kBlue},   {"YELLOW", PlateColour::kYellow},
      {"BLACK", PlateColour::kBlack}, {"WHITE", PlateColour::kWhite},
      {"GREEN", PlateColour::kGreen}, {"LIMEGREEN", PlateColour::kYellowGreen},
      {"UNKNOWN", std::nullopt}};
  for (const auto& [name, colour] : cases) {
    auto c = generic(std::string(R"({"camera_id":"c","event_id":"e","time":"2026-12-07T00:30:01Z",)"
                                 R"("plate":"京A12345","plate_color":")") +
                     name + "\"}");
    ASSERT_TRUE(c) << name;
    EXPECT_EQ(c->colour, colour) << name;
    EXPECT_EQ(c->colour_raw, name);
  }
}

TEST(CameraPushGeneric, NoPlate) {
  auto r = generic(R"({"camera_id":"c","event_id":"e","time":"2026-12-07T00:30:01Z",)"
                   R"("plate":"","plate_raw":""})");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->no_plate);
  EXPECT_EQ(r->plate_raw, "");
}

TEST(CameraPushGeneric, MalformedBodies) {
  const std::string base = R"("camera_id":"c","event_id":"e","time":"2026-12-07T00:30:01Z")";
  auto with = [&](std::string_view extra) {
    return generic("{" + base + (extra.empty() ? "" : ",") + std::string(extra) + "}");
  };
  expect_error(generic(R"({"camera_id":"c",)"), Errc::kParse, "");
  expect_error(generic("null"), Errc::kInvalidArgument, "body");
  expect_error(generic(R"({"event_id":"e","time":"2026-12-07T00:30:01Z","plate":""})"),
               Errc::kInvalidArgument, "camera_id");
  expect_error(generic(R"({"camera_id":"c","time":"2026-12-07T00:30:01Z","plate":""})"),
               Errc::kInvalidArgument, "event_id");
  expect_error(generic(R"({"camera_id":"c","event_id":"e","plate":""})"), Errc::kInvalidArgument,
               "time");
  expect_error(generic(R"({"camera_id":"c","event_id":")" + std::string(65, 'e') +
                       R"(","time":"2026-12-07T00:30:01Z","plate":""})"),
               Errc::kInvalidArgument, "event_id");
  expect_error(
      generic(R"({"camera_id":7,"event_id":"e","time":"2026-12-07T00:30:01Z","plate":""})"),
      Errc::kInvalidArgument, "camera_id");
  expect_error(with(""), Errc::kInvalidArgument, "plate_raw");
  expect_error(with(R"("plate":"","time":"yesterday")"), Errc::kInvalidArgument, "time");
  expect_error(with(R"("plate":"京A12345","plate_color":"PURPLE")"), Errc::kInvalidArgument,
               "plate_color");
  expect_error(with(R"("plate":"京A12345","direction":"left")"), Errc::kInvalidArgument,
               "direction");
  expect_error(with(R"("plate":"京A12345","confidence":"93")"), Errc::kInvalidArgument,
               "confidence");
  expect_error(with(R"("plate":"京A12345","confidence":-1)"), Errc::kInvalidArgument, "confidence");
  expect_error(with(R"("plate":"京A12345","offline":"yes")"), Errc::kInvalidArgument, "offline");
  expect_error(with(R"("plate":"京A12345","images":{})"), Errc::kInvalidArgument, "images");
  expect_error(with(R"("plate":"京A12345","images":[1])"), Errc::kInvalidArgument, "images[0]");
  expect_error(with(R"("plate":"京A12345","images":[{"base64":"/9j/4AAQSkZJRg=="}])"),
               Errc::kInvalidArgument, "images[0].kind");
  expect_error(with(R"("plate_raw":")" + std::string(65, 'X') + "\""), Errc::kInvalidArgument,
               "plate_raw");
}

TEST(CameraPushGeneric, ImagesBoundedAndBadOnesDropped) {
  std::string images =
      R"({"kind":"full","base64":"not*base64"},{"kind":"thumb","base64":"/9j/4AAQSkZJRg=="})";
  for (int i = 0; i < 6; ++i) {
    images += R"(,{"kind":"plate","base64":"/9j/cGxhdGUA2Q=="})";
  }
  auto r = generic(R"({"camera_id":"c","event_id":"e","time":"2026-12-07T00:30:01Z",)"
                   R"("plate":"京A12345","images":[)" +
                   images + "]}");
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->images.size(), kMaxPushImages);
  for (const PushImage& image : r->images) {
    EXPECT_EQ(image.kind, "plate");
    EXPECT_EQ(image.bytes, kJpegB);
  }
}

TEST(CameraPushAll, OversizedBodyIsRefusedBeforeParsing) {
  const std::string body(kMaxPushBodyBytes + 1, ' ');
  const std::string content_type = "multipart/form-data; boundary=" + std::string(1024, 'b');
  for (CameraVendor v : {CameraVendor::kVzenith, CameraVendor::kHikvision, CameraVendor::kDahua,
                         CameraVendor::kGeneric}) {
    expect_error(parse_push(v, "/NotificationInfo/TollgateInfo", "application/json", body),
                 Errc::kInvalidArgument, "body");
    expect_error(parse_push(v, "/NotificationInfo/TollgateInfo", content_type, "{}"),
                 Errc::kInvalidArgument, "Content-Type");
  }
}

}  // namespace
