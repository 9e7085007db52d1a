// One line of records.jsonl read back: the twelve members in canonical order with their JSON
// types (used by the package verifier and by the fleet centre's ingest, on bytes from outside).
#include <boost/json.hpp>

#include "core/ledger.h"

namespace lanegate::ledger {
namespace {
namespace json = boost::json;
// The record members in canonical order, with their JSON types.
constexpr std::string_view kRecordKeys[] = {"seq",   "time",         "kind",       "lane",
                                            "plate", "out_trade_no", "amount_fen", "state",
                                            "actor", "detail",       "prev_hash",  "hash"};

}  // namespace

Result<LedgerEntry> parse_line(std::string_view line) {
  std::error_code ec;
  json::value v = json::parse(json::string_view(line.data(), line.size()), ec);
  if (ec) {
    return fail(Errc::kParse, "not JSON: " + ec.message());
  }
  if (!v.is_object()) {
    return fail(Errc::kParse, "not a JSON object");
  }
  const json::object& o = v.as_object();
  if (o.size() != std::size(kRecordKeys)) {
    return fail(Errc::kParse, "has " + std::to_string(o.size()) + " members, expected " +
                                  std::to_string(std::size(kRecordKeys)));
  }
  std::size_t i = 0;
  for (const auto& kv : o) {
    if (std::string_view(kv.key()) != kRecordKeys[i]) {
      return fail(Errc::kParse, "member " + std::to_string(i + 1) + " is \"" +
                                    std::string(kv.key()) + "\", expected \"" +
                                    std::string(kRecordKeys[i]) + "\"");
    }
    const bool want_int = kRecordKeys[i] == "seq" || kRecordKeys[i] == "amount_fen";
    if (want_int ? !kv.value().is_int64() : !kv.value().is_string()) {
      return fail(Errc::kParse, std::string(want_int ? "must be an integer" : "must be a string"),
                  std::string(kRecordKeys[i]));
    }
    ++i;
  }
  auto str = [&](std::string_view k) { return std::string(o.at(k).as_string()); };
  LedgerEntry e;
  e.seq = o.at("seq").as_int64();
  auto t = parse_time(str("time"));
  if (!t) {
    return std::unexpected(t.error());
  }
  e.event.time = *t;
  auto kind = parse_kind(str("kind"));
  if (!kind) {
    return fail(Errc::kParse, "unknown kind \"" + str("kind") + "\"", "kind");
  }
  e.event.kind = *kind;
  e.event.lane = str("lane");
  e.event.plate = str("plate");
  e.event.out_trade_no = str("out_trade_no");
  e.event.amount = Money::from_fen(o.at("amount_fen").as_int64());
  e.event.state = str("state");
  e.event.actor = str("actor");
  e.event.detail = str("detail");
  e.prev_hash = str("prev_hash");
  e.hash = str("hash");
  return e;
}

}  // namespace lanegate::ledger
