// libFuzzer target: Hikvision ISAPI ANPR pushes (spec lane-devices.md "Hikvision ISAPI
// push, XML"). The first byte picks the shape: even = multipart/form-data with the fixed
// boundary "hikfuzz" (GMime, then pugixml on the anpr.xml part), odd = the XML alone
// (application/xml); the rest is the body.
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
  const std::string_view type =
      data[0] % 2 == 0 ? "multipart/form-data; boundary=hikfuzz" : "application/xml";
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  camera_push_fuzz::check(
      lanegate::lane::parse_push(lanegate::lane::CameraVendor::kHikvision, "/hik", type, body),
      lanegate::lane::CameraVendor::kHikvision);
  return 0;
}
