// libFuzzer target: Dahua ITSAPI pushes (spec lane-devices.md "Dahua ITSAPI push, JSON").
// The first byte picks the path: even = /NotificationInfo/TollgateInfo (plate), odd =
// /NotificationInfo/KeepAlive (heartbeat); the rest is the JSON body.
// Properties (camera_push_fuzz.h): no crash, leak or exception; a result is bounded
// (images, plate text, confidence) and its plate text is valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "camera_push_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) {
    return 0;
  }
  const std::string_view path =
      data[0] % 2 == 0 ? "/NotificationInfo/TollgateInfo" : "/NotificationInfo/KeepAlive";
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  camera_push_fuzz::check(lanegate::lane::parse_push(lanegate::lane::CameraVendor::kDahua, path,
                                                     "application/json", body),
                          lanegate::lane::CameraVendor::kDahua);
  return 0;
}
