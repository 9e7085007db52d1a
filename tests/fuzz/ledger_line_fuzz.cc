// Fuzz target: one records.jsonl line as the fleet centre receives it from a box (and the
// package verifier reads it from a file). Properties: parsing never crashes; a parsed line
// prints back (jsonl_line) to a line that parses to the same record, and whether the line
// was canonical and its hash right is a pure function of the bytes (the ingest's checks).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/ledger.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace ledger = lanegate::ledger;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  auto e = ledger::parse_line(line);
  if (!e) return 0;
  const std::string printed = ledger::jsonl_line(*e);
  auto again = ledger::parse_line(printed);
  if (!again) __builtin_trap();
  if (ledger::jsonl_line(*again) != printed) __builtin_trap();
  if (again->seq != e->seq || again->hash != e->hash || again->prev_hash != e->prev_hash ||
      again->event.amount.fen() != e->event.amount.fen() ||
      again->event.detail != e->event.detail || again->event.plate != e->event.plate) {
    __builtin_trap();
  }
  // A canonical line with its own hash is exactly what the centre stores.
  if (printed == line && ledger::compute_hash(*e) == e->hash) {
    if (ledger::canonical_encoding(*e).empty()) __builtin_trap();
  }
  return 0;
}
