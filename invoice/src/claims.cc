#include "invoice/claims.h"

#include <algorithm>
#include <array>

#include <boost/json.hpp>

#include "core/crypto.h"
#include "core/ledger.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/time_format.h"
#include "invoice/buyer_id.h"
#include "invoice/tax.h"
#include "core/text.h"

namespace lanegate::invoice {
namespace {

constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE invoice_document(
  id INTEGER PRIMARY KEY,
  order_no TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('blue', 'red')),
  original_id INTEGER REFERENCES invoice_document(id),
  red_reason INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL CHECK (state IN ('claimed', 'issuing', 'issued', 'failed', 'reversed')),
  buyer_kind TEXT NOT NULL CHECK (buyer_kind IN ('person', 'company')),
  buyer_title TEXT NOT NULL,
  buyer_tax_id TEXT NOT NULL,
  buyer_email TEXT NOT NULL,
  buyer_phone TEXT NOT NULL,
  excl_fen INTEGER NOT NULL,
  tax_fen INTEGER NOT NULL,
  incl_fen INTEGER NOT NULL,
  serial_num TEXT NOT NULL DEFAULT '',
  invoice_number TEXT NOT NULL DEFAULT '',
  pdf_url TEXT NOT NULL DEFAULT '',
  fail_reason TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  issued_at INTEGER,
  CHECK ((kind = 'blue' AND incl_fen > 0 AND original_id IS NULL) OR
         (kind = 'red' AND incl_fen < 0 AND original_id IS NOT NULL))
);
CREATE UNIQUE INDEX invoice_document_one_red ON invoice_document(original_id)
  WHERE original_id IS NOT NULL;
CREATE INDEX invoice_document_state ON invoice_document(state, id);
CREATE TABLE invoice_line(
  invoice_id INTEGER NOT NULL REFERENCES invoice_document(id),
  line_no INTEGER NOT NULL,
  transaction_id TEXT NOT NULL,
  service TEXT NOT NULL,
  item_name TEXT NOT NULL,
  tax_code TEXT NOT NULL,
  rate_percent INTEGER NOT NULL,
  favoured_policy_flag TEXT NOT NULL,
  excl_fen INTEGER NOT NULL,
  tax_fen INTEGER NOT NULL,
  incl_fen INTEGER NOT NULL,
  PRIMARY KEY (invoice_id, line_no)
);
CREATE TABLE invoice_claim(
  token TEXT PRIMARY KEY,
  human_code TEXT NOT NULL UNIQUE,
  transaction_id TEXT NOT NULL UNIQUE,
  account_id TEXT NOT NULL,
  service TEXT NOT NULL,
  amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
  description TEXT NOT NULL,
  settled_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  voided_at INTEGER,
  invoice_id INTEGER REFERENCES invoice_document(id),
  created_at INTEGER NOT NULL
);
CREATE INDEX invoice_claim_account ON invoice_claim(account_id) WHERE account_id <> '';
CREATE TABLE invoice_code_guess(
  client_key TEXT PRIMARY KEY,
  failures INTEGER NOT NULL,
  window_start INTEGER NOT NULL,
  locked_until INTEGER NOT NULL
);
CREATE TRIGGER invoice_document_never_deleted BEFORE DELETE ON invoice_document
BEGIN SELECT RAISE(ABORT, 'invoices are never deleted'); END;
CREATE TRIGGER invoice_line_never_deleted BEFORE DELETE ON invoice_line
BEGIN SELECT RAISE(ABORT, 'invoice lines are never deleted'); END;
CREATE TRIGGER invoice_line_frozen BEFORE UPDATE ON invoice_line
BEGIN SELECT RAISE(ABORT, 'invoice lines are never edited'); END;
CREATE TRIGGER invoice_document_frozen BEFORE UPDATE OF order_no, kind, original_id, buyer_kind,
  buyer_title, buyer_tax_id, buyer_email, buyer_phone, excl_fen, tax_fen, incl_fen
  ON invoice_document
BEGIN SELECT RAISE(ABORT, 'invoice order number, buyer and amounts are frozen'); END;
CREATE TRIGGER invoice_claim_never_deleted BEFORE DELETE ON invoice_claim
BEGIN SELECT RAISE(ABORT, 'claims are never deleted'); END;
CREATE TRIGGER invoice_claim_keeps_invoice BEFORE UPDATE OF invoice_id ON invoice_claim
  WHEN OLD.invoice_id IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a claim keeps its invoice'); END;
)sql";

// Issue 13: wrong-code counters moved to memory (invoice/guess_limit.h); a table of one
// committed row per client key, written on every miss, could fill the database.
constexpr std::string_view kDropCodeGuessV2 = R"sql(
DROP TABLE invoice_code_guess;
)sql";

// Issue 17: the trip a claim bills (plate, entry/exit: the 06 lease period) and the specific
// business an invoice was issued with, both frozen once written. specific_json is
// lanegate's own form (invoice/specific_business.h), not the wire form.
constexpr std::string_view kTripAndBusinessV3 = R"sql(
ALTER TABLE invoice_claim ADD COLUMN plate TEXT NOT NULL DEFAULT '';
ALTER TABLE invoice_claim ADD COLUMN period_start INTEGER;
ALTER TABLE invoice_claim ADD COLUMN period_end INTEGER;
ALTER TABLE invoice_document ADD COLUMN specific_factor TEXT NOT NULL DEFAULT '0'
  CHECK (specific_factor IN ('0', '6', '9'));
ALTER TABLE invoice_document ADD COLUMN specific_json TEXT NOT NULL DEFAULT '';
CREATE TRIGGER invoice_document_business_frozen BEFORE UPDATE OF specific_factor, specific_json
  ON invoice_document
BEGIN SELECT RAISE(ABORT, 'invoice specific business is frozen'); END;
CREATE TRIGGER invoice_claim_trip_frozen BEFORE UPDATE OF plate, period_start, period_end
  ON invoice_claim WHEN OLD.plate <> '' OR OLD.period_start IS NOT NULL OR OLD.period_end IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a claim keeps its trip'); END;
)sql";

// Issue 17: red letters need a confirmation form (红字确认单) first (invoice/red_letter.h).
// One row per attempt, at most one live per red invoice, never deleted; its identity and
// reason are frozen. red_reason is the Nuonuo code (the enum's value), nuonuo_reason and
// bureau_reason the two numberings as sent and as the tax bureau shows them.
constexpr std::string_view kRedConfirmV4 = R"sql(
CREATE TABLE invoice_red_confirm (
  id INTEGER PRIMARY KEY,
  red_invoice_id INTEGER NOT NULL REFERENCES invoice_document(id),
  attempt INTEGER NOT NULL CHECK (attempt >= 1),
  bill_id TEXT NOT NULL UNIQUE CHECK (length(bill_id) BETWEEN 1 AND 32),
  red_reason INTEGER NOT NULL CHECK (red_reason BETWEEN 1 AND 4),
  nuonuo_reason TEXT NOT NULL CHECK (nuonuo_reason IN ('1', '2', '3', '4')),
  bureau_reason TEXT NOT NULL CHECK (bureau_reason IN ('01', '02', '03', '04')),
  state TEXT NOT NULL CHECK (state IN ('new', 'applying', 'applied', 'awaiting_buyer',
    'awaiting_seller', 'confirmed', 'used', 'void', 'refused')),
  bill_status TEXT NOT NULL DEFAULT '',
  bill_no TEXT NOT NULL DEFAULT '',
  bill_uuid TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  apply_sent_at INTEGER,
  applied_at INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (red_invoice_id, attempt)
);
CREATE UNIQUE INDEX invoice_red_confirm_live ON invoice_red_confirm(red_invoice_id)
  WHERE state NOT IN ('void', 'refused');
CREATE TRIGGER invoice_red_confirm_never_deleted BEFORE DELETE ON invoice_red_confirm
BEGIN SELECT RAISE(ABORT, 'red-letter forms are never deleted'); END;
CREATE TRIGGER invoice_red_confirm_frozen BEFORE UPDATE OF red_invoice_id, attempt, bill_id,
  red_reason, nuonuo_reason, bureau_reason ON invoice_red_confirm
BEGIN SELECT RAISE(ABORT, 'a red-letter form keeps its identity and reason'); END;
)sql";

// Issue 17, partial refunds (spec: "for a partial refund, reverse the whole invoice and
// issue a new blue one for the amount kept"): the new blue names the one it replaces; at
// most one replacement per invoice, and the link is frozen.
constexpr std::string_view kReplacementV5 = R"sql(
ALTER TABLE invoice_document ADD COLUMN replaces_id INTEGER REFERENCES invoice_document(id);
CREATE UNIQUE INDEX invoice_document_one_replacement ON invoice_document(replaces_id)
  WHERE replaces_id IS NOT NULL;
CREATE TRIGGER invoice_document_replacement_frozen BEFORE UPDATE OF replaces_id ON invoice_document
BEGIN SELECT RAISE(ABORT, 'an invoice keeps what it replaces'); END;
)sql";

// APPEND-ONLY (gateway/src/schema.cc composes these by index): never edit a released step.
constexpr std::array<std::string_view, 5> kSteps = {kSchemaV1, kDropCodeGuessV2,
                                                    kTripAndBusinessV3, kRedConfirmV4,
                                                    kReplacementV5};

constexpr std::string_view kClaimColumns =
    "token, human_code, transaction_id, account_id, service, amount_fen, description, "
    "settled_at, expires_at, voided_at, invoice_id, plate, period_start, period_end";

constexpr std::string_view kDocumentColumns =
    "id, order_no, kind, original_id, red_reason, state, buyer_kind, buyer_title, buyer_tax_id, "
    "buyer_email, buyer_phone, excl_fen, tax_fen, incl_fen, serial_num, invoice_number, pdf_url, "
    "fail_reason, created_at, updated_at, issued_at, specific_json";

metrics::Counter& claim_counter(std::string_view outcome) {
  return metrics::Registry::global().counter("lanegate_invoice_claims_total",
                                             "Invoice claim submissions by outcome",
                                             {{"outcome", std::string(outcome)}});
}

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) {
    return {};
  }
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

Result<std::string> new_token() {
  auto bytes = crypto::random_bytes(16);  // 128 bits
  if (!bytes) {
    return std::unexpected(bytes.error());
  }
  std::string s = crypto::base64_encode(*bytes);
  std::string out;
  for (char c : s) {
    if (c == '+') {
      out.push_back('-');
    } else if (c == '/') {
      out.push_back('_');
    } else if (c != '=') {
      out.push_back(c);
    }
  }
  return out;
}

Result<std::string> new_human_code() {
  std::string out;
  while (out.size() < 8) {
    auto bytes = crypto::random_bytes(16);
    if (!bytes) {
      return std::unexpected(bytes.error());
    }
    for (std::uint8_t b : *bytes) {
      if (b < 248 && out.size() < 8) {  // 248 = 8 * 31: no modulo bias
        out.push_back(kHumanCodeAlphabet[b % 31]);
      }
    }
  }
  return out;
}

Result<std::string> new_order_no() {
  auto t = crypto::random_token(18);
  if (!t) {
    return std::unexpected(t.error());
  }
  return "LG" + *t;
}

std::string normalise_human_code(std::string_view code) {
  std::string out;
  for (char c : code) {
    if (c == ' ' || c == '-') {
      continue;
    }
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
    out.push_back(c);
  }
  return out;
}

std::string date_of(SystemTime t) { return format_local_date(t, UtcOffset{480}); }

// The audit ledger's view of an invoice (docs/AUDIT.md, kinds invoice_issued and
// invoice_reversed): out_trade_no is the settled transaction when the invoice covers one,
// "" for a merged invoice (detail.transactions lists them all); amount is the blue
// invoice's tax-inclusive total (positive: the kind says the direction).
ledger::LedgerEvent invoice_event(ledger::Kind kind, const InvoiceRecord& blue, SystemTime now,
                                  boost::json::object detail) {
  boost::json::array txs;
  for (const InvoiceLine& l : blue.lines) {
    txs.emplace_back(l.transaction_id);
  }
  detail["invoice_id"] = blue.id;
  detail["order_no"] = blue.order_no;
  detail["excl_fen"] = blue.totals.excl.fen();
  detail["tax_fen"] = blue.totals.tax.fen();
  detail["transactions"] = std::move(txs);
  ledger::LedgerEvent ev;
  ev.kind = kind;
  ev.time = now;
  ev.out_trade_no = blue.lines.size() == 1 ? blue.lines.front().transaction_id : "";
  ev.amount = blue.totals.incl;
  ev.state = kind == ledger::Kind::kInvoiceIssued ? "ISSUED" : "REVERSED";
  ev.actor = "platform";
  ev.detail = boost::json::serialize(detail);
  return ev;
}

// I10: a legacy toll claim (made before tolls were refused) is never invoiced here.
Error toll_refused(std::string_view transaction_id) {
  return Error{Errc::kRejected,
               "transaction " + std::string(transaction_id) + ": " + std::string(kTollInvoiceElsewhere),
               "service"};
}

Claim read_claim(const Statement& st) {
  Claim c;
  c.token = st.column_text(0);
  c.human_code = st.column_text(1);
  c.transaction_id = st.column_text(2);
  c.account_id = st.column_text(3);
  c.service = st.column_text(4);
  c.amount = Money::from_fen(st.column_int64(5));
  c.description = st.column_text(6);
  c.settled_at = from_unix_seconds(st.column_int64(7));
  c.expires_at = from_unix_seconds(st.column_int64(8));
  c.voided = !st.column_is_null(9);
  c.invoice_id = st.column_opt_int64(10);
  c.plate = st.column_text(11);
  if (auto t = st.column_opt_int64(12)) c.period_start = from_unix_seconds(*t);
  if (auto t = st.column_opt_int64(13)) c.period_end = from_unix_seconds(*t);
  return c;
}

}  // namespace

std::span<const std::string_view> invoice_schema_steps() { return kSteps; }

std::string_view to_string(InvoiceState state) {
  switch (state) {
    case InvoiceState::kNone: return "none";
    case InvoiceState::kClaimed: return "claimed";
    case InvoiceState::kIssuing: return "issuing";
    case InvoiceState::kIssued: return "issued";
    case InvoiceState::kFailed: return "failed";
    case InvoiceState::kReversed: return "reversed";
  }
  return "none";
}

Result<InvoiceState> parse_invoice_state(std::string_view text) {
  for (auto s : {InvoiceState::kNone, InvoiceState::kClaimed, InvoiceState::kIssuing,
                 InvoiceState::kIssued, InvoiceState::kFailed, InvoiceState::kReversed}) {
    if (to_string(s) == text) {
      return s;
    }
  }
  return fail(Errc::kParse, "unknown invoice state '" + std::string(text) + "'", "state");
}

Result<Buyer> validate_buyer(const Buyer& in, std::span<const std::string> allow_list) {
  Buyer b;
  b.kind = in.kind;
  b.title = trim(in.title);
  b.email = trim(in.email);
  b.phone = trim(in.phone);
  if (has_control_chars(b.title)) {
    return fail(Errc::kInvalidArgument, "must not contain control characters", "title");
  }
  if (code_points(b.title) > 100) {
    return fail(Errc::kInvalidArgument, "at most 100 characters", "title");
  }
  if (b.kind == BuyerKind::kCompany) {
    if (b.title.empty()) {
      return fail(Errc::kInvalidArgument, "a company invoice needs the company name", "title");
    }
    if (trim(in.tax_id).empty()) {
      return fail(Errc::kInvalidArgument,
                  "a company invoice needs the taxpayer id (unified social credit code)",
                  "tax_id");
    }
    auto id = validate_buyer_id(in.tax_id, allow_list);
    if (!id) {
      return fail(Errc::kInvalidArgument, id.error().message, "tax_id");
    }
    b.tax_id = *id;
  } else {
    if (!trim(in.tax_id).empty()) {
      return fail(Errc::kInvalidArgument,
                  "a person's invoice has no taxpayer id; choose 'company' to add one", "tax_id");
    }
    if (b.title.empty()) {
      b.title = "个人";
    }
  }
  if (b.email.empty() && b.phone.empty()) {
    return fail(Errc::kInvalidArgument,
                "give an e-mail address or a mobile number to receive the invoice", "email");
  }
  if (!b.email.empty()) {
    const auto at = b.email.find('@');
    const bool ok = b.email.size() <= 100 && at != std::string::npos && at > 0 &&
                    b.email.find('@', at + 1) == std::string::npos &&
                    b.email.find('.', at + 2) != std::string::npos && b.email.back() != '.' &&
                    b.email.find_first_of(" \t<>,;\"") == std::string::npos &&
                    !has_control_chars(b.email);
    if (!ok) {
      return fail(Errc::kInvalidArgument, "not an e-mail address (name@example.cn)", "email");
    }
  }
  if (!b.phone.empty()) {
    std::string digits = b.phone;
    if (digits.starts_with("+86")) {
      digits = trim(digits.substr(3));
    }
    std::erase_if(digits, [](char c) { return c == ' ' || c == '-'; });
    const bool ok = digits.size() == 11 && digits[0] == '1' && digits[1] >= '3' &&
                    digits.find_first_not_of("0123456789") == std::string::npos;
    if (!ok) {
      return fail(Errc::kInvalidArgument, "a mainland mobile number has 11 digits starting 13-19",
                  "phone");
    }
    b.phone = digits;
  }
  return b;
}

ClaimStore::ClaimStore(Database& db, const config::InvoicingSection& section, const Clock& clock,
                       ClaimPolicy policy)
    : db_(db),
      section_(section),
      clock_(clock),
      policy_(policy),
      rules_(effective_tax_rules(section)),
      guesses_(clock, CodeGuessLimit::Policy{.max_failures = policy.guess_max_failures,
                                             .window = policy.guess_window,
                                             .lockout = policy.guess_lockout,
                                             .max_clients = policy.guess_max_clients}) {}

Result<Claim> ClaimStore::load_claim(std::string_view column, std::string_view value) {
  auto st = db_.prepare("SELECT " + std::string(kClaimColumns) + " FROM invoice_claim WHERE " +
                        std::string(column) + " = ?");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind(1, value);
  auto row = st->step();
  if (!row) {
    return std::unexpected(row.error());
  }
  if (!*row) {
    return fail(Errc::kNotFound, "no such claim", "token");
  }
  return read_claim(*st);
}

Result<Claim> ClaimStore::create_claim(const SettledTransaction& tx) {
  if (tx.transaction_id.empty()) {
    return fail(Errc::kInvalidArgument, "must not be empty", "transaction_id");
  }
  if (tx.amount.fen() <= 0) {
    return fail(Errc::kInvalidArgument, "a claim needs a positive settled amount", "amount");
  }
  if (tx.service == kTollService) {  // I10
    return fail(Errc::kInvalidArgument, std::string(kTollInvoiceElsewhere), "service");
  }
  if (auto rule = find_tax_rule(rules_, tx.service); !rule) {
    return std::unexpected(rule.error());
  }
  if (auto existing = load_claim("transaction_id", tx.transaction_id); existing) {
    if (existing->amount != tx.amount || existing->service != tx.service ||
        existing->account_id != tx.account_id) {
      // A settled transaction's amount never changes: this is a caller bug, not a retry.
      return fail(Errc::kAlreadyExists,
                  "transaction " + tx.transaction_id + " already has a claim for " +
                      existing->amount.to_string() + " (" + existing->service + ")",
                  "transaction_id");
    }
    return existing;
  } else if (existing.error().code != Errc::kNotFound) {
    return existing;
  }
  const std::int64_t settled = to_unix_seconds(tx.settled_at);
  const std::int64_t expires = settled + std::int64_t{section_.claim_window_days} * 86400;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto token = new_token();
    auto code = new_human_code();
    if (!token || !code) {
      return std::unexpected(token ? code.error() : token.error());
    }
    auto st = db_.prepare(
        "INSERT INTO invoice_claim(token, human_code, transaction_id, account_id, service, "
        "amount_fen, description, settled_at, expires_at, created_at, plate, period_start, "
        "period_end) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (!st) {
      return std::unexpected(st.error());
    }
    st->bind_all(*token, *code, tx.transaction_id, tx.account_id, tx.service, tx.amount.fen(),
                 tx.description, settled, expires, clock_.unix_seconds(), tx.plate);
    if (tx.period_start) st->bind(12, to_unix_seconds(*tx.period_start));
    if (tx.period_end) st->bind(13, to_unix_seconds(*tx.period_end));
    auto ran = st->run();
    if (ran) {
      return load_claim("token", *token);
    }
    if (ran.error().code != Errc::kAlreadyExists) {
      return std::unexpected(ran.error());
    }
    // Either the human code collided (retry with a new one) or the transaction was
    // claimed concurrently (return that claim).
    if (auto existing = load_claim("transaction_id", tx.transaction_id); existing) {
      return existing;
    }
  }
  return fail(Errc::kInternal, "could not draw a unique claim code", "human_code");
}

Result<Claim> ClaimStore::find_by_token(std::string_view token) {
  if (token.size() != 22 ||
      token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
          std::string_view::npos) {
    return fail(Errc::kNotFound, "no such claim", "token");
  }
  return load_claim("token", token);
}

Result<Claim> ClaimStore::find_by_transaction(std::string_view transaction_id) {
  return load_claim("transaction_id", transaction_id);
}

std::optional<std::chrono::seconds> ClaimStore::retry_after(std::string_view client_key) {
  return guesses_.retry_after(client_key);
}

Result<Claim> ClaimStore::find_by_human_code(std::string_view code, std::string_view client_key) {
  if (auto wait = retry_after(client_key)) {
    return fail(Errc::kPermission,
                "too many wrong claim codes; try again in " + std::to_string(wait->count()) + " s",
                "code");
  }
  const std::string normalised = normalise_human_code(code);
  if (normalised.size() != 8 ||
      normalised.find_first_not_of(kHumanCodeAlphabet) != std::string::npos) {
    // Cannot match any claim, so it teaches a guesser nothing: not counted.
    return fail(Errc::kInvalidArgument,
                "a claim code has 8 characters from 2-9 and A-Z without I, L, O", "code");
  }
  auto claim = load_claim("human_code", normalised);
  if (claim) {
    return claim;
  }
  if (claim.error().code != Errc::kNotFound) {
    return claim;
  }
  metrics::Registry::global()
      .counter("lanegate_invoice_claim_code_misses_total", "Wrong human claim codes typed")
      .inc();
  // In memory, never a write transaction: the miss must not cost the io thread an fsync.
  if (guesses_.record_miss(client_key)) {
    metrics::Registry::global()
        .counter("lanegate_invoice_claim_code_lockouts_total",
                 "Clients locked out after too many wrong claim codes")
        .inc();
    log::notice("claim code guessing locked out a client",
                {{"LOCKOUT_S", policy_.guess_lockout.count()}});
  }
  return fail(Errc::kNotFound, "no claim with this code; check the receipt", "code");
}

// Writes an invoice's lines, numbered from 1 in order. REQUIRES: inside a transaction.
Status ClaimStore::insert_lines(std::int64_t invoice_id, std::span<const InvoiceLine> lines) {
  auto st = db_.prepare(
      "INSERT INTO invoice_line(invoice_id, line_no, transaction_id, service, item_name, "
      "tax_code, rate_percent, favoured_policy_flag, excl_fen, tax_fen, incl_fen) "
      "VALUES (?,?,?,?,?,?,?,?,?,?,?)");
  if (!st) {
    return std::unexpected(st.error());
  }
  int line_no = 0;
  for (const InvoiceLine& l : lines) {
    st->bind_all(invoice_id, ++line_no, l.transaction_id, l.service, l.item_name, l.tax_code,
                 l.rate_percent, l.favoured_policy_flag, l.excl.fen(), l.tax.fen(), l.incl.fen());
    if (auto s = st->run(); !s) {
      return s;
    }
  }
  return {};
}

// Creates the invoice for `claims`, lets the issue hook queue its upload in the same
// transaction, and commits both together.
Result<SubmitResult> ClaimStore::create_and_commit(Transaction& txn, std::span<const Claim> claims,
                                                   const Buyer& buyer,
                                                   const std::optional<TravellerInput>& traveller) {
  auto made = create_invoice(claims, buyer, traveller);
  if (!made) {
    return made;
  }
  if (issue_hook_) {
    if (auto s = issue_hook_(txn, made->invoice); !s) {
      return std::unexpected(s.error());
    }
  }
  if (auto s = txn.commit(); !s) {
    return std::unexpected(s.error());
  }
  return made;
}

Result<SubmitResult> ClaimStore::invoice_in(Transaction& txn, const Claim& claim, const Buyer& input) {
  auto buyer = validate_buyer(input, section_.buyer_id_allow_list);
  if (!buyer) {
    claim_counter("invalid").inc();
    return std::unexpected(buyer.error());
  }
  auto made = create_invoice(std::span<const Claim>(&claim, 1), *buyer);
  if (!made) {
    return made;
  }
  if (issue_hook_) {
    if (auto s = issue_hook_(txn, made->invoice); !s) {
      return std::unexpected(s.error());
    }
  }
  claim_counter("default_title").inc();
  return made;
}

// The specific business of an invoice over `claims` (spec "Specific business"). Parking is
// a 06 lease when the site says so ([invoicing.parking] specific_business): one stay per
// invoice (06 allows one line), its entry and exit as the lease period, plate and times in
// the remark. A stay without both times is refused (field "trip"): nothing is invented.
Result<SpecificBusiness> ClaimStore::specific_business_for(
    std::span<const Claim> claims, const std::optional<TravellerInput>& traveller) const {
  SpecificBusiness b;
  if (traveller) {
    // 09 is offered for one taxi trip at a time (our choice: the rows name one journey).
    if (!section_.taxi.offer_traveller || claims.size() != 1 || claims.front().service != "taxi") {
      return fail(Errc::kInvalidArgument,
                  "traveller identity (specific business 09) is offered for a single taxi trip only",
                  "traveller_name");
    }
    const Claim& c = claims.front();
    auto row = make_traveller(*traveller, c.period_start.value_or(c.settled_at));
    if (!row) {
      return std::unexpected(row.error());
    }
    b.factor = SpecificFactor::kPassengerTransport;
    b.travellers.push_back(std::move(*row));
    return b;
  }
  const bool lease = section_.parking.specific_business &&
                     std::any_of(claims.begin(), claims.end(),
                                 [](const Claim& c) { return c.service == "parking"; });
  if (!lease) {
    return b;
  }
  if (claims.size() != 1) {
    return fail(Errc::kInvalidArgument,
                "a parking invoice (specific business 06) has exactly one line: claim each stay "
                "on its own invoice",
                "transaction_ids");
  }
  const Claim& c = claims.front();
  auto l = lease_for_parking(section_.parking, c.period_start, c.period_end);
  if (!l) {
    claim_counter("no_lease_period").inc();
    return std::unexpected(l.error());
  }
  b.factor = SpecificFactor::kRealPropertyLease;
  b.lease = std::move(*l);
  b.remark = parking_remark(c.plate, c.period_start, c.period_end);
  return b;
}

Result<std::int64_t> ClaimStore::insert_blue(std::string_view order_no, const Buyer& buyer,
                                             std::span<const InvoiceLine> lines,
                                             const SpecificBusiness& specific,
                                             std::optional<std::int64_t> replaces_id) {
  auto totals = sum_lines(lines);
  if (!totals) {
    return std::unexpected(totals.error());
  }
  const std::int64_t now = clock_.unix_seconds();
  auto ins = db_.prepare(
      "INSERT INTO invoice_document(order_no, kind, state, buyer_kind, buyer_title, buyer_tax_id, "
      "buyer_email, buyer_phone, excl_fen, tax_fen, incl_fen, created_at, updated_at, "
      "specific_factor, specific_json, replaces_id) "
      "VALUES (?, 'blue', 'claimed', ?,?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!ins) {
    return std::unexpected(ins.error());
  }
  ins->bind_all(order_no, std::string(to_string(buyer.kind)), buyer.title, buyer.tax_id,
                buyer.email, buyer.phone, totals->excl.fen(), totals->tax.fen(),
                totals->incl.fen(), now, now, std::string(platform_code(specific.factor)),
                to_json(specific), replaces_id);
  if (auto s = ins->run(); !s) {
    return std::unexpected(s.error());
  }
  const std::int64_t id = db_.last_insert_rowid();
  if (auto s = insert_lines(id, lines); !s) {
    return std::unexpected(s.error());
  }
  return id;
}

Result<SubmitResult> ClaimStore::create_invoice(std::span<const Claim> claims, const Buyer& buyer,
                                                const std::optional<TravellerInput>& traveller) {
  auto order_no = new_order_no();
  if (!order_no) {
    return std::unexpected(order_no.error());
  }
  std::vector<InvoiceLine> lines;
  for (const Claim& c : claims) {
    if (c.service == kTollService) {  // I10, whichever path got here
      return std::unexpected(toll_refused(c.transaction_id));
    }
    auto rule = find_tax_rule(rules_, c.service);
    if (!rule) {
      return std::unexpected(rule.error());
    }
    lines.push_back(make_line(*rule, c.transaction_id, c.amount));
  }
  auto specific = specific_business_for(claims, traveller);
  if (!specific) {
    return std::unexpected(specific.error());
  }
  auto inserted = insert_blue(*order_no, buyer, lines, *specific, std::nullopt);
  if (!inserted) {
    return std::unexpected(inserted.error());
  }
  const std::int64_t id = *inserted;
  for (const Claim& c : claims) {
    auto st = db_.prepare(
        "UPDATE invoice_claim SET invoice_id = ? WHERE token = ? AND invoice_id IS NULL");
    if (!st) {
      return std::unexpected(st.error());
    }
    st->bind_all(id, c.token);
    if (auto s = st->run(); !s) {
      return std::unexpected(s.error());
    }
    if (db_.changes() != 1) {
      return fail(Errc::kAlreadyExists, "transaction already invoiced", c.transaction_id);
    }
  }
  auto rec = get_invoice(id);
  if (!rec) {
    return std::unexpected(rec.error());
  }
  return SubmitResult{std::move(*rec), true};
}

Result<SubmitResult> ClaimStore::submit(std::string_view token, const Buyer& input,
                                        const std::optional<TravellerInput>& traveller) {
  auto claim = find_by_token(token);
  if (!claim) {
    claim_counter("unknown_token").inc();
    return std::unexpected(claim.error());
  }
  if (claim->invoice_id) {
    // I2: one invoice per transaction; a second submission sees the first.
    claim_counter("duplicate").inc();
    auto rec = get_invoice(*claim->invoice_id);
    if (!rec) {
      return std::unexpected(rec.error());
    }
    return SubmitResult{std::move(*rec), false};
  }
  if (claim->service == kTollService) {
    // Before the buyer is even read: the passenger needs to know where to go instead.
    claim_counter("toll").inc();
    return std::unexpected(toll_refused(claim->transaction_id));
  }
  if (claim->voided) {
    claim_counter("refunded").inc();
    return fail(Errc::kRejected, "the trip was refunded: there is nothing to invoice", "token");
  }
  if (clock_.now() > claim->expires_at) {
    claim_counter("expired").inc();
    return fail(Errc::kRejected,
                "the claim window closed on " + date_of(claim->expires_at) + " (" +
                    std::to_string(section_.claim_window_days) + " days after the trip)",
                "token");
  }
  auto buyer = validate_buyer(input, section_.buyer_id_allow_list);
  if (!buyer) {
    claim_counter("invalid").inc();
    return std::unexpected(buyer.error());
  }
  auto txn = db_.begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  // Re-read inside the write lock: a concurrent submission may have won.
  auto fresh = find_by_token(token);
  if (!fresh) {
    return std::unexpected(fresh.error());
  }
  if (fresh->invoice_id) {
    txn->rollback();
    auto rec = get_invoice(*fresh->invoice_id);
    if (!rec) {
      return std::unexpected(rec.error());
    }
    return SubmitResult{std::move(*rec), false};
  }
  std::array<Claim, 1> one = {*fresh};
  auto made = create_and_commit(*txn, one, *buyer, traveller);
  if (!made) {
    return made;
  }
  claim_counter("created").inc();
  log::info("invoice claimed", {{"INVOICE_ID", made->invoice.id},
                                {"ORDER_NO", made->invoice.order_no},
                                {"BUYER_KIND", to_string(made->invoice.buyer.kind)}});
  return made;
}

Result<SubmitResult> ClaimStore::submit_merged(std::string_view account_id,
                                               std::span<const std::string> transaction_ids,
                                               const Buyer& input) {
  if (account_id.empty()) {
    return fail(Errc::kInvalidArgument, "merging needs an account", "account_id");
  }
  if (transaction_ids.empty()) {
    return fail(Errc::kInvalidArgument, "name at least one transaction", "transaction_ids");
  }
  if (static_cast<int>(transaction_ids.size()) > policy_.max_merged) {
    return fail(Errc::kOutOfRange,
                "at most " + std::to_string(policy_.max_merged) + " trips per invoice",
                "transaction_ids");
  }
  auto buyer = validate_buyer(input, section_.buyer_id_allow_list);
  if (!buyer) {
    return std::unexpected(buyer.error());
  }
  auto txn = db_.begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  std::vector<Claim> claims;
  for (const std::string& id : transaction_ids) {
    for (const Claim& seen : claims) {
      if (seen.transaction_id == id) {
        return fail(Errc::kInvalidArgument, "transaction " + id + " is listed twice",
                    "transaction_ids");
      }
    }
    auto c = load_claim("transaction_id", id);
    if (!c) {
      return fail(c.error().code, "transaction " + id + ": " + c.error().message,
                  "transaction_ids");
    }
    if (c->account_id != account_id) {
      return fail(Errc::kPermission, "transaction " + id + " belongs to another account",
                  "transaction_ids");
    }
    if (c->invoice_id) {
      return fail(Errc::kAlreadyExists, "transaction " + id + " already has an invoice",
                  "transaction_ids");
    }
    if (c->service == kTollService) {
      return std::unexpected(toll_refused(id));
    }
    if (c->voided) {
      return fail(Errc::kRejected, "transaction " + id + " was refunded", "transaction_ids");
    }
    if (clock_.now() > c->expires_at) {
      return fail(Errc::kRejected,
                  "transaction " + id + ": the claim window closed on " + date_of(c->expires_at),
                  "transaction_ids");
    }
    claims.push_back(std::move(*c));
  }
  auto made = create_and_commit(*txn, claims, *buyer);
  if (!made) {
    return made;
  }
  claim_counter("merged").inc();
  return made;
}

Result<ClaimStore::AutoClaim> ClaimStore::claim_with_default_title(
    const SettledTransaction& tx, const std::optional<Buyer>& default_title) {
  auto claim = create_claim(tx);
  if (!claim) {
    return std::unexpected(claim.error());
  }
  AutoClaim out{*claim, std::nullopt};
  if (!default_title) {
    return out;
  }
  auto submitted = submit(claim->token, *default_title);
  if (!submitted) {
    if (submitted.error().code != Errc::kInvalidArgument) {
      return std::unexpected(submitted.error());  // storage trouble: the caller retries
    }
    // The stored title no longer validates: the claim stays open for the passenger.
    log::warn("default invoice title refused; claim left open",
              {{"FIELD", submitted.error().field}, {"RULE", submitted.error().message}});
    return out;
  }
  auto reread = find_by_token(claim->token);
  if (reread) {
    out.claim = *reread;
  }
  out.submitted = std::move(*submitted);
  return out;
}

Result<InvoiceRecord> ClaimStore::get_invoice(std::int64_t id) {
  auto st = db_.prepare("SELECT " + std::string(kDocumentColumns) +
                        " FROM invoice_document WHERE id = ?");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind(1, id);
  auto row = st->step();
  if (!row) {
    return std::unexpected(row.error());
  }
  if (!*row) {
    return fail(Errc::kNotFound, "no invoice " + std::to_string(id), "invoice_id");
  }
  InvoiceRecord r;
  r.id = st->column_int64(0);
  r.order_no = st->column_text(1);
  r.kind = st->column_text(2) == "red" ? InvoiceKind::kRed : InvoiceKind::kBlue;
  r.original_id = st->column_opt_int64(3);
  r.red_reason = static_cast<int>(st->column_int64(4));
  auto state = parse_invoice_state(st->column_text(5));
  if (!state) {
    return std::unexpected(state.error());
  }
  r.state = *state;
  r.buyer.kind = st->column_text(6) == "company" ? BuyerKind::kCompany : BuyerKind::kPerson;
  r.buyer.title = st->column_text(7);
  r.buyer.tax_id = st->column_text(8);
  r.buyer.email = st->column_text(9);
  r.buyer.phone = st->column_text(10);
  r.totals.excl = Money::from_fen(st->column_int64(11));
  r.totals.tax = Money::from_fen(st->column_int64(12));
  r.totals.incl = Money::from_fen(st->column_int64(13));
  r.serial_num = st->column_text(14);
  r.invoice_number = st->column_text(15);
  r.pdf_url = st->column_text(16);
  r.fail_reason = st->column_text(17);
  r.created_at = from_unix_seconds(st->column_int64(18));
  r.updated_at = from_unix_seconds(st->column_int64(19));
  if (auto t = st->column_opt_int64(20)) {
    r.issued_at = from_unix_seconds(*t);
  }
  auto specific = specific_business_from_json(st->column_text(21));
  if (!specific) {
    return std::unexpected(specific.error());
  }
  r.specific = std::move(*specific);
  auto ls = db_.prepare(
      "SELECT transaction_id, service, item_name, tax_code, rate_percent, favoured_policy_flag, "
      "excl_fen, tax_fen, incl_fen FROM invoice_line WHERE invoice_id = ? ORDER BY line_no");
  if (!ls) {
    return std::unexpected(ls.error());
  }
  ls->bind(1, id);
  while (true) {
    auto more = ls->step();
    if (!more) {
      return std::unexpected(more.error());
    }
    if (!*more) {
      break;
    }
    InvoiceLine l;
    l.transaction_id = ls->column_text(0);
    l.service = ls->column_text(1);
    l.item_name = ls->column_text(2);
    l.tax_code = ls->column_text(3);
    l.rate_percent = static_cast<int>(ls->column_int64(4));
    l.favoured_policy_flag = ls->column_text(5);
    l.excl = Money::from_fen(ls->column_int64(6));
    l.tax = Money::from_fen(ls->column_int64(7));
    l.incl = Money::from_fen(ls->column_int64(8));
    r.lines.push_back(std::move(l));
  }
  return r;
}

Result<InvoiceRecord> ClaimStore::get_invoice_by_order_no(std::string_view order_no) {
  auto st = db_.prepare("SELECT id FROM invoice_document WHERE order_no = ?");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind(1, order_no);
  auto row = st->step();
  if (!row) {
    return std::unexpected(row.error());
  }
  if (!*row) {
    return fail(Errc::kNotFound, "no invoice with order number " + std::string(order_no),
                "order_no");
  }
  return get_invoice(st->column_int64(0));
}

Result<std::vector<std::int64_t>> ClaimStore::invoices_in_state(InvoiceState state) {
  auto st = db_.prepare("SELECT id FROM invoice_document WHERE state = ? ORDER BY id");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind(1, to_string(state));
  std::vector<std::int64_t> ids;
  while (true) {
    auto more = st->step();
    if (!more) {
      return std::unexpected(more.error());
    }
    if (!*more) {
      return ids;
    }
    ids.push_back(st->column_int64(0));
  }
}

Result<bool> ClaimStore::update_state(std::string_view table, std::int64_t id,
                                      std::string_view from, std::string_view to,
                                      std::string_view set_sql, std::span<const std::string> args) {
  std::string sql = "UPDATE " + std::string(table) + " SET state = ?, updated_at = ?";
  if (!set_sql.empty()) {
    sql += ", ";
    sql += set_sql;
  }
  sql += " WHERE id = ? AND state = ?";
  auto st = db_.prepare(sql);
  if (!st) {
    return std::unexpected(st.error());
  }
  int i = 0;
  st->bind(++i, to);
  st->bind(++i, clock_.unix_seconds());
  for (const std::string& a : args) {
    st->bind(++i, a);
  }
  st->bind(++i, id);
  st->bind(++i, from);
  if (auto s = st->run(); !s) {
    return std::unexpected(s.error());
  }
  return db_.changes() == 1;
}

Status ClaimStore::transition(std::int64_t id, InvoiceState from, InvoiceState to,
                              std::string_view set_sql, std::span<const std::string> args) {
  auto changed = update_state("invoice_document", id, to_string(from), to_string(to), set_sql, args);
  if (!changed) {
    return std::unexpected(changed.error());
  }
  if (*changed) {
    return {};
  }
  auto current = get_invoice(id);
  if (!current) {
    return std::unexpected(current.error());
  }
  return fail(Errc::kRejected,
              "invoice " + std::to_string(id) + " is " + std::string(to_string(current->state)) +
                  ", cannot move " + std::string(to_string(from)) + " -> " +
                  std::string(to_string(to)),
              "state");
}

Status ClaimStore::mark_issuing(std::int64_t id, std::string_view serial_num) {
  auto current = get_invoice(id);
  if (!current) {
    return std::unexpected(current.error());
  }
  if (current->state == InvoiceState::kIssuing && current->serial_num == serial_num) {
    return {};  // the same acceptance seen twice (reply and query)
  }
  const std::array<std::string, 1> args = {std::string(serial_num)};
  return transition(id, InvoiceState::kClaimed, InvoiceState::kIssuing, "serial_num = ?", args);
}

Status ClaimStore::mark_issued(std::int64_t id, std::string_view invoice_number,
                               std::string_view pdf_url) {
  if (invoice_number.size() != 20 ||
      invoice_number.find_first_not_of("0123456789") != std::string_view::npos) {
    return fail(Errc::kInvalidArgument, "an invoice number has 20 digits", "invoice_number");
  }
  auto current = get_invoice(id);
  if (!current) {
    return std::unexpected(current.error());
  }
  if ((current->state == InvoiceState::kIssued || current->state == InvoiceState::kReversed) &&
      current->invoice_number == invoice_number) {
    return {};  // callback and poll both delivered the result
  }
  auto txn = db_.begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  const std::array<std::string, 3> args = {std::string(invoice_number), std::string(pdf_url),
                                           std::to_string(clock_.unix_seconds())};
  if (auto s = transition(id, InvoiceState::kIssuing, InvoiceState::kIssued,
                          "invoice_number = ?, pdf_url = ?, issued_at = ?, fail_reason = ''",
                          args);
      !s) {
    return s;
  }
  if (current->kind == InvoiceKind::kBlue) {
    current->invoice_number = std::string(invoice_number);
    boost::json::object detail;
    detail["invoice_number"] = std::string(invoice_number);
    detail["buyer_kind"] = std::string(to_string(current->buyer.kind));
    detail["buyer_tax_id"] = current->buyer.tax_id;
    auto appended = ledger::append(
        *txn, invoice_event(ledger::Kind::kInvoiceIssued, *current, clock_.now(), std::move(detail)));
    if (!appended) {
      return std::unexpected(appended.error());
    }
  }
  if (current->kind == InvoiceKind::kRed && current->original_id) {
    if (auto s = transition(*current->original_id, InvoiceState::kIssued, InvoiceState::kReversed,
                            "", {});
        !s) {
      return s;
    }
    auto blue = get_invoice(*current->original_id);
    if (!blue) {
      return std::unexpected(blue.error());
    }
    boost::json::object detail;
    detail["invoice_number"] = blue->invoice_number;
    detail["red_invoice_id"] = current->id;
    detail["red_order_no"] = current->order_no;
    detail["red_invoice_number"] = std::string(invoice_number);
    detail["red_reason"] = current->red_reason;  // Nuonuo's code (docs/AUDIT.md)
    if (auto reason = red_reason_from_nuonuo(current->red_reason)) {
      detail["red_reason_name"] = std::string(to_string(*reason));
      detail["bureau_red_reason"] = std::string(bureau_red_reason(*reason));
    }
    if (auto forms = red_confirmations(current->id); forms && !forms->empty()) {
      detail["red_confirm_bill_no"] = forms->back().bill_no;
    }
    auto appended = ledger::append(
        *txn, invoice_event(ledger::Kind::kInvoiceReversed, *blue, clock_.now(), std::move(detail)));
    if (!appended) {
      return std::unexpected(appended.error());
    }
  }
  if (auto s = txn->commit(); !s) {
    return s;
  }
  metrics::Registry::global()
      .counter("lanegate_invoice_issued_total", "Invoices issued by the platform",
               {{"kind", std::string(to_string(current->kind))}})
      .inc();
  return {};
}

Status ClaimStore::mark_failed(std::int64_t id, std::string_view reason) {
  const std::array<std::string, 1> args = {std::string(reason)};
  auto s = transition(id, InvoiceState::kIssuing, InvoiceState::kFailed, "fail_reason = ?", args);
  if (!s && s.error().code == Errc::kRejected) {
    s = transition(id, InvoiceState::kClaimed, InvoiceState::kFailed, "fail_reason = ?", args);
  }
  if (s) {
    metrics::Registry::global()
        .counter("lanegate_invoice_failed_total", "Invoices the platform refused or failed")
        .inc();
    log::warn("invoice failed", {{"INVOICE_ID", id}, {"REASON", std::string(reason)}});
  }
  return s;
}

Status ClaimStore::retry_failed(std::int64_t id) {
  auto inv = get_invoice(id);
  if (!inv) {
    return std::unexpected(inv.error());
  }
  for (const InvoiceLine& l : inv->lines) {
    if (l.service == kTollService) {  // I10: a legacy toll invoice stays failed
      return std::unexpected(toll_refused(l.transaction_id));
    }
  }
  auto txn = db_.begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  if (auto s = transition(id, InvoiceState::kFailed, InvoiceState::kClaimed, "", {}); !s) {
    return s;
  }
  inv->state = InvoiceState::kClaimed;
  if (auto forms = red_confirmations(id); !forms) {
    return std::unexpected(forms.error());
  } else if (!forms->empty() && (forms->back().state == RedConfirmState::kVoid ||
                                 forms->back().state == RedConfirmState::kRefused)) {
    // The last form closed without a red invoice: the retry applies again with a new form
    // (a new billId; the red keeps its order number, R6).
    const RedConfirmation& last = forms->back();
    const int attempt = last.attempt + 1;
    if (auto s = insert_red_confirm(id, attempt, inv->order_no + "R" + std::to_string(attempt),
                                    last.reason);
        !s) {
      return s;
    }
  }
  if (issue_hook_) {
    if (auto s = issue_hook_(*txn, *inv); !s) {
      return s;
    }
  }
  return txn->commit();
}

Result<InvoiceRecord> ClaimStore::request_red_letter(std::int64_t blue_id, RedLetterReason reason) {
  auto txn = db_.begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  auto red = red_letter_in(*txn, blue_id, reason);
  if (!red) {
    return red;
  }
  if (auto s = txn->commit(); !s) {
    return std::unexpected(s.error());
  }
  return red;
}

Result<InvoiceRecord> ClaimStore::red_letter_in(Transaction& txn, std::int64_t blue_id,
                                                RedLetterReason reason) {
  if (auto existing = red_letter_of(blue_id); !existing) {
    return std::unexpected(existing.error());
  } else if (*existing) {
    return get_invoice(**existing);
  }
  auto blue = get_invoice(blue_id);
  if (!blue) {
    return blue;
  }
  if (blue->kind != InvoiceKind::kBlue || blue->state != InvoiceState::kIssued) {
    return fail(Errc::kRejected,
                "only an issued blue invoice can be reversed; invoice " + std::to_string(blue_id) +
                    " is " + std::string(to_string(blue->state)),
                "invoice_id");
  }
  auto lines = red_letter_lines(blue->lines);
  if (!lines) {
    return std::unexpected(lines.error());
  }
  auto totals = sum_lines(*lines);
  auto order_no = new_order_no();
  if (!totals || !order_no) {
    return std::unexpected(totals ? order_no.error() : totals.error());
  }
  const std::int64_t now = clock_.unix_seconds();
  auto ins = db_.prepare(
      "INSERT INTO invoice_document(order_no, kind, original_id, red_reason, state, buyer_kind, "
      "buyer_title, buyer_tax_id, buyer_email, buyer_phone, excl_fen, tax_fen, incl_fen, "
      "created_at, updated_at) VALUES (?, 'red', ?, ?, 'claimed', ?,?,?,?,?,?,?,?,?,?)");
  if (!ins) {
    return std::unexpected(ins.error());
  }
  ins->bind_all(*order_no, blue_id, static_cast<int>(reason),
                std::string(to_string(blue->buyer.kind)), blue->buyer.title, blue->buyer.tax_id,
                blue->buyer.email, blue->buyer.phone, totals->excl.fen(), totals->tax.fen(),
                totals->incl.fen(), now, now);
  if (auto s = ins->run(); !s) {
    return std::unexpected(s.error());
  }
  const std::int64_t red_id = db_.last_insert_rowid();
  if (auto s = insert_lines(red_id, *lines); !s) {
    return std::unexpected(s.error());
  }
  // Its first confirmation form, in the same commit: billId = the red order number (R2).
  if (auto s = insert_red_confirm(red_id, 1, *order_no, reason); !s) {
    return std::unexpected(s.error());
  }
  auto red = get_invoice(red_id);
  if (!red) {
    return red;
  }
  if (issue_hook_) {
    if (auto s = issue_hook_(txn, *red); !s) {
      return std::unexpected(s.error());
    }
  }
  log::info("red-letter invoice requested", {{"INVOICE_ID", red_id},
                                             {"ORIGINAL_ID", blue_id},
                                             {"REASON", std::string(to_string(reason))}});
  return red;
}

Result<std::optional<InvoiceRecord>> ClaimStore::on_refund(std::string_view transaction_id) {
  auto txn = db_.begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  auto r = on_refund(*txn, transaction_id);
  if (!r) {
    return r;
  }
  if (auto s = txn->commit(); !s) {
    return std::unexpected(s.error());
  }
  return r;
}

Result<std::optional<InvoiceRecord>> ClaimStore::on_refund(Transaction& txn,
                                                           std::string_view transaction_id) {
  auto claim = find_by_transaction(transaction_id);
  if (!claim) {
    return std::unexpected(claim.error());
  }
  auto void_claim = [&]() -> Result<std::optional<InvoiceRecord>> {
    auto st = db_.prepare(
        "UPDATE invoice_claim SET voided_at = ? WHERE transaction_id = ? AND voided_at IS NULL");
    if (!st) {
      return std::unexpected(st.error());
    }
    st->bind_all(clock_.unix_seconds(), std::string(transaction_id));
    if (auto s = st->run(); !s) {
      return std::unexpected(s.error());
    }
    return std::optional<InvoiceRecord>{};
  };
  if (!claim->invoice_id) {
    return void_claim();
  }
  // The invoice that bills the trip now: a replacement, when a refund of another trip
  // reversed the original (I11).
  auto inv = current_invoice(*claim->invoice_id);
  if (!inv) {
    return std::unexpected(inv.error());
  }
  switch (inv->state) {
    case InvoiceState::kIssued: {
      // Asked again (a retried refund item): the red exists, nothing more to queue.
      if (auto existing = red_letter_of(inv->id); !existing) {
        return std::unexpected(existing.error());
      } else if (*existing) {
        auto red = get_invoice(**existing);
        if (!red) {
          return std::unexpected(red.error());
        }
        return std::optional<InvoiceRecord>(std::move(*red));
      }
      // The trip is refunded (the claim says so), then the whole invoice is reversed; the
      // other trips on it get a new invoice once the red is issued (reissue_kept).
      if (auto v = void_claim(); !v) {
        return v;
      }
      auto red = red_letter_in(txn, inv->id, RedLetterReason::kReturned);
      if (!red) {
        return std::unexpected(red.error());
      }
      if (reissue_hook_ && inv->lines.size() > 1) {
        if (auto s = reissue_hook_(txn, *red); !s) {
          return std::unexpected(s.error());
        }
      }
      return std::optional<InvoiceRecord>(std::move(*red));
    }
    case InvoiceState::kFailed:
      return void_claim();
    case InvoiceState::kReversed:
      return std::optional<InvoiceRecord>{};
    default:
      return fail(Errc::kBusy,
                  "invoice " + std::to_string(inv->id) + " is " +
                      std::string(to_string(inv->state)) + "; reverse it once issuing settles",
                  "transaction_id");
  }
}

Result<std::optional<std::int64_t>> ClaimStore::document_linked_to(std::string_view column,
                                                                   std::int64_t id) {
  auto st = db_.prepare("SELECT id FROM invoice_document WHERE " + std::string(column) + " = ?");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind(1, id);
  auto row = st->step();
  if (!row) {
    return std::unexpected(row.error());
  }
  return *row ? std::optional<std::int64_t>(st->column_int64(0)) : std::nullopt;
}

Result<InvoiceRecord> ClaimStore::current_invoice(std::int64_t id) {
  auto inv = get_invoice(id);
  while (inv && inv->state == InvoiceState::kReversed) {
    auto replacement = document_linked_to("replaces_id", inv->id);
    if (!replacement) {
      return std::unexpected(replacement.error());
    }
    if (!*replacement) {
      break;
    }
    inv = get_invoice(**replacement);
  }
  return inv;
}

Result<std::optional<InvoiceRecord>> ClaimStore::reissue_kept(std::int64_t red_id) {
  auto red = get_invoice(red_id);
  if (!red) {
    return std::unexpected(red.error());
  }
  if (red->kind != InvoiceKind::kRed || !red->original_id) {
    return fail(Errc::kInvalidArgument, "invoice " + std::to_string(red_id) + " is not a red letter",
                "invoice_id");
  }
  if (red->state == InvoiceState::kFailed) {
    return fail(Errc::kRejected,
                "red invoice " + std::to_string(red_id) +
                    " failed: the kept trips are still on the issued invoice " +
                    std::to_string(*red->original_id),
                "state");
  }
  if (red->state != InvoiceState::kIssued) {
    return fail(Errc::kBusy, "red invoice " + std::to_string(red_id) + " is not issued yet", "state");
  }
  auto blue = get_invoice(*red->original_id);
  if (!blue) {
    return std::unexpected(blue.error());
  }
  if (auto earlier = document_linked_to("replaces_id", blue->id); !earlier) {
    return std::unexpected(earlier.error());
  } else if (*earlier) {  // done before (I11: one replacement per invoice)
    auto done = get_invoice(**earlier);
    if (!done) {
      return std::unexpected(done.error());
    }
    return std::optional<InvoiceRecord>(std::move(*done));
  }
  // The lines of the trips not refunded, as they were split on the reversed invoice.
  std::vector<InvoiceLine> kept;
  for (const InvoiceLine& l : blue->lines) {
    auto c = find_by_transaction(l.transaction_id);
    if (!c) {
      return std::unexpected(c.error());
    }
    if (!c->voided) {
      kept.push_back(l);
    }
  }
  if (kept.empty()) {
    return std::optional<InvoiceRecord>{};
  }
  auto txn = db_.begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  auto order_no = new_order_no();
  if (!order_no) {
    return std::unexpected(order_no.error());
  }
  auto id = insert_blue(*order_no, blue->buyer, kept, blue->specific, blue->id);
  if (!id) {
    return std::unexpected(id.error());
  }
  auto made = get_invoice(*id);
  if (!made) {
    return std::unexpected(made.error());
  }
  if (issue_hook_) {
    if (auto s = issue_hook_(*txn, *made); !s) {
      return std::unexpected(s.error());
    }
  }
  if (auto s = txn->commit(); !s) {
    return std::unexpected(s.error());
  }
  claim_counter("reissued_kept").inc();
  log::info("kept trips of a reversed invoice get a new invoice",
            {{"INVOICE_ID", made->id}, {"REPLACES_ID", blue->id}, {"LINES", static_cast<std::int64_t>(kept.size())}});
  return std::optional<InvoiceRecord>(std::move(*made));
}

}  // namespace lanegate::invoice
