#include "audit/audit.h"

#include <sys/stat.h>

#include <array>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <limits>
#include <sstream>
#include <system_error>

#include "core/log.h"
#include "core/metrics.h"

namespace lanegate::audit {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using ledger::json_quote;

constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE audit_seals (
  date            TEXT    NOT NULL,
  revision        INTEGER NOT NULL CHECK (revision >= 1),
  sealed_at_ms    INTEGER NOT NULL,
  first_seq       INTEGER NOT NULL,
  last_seq        INTEGER NOT NULL,
  last_hash       TEXT    NOT NULL,
  key_fingerprint TEXT    NOT NULL,
  seal_json       TEXT    NOT NULL,
  signature       TEXT    NOT NULL,
  PRIMARY KEY (date, revision)
) STRICT;
CREATE TRIGGER audit_seals_refuse_update BEFORE UPDATE ON audit_seals
BEGIN
  SELECT RAISE(ABORT, 'audit seals are append-only: UPDATE refused');
END;
CREATE TRIGGER audit_seals_refuse_delete BEFORE DELETE ON audit_seals
BEGIN
  SELECT RAISE(ABORT, 'audit seals are append-only: DELETE refused');
END;
)sql";

constexpr std::array<std::string_view, 1> kSchemaSteps{kSchemaV1};

std::int64_t to_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

void append_tally(std::string& out, const Tally& t) {
  out += ",\"count\":" + std::to_string(t.count) +
         ",\"amount_fen\":" + std::to_string(t.amount_fen) + "}";
}

template <typename Map, typename Fn>
void append_array(std::string& out, std::string_view name, const Map& map, Fn&& key_members) {
  out += "\"";
  out += name;
  out += "\":[";
  bool first = true;
  for (const auto& [key, tally] : map) {
    out += first ? "\n{" : ",\n{";
    first = false;
    key_members(out, key);
    append_tally(out, tally);
  }
  out += first ? "]" : "\n]";
}

// ---- strict JSON member access for parse_seal ----

Result<const json::value*> member(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) {
    return fail(Errc::kParse, "member is missing", std::string(key));
  }
  return &it->value();
}

Result<std::string> get_string(const json::object& o, std::string_view key) {
  auto v = member(o, key);
  if (!v) {
    return std::unexpected(v.error());
  }
  if (!(*v)->is_string()) {
    return fail(Errc::kParse, "must be a string", std::string(key));
  }
  return std::string((*v)->as_string());
}

Result<std::int64_t> get_int(const json::object& o, std::string_view key) {
  auto v = member(o, key);
  if (!v) {
    return std::unexpected(v.error());
  }
  if (!(*v)->is_int64()) {
    return fail(Errc::kParse, "must be an integer", std::string(key));
  }
  return (*v)->as_int64();
}

Result<Tally> get_tally(const json::object& o, std::string_view where) {
  auto c = get_int(o, "count");
  auto a = get_int(o, "amount_fen");
  if (!c || !a) {
    return fail(Errc::kParse, "needs integer count and amount_fen", std::string(where));
  }
  return Tally{*c, *a};
}

bool is_hex64(std::string_view s) {
  if (s.size() != 64) {
    return false;
  }
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

std::string day_number_to_date(std::int64_t day) {
  const std::chrono::year_month_day ymd{std::chrono::sys_days(std::chrono::days(day))};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

// Spreadsheet-safe CSV field: RFC 4180 quoting; a leading = + - @ TAB CR gets a "'" so a
// spreadsheet shows the text instead of evaluating it as a formula.
std::string csv_field(std::string_view v) {
  std::string s;
  if (!v.empty() &&
      (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' || v[0] == '\t' || v[0] == '\r')) {
    s.push_back('\'');
  }
  s.append(v);
  if (s.find_first_of(",\"\r\n") == std::string::npos) {
    return s;
  }
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') {
      q.push_back('"');
    }
    q.push_back(c);
  }
  q.push_back('"');
  return q;
}

Status write_file(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    return fail(Errc::kIo, "cannot write " + path.string());
  }
  std::error_code ec;
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read,
                  fs::perm_options::replace, ec);
  return {};
}

Result<SignedSeal> row_to_signed_seal(const Statement& st) {
  SignedSeal s;
  s.json = st.column_text(0);
  auto sig = crypto::base64_decode(st.column_text(1));
  if (!sig) {
    return fail(Errc::kDatabase, "stored seal signature is not Base64", "signature");
  }
  s.signature = std::move(*sig);
  auto seal = parse_seal(s.json);
  if (!seal) {
    return fail(Errc::kDatabase, "stored seal does not parse: " + seal.error().to_string());
  }
  s.seal = std::move(*seal);
  return s;
}

Result<std::optional<SignedSeal>> latest_seal_in(Database& db, std::string_view date) {
  auto st = db.prepare(
      "SELECT seal_json, signature FROM audit_seals WHERE date = ? ORDER BY revision DESC LIMIT 1");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind(1, date);
  auto row = st->step();
  if (!row) {
    return std::unexpected(row.error());
  }
  if (!*row) {
    return std::optional<SignedSeal>();
  }
  auto s = row_to_signed_seal(*st);
  if (!s) {
    return std::unexpected(s.error());
  }
  return std::optional<SignedSeal>(std::move(*s));
}

}  // namespace

std::span<const std::string_view> audit_schema_steps() { return kSchemaSteps; }

Result<signing::KeyPair> ensure_device_key(const fs::path& state_dir) {
  const fs::path key_path = state_dir / kDeviceKeyFile;
  auto key = signing::KeyPair::load_file(key_path);
  if (key || key.error().code != Errc::kNotFound) {
    return key;
  }
  auto fresh = signing::KeyPair::generate();
  if (!fresh) {
    return fresh;
  }
  if (auto s = fresh->save_file(key_path); !s) {
    return std::unexpected(s.error());
  }
  const signing::PublicKey pub = fresh->public_key();
  if (auto s = write_file(state_dir / kDevicePublicKeyFile, pub.hex() + "\n"); !s) {
    return std::unexpected(s.error());
  }
  std::error_code ec;
  fs::permissions(state_dir / kDevicePublicKeyFile,
                  fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                      fs::perms::others_read,
                  fs::perm_options::replace, ec);
  log::notice("generated the device signing key; register its public key with the authority",
              {{"KEY_FILE", key_path.string()}, {"FINGERPRINT", pub.fingerprint()}});
  return fresh;
}

Status SealTotals::add(const ledger::LedgerEntry& e) {
  const std::string kind(ledger::kind_name(e.event.kind));
  const Money amount = e.event.amount;
  auto bump = [&](Tally& t) -> Status {
    auto sum = Money::from_fen(t.amount_fen).add(amount);
    if (!sum) {
      return fail(Errc::kOverflow, "seal total overflows at seq " + std::to_string(e.seq),
                  "amount_fen");
    }
    t.amount_fen = sum->fen();
    ++t.count;
    return {};
  };
  ++record_count;
  if (auto s = bump(by_kind[kind]); !s) {
    return s;
  }
  if (auto s = bump(by_kind_state[{kind, e.event.state}]); !s) {
    return s;
  }
  return bump(by_lane_kind[{e.event.lane, kind}]);
}

std::string encode_seal(const Seal& s) {
  std::string out = "{\n";
  out += "\"format\":" + json_quote(s.format == 1 ? kSealFormatV1 : kSealFormat) + ",\n";
  out += "\"date\":" + json_quote(s.date) + ",\n";
  out += "\"utc_offset_minutes\":" + std::to_string(s.utc_offset_minutes) + ",\n";
  out += "\"revision\":" + std::to_string(s.revision) + ",\n";
  out += "\"sealed_at\":" + json_quote(ledger::format_time(s.sealed_at)) + ",\n";
  out += "\"gateway_key\":" + json_quote(s.gateway_key) + ",\n";
  out += "\"key_fingerprint\":" + json_quote(s.key_fingerprint) + ",\n";
  out += "\"first_seq\":" + std::to_string(s.first_seq) + ",\n";
  out += "\"last_seq\":" + std::to_string(s.last_seq) + ",\n";
  out += "\"first_prev_hash\":" + json_quote(s.first_prev_hash) + ",\n";
  out += "\"last_hash\":" + json_quote(s.last_hash) + ",\n";
  out += "\"record_count\":" + std::to_string(s.totals.record_count) + ",\n";
  append_array(out, "by_kind", s.totals.by_kind,
               [](std::string& o, const std::string& k) { o += "\"kind\":" + json_quote(k); });
  out += ",\n";
  append_array(out, "by_kind_state", s.totals.by_kind_state,
               [](std::string& o, const std::pair<std::string, std::string>& k) {
                 o += "\"kind\":" + json_quote(k.first) + ",\"state\":" + json_quote(k.second);
               });
  out += ",\n";
  append_array(out, "by_lane_kind", s.totals.by_lane_kind,
               [](std::string& o, const std::pair<std::string, std::string>& k) {
                 o += "\"lane\":" + json_quote(k.first) + ",\"kind\":" + json_quote(k.second);
               });
  if (s.format != 1) {
    out += ",\n\"clock_anomalies\":[";
    bool first = true;
    for (const ClockAnomaly& a : s.clock_anomalies) {
      out += first ? "\n{" : ",\n{";
      first = false;
      out += "\"seq\":" + std::to_string(a.seq) +
             ",\"time\":" + json_quote(ledger::format_time(a.time)) + "}";
    }
    out += first ? "]" : "\n]";
  }
  out += "\n}\n";
  return out;
}

Result<Seal> parse_seal(std::string_view text) {
  std::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec || !v.is_object()) {
    return fail(Errc::kParse, "seal is not a JSON object" + (ec ? ": " + ec.message() : ""));
  }
  const json::object& o = v.as_object();
  Seal s;
  auto format = get_string(o, "format");
  if (!format) {
    return std::unexpected(format.error());
  }
  if (*format == kSealFormat) {
    s.format = 2;
  } else if (*format == kSealFormatV1) {
    s.format = 1;
  } else {
    return fail(Errc::kParse, "unsupported seal format \"" + *format + "\"", "format");
  }
#define LANEGATE_SEAL_FIELD(getter, target, name) \
  do {                                            \
    auto r = getter(o, name);                     \
    if (!r) {                                     \
      return std::unexpected(r.error());          \
    }                                             \
    target = *r;                                  \
  } while (false)
  std::int64_t offset = 0;
  std::int64_t count = 0;
  std::string sealed_at;
  LANEGATE_SEAL_FIELD(get_string, s.date, "date");
  LANEGATE_SEAL_FIELD(get_int, offset, "utc_offset_minutes");
  LANEGATE_SEAL_FIELD(get_int, s.revision, "revision");
  LANEGATE_SEAL_FIELD(get_string, sealed_at, "sealed_at");
  LANEGATE_SEAL_FIELD(get_string, s.gateway_key, "gateway_key");
  LANEGATE_SEAL_FIELD(get_string, s.key_fingerprint, "key_fingerprint");
  LANEGATE_SEAL_FIELD(get_int, s.first_seq, "first_seq");
  LANEGATE_SEAL_FIELD(get_int, s.last_seq, "last_seq");
  LANEGATE_SEAL_FIELD(get_string, s.first_prev_hash, "first_prev_hash");
  LANEGATE_SEAL_FIELD(get_string, s.last_hash, "last_hash");
  LANEGATE_SEAL_FIELD(get_int, count, "record_count");
#undef LANEGATE_SEAL_FIELD
  if (offset < -24 * 60 || offset > 24 * 60) {
    return fail(Errc::kOutOfRange, "must be within one day", "utc_offset_minutes");
  }
  s.utc_offset_minutes = static_cast<int>(offset);
  if (auto d = parse_local_date(s.date, UtcOffset{s.utc_offset_minutes}); !d) {
    return fail(Errc::kParse, d.error().message, "date");
  }
  auto t = ledger::parse_time(sealed_at);
  if (!t) {
    return fail(Errc::kParse, t.error().message, "sealed_at");
  }
  s.sealed_at = *t;
  if (!is_hex64(s.first_prev_hash)) {
    return fail(Errc::kParse, "must be 64 lower-case hex digits", "first_prev_hash");
  }
  if (!is_hex64(s.last_hash)) {
    return fail(Errc::kParse, "must be 64 lower-case hex digits", "last_hash");
  }
  s.totals.record_count = count;
  // The range must be one the format can express, so that range_count() is never negative.
  const bool range_ok = s.format == 1 ? (s.first_seq == 0 && s.last_seq == 0) ||
                                            (s.first_seq >= 1 && s.last_seq >= s.first_seq)
                                      : s.first_seq >= 1 && s.last_seq >= s.first_seq - 1;
  if (!range_ok) {
    return fail(Errc::kParse,
                "first_seq " + std::to_string(s.first_seq) + " and last_seq " +
                    std::to_string(s.last_seq) + " are not a range of format " +
                    std::to_string(s.format),
                "last_seq");
  }

  auto array_of = [&](std::string_view name) -> Result<const json::array*> {
    auto m = member(o, name);
    if (!m) {
      return std::unexpected(m.error());
    }
    if (!(*m)->is_array()) {
      return fail(Errc::kParse, "must be an array", std::string(name));
    }
    for (const json::value& item : (*m)->as_array()) {
      if (!item.is_object()) {
        return fail(Errc::kParse, "items must be objects", std::string(name));
      }
    }
    return &(*m)->as_array();
  };
  auto by_kind = array_of("by_kind");
  auto by_kind_state = array_of("by_kind_state");
  auto by_lane_kind = array_of("by_lane_kind");
  for (auto* a : {&by_kind, &by_kind_state, &by_lane_kind}) {
    if (!*a) {
      return std::unexpected(a->error());
    }
  }
  for (const json::value& item : **by_kind) {
    const auto& io = item.as_object();
    auto k = get_string(io, "kind");
    auto t2 = get_tally(io, "by_kind");
    if (!k || !t2) {
      return fail(Errc::kParse, "items need kind, count, amount_fen", "by_kind");
    }
    s.totals.by_kind[*k] = *t2;
  }
  for (const json::value& item : **by_kind_state) {
    const auto& io = item.as_object();
    auto k = get_string(io, "kind");
    auto st = get_string(io, "state");
    auto t2 = get_tally(io, "by_kind_state");
    if (!k || !st || !t2) {
      return fail(Errc::kParse, "items need kind, state, count, amount_fen", "by_kind_state");
    }
    s.totals.by_kind_state[{*k, *st}] = *t2;
  }
  for (const json::value& item : **by_lane_kind) {
    const auto& io = item.as_object();
    auto l = get_string(io, "lane");
    auto k = get_string(io, "kind");
    auto t2 = get_tally(io, "by_lane_kind");
    if (!l || !k || !t2) {
      return fail(Errc::kParse, "items need lane, kind, count, amount_fen", "by_lane_kind");
    }
    s.totals.by_lane_kind[{*l, *k}] = *t2;
  }
  if (s.format == 1) {
    return s;
  }
  auto anomalies = array_of("clock_anomalies");
  if (!anomalies) {
    return std::unexpected(anomalies.error());
  }
  for (const json::value& item : **anomalies) {
    const auto& io = item.as_object();
    auto seq = get_int(io, "seq");
    auto time = get_string(io, "time");
    if (!seq || !time) {
      return fail(Errc::kParse, "items need seq and time", "clock_anomalies");
    }
    auto t2 = ledger::parse_time(*time);
    if (!t2) {
      return fail(Errc::kParse, "time: " + t2.error().message, "clock_anomalies");
    }
    // In seq order, inside the range: each names one sealed record.
    const std::int64_t after =
        s.clock_anomalies.empty() ? s.first_seq - 1 : s.clock_anomalies.back().seq;
    if (*seq <= after || *seq > s.last_seq) {
      return fail(Errc::kParse,
                  "seq " + std::to_string(*seq) + " is out of order or outside the range",
                  "clock_anomalies");
    }
    s.clock_anomalies.push_back(ClockAnomaly{*seq, *t2});
  }
  return s;
}

namespace {

constexpr std::int64_t kDayMs = 86'400'000;

// Local day number (days since 1970-01-01 at `offset`) of a date; the date is valid.
Result<std::int64_t> day_number(std::string_view date, UtcOffset offset) {
  auto start = parse_local_date(date, offset);
  if (!start) {
    return fail(Errc::kInvalidArgument, start.error().message, "date");
  }
  return (to_ms(*start) + static_cast<std::int64_t>(offset.minutes) * 60'000) / kDayMs;
}

Result<std::int64_t> query_int(Database& db, std::string_view sql, std::string_view date) {
  auto st = db.prepare(sql);
  if (!st) {
    return std::unexpected(st.error());
  }
  if (!date.empty()) {
    st->bind(1, date);
  }
  auto row = st->step();
  if (!row) {
    return std::unexpected(row.error());
  }
  return *row && !st->column_is_null(0) ? st->column_int64(0) : 0;
}

// Where the chain of seals ends: its newest date, and how far the seals reach.
struct SealFront {
  std::string latest_date;         // "" when nothing is sealed
  std::int64_t before_latest = 0;  // largest last_seq sealed for a date before it
  std::int64_t sealed = 0;         // largest last_seq sealed at all
};

Result<SealFront> seal_front(Database& db) {
  SealFront f;
  auto st = db.prepare("SELECT MAX(date) FROM audit_seals");
  if (!st) {
    return std::unexpected(st.error());
  }
  auto row = st->step();
  if (!row) {
    return std::unexpected(row.error());
  }
  if (!*row || st->column_is_null(0)) {
    return f;
  }
  f.latest_date = st->column_text(0);
  auto before =
      query_int(db, "SELECT MAX(last_seq) FROM audit_seals WHERE date < ?", f.latest_date);
  auto all = query_int(db, "SELECT MAX(last_seq) FROM audit_seals", "");
  if (!before || !all) {
    return std::unexpected(!before ? before.error() : all.error());
  }
  f.before_latest = *before;
  f.sealed = *all;
  return f;
}

// The dates before local day `limit` that sealing in date order would give unsealed
// records (days_needing_seal), simulating P1 without writing: the seal of a date d takes
// every record up to the largest seq stamped on or before d.
Result<std::vector<std::string>> pending_days(Database& db, UtcOffset offset, std::int64_t limit) {
  auto front = seal_front(db);
  if (!front) {
    return std::unexpected(front.error());
  }
  std::int64_t latest_day = std::numeric_limits<std::int64_t>::min();
  if (!front->latest_date.empty()) {
    auto d = day_number(front->latest_date, offset);
    if (!d) {
      return std::unexpected(d.error());
    }
    latest_day = *d;
  }
  const std::int64_t off_ms = static_cast<std::int64_t>(offset.minutes) * 60'000;
  // Records after the seals of the dates before the newest one: the newest date's own
  // records, and everything not sealed yet.
  auto days = db.prepare(
      "SELECT (time_ms + ?1) / 86400000 AS day, MAX(seq) FROM ledger WHERE seq > ?2 "
      "GROUP BY day ORDER BY day");
  if (!days) {
    return std::unexpected(days.error());
  }
  days->bind_all(off_ms, front->before_latest);
  std::vector<std::string> out;
  std::int64_t frontier = front->sealed;
  std::int64_t reach = 0;  // the largest seq stamped on or before the current day
  for (;;) {
    auto row = days->step();
    if (!row) {
      return std::unexpected(row.error());
    }
    if (!*row) {
      break;
    }
    const std::int64_t day = days->column_int64(0);
    reach = std::max(reach, days->column_int64(1));
    if (day >= limit) {
      break;
    }
    if (day < latest_day) {
      continue;  // final (P4): what was stamped with it goes to the next date sealed
    }
    if (reach > frontier) {
      out.push_back(day_number_to_date(day));
      frontier = reach;
    }
  }
  return out;
}

struct SealOutcome {
  SignedSeal seal;
  bool made = false;  // false: an existing revision was returned (S2, P4)
};

// Seals one date by P1..P4. REQUIRES: a transaction is open on `db`.
Result<SealOutcome> seal_one(Database& db, std::string_view date, UtcOffset offset,
                             const signing::KeyPair& key, const Clock& clock) {
  auto day_start = parse_local_date(date, offset);
  if (!day_start) {
    return fail(Errc::kInvalidArgument, day_start.error().message, "date");
  }
  const SystemTime day_end = *day_start + std::chrono::hours(24);
  auto previous = latest_seal_in(db, date);
  if (!previous) {
    return std::unexpected(previous.error());
  }
  auto later = query_int(db, "SELECT COUNT(*) FROM audit_seals WHERE date > ?", date);
  if (!later) {
    return std::unexpected(later.error());
  }
  const bool final_day = *later > 0;
  if (final_day && previous->has_value()) {
    return SealOutcome{std::move(**previous), false};  // P4
  }
  auto from = query_int(db, "SELECT MAX(last_seq) FROM audit_seals WHERE date < ?", date);
  if (!from) {
    return std::unexpected(from.error());
  }
  const std::int64_t after = *from;  // F of P1
  std::int64_t last = after;         // B of P1
  if (!final_day) {
    auto stamped = ledger::last_seq_stamped_before(db, after, day_end);
    if (!stamped) {
      return std::unexpected(stamped.error());
    }
    last = std::max(last, *stamped);
    if (previous->has_value()) {
      last = std::max(last, (*previous)->seal.last_seq);  // a revision never unseals (S1)
    }
  }

  const signing::PublicKey pub = key.public_key();
  Seal seal;
  seal.date = std::string(date);
  seal.utc_offset_minutes = offset.minutes;
  seal.sealed_at = clock.now();
  seal.gateway_key = pub.hex();
  seal.key_fingerprint = pub.fingerprint();
  seal.first_seq = after + 1;
  seal.last_seq = last;
  // An empty day keeps its place: both hashes are the hash the chain stands at (P2).
  seal.first_prev_hash = std::string(ledger::kGenesisHash);
  if (after > 0) {
    auto at = ledger::read(db, ledger::SeqRange{after, after});
    if (!at) {
      return std::unexpected(at.error());
    }
    if (at->empty()) {
      return fail(Errc::kDatabase, "ledger record " + std::to_string(after) + " is missing");
    }
    seal.first_prev_hash = at->front().hash;
  }
  seal.last_hash = seal.first_prev_hash;
  std::int64_t expected = seal.first_seq;
  auto s = ledger::for_each(
      db, ledger::SeqRange{seal.first_seq, seal.last_seq},
      [&](const ledger::LedgerEntry& e) -> Status {
        if (e.seq != expected) {
          return fail(Errc::kDatabase, "ledger record " + std::to_string(expected) + " is missing");
        }
        if (e.seq == seal.first_seq) {
          seal.first_prev_hash = e.prev_hash;
        }
        seal.last_hash = e.hash;
        ++expected;
        if (e.event.time < *day_start || e.event.time >= day_end) {
          seal.clock_anomalies.push_back(ClockAnomaly{e.seq, e.event.time});
        }
        return seal.totals.add(e);
      });
  if (!s) {
    return std::unexpected(s.error());
  }
  if (expected != seal.last_seq + 1) {
    return fail(Errc::kDatabase, "ledger record " + std::to_string(expected) + " is missing");
  }
  if (previous->has_value()) {
    const Seal& p = (*previous)->seal;
    if (p.format == seal.format && p.first_seq == seal.first_seq && p.last_seq == seal.last_seq &&
        p.last_hash == seal.last_hash && p.key_fingerprint == seal.key_fingerprint &&
        p.utc_offset_minutes == seal.utc_offset_minutes) {
      return SealOutcome{std::move(**previous), false};  // S2: already sealed as it stands
    }
    seal.revision = p.revision + 1;
  }
  SignedSeal signed_seal;
  signed_seal.json = encode_seal(seal);
  auto sig = key.sign(signed_seal.json);
  if (!sig) {
    return std::unexpected(sig.error());
  }
  signed_seal.signature = std::move(*sig);
  auto ins = db.prepare(
      "INSERT INTO audit_seals (date, revision, sealed_at_ms, first_seq, last_seq, last_hash, "
      "key_fingerprint, seal_json, signature) VALUES (?,?,?,?,?,?,?,?,?)");
  if (!ins) {
    return std::unexpected(ins.error());
  }
  ins->bind_all(seal.date, seal.revision, to_ms(seal.sealed_at), seal.first_seq, seal.last_seq,
                seal.last_hash, seal.key_fingerprint, signed_seal.json,
                crypto::base64_encode(signed_seal.signature));
  if (auto r = ins->run(); !r) {
    return std::unexpected(r.error());
  }
  signed_seal.seal = std::move(seal);
  return SealOutcome{std::move(signed_seal), true};
}

void announce(const Seal& seal) {
  metrics::Registry::global()
      .counter("lanegate_audit_seals_total", "Day seals signed and stored")
      .inc();
  log::info("sealed audit day", {{"DATE", seal.date},
                                 {"REVISION", seal.revision},
                                 {"FIRST_SEQ", seal.first_seq},
                                 {"LAST_SEQ", seal.last_seq}});
  if (!seal.clock_anomalies.empty()) {
    // Sealed once, where the chain put them; the operator should look at the clock.
    log::warn("sealed day holds records timed outside it: the clock was stepped or wrong",
              {{"DATE", seal.date},
               {"ANOMALIES", static_cast<std::int64_t>(seal.clock_anomalies.size())},
               {"FIRST_ANOMALY_SEQ", seal.clock_anomalies.front().seq}});
  }
}

}  // namespace

Result<std::vector<SignedSeal>> seal_through(Database& db, std::string_view date, UtcOffset offset,
                                             const signing::KeyPair& key, const Clock& clock) {
  auto day = day_number(date, offset);
  if (!day) {
    return std::unexpected(day.error());
  }
  const std::string today = format_local_date(clock.now(), offset);
  if (date > std::string_view(today)) {
    return fail(
        Errc::kOutOfRange,
        "cannot seal " + std::string(date) + ": the day has not begun (today is " + today + ")",
        "date");
  }
  // One IMMEDIATE transaction: ranges, totals and revision numbers are read from one
  // consistent state, and two sealers cannot take the same revision or place.
  auto txn = db.begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  auto earlier = pending_days(db, offset, *day);
  if (!earlier) {
    return std::unexpected(earlier.error());
  }
  earlier->push_back(std::string(date));
  std::vector<SealOutcome> outcomes;
  for (const std::string& d : *earlier) {
    auto one = seal_one(db, d, offset, key, clock);
    if (!one) {
      return std::unexpected(one.error());
    }
    outcomes.push_back(std::move(*one));
  }
  if (auto s = txn->commit(); !s) {
    return std::unexpected(s.error());
  }
  std::vector<SignedSeal> seals;
  for (SealOutcome& o : outcomes) {
    if (o.made) {
      announce(o.seal.seal);
    }
    seals.push_back(std::move(o.seal));
  }
  return seals;
}

Result<SignedSeal> seal_day(Database& db, std::string_view date, UtcOffset offset,
                            const signing::KeyPair& key, const Clock& clock) {
  auto seals = seal_through(db, date, offset, key, clock);
  if (!seals) {
    return std::unexpected(seals.error());
  }
  return std::move(seals->back());
}

Result<std::optional<SignedSeal>> latest_seal(Database& db, std::string_view date) {
  return latest_seal_in(db, date);
}

Result<std::vector<std::string>> days_needing_seal(Database& db, UtcOffset offset, SystemTime now) {
  const std::int64_t today =
      (to_ms(now) + static_cast<std::int64_t>(offset.minutes) * 60'000) / kDayMs;
  return pending_days(db, offset, today);
}

Result<std::vector<SignedSeal>> seal_pending_days(Database& db, UtcOffset offset,
                                                  const signing::KeyPair& key, const Clock& clock) {
  auto days = days_needing_seal(db, offset, clock.now());
  if (!days) {
    return std::unexpected(days.error());
  }
  if (days->empty()) {
    return std::vector<SignedSeal>{};
  }
  // Sealing the newest pending day seals the ones before it first (P5).
  auto made = seal_through(db, days->back(), offset, key, clock);
  if (!made) {
    log::error("sealing audit days failed; will retry",
               {{"DATE", days->back()}, {"ERROR", made.error().to_string()}});
  }
  return made;
}

SystemTime next_seal_time(SystemTime now, UtcOffset offset, std::chrono::seconds grace) {
  using namespace std::chrono;
  const auto shift = minutes(offset.minutes);
  const auto local = time_point_cast<seconds>(now) + shift;
  const auto next_midnight = floor<days>(local) + days(1);
  return SystemTime(next_midnight - shift + grace);
}

std::string csv_header() {
  return "seq,time_utc,time_local,kind,lane,plate,out_trade_no,amount_yuan,amount_fen,state,actor,"
         "detail,prev_hash,hash\r\n";
}

std::string csv_row(const ledger::LedgerEntry& e, UtcOffset offset) {
  std::string row;
  row += std::to_string(e.seq) + ",";
  row += ledger::format_time(e.event.time) + ",";
  row += format_rfc3339(e.event.time, offset) + ",";
  row += csv_field(ledger::kind_name(e.event.kind)) + ",";
  row += csv_field(e.event.lane) + ",";
  row += csv_field(e.event.plate) + ",";
  row += csv_field(e.event.out_trade_no) + ",";
  row += e.event.amount.to_string() + ",";
  row += std::to_string(e.event.amount.fen()) + ",";
  row += csv_field(e.event.state) + ",";
  row += csv_field(e.event.actor) + ",";
  row += csv_field(e.event.detail) + ",";
  row += e.prev_hash + ",";
  row += e.hash + "\r\n";
  return row;
}

Status export_package(Database& db, const SignedSeal& seal, const fs::path& dir) {
  return export_package(
      seal,
      [&](const std::function<Status(const ledger::LedgerEntry&)>& visit) -> Status {
        return ledger::for_each(db, ledger::SeqRange{seal.seal.first_seq, seal.seal.last_seq},
                                visit);
      },
      dir);
}

Status export_package(const SignedSeal& seal, const RecordSource& records, const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    return fail(Errc::kAlreadyExists, "package directory " + dir.string() + " already exists",
                "out");
  }
  const fs::path partial = dir.string() + ".partial";
  fs::remove_all(partial, ec);  // a previous export that crashed half-way (derived data)
  if (!fs::create_directories(partial, ec) && ec) {
    return fail(Errc::kIo, "cannot create " + partial.string() + ": " + ec.message(), "out");
  }
  fs::permissions(partial, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec,
                  fs::perm_options::replace, ec);
  const UtcOffset offset{seal.seal.utc_offset_minutes};
  {
    std::ofstream jsonl(partial / "records.jsonl", std::ios::binary);
    std::ofstream csv(partial / "records.csv", std::ios::binary);
    csv << "\xEF\xBB\xBF" << csv_header();  // BOM: spreadsheets then read UTF-8 plates right
    if (seal.seal.range_count() > 0) {
      auto s = records([&](const ledger::LedgerEntry& e) -> Status {
        jsonl << ledger::jsonl_line(e) << '\n';
        csv << csv_row(e, offset);
        return {};
      });
      if (!s) {
        return s;
      }
    }
    jsonl.close();
    csv.close();
    if (!jsonl || !csv) {
      return fail(Errc::kIo, "cannot write the records into " + partial.string(), "out");
    }
  }
  if (auto s = write_file(partial / "seal.json", seal.json); !s) {
    return s;
  }
  if (auto s = write_file(partial / "seal.sig", crypto::base64_encode(seal.signature) + "\n"); !s) {
    return s;
  }
  for (const char* name : {"records.jsonl", "records.csv"}) {
    fs::permissions(partial / name,
                    fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read,
                    fs::perm_options::replace, ec);
  }
  fs::rename(partial, dir, ec);
  if (ec) {
    return fail(Errc::kIo,
                "cannot rename " + partial.string() + " to " + dir.string() + ": " + ec.message(),
                "out");
  }
  metrics::Registry::global()
      .counter("lanegate_audit_packages_exported_total", "Settlement packages written")
      .inc();
  return {};
}

}  // namespace lanegate::audit
