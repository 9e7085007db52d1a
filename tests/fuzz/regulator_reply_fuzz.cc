// libFuzzer target: bytes from the regulator platform's TCP connection (outside bytes).
// Properties checked: no crash/UB in the stream splitter, the frame decoder or the 0x8001
// reply decoder; every frame that decodes re-encodes to bytes that decode to the same
// message; the splitter never buffers more than one frame's worth.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "gateway/regulator.h"

using namespace lanegate::gateway;

namespace {

void check(std::span<const std::uint8_t> wire) {
  auto f = decode_jt905_frame(wire);
  if (!f) return;
  (void)decode_general_reply(f->body);
  auto again = decode_jt905_frame(encode_jt905_frame(*f));
  if (!again || again->msg_id != f->msg_id || again->isu_id != f->isu_id ||
      again->serial != f->serial || again->body != f->body) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  check(bytes);
  Jt905StreamSplitter splitter;
  // Two chunks exercise frames split across reads.
  const std::size_t half = size / 2;
  for (auto chunk : {bytes.first(half), bytes.subspan(half)}) {
    splitter.feed(chunk);
    while (auto frame = splitter.next()) check(*frame);
  }
  if (splitter.buffered() > kJt905MaxFrameBytes) std::abort();
  return 0;
}
