#include "gateway/store.h"

#include <algorithm>

namespace lanegate::gateway {
namespace {

constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE parking_sessions (
  id             INTEGER PRIMARY KEY,
  lane           TEXT NOT NULL,
  plate          TEXT NOT NULL,
  plate_colour   TEXT NOT NULL,
  entry_time     INTEGER NOT NULL,          -- unix ms
  out_parking_no TEXT NOT NULL UNIQUE,
  parking_id     TEXT NOT NULL DEFAULT '',
  state          TEXT NOT NULL DEFAULT 'open', -- open | paid | free | superseded | manual
  exit_time      INTEGER
);
CREATE INDEX parking_sessions_open ON parking_sessions(plate) WHERE state = 'open';

CREATE TABLE transactions (
  id               INTEGER PRIMARY KEY,
  out_trade_no     TEXT NOT NULL UNIQUE,
  kind             TEXT NOT NULL,
  lane             TEXT NOT NULL,
  plate            TEXT NOT NULL,
  plate_colour     TEXT NOT NULL,
  amount_fen       INTEGER NOT NULL CHECK (amount_fen >= 0),
  state            TEXT NOT NULL,
  decision         TEXT NOT NULL DEFAULT '',
  decision_reason  TEXT NOT NULL DEFAULT '',
  offline          INTEGER NOT NULL DEFAULT 0,
  arrears          INTEGER NOT NULL DEFAULT 0,
  session_id       INTEGER REFERENCES parking_sessions(id),
  provider_txn_id  TEXT NOT NULL DEFAULT '',
  contract_id      TEXT NOT NULL DEFAULT '',
  payment_method   TEXT NOT NULL DEFAULT 'provider',
  trip_number      INTEGER,
  detail           TEXT NOT NULL DEFAULT '{}',
  created_at       INTEGER NOT NULL,        -- unix ms
  updated_at       INTEGER NOT NULL
);
CREATE INDEX transactions_created ON transactions(created_at);
CREATE INDEX transactions_plate_open ON transactions(plate, state);
CREATE INDEX transactions_lane ON transactions(lane, id);
CREATE INDEX transactions_session ON transactions(session_id);
CREATE TRIGGER transactions_never_deleted BEFORE DELETE ON transactions
BEGIN
  SELECT RAISE(ABORT, 'transactions are never deleted');
END;

CREATE TABLE passages (
  id            INTEGER PRIMARY KEY,
  lane          TEXT NOT NULL,
  plate         TEXT NOT NULL,
  decision      TEXT NOT NULL,             -- free | pass_online | pass_offline | fallback | manual
  reason        TEXT NOT NULL,
  out_trade_no  TEXT NOT NULL DEFAULT '',
  state         TEXT NOT NULL DEFAULT 'DECIDED', -- DECIDED | OPENED | PASSED | ALARM
  latency_us    INTEGER NOT NULL DEFAULT 0,
  created_at    INTEGER NOT NULL
);
CREATE INDEX passages_decision ON passages(decision, id);

CREATE TABLE plate_bindings (
  plate        TEXT PRIMARY KEY,
  state        TEXT NOT NULL,
  refreshed_at INTEGER NOT NULL
);

CREATE TABLE manual_opens (
  id         INTEGER PRIMARY KEY,
  lane       TEXT NOT NULL,
  actor      TEXT NOT NULL,
  reason     TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
)sql";

// charge.h invariants 5 and 7: the refund flag, and the passage a charge is for (parking
// charges of earlier releases are keyed by their session, as the site keys them now).
constexpr std::string_view kSchemaV2 = R"sql(
ALTER TABLE transactions ADD COLUMN refund_due INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transactions ADD COLUMN passage_key TEXT NOT NULL DEFAULT '';
UPDATE transactions SET passage_key = 'session:' || session_id WHERE session_id IS NOT NULL;
CREATE INDEX transactions_passage ON transactions(passage_key) WHERE passage_key != '';
CREATE INDEX transactions_undecided ON transactions(created_at) WHERE decision = '';
)sql";

// ETC contracts seen at the toll lanes and the provider's last word on each (spec "ETC
// highway deduction": deduct only while the last seen bind_state is the bound value; a
// contract nothing was heard of for 4 h is queried). Times in unix ms; bind_state '' =
// never heard.
constexpr std::string_view kSchemaV3 = R"sql(
CREATE TABLE etc_contracts (
  contract_id TEXT PRIMARY KEY,
  plate       TEXT NOT NULL DEFAULT '',
  bind_state  TEXT NOT NULL DEFAULT '',
  stated_at   INTEGER NOT NULL DEFAULT 0,   -- when the provider said it (notification time)
  heard_at    INTEGER NOT NULL DEFAULT 0,   -- when lanegate heard it (notification or query)
  source      TEXT NOT NULL DEFAULT '',     -- notification | query
  seen_at     INTEGER NOT NULL DEFAULT 0    -- last seen at a toll lane
);
CREATE INDEX etc_contracts_heard ON etc_contracts(heard_at);
)sql";

// Taxi trips (site_taxi.cc): a meter's end-of-trip record is stored here before the meter
// is acknowledged; the trip stays OPEN while the passenger may pay electronically, then
// ends PAID (settled_by = the payment's out_trade_no) or METER (the meter's own payment:
// settled_by = the CASH row).
constexpr std::string_view kSchemaV4 = R"sql(
CREATE TABLE taxi_trips (
  trip_key     TEXT PRIMARY KEY,
  lane         TEXT NOT NULL,
  meter        TEXT NOT NULL,
  trip_number  INTEGER NOT NULL,
  boarding     TEXT NOT NULL,
  fare_fen     INTEGER NOT NULL,
  payment_type INTEGER NOT NULL,
  plate        TEXT NOT NULL DEFAULT '',
  detail       TEXT NOT NULL DEFAULT '{}',
  state        TEXT NOT NULL CHECK (state IN ('OPEN', 'PAID', 'METER')),
  settled_by   TEXT NOT NULL DEFAULT '',
  attempts     INTEGER NOT NULL DEFAULT 0,
  created_at   INTEGER NOT NULL,
  settled_at   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX taxi_trips_open ON taxi_trips(state) WHERE state = 'OPEN';
)sql";

// Plate cameras that push over HTTP (gateway/camera_receiver.h): every push is stored here
// before it is answered; (device, event_id) is the camera's dedup key. A passage names the
// camera event it came from, its evidence images ([{kind, sha256, bytes}], the files in
// gateway/evidence.h) and, for a plate an attendant typed, who entered it.
constexpr std::string_view kSchemaV5 = R"sql(
CREATE TABLE camera_events (
  id          INTEGER PRIMARY KEY,
  device      TEXT NOT NULL,             -- [[device]] id
  event_id    TEXT NOT NULL,             -- the camera's id of the event
  vendor      TEXT NOT NULL,
  lane        TEXT NOT NULL,
  received_at INTEGER NOT NULL,          -- unix ms
  capture_ms  INTEGER,                   -- the camera's time, unix ms
  plate       TEXT NOT NULL,             -- normalised when the rules accepted it, else ''
  plate_raw   TEXT NOT NULL,
  colour      TEXT NOT NULL,
  confidence  INTEGER NOT NULL,          -- 0..1000
  offline     INTEGER NOT NULL,          -- 1: stored by the camera while offline, resent
  outcome     TEXT NOT NULL,             -- read | resent | repeat | no_plate | refused:<reason>
  images      TEXT NOT NULL DEFAULT '[]',
  UNIQUE (device, event_id)
);
ALTER TABLE passages ADD COLUMN camera_event INTEGER;
ALTER TABLE passages ADD COLUMN images TEXT NOT NULL DEFAULT '[]';
ALTER TABLE passages ADD COLUMN entered_by TEXT NOT NULL DEFAULT '';
)sql";

// Why an attendant typed a passage's plate (the reason they gave, beside entered_by).
constexpr std::string_view kSchemaV6 = R"sql(
ALTER TABLE passages ADD COLUMN entered_reason TEXT NOT NULL DEFAULT '';
)sql";

// Issue 17: claims made before the trip was kept get it from their transaction, so an
// upgrade does not leave every unclaimed parking stay without a lease period. Runs after
// invoice step 3 (gateway/src/schema.cc).
constexpr std::string_view kClaimTripBackfillV7 = R"sql(
UPDATE invoice_claim SET
  plate = (SELECT t.plate FROM transactions t WHERE t.out_trade_no = invoice_claim.transaction_id),
  period_start = (SELECT CAST(strftime('%s', json_extract(t.detail, '$.entry_time')) AS INTEGER)
                  FROM transactions t WHERE t.out_trade_no = invoice_claim.transaction_id),
  period_end = (SELECT CAST(strftime('%s', json_extract(t.detail, '$.exit_time')) AS INTEGER)
                FROM transactions t WHERE t.out_trade_no = invoice_claim.transaction_id)
WHERE invoice_id IS NULL AND service = 'parking' AND plate = ''
  AND EXISTS (SELECT 1 FROM transactions t WHERE t.out_trade_no = invoice_claim.transaction_id);
)sql";

constexpr std::string_view kSteps[] = {kSchemaV1, kSchemaV2, kSchemaV3, kSchemaV4,
                                       kSchemaV5, kSchemaV6, kClaimTripBackfillV7};

std::int64_t to_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
SystemTime from_ms(std::int64_t ms) {
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(std::chrono::milliseconds(ms)));
}

constexpr std::string_view kTxColumns =
    "id, out_trade_no, kind, lane, plate, plate_colour, amount_fen, state, decision, decision_reason, offline, "
    "arrears, session_id, provider_txn_id, contract_id, payment_method, trip_number, detail, created_at, updated_at, "
    "refund_due, passage_key";

Result<TxRecord> read_tx(const Statement& st) {
  TxRecord r;
  r.id = st.column_int64(0);
  r.out_trade_no = st.column_text(1);
  auto kind = parse_tx_kind(st.column_text(2));
  if (!kind) return std::unexpected(kind.error());
  r.kind = *kind;
  r.lane = st.column_text(3);
  r.plate = st.column_text(4);
  r.plate_colour = st.column_text(5);
  r.amount = Money::from_fen(st.column_int64(6));
  auto state = parse_charge_state(st.column_text(7));
  if (!state) return std::unexpected(state.error());
  r.state = *state;
  auto decision = parse_decision(st.column_text(8));
  if (!decision) return std::unexpected(decision.error());
  r.decision = *decision;
  r.decision_reason = st.column_text(9);
  r.offline = st.column_int64(10) != 0;
  r.arrears = st.column_int64(11) != 0;
  r.session_id = st.column_opt_int64(12);
  r.provider_transaction_id = st.column_text(13);
  r.contract_id = st.column_text(14);
  r.payment_method = st.column_text(15);
  if (auto n = st.column_opt_int64(16)) r.trip_number = static_cast<std::uint32_t>(*n);
  r.detail = st.column_text(17);
  r.created_at = from_ms(st.column_int64(18));
  r.updated_at = from_ms(st.column_int64(19));
  r.refund_due = st.column_int64(20) != 0;
  r.passage_key = st.column_text(21);
  return r;
}

}  // namespace

std::span<const std::string_view> gateway_schema_steps() { return kSteps; }

Result<Store> Store::open(Database& db, const Clock& clock) {
  auto probe = db.prepare("SELECT 1 FROM transactions LIMIT 0");
  if (!probe) {
    return fail(Errc::kDatabase, "gateway schema missing (run the migrations first): " + probe.error().message);
  }
  return Store(db, clock);
}

Store::Store(Store&&) noexcept = default;
Store::~Store() = default;

Result<std::int64_t> Store::insert_transaction(Transaction& txn, const TxRecord& tx) {
  auto st = txn.db().prepare(
      "INSERT INTO transactions(out_trade_no, kind, lane, plate, plate_colour, amount_fen, state, decision, "
      "decision_reason, offline, arrears, session_id, provider_txn_id, contract_id, payment_method, trip_number, "
      "detail, created_at, updated_at, passage_key) VALUES(?,?,?,?,?,?,?,?,?,?,0,?,?,?,?,?,?,?,?,?)");
  if (!st) return std::unexpected(st.error());
  const std::int64_t now = to_ms(clock_->now());
  std::optional<std::int64_t> trip;
  if (tx.trip_number) trip = *tx.trip_number;
  st->bind_all(tx.out_trade_no, std::string(to_string(tx.kind)), tx.lane, tx.plate, tx.plate_colour, tx.amount.fen(),
               std::string(to_string(tx.state)), std::string(decision_text(tx.decision)), tx.decision_reason,
               tx.offline ? 1 : 0, tx.session_id, tx.provider_transaction_id, tx.contract_id, tx.payment_method, trip,
               tx.detail, now, now, tx.passage_key);
  if (auto s = st->run(); !s) return std::unexpected(s.error());
  const std::int64_t id = txn.db().last_insert_rowid();
  if (settlement_hook_ && settles(tx.state, tx.state, true)) {
    TxRecord row = tx;
    row.id = id;
    row.created_at = row.updated_at = from_ms(now);
    if (auto s = settlement_hook_(txn, row, tx.state); !s) return std::unexpected(s.error());
  }
  return id;
}

bool Store::settles(ChargeState from, ChargeState to, bool inserted) {
  if (inserted) return to == ChargeState::kCash || to == ChargeState::kSuccess;
  if (from == to) return false;
  return to == ChargeState::kSuccess || to == ChargeState::kRefund;
}

Result<std::optional<TxRecord>> Store::find_transaction(std::string_view out_trade_no) {
  auto st = db_->prepare("SELECT " + std::string(kTxColumns) + " FROM transactions WHERE out_trade_no = ?");
  if (!st) return std::unexpected(st.error());
  st->bind(1, out_trade_no);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<TxRecord>();
  auto tx = read_tx(*st);
  if (!tx) return std::unexpected(tx.error());
  return std::optional<TxRecord>(std::move(*tx));
}

Status Store::set_state(Transaction& txn, std::string_view out_trade_no, ChargeState to,
                        std::string_view provider_transaction_id) {
  auto cur = find_transaction(out_trade_no);
  if (!cur) return std::unexpected(cur.error());
  if (!*cur) return fail(Errc::kNotFound, "no transaction " + std::string(out_trade_no), "out_trade_no");
  const ChargeState from = (*cur)->state;
  if (!allowed_transition(from, to)) {
    return fail(Errc::kInvalidArgument,
                "transaction " + std::string(out_trade_no) + " cannot move from " + std::string(to_string(from)) +
                    " to " + std::string(to_string(to)),
                "state");
  }
  const bool arrears = (*cur)->arrears || (to == ChargeState::kPayFail && (*cur)->offline);
  const bool cleared = to == ChargeState::kSuccess;  // a PAY_BACK settles the debt
  auto st = txn.db().prepare(
      "UPDATE transactions SET state = ?, arrears = ?, updated_at = ?, "
      "provider_txn_id = CASE WHEN ? = '' THEN provider_txn_id ELSE ? END WHERE out_trade_no = ?");
  if (!st) return std::unexpected(st.error());
  const std::int64_t now = to_ms(clock_->now());
  // As std::string: a default-constructed string_view has no data pointer and would bind NULL.
  const std::string provider_id(provider_transaction_id);
  st->bind_all(std::string(to_string(to)), (arrears && !cleared) ? 1 : 0, now, provider_id, provider_id,
               out_trade_no);
  if (auto s = st->run(); !s) return s;
  if (settlement_hook_ && settles(from, to, false)) {
    TxRecord row = **cur;
    row.state = to;
    row.arrears = arrears && !cleared;
    row.updated_at = from_ms(now);
    if (!provider_transaction_id.empty()) row.provider_transaction_id = std::string(provider_transaction_id);
    return settlement_hook_(txn, row, from);
  }
  return {};
}

Status Store::set_decision(Transaction& txn, std::string_view out_trade_no, DecisionKind decision,
                           std::string_view reason, bool offline) {
  auto st = txn.db().prepare(
      "UPDATE transactions SET decision = ?, decision_reason = ?, offline = ?, updated_at = ? WHERE out_trade_no = ?");
  if (!st) return std::unexpected(st.error());
  st->bind_all(std::string(to_string(decision)), reason, offline ? 1 : 0, to_ms(clock_->now()), out_trade_no);
  return st->run();
}

Status Store::set_refund_due(Transaction& txn, std::string_view out_trade_no) {
  auto st = txn.db().prepare("UPDATE transactions SET refund_due = 1, updated_at = ? WHERE out_trade_no = ?");
  if (!st) return std::unexpected(st.error());
  st->bind_all(to_ms(clock_->now()), out_trade_no);
  return st->run();
}

Result<std::vector<TxRecord>> Store::list_transactions(const TxFilter& f) {
  std::string sql = "SELECT " + std::string(kTxColumns) + " FROM transactions WHERE id > ?1";
  if (f.from) sql += " AND created_at >= ?2";
  if (f.to) sql += " AND created_at < ?3";
  if (!f.lane.empty()) sql += " AND lane = ?4";
  if (!f.plate.empty()) sql += " AND plate = ?5";
  if (f.state) sql += " AND state = ?6";
  if (f.arrears_only) sql += " AND arrears = 1";
  if (f.refund_due_only) sql += " AND refund_due = 1";
  sql += " ORDER BY id LIMIT ?7";
  auto st = db_->prepare(sql);
  if (!st) return std::unexpected(st.error());
  st->bind(1, f.after_id);
  if (f.from) st->bind(2, to_ms(*f.from));
  if (f.to) st->bind(3, to_ms(*f.to));
  if (!f.lane.empty()) st->bind(4, f.lane);
  if (!f.plate.empty()) st->bind(5, f.plate);
  if (f.state) st->bind(6, std::string(to_string(*f.state)));
  st->bind(7, std::clamp(f.limit, 1, 1000));
  std::vector<TxRecord> out;
  for (;;) {
    auto row = st->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    auto tx = read_tx(*st);
    if (!tx) return std::unexpected(tx.error());
    out.push_back(std::move(*tx));
  }
  return out;
}

Result<std::optional<TxRecord>> Store::find_undecided_charge(std::string_view passage_key) {
  if (passage_key.empty()) return std::optional<TxRecord>();
  auto st = db_->prepare("SELECT " + std::string(kTxColumns) +
                         " FROM transactions WHERE passage_key = ? AND decision = '' AND state != 'VOID' "
                         "ORDER BY id DESC LIMIT 1");
  if (!st) return std::unexpected(st.error());
  st->bind(1, passage_key);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<TxRecord>();
  auto tx = read_tx(*st);
  if (!tx) return std::unexpected(tx.error());
  return std::optional<TxRecord>(std::move(*tx));
}

namespace {
Result<Money> sum_query(Database& db, const std::string& sql, std::string_view plate) {
  auto st = db.prepare(sql);
  if (!st) return std::unexpected(st.error());
  if (!plate.empty()) st->bind(1, plate);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  return Money::from_fen(st->column_int64(0));
}
}  // namespace

Result<Money> Store::plate_outstanding(std::string_view plate) {
  return sum_query(*db_,
                   "SELECT COALESCE(SUM(amount_fen), 0) FROM transactions WHERE plate = ?1 AND "
                   "((offline = 1 AND state IN ('RECORDED','SUBMITTING','ACCEPTED','UNKNOWN')) OR arrears = 1)",
                   plate);
}

Result<Money> Store::site_exposure() {
  return sum_query(*db_,
                   "SELECT COALESCE(SUM(amount_fen), 0) FROM transactions WHERE "
                   "(offline = 1 AND state IN ('RECORDED','SUBMITTING','ACCEPTED','UNKNOWN')) OR arrears = 1",
                   {});
}

Result<std::vector<std::pair<ChargeState, Store::Totals>>> Store::totals_by_state() {
  auto st = db_->prepare("SELECT state, count(*), COALESCE(SUM(amount_fen),0) FROM transactions GROUP BY state");
  if (!st) return std::unexpected(st.error());
  std::vector<std::pair<ChargeState, Totals>> out;
  for (;;) {
    auto row = st->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    auto s = parse_charge_state(st->column_text(0));
    if (!s) return std::unexpected(s.error());
    out.push_back({*s, Totals{st->column_int64(1), Money::from_fen(st->column_int64(2))}});
  }
  return out;
}

Result<std::int64_t> Store::open_session(Transaction& txn, const Session& s) {
  auto st = txn.db().prepare(
      "INSERT INTO parking_sessions(lane, plate, plate_colour, entry_time, out_parking_no) VALUES(?,?,?,?,?)");
  if (!st) return std::unexpected(st.error());
  st->bind_all(s.lane, s.plate, s.plate_colour, to_ms(s.entry_time), s.out_parking_no);
  if (auto r = st->run(); !r) return std::unexpected(r.error());
  return txn.db().last_insert_rowid();
}

namespace {
constexpr std::string_view kSessionColumns = "id, lane, plate, plate_colour, entry_time, out_parking_no, parking_id";
Store::Session read_session(const Statement& st) {
  Store::Session s;
  s.id = st.column_int64(0);
  s.lane = st.column_text(1);
  s.plate = st.column_text(2);
  s.plate_colour = st.column_text(3);
  s.entry_time = from_ms(st.column_int64(4));
  s.out_parking_no = st.column_text(5);
  s.parking_id = st.column_text(6);
  return s;
}
}  // namespace

Result<std::optional<Store::Session>> Store::find_open_session(std::string_view plate) {
  auto st = db_->prepare("SELECT " + std::string(kSessionColumns) +
                         " FROM parking_sessions WHERE plate = ? AND state = 'open' ORDER BY id DESC LIMIT 1");
  if (!st) return std::unexpected(st.error());
  st->bind(1, plate);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<Session>();
  return std::optional<Session>(read_session(*st));
}

Result<std::optional<Store::Session>> Store::find_session(std::int64_t id) {
  auto st = db_->prepare("SELECT " + std::string(kSessionColumns) + " FROM parking_sessions WHERE id = ?");
  if (!st) return std::unexpected(st.error());
  st->bind(1, id);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<Session>();
  return std::optional<Session>(read_session(*st));
}

Status Store::close_session(Transaction& txn, std::int64_t id, SystemTime exit_time, std::string_view how) {
  auto st = txn.db().prepare("UPDATE parking_sessions SET state = ?, exit_time = ? WHERE id = ? AND state = 'open'");
  if (!st) return std::unexpected(st.error());
  st->bind_all(how, to_ms(exit_time), id);
  return st->run();
}

Status Store::set_parking_id(Transaction& txn, std::string_view out_parking_no, std::string_view parking_id) {
  auto st = txn.db().prepare("UPDATE parking_sessions SET parking_id = ? WHERE out_parking_no = ?");
  if (!st) return std::unexpected(st.error());
  st->bind_all(parking_id, out_parking_no);
  return st->run();
}

Status Store::put_binding(Transaction& txn, std::string_view plate, BindingState state, SystemTime refreshed_at) {
  // binding.h invariant 2: a stamp from the future is stored as now.
  const std::int64_t stamp = std::min(to_ms(refreshed_at), to_ms(clock_->now()));
  // Invariant 3: newest wins, but a blocking state replaces a NORMAL that is at most
  // kBlockingWinsWithin newer (and a stored stamp from the future never holds a row).
  const std::int64_t wins_ms = std::chrono::duration_cast<std::chrono::milliseconds>(kBlockingWinsWithin).count();
  auto st = txn.db().prepare(
      "INSERT INTO plate_bindings(plate, state, refreshed_at) VALUES(?1, ?2, ?3) "
      "ON CONFLICT(plate) DO UPDATE SET state = ?2, refreshed_at = ?3 WHERE refreshed_at <= ?3 "
      "OR refreshed_at > ?4 OR (?2 != 'NORMAL' AND state = 'NORMAL' AND refreshed_at <= ?3 + ?5)");
  if (!st) return std::unexpected(st.error());
  st->bind_all(plate, std::string(to_string(state)), stamp, to_ms(clock_->now()), wins_ms);
  return st->run();
}

Result<std::optional<CachedBinding>> Store::get_binding(std::string_view plate) {
  auto st = db_->prepare("SELECT state, refreshed_at FROM plate_bindings WHERE plate = ?");
  if (!st) return std::unexpected(st.error());
  st->bind(1, plate);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<CachedBinding>();
  // A state this release does not know is not payable (binding.h).
  const BindingState state = parse_binding_state(st->column_text(0)).value_or(BindingState::kBlocked);
  return std::optional<CachedBinding>(CachedBinding{state, from_ms(st->column_int64(1))});
}

Status Store::note_contract_seen(Transaction& txn, std::string_view contract_id, std::string_view plate) {
  auto st = txn.db().prepare(
      "INSERT INTO etc_contracts(contract_id, plate, seen_at) VALUES(?1, ?2, ?3) "
      "ON CONFLICT(contract_id) DO UPDATE SET seen_at = ?3, plate = CASE WHEN plate = '' THEN ?2 ELSE plate END");
  if (!st) return std::unexpected(st.error());
  st->bind_all(contract_id, plate, to_ms(clock_->now()));
  return st->run();
}

Result<bool> Store::put_contract_state(Transaction& txn, std::string_view contract_id, std::string_view plate,
                                       std::string_view bind_state, SystemTime stated_at, std::string_view source) {
  // An older statement never replaces a newer one; it still counts as hearing from the
  // provider (the contract is not silent). Stamps from the future are taken as now.
  const std::int64_t now = to_ms(clock_->now());
  const std::int64_t stamp = std::min(to_ms(stated_at), now);
  auto st = txn.db().prepare(
      "INSERT INTO etc_contracts(contract_id, plate, bind_state, stated_at, heard_at, source) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(contract_id) DO UPDATE SET "
      "plate = CASE WHEN stated_at <= ?4 THEN ?2 ELSE plate END, "
      "bind_state = CASE WHEN stated_at <= ?4 THEN ?3 ELSE bind_state END, "
      "source = CASE WHEN stated_at <= ?4 THEN ?6 ELSE source END, "
      "stated_at = MAX(stated_at, ?4), heard_at = ?5 "
      "RETURNING stated_at = ?4 AND bind_state = ?3");
  if (!st) return std::unexpected(st.error());
  st->bind_all(contract_id, plate, bind_state, stamp, now, source);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  const bool current = *row && st->column_int64(0) != 0;
  if (auto done = st->step(); !done) return std::unexpected(done.error());
  return current;
}

Result<std::optional<Store::EtcContractRow>> Store::find_contract(std::string_view contract_id) {
  auto st = db_->prepare(
      "SELECT contract_id, plate, bind_state, stated_at, heard_at, source, seen_at FROM etc_contracts "
      "WHERE contract_id = ?");
  if (!st) return std::unexpected(st.error());
  st->bind(1, contract_id);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<EtcContractRow>();
  return std::optional<EtcContractRow>(EtcContractRow{st->column_text(0), st->column_text(1), st->column_text(2),
                                                      from_ms(st->column_int64(3)), from_ms(st->column_int64(4)),
                                                      st->column_text(5), from_ms(st->column_int64(6))});
}

Result<std::vector<std::string>> Store::silent_contracts(SystemTime seen_after, SystemTime heard_before, int limit) {
  auto st = db_->prepare(
      "SELECT contract_id FROM etc_contracts WHERE heard_at < ? AND seen_at >= ? ORDER BY heard_at, contract_id "
      "LIMIT ?");
  if (!st) return std::unexpected(st.error());
  st->bind_all(to_ms(heard_before), to_ms(seen_after), limit);
  std::vector<std::string> out;
  for (;;) {
    auto row = st->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    out.push_back(st->column_text(0));
  }
  return out;
}

Result<std::int64_t> Store::insert_passage(Transaction& txn, std::string_view lane, std::string_view plate,
                                           std::string_view decision, std::string_view reason,
                                           std::string_view out_trade_no, std::int64_t latency_us) {
  auto st = txn.db().prepare(
      "INSERT INTO passages(lane, plate, decision, reason, out_trade_no, latency_us, created_at) "
      "VALUES(?,?,?,?,?,?,?)");
  if (!st) return std::unexpected(st.error());
  st->bind_all(lane, plate, decision, reason, out_trade_no, latency_us, to_ms(clock_->now()));
  if (auto r = st->run(); !r) return std::unexpected(r.error());
  return txn.db().last_insert_rowid();
}

Status Store::set_passage_state(std::int64_t id, std::string_view state) {
  auto st = db_->prepare("UPDATE passages SET state = ? WHERE id = ?");
  if (!st) return std::unexpected(st.error());
  st->bind_all(state, id);
  return st->run();
}

Result<Store::PassageCounts> Store::passage_counts() {
  auto st = db_->prepare("SELECT decision, count(*) FROM passages GROUP BY decision");
  if (!st) return std::unexpected(st.error());
  PassageCounts c;
  for (;;) {
    auto row = st->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    const std::string d = st->column_text(0);
    const std::int64_t n = st->column_int64(1);
    if (d == "free") c.free = n;
    else if (d == "pass_online") c.pass_online = n;
    else if (d == "pass_offline") c.pass_offline = n;
    else if (d == "fallback") c.fallback = n;
    else if (d == "manual") c.manual = n;
  }
  return c;
}

Result<std::vector<std::int64_t>> Store::recent_latencies(std::string_view decision, int limit) {
  auto st = db_->prepare("SELECT latency_us FROM passages WHERE decision = ? ORDER BY id DESC LIMIT ?");
  if (!st) return std::unexpected(st.error());
  st->bind_all(decision, limit);
  std::vector<std::int64_t> out;
  for (;;) {
    auto row = st->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    out.push_back(st->column_int64(0));
  }
  return out;
}

Result<std::int64_t> Store::record_manual_open(Transaction& txn, std::string_view lane, std::string_view actor,
                                               std::string_view reason) {
  auto st = txn.db().prepare("INSERT INTO manual_opens(lane, actor, reason, created_at) VALUES(?,?,?,?)");
  if (!st) return std::unexpected(st.error());
  st->bind_all(lane, actor, reason, to_ms(clock_->now()));
  if (auto r = st->run(); !r) return std::unexpected(r.error());
  return txn.db().last_insert_rowid();
}

Result<std::vector<TxRecord>> Store::passage_transactions(std::string_view passage_key) {
  auto st = db_->prepare("SELECT " + std::string(kTxColumns) + " FROM transactions WHERE passage_key = ? ORDER BY id");
  if (!st) return std::unexpected(st.error());
  st->bind(1, passage_key);
  std::vector<TxRecord> out;
  for (;;) {
    auto row = st->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    auto tx = read_tx(*st);
    if (!tx) return std::unexpected(tx.error());
    out.push_back(std::move(*tx));
  }
  return out;
}

// ---------------- taxi trips ----------------

namespace {
constexpr std::string_view kTripColumns =
    "trip_key, lane, meter, trip_number, boarding, fare_fen, payment_type, plate, detail, state, settled_by, "
    "attempts, created_at, settled_at";

Store::TaxiTrip read_trip(const Statement& st) {
  Store::TaxiTrip t;
  t.trip_key = st.column_text(0);
  t.lane = st.column_text(1);
  t.meter = st.column_text(2);
  t.trip_number = static_cast<std::uint32_t>(st.column_int64(3));
  t.boarding = st.column_text(4);
  t.fare = Money::from_fen(st.column_int64(5));
  t.payment_type = static_cast<int>(st.column_int64(6));
  t.plate = st.column_text(7);
  t.detail = st.column_text(8);
  t.state = st.column_text(9);
  t.settled_by = st.column_text(10);
  t.attempts = static_cast<int>(st.column_int64(11));
  t.created_at = from_ms(st.column_int64(12));
  t.settled_at = from_ms(st.column_int64(13));
  return t;
}
}  // namespace

Status Store::insert_trip(Transaction& txn, const TaxiTrip& t) {
  auto st = txn.db().prepare(
      "INSERT INTO taxi_trips(trip_key, lane, meter, trip_number, boarding, fare_fen, payment_type, plate, detail, "
      "state, settled_by, attempts, created_at, settled_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, "
      "?12, ?13)");
  if (!st) return std::unexpected(st.error());
  const std::int64_t now = to_ms(clock_->now());
  st->bind_all(t.trip_key, t.lane, t.meter, static_cast<std::int64_t>(t.trip_number), t.boarding, t.fare.fen(),
               static_cast<std::int64_t>(t.payment_type), t.plate, t.detail, t.state, t.settled_by, now,
               t.state == "OPEN" ? 0 : now);
  return st->run();
}

Result<std::optional<Store::TaxiTrip>> Store::find_trip(std::string_view trip_key) {
  auto st = db_->prepare("SELECT " + std::string(kTripColumns) + " FROM taxi_trips WHERE trip_key = ?");
  if (!st) return std::unexpected(st.error());
  st->bind(1, trip_key);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<TaxiTrip>();
  return std::optional<TaxiTrip>(read_trip(*st));
}

Result<std::vector<Store::TaxiTrip>> Store::open_trips() {
  auto st = db_->prepare("SELECT " + std::string(kTripColumns) +
                         " FROM taxi_trips WHERE state = 'OPEN' ORDER BY created_at, trip_key");
  if (!st) return std::unexpected(st.error());
  std::vector<TaxiTrip> out;
  for (;;) {
    auto row = st->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    out.push_back(read_trip(*st));
  }
  return out;
}

Result<int> Store::next_trip_attempt(Transaction& txn, std::string_view trip_key) {
  auto st = txn.db().prepare(
      "UPDATE taxi_trips SET attempts = attempts + 1 WHERE trip_key = ? AND state = 'OPEN' RETURNING attempts");
  if (!st) return std::unexpected(st.error());
  st->bind(1, trip_key);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return fail(Errc::kRejected, "trip " + std::string(trip_key) + " is not open", "trip");
  return static_cast<int>(st->column_int64(0));
}

Result<bool> Store::settle_trip(Transaction& txn, std::string_view trip_key, std::string_view state,
                                std::string_view settled_by) {
  auto st = txn.db().prepare(
      "UPDATE taxi_trips SET state = ?2, settled_by = ?3, settled_at = ?4 WHERE trip_key = ?1 AND state = 'OPEN'");
  if (!st) return std::unexpected(st.error());
  st->bind_all(trip_key, state, settled_by, to_ms(clock_->now()));
  if (auto r = st->run(); !r) return std::unexpected(r.error());
  return txn.db().changes() > 0;
}

}  // namespace lanegate::gateway
