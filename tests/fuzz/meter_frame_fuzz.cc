// libFuzzer target: JT/T 905 meter frames from the serial line (outside bytes).
// Properties checked: no crash/UB in the single-frame and stream decoders or the body
// decoders (trip record 0x00E8/0x00F2, trip start 0x00E7 time, 0x0000 status); every
// frame the stream decoder yields re-encodes to bytes that decode to the same frame; a
// decoded trip start or status re-encodes to the bytes it came from; the decoder
// consumes everything (no unbounded buffering).
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <span>

#include "lane/meter_frame.h"

using namespace lanegate::lane;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  if (auto f = decode_meter_frame(bytes)) {
    (void)decode_trip_record(f->body);
    (void)check_meter_frame_body(*f);
    (void)meter_frame_json(*f);
  }
  MeterStreamDecoder dec;
  // Feed in two chunks to exercise partial frames.
  const std::size_t half = size / 2;
  for (auto chunk : {bytes.first(half), bytes.subspan(half)}) {
    dec.feed(chunk);
    while (auto item = dec.next()) {
      if (auto* f = std::get_if<MeterFrame>(&*item)) {
        auto again = decode_meter_frame(encode_meter_frame(*f));
        if (!again || again->body != f->body || again->cmd != f->cmd) {
          std::abort();
        }
        if (auto t = decode_trip_record(f->body)) {
          if (t->fare.fen() < 0 || t->alighting < t->boarding) {
            std::abort();
          }
        }
        // The same body read as a trip start time and as a status reply.
        if (auto t = decode_meter_time(f->body, "occupied_at")) {
          const auto back = encode_meter_time(*t);
          if (!std::equal(back.begin(), back.end(), f->body.begin())) std::abort();
        }
        if (auto s = decode_meter_status(f->body)) {
          auto back = encode_meter_status(*s);
          // ASCII fields are cleaned for logs, so compare the numeric head only.
          if (!back || !std::equal(back->begin(), back->begin() + 10, f->body.begin())) {
            std::abort();
          }
        }
      }
    }
  }
  if (dec.buffered() > kMaxFrameLen + 7) {
    std::abort();
  }
  return 0;
}
