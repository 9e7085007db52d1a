#include "core/ledger.h"

#include <array>
#include <chrono>
#include <cstdio>

#include "core/crypto.h"
#include "core/metrics.h"

namespace lanegate::ledger {
namespace {

using namespace std::chrono;

struct KindName {
  Kind kind;
  std::string_view name;
};

// Order = enum order. The names are hashed into every record: never change one.
constexpr std::array<KindName, 13> kKinds{{
    {Kind::kDecision, "decision"},
    {Kind::kChargeSubmitted, "charge_submitted"},
    {Kind::kChargeAccepted, "charge_accepted"},
    {Kind::kChargeSettled, "charge_settled"},
    {Kind::kChargeFailed, "charge_failed"},
    {Kind::kChargeUnknown, "charge_unknown"},
    {Kind::kRefund, "refund"},
    {Kind::kManualOpen, "manual_open"},
    {Kind::kInvoiceIssued, "invoice_issued"},
    {Kind::kInvoiceReversed, "invoice_reversed"},
    {Kind::kArrears, "arrears"},
    {Kind::kArrearsCleared, "arrears_cleared"},
    {Kind::kCorrection, "correction"},
}};

constexpr std::array<Kind, kKinds.size()> kAllKinds = [] {
  std::array<Kind, kKinds.size()> out{};
  for (std::size_t i = 0; i < kKinds.size(); ++i) {
    out[i] = kKinds[i].kind;
  }
  return out;
}();

// Version 1 of the ledger schema. STRICT: a wrong type is an error, not a conversion.
constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE ledger (
  seq          INTEGER PRIMARY KEY CHECK (seq >= 1),
  kind         TEXT    NOT NULL,
  time_ms      INTEGER NOT NULL,
  lane         TEXT    NOT NULL,
  plate        TEXT    NOT NULL,
  out_trade_no TEXT    NOT NULL,
  amount_fen   INTEGER NOT NULL CHECK (amount_fen >= 0),
  state        TEXT    NOT NULL,
  actor        TEXT    NOT NULL,
  detail       TEXT    NOT NULL CHECK (json_valid(detail)),
  prev_hash    TEXT    NOT NULL CHECK (length(prev_hash) = 64),
  hash         TEXT    NOT NULL UNIQUE CHECK (length(hash) = 64)
) STRICT;
CREATE INDEX ledger_by_time ON ledger(time_ms);
CREATE INDEX ledger_by_out_trade_no ON ledger(out_trade_no) WHERE out_trade_no <> '';
CREATE TRIGGER ledger_refuses_update BEFORE UPDATE ON ledger
BEGIN
  SELECT RAISE(ABORT, 'ledger is append-only: UPDATE refused');
END;
CREATE TRIGGER ledger_refuses_delete BEFORE DELETE ON ledger
BEGIN
  SELECT RAISE(ABORT, 'ledger is append-only: DELETE refused');
END;
CREATE TRIGGER ledger_insert_continues_chain BEFORE INSERT ON ledger
WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM ledger)
  OR NEW.prev_hash IS NOT COALESCE((SELECT hash FROM ledger ORDER BY seq DESC LIMIT 1),
                                   '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
  SELECT RAISE(ABORT, 'ledger append must continue the chain (seq = last + 1, prev_hash = last hash)');
END;
)sql";

constexpr std::array<std::string_view, 1> kSchemaSteps{kSchemaV1};

constexpr std::string_view kSelectColumns =
    "SELECT seq, kind, time_ms, lane, plate, out_trade_no, amount_fen, state, actor, detail, "
    "prev_hash, hash FROM ledger ";

std::int64_t to_ms(SystemTime t) {
  return duration_cast<milliseconds>(t.time_since_epoch()).count();
}

SystemTime from_ms(std::int64_t ms) {
  return SystemTime(duration_cast<SystemTime::duration>(milliseconds(ms)));
}

// 1970-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z: four-digit years only.
constexpr std::int64_t kMaxTimeMs = 253402300799999;

Result<LedgerEntry> row_to_entry(const Statement& st) {
  LedgerEntry e;
  e.seq = st.column_int64(0);
  const std::string kind = st.column_text(1);
  auto k = parse_kind(kind);
  if (!k) {
    return fail(Errc::kDatabase,
                "ledger record " + std::to_string(e.seq) + " has unknown kind \"" + kind + "\"",
                "kind");
  }
  e.event.kind = *k;
  e.event.time = from_ms(st.column_int64(2));
  e.event.lane = st.column_text(3);
  e.event.plate = st.column_text(4);
  e.event.out_trade_no = st.column_text(5);
  e.event.amount = Money::from_fen(st.column_int64(6));
  e.event.state = st.column_text(7);
  e.event.actor = st.column_text(8);
  e.event.detail = st.column_text(9);
  e.prev_hash = st.column_text(10);
  e.hash = st.column_text(11);
  return e;
}

void append_quoted(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

// Refused events are a caller's bug (the event never reaches the ledger, and the caller's
// transaction fails): count them so that it shows on the dashboard.
void count_rejected(const std::string& field) {
  metrics::Registry::global()
      .counter("lanegate_ledger_append_rejected_total", "Ledger events refused by validation",
               {{"field", field}})
      .inc();
}

}  // namespace

std::string_view kind_name(Kind kind) { return kKinds[static_cast<std::size_t>(kind)].name; }

std::optional<Kind> parse_kind(std::string_view name) {
  for (const KindName& k : kKinds) {
    if (k.name == name) {
      return k.kind;
    }
  }
  return std::nullopt;
}

std::span<const Kind> all_kinds() { return kAllKinds; }

std::span<const std::string_view> ledger_schema_steps() { return kSchemaSteps; }

bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) {
      return false;
    }
    for (std::size_t j = 1; j < len; ++j) {
      const auto cc = static_cast<unsigned char>(text[i + j]);
      if ((cc & 0xc0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and values above U+10FFFF are not UTF-8.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string json_quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  append_quoted(out, text);
  return out;
}

std::string format_time(SystemTime t) {
  const std::int64_t ms = to_ms(t);
  const auto tp = sys_time<milliseconds>(milliseconds(ms));
  const auto day = floor<days>(tp);
  const year_month_day ymd(day);
  const hh_mm_ss hms(tp - day);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()),
                static_cast<int>(hms.subseconds().count()));
  return buf;
}

Result<SystemTime> parse_time(std::string_view text) {
  if (text.size() != 24 || text[19] != '.' || text[23] != 'Z') {
    return fail(Errc::kParse,
                "expected YYYY-MM-DDThh:mm:ss.mmmZ, got \"" + std::string(text) + "\"", "time");
  }
  auto t = parse_rfc3339(text);
  if (!t) {
    return fail(t.error().code, t.error().message, "time");
  }
  // Round trip: rejects forms parse_rfc3339 tolerates (lower-case 't', leap second 60).
  if (format_time(*t) != text) {
    return fail(Errc::kParse, "time \"" + std::string(text) + "\" is not in canonical form",
                "time");
  }
  return *t;
}

Status validate(const LedgerEvent& event) {
  const std::int64_t ms = to_ms(event.time);
  if (ms < 0 || ms > kMaxTimeMs) {
    return fail(Errc::kOutOfRange, "must lie between 1970 and 9999", "time");
  }
  if (event.amount.is_negative()) {
    return fail(Errc::kInvalidArgument,
                "must not be negative (the kind says the direction of the money)", "amount");
  }
  const std::pair<std::string_view, const std::string*> texts[] = {
      {"lane", &event.lane},   {"plate", &event.plate}, {"out_trade_no", &event.out_trade_no},
      {"state", &event.state}, {"actor", &event.actor}, {"detail", &event.detail},
  };
  for (const auto& [name, value] : texts) {
    if (!is_valid_utf8(*value)) {
      return fail(Errc::kInvalidArgument, "must be valid UTF-8", std::string(name));
    }
  }
  if (event.detail.empty()) {
    return fail(Errc::kInvalidArgument, "must be JSON text (use \"{}\" for none)", "detail");
  }
  return {};
}

std::string canonical_encoding(const LedgerEntry& e) {
  std::string out;
  out.reserve(256 + e.event.detail.size());
  out += "{\"seq\":";
  out += std::to_string(e.seq);
  out += ",\"time\":";
  append_quoted(out, format_time(e.event.time));
  out += ",\"kind\":";
  append_quoted(out, kind_name(e.event.kind));
  out += ",\"lane\":";
  append_quoted(out, e.event.lane);
  out += ",\"plate\":";
  append_quoted(out, e.event.plate);
  out += ",\"out_trade_no\":";
  append_quoted(out, e.event.out_trade_no);
  out += ",\"amount_fen\":";
  out += std::to_string(e.event.amount.fen());
  out += ",\"state\":";
  append_quoted(out, e.event.state);
  out += ",\"actor\":";
  append_quoted(out, e.event.actor);
  out += ",\"detail\":";
  append_quoted(out, e.event.detail);
  out += ",\"prev_hash\":";
  append_quoted(out, e.prev_hash);
  out += "}";
  return out;
}

std::string compute_hash(const LedgerEntry& entry) {
  return crypto::sha256_hex(canonical_encoding(entry));
}

std::string jsonl_line(const LedgerEntry& entry) {
  std::string line = canonical_encoding(entry);
  line.pop_back();  // the closing brace
  line += ",\"hash\":";
  append_quoted(line, entry.hash);
  line += "}";
  return line;
}

Result<std::optional<LedgerEntry>> head(Database& db) {
  auto st = db.prepare(std::string(kSelectColumns) + "ORDER BY seq DESC LIMIT 1");
  if (!st) {
    return std::unexpected(st.error());
  }
  auto row = st->step();
  if (!row) {
    return std::unexpected(row.error());
  }
  if (!*row) {
    return std::optional<LedgerEntry>();
  }
  auto e = row_to_entry(*st);
  if (!e) {
    return std::unexpected(e.error());
  }
  return std::optional<LedgerEntry>(std::move(*e));
}

Result<LedgerEntry> append(Transaction& txn, const LedgerEvent& event) {
  if (!txn.active()) {
    return fail(Errc::kInternal, "ledger::append needs an active transaction");
  }
  if (auto s = validate(event); !s) {
    count_rejected(s.error().field);
    return std::unexpected(s.error());
  }
  Database& db = txn.db();
  auto last = db.prepare("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1");
  if (!last) {
    return std::unexpected(last.error());
  }
  auto row = last->step();
  if (!row) {
    return std::unexpected(row.error());
  }
  LedgerEntry e;
  e.seq = *row ? last->column_int64(0) + 1 : 1;
  e.prev_hash = *row ? last->column_text(1) : std::string(kGenesisHash);
  e.event = event;
  e.event.time = from_ms(to_ms(event.time));
  e.hash = compute_hash(e);

  auto ins = db.prepare(
      "INSERT INTO ledger (seq, kind, time_ms, lane, plate, out_trade_no, amount_fen, state, "
      "actor, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!ins) {
    return std::unexpected(ins.error());
  }
  ins->bind_all(e.seq, kind_name(e.event.kind), to_ms(e.event.time), e.event.lane, e.event.plate,
                e.event.out_trade_no, e.event.amount.fen(), e.event.state, e.event.actor,
                e.event.detail, e.prev_hash, e.hash);
  if (auto s = ins->run(); !s) {
    if (s.error().message.find("json") != std::string::npos) {
      count_rejected("detail");
      return fail(Errc::kInvalidArgument, "must be valid JSON text", "detail");
    }
    return std::unexpected(s.error());
  }
  return e;
}

Status for_each(Database& db, SeqRange range,
                const std::function<Status(const LedgerEntry&)>& visit) {
  auto st = db.prepare(std::string(kSelectColumns) + "WHERE seq BETWEEN ? AND ? ORDER BY seq");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind_all(range.first, range.last);
  for (;;) {
    auto row = st->step();
    if (!row) {
      return std::unexpected(row.error());
    }
    if (!*row) {
      return {};
    }
    auto e = row_to_entry(*st);
    if (!e) {
      return std::unexpected(e.error());
    }
    if (auto s = visit(*e); !s) {
      return s;
    }
  }
}

Result<std::vector<LedgerEntry>> read(Database& db, SeqRange range) {
  std::vector<LedgerEntry> out;
  if (range.count() > 0) {
    out.reserve(static_cast<std::size_t>(range.count()));
  }
  auto s = for_each(db, range, [&](const LedgerEntry& e) -> Status {
    out.push_back(e);
    return {};
  });
  if (!s) {
    return std::unexpected(s.error());
  }
  return out;
}

Result<std::optional<SeqRange>> day_range(Database& db, std::string_view date, UtcOffset offset) {
  auto start = parse_local_date(date, offset);
  if (!start) {
    return fail(start.error().code, start.error().message, "date");
  }
  const std::int64_t from = to_ms(*start);
  const std::int64_t to = from + 24LL * 3600 * 1000;
  auto st = db.prepare("SELECT MIN(seq), MAX(seq) FROM ledger WHERE time_ms >= ? AND time_ms < ?");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind_all(from, to);
  auto row = st->step();
  if (!row) {
    return std::unexpected(row.error());
  }
  if (!*row || st->column_is_null(0)) {
    return std::optional<SeqRange>();
  }
  return std::optional<SeqRange>(SeqRange{st->column_int64(0), st->column_int64(1)});
}

Result<std::int64_t> last_seq_stamped_before(Database& db, std::int64_t after_seq, SystemTime end) {
  // seq is the rowid: "seq > ?" walks only the unsealed tail, not the whole history.
  auto st = db.prepare("SELECT MAX(seq) FROM ledger WHERE seq > ? AND time_ms < ?");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind_all(after_seq, to_ms(end));
  auto row = st->step();
  if (!row) {
    return std::unexpected(row.error());
  }
  if (!*row || st->column_is_null(0)) {
    return after_seq;
  }
  return st->column_int64(0);
}

Result<std::vector<LedgerEntry>> find_by_out_trade_no(Database& db, std::string_view out_trade_no) {
  auto st = db.prepare(std::string(kSelectColumns) +
                       "WHERE out_trade_no = ? AND out_trade_no <> '' ORDER BY seq");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind(1, out_trade_no);
  std::vector<LedgerEntry> out;
  for (;;) {
    auto row = st->step();
    if (!row) {
      return std::unexpected(row.error());
    }
    if (!*row) {
      return out;
    }
    auto e = row_to_entry(*st);
    if (!e) {
      return std::unexpected(e.error());
    }
    out.push_back(std::move(*e));
  }
}

Result<ChainCheck> verify_stored(Database& db, SeqRange range) {
  ChainCheck check;
  std::string expected_prev;
  if (range.first <= 1) {
    expected_prev = std::string(kGenesisHash);
  } else {
    auto prev = read(db, SeqRange{range.first - 1, range.first - 1});
    if (!prev) {
      return std::unexpected(prev.error());
    }
    if (prev->empty()) {
      check.first_bad_seq = range.first - 1;
      check.problem = "record " + std::to_string(range.first - 1) + " is missing";
      return check;
    }
    expected_prev = prev->front().hash;
  }
  std::int64_t expected_seq = std::max<std::int64_t>(range.first, 1);
  auto s = for_each(db, range, [&](const LedgerEntry& e) -> Status {
    if (check.first_bad_seq != 0) {
      return {};
    }
    ++check.checked;
    if (e.seq != expected_seq) {
      check.first_bad_seq = expected_seq;
      check.problem = "record " + std::to_string(expected_seq) + " is missing (next is " +
                      std::to_string(e.seq) + ")";
    } else if (e.prev_hash != expected_prev) {
      check.first_bad_seq = e.seq;
      check.problem =
          "record " + std::to_string(e.seq) + ": prev_hash does not match the hash of " +
          (e.seq == 1 ? std::string("the genesis") : "record " + std::to_string(e.seq - 1));
    } else if (compute_hash(e) != e.hash) {
      check.first_bad_seq = e.seq;
      check.problem =
          "record " + std::to_string(e.seq) + ": stored hash does not match its content";
    }
    expected_prev = e.hash;
    ++expected_seq;
    return {};
  });
  if (!s) {
    return std::unexpected(s.error());
  }
  return check;
}

}  // namespace lanegate::ledger
