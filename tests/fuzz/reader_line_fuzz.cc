// libFuzzer target: bytes from a rider-code reader's serial line (the cab's terminal).
// Properties: no crash/UB splitting lines and validating tokens; every line is bounded by
// kMaxLineBytes and carries no line end; an accepted token re-validates identically and is
// never empty; a refused line always has a named reason; feeding the same bytes in two
// chunks gives the same lines as feeding them at once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "lane/rider_token.h"

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
    auto token = validate_rider_token(line.text);
    if (token) {
      auto again = validate_rider_token(*token);
      if (token->empty() || !again || *again != *token) std::abort();
    } else if (rider_token_reject_reason(token.error()).empty()) {
      std::abort();
    }
  }
  return 0;
}
