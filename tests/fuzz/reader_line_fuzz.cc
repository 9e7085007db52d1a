// libFuzzer target: bytes from a payment-code reader's serial line (the cab's terminal).
// Properties: no crash/UB splitting lines and validating codes; every line is bounded by
// kMaxLineBytes and carries no line end; an accepted code is 18 digits with a prefix
// 10..15 and re-validates identically; a refused line always has a named reason and its
// message never contains the line; feeding the same bytes in two chunks gives the same
// lines as feeding them at once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "lane/payment_code.h"

using namespace lanegate::lane;

namespace {

std::vector<ReaderLineSplitter::Line> split(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  ReaderLineSplitter s;
  s.feed(a);
  s.feed(b);
  std::vector<ReaderLineSplitter::Line> out;
  while (auto line = s.next()) out.push_back(*line);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> all(data, size);
  const std::size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  const auto whole = split(all, {});
  const auto chunked = split(all.first(cut), all.subspan(cut));
  if (whole.size() != chunked.size()) std::abort();
  for (std::size_t i = 0; i < whole.size(); ++i) {
    const auto& line = whole[i];
    if (line.text != chunked[i].text || line.overlong != chunked[i].overlong) std::abort();
    if (line.text.size() > ReaderLineSplitter::kMaxLineBytes) std::abort();
    if (line.text.find_first_of("\r\n") != std::string::npos) std::abort();
    if (line.overlong) continue;
    auto code = validate_payment_code(line.text);
    if (code) {
      auto again = validate_payment_code(*code);
      if (code->size() != kPaymentCodeLength || !again || *again != *code) std::abort();
      if ((*code)[0] != '1' || (*code)[1] > '5') std::abort();
    } else {
      if (payment_code_reject_reason(code.error()).empty()) std::abort();
      const bool digits = line.text.find_first_not_of("0123456789") == std::string::npos;
      if (digits && line.text.size() >= 4 &&
          code.error().message.find(line.text) != std::string::npos) {
        std::abort();
      }
    }
  }
  return 0;
}
