// libFuzzer target: the gateway's own adapter format, POST /anpr/events (spec
// lane-devices.md "Generic JSON push"). The whole input is the JSON body.
// Properties (camera_push_fuzz.h): no crash, leak or exception; a result is bounded
// (images, plate text, confidence) and its plate text is valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "camera_push_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  camera_push_fuzz::check(lanegate::lane::parse_push(lanegate::lane::CameraVendor::kGeneric,
                                                     "/anpr/events", "application/json", body),
                          lanegate::lane::CameraVendor::kGeneric);
  return 0;
}
