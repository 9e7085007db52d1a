// libFuzzer target: Vzenith (臻识) IVS pushes (spec lane-devices.md "Vzenith IVS push").
// The first byte picks the request's Content-Type: JSON plate result, multipart heartbeat
// (fixed boundary "vzfuzz") or url-encoded heartbeat; the rest is the body.
// Properties (camera_push_fuzz.h): no crash, leak or exception; a result is bounded
// (images, plate text, confidence), its plate text is valid UTF-8, and the reply built
// from it is JSON that says "ok" only when opening an online record.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "camera_push_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) {
    return 0;
  }
  static constexpr std::string_view kTypes[] = {"application/json",
                                                "multipart/form-data; boundary=vzfuzz",
                                                "application/x-www-form-urlencoded"};
  const std::string_view type = kTypes[data[0] % 3];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  camera_push_fuzz::check(
      lanegate::lane::parse_push(lanegate::lane::CameraVendor::kVzenith, "/vz", type, body),
      lanegate::lane::CameraVendor::kVzenith);
  return 0;
}
