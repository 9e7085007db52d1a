#pragma once
// Shared by the camera push fuzz targets (camera_*_fuzz.cc): the properties every parsed
// push must have, whatever the vendor. A broken property aborts (a fuzzer finding).

#include <boost/json.hpp>
#include <cstdlib>
#include <string>

#include "lane/camera_push.h"
#include "lane/plate.h"

namespace camera_push_fuzz {

using namespace lanegate::lane;

inline void require(bool ok) {
  if (!ok) {
    std::abort();
  }
}

inline bool printable_ascii(const std::string& s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) {
      return false;
    }
  }
  return true;
}

// Properties of a parse_push() result. An error must name a code parse_push documents.
inline void check(const lanegate::Result<CameraPush>& r, CameraVendor vendor) {
  if (!r) {
    require(r.error().code == lanegate::Errc::kParse ||
            r.error().code == lanegate::Errc::kInvalidArgument);
    return;
  }
  const CameraPush& p = *r;
  require(p.vendor == vendor);
  // Identity: what the receiver matches against the device's serial.
  require(!p.camera.empty() && p.camera.size() <= 64 && printable_ascii(p.camera));
  require(p.ip.size() <= 64 && printable_ascii(p.ip));
  require(p.images.size() <= kMaxPushImages);
  for (const PushImage& image : p.images) {
    require(!image.bytes.empty() && image.bytes.size() <= kMaxPushImageBytes);
    require(image.kind == "full" || image.kind == "plate" || image.kind == "vehicle");
  }
  if (p.kind == CameraPush::Kind::kHeartbeat) {
    require(p.event_id.empty() && p.plate_raw.empty() && p.images.empty());
    require(vendor != CameraVendor::kVzenith || vzenith_reply(p, true).empty());
    return;
  }
  require(!p.event_id.empty() && p.event_id.size() <= kMaxEventIdBytes);
  require(p.colour_raw.size() <= 32);
  require(p.plate_raw.size() <= kMaxPlateRawBytes);
  require(decode_text(p.plate_raw, TextEncoding::kUtf8).has_value());
  require(!p.plate_raw.empty() || p.no_plate);
  require(p.confidence >= 0 && p.confidence <= 1000);
  require(p.direction == "in" || p.direction == "out" || p.direction == "unknown");
  if (vendor == CameraVendor::kVzenith) {
    // The reply is JSON the camera can read, and an offline record never opens.
    for (bool open : {true, false}) {
      const std::string reply = vzenith_reply(p, open);
      boost::system::error_code ec;
      const boost::json::value v = boost::json::parse(reply, ec);
      require(!ec && v.is_object());
      const bool says_ok = reply.find(R"("info":"ok")") != std::string::npos;
      require(says_ok == (open && !p.offline));
    }
  }
}

}  // namespace camera_push_fuzz
