#include "core/sqlite.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

namespace lanegate {
namespace {

Errc errc_for(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL: return Errc::kDiskFull;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return Errc::kBusy;
    case SQLITE_CONSTRAINT: return Errc::kAlreadyExists;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: return Errc::kIo;
    case SQLITE_PERM:
    case SQLITE_READONLY: return Errc::kPermission;
    default: return Errc::kDatabase;
  }
}

// A path naming a file on disk, not an in-memory or temporary database or a URI.
bool is_file_path(const std::filesystem::path& path) {
  const std::string& p = path.native();
  return !p.empty() && p != ":memory:" && !p.starts_with("file:");
}

}  // namespace

// ---- Statement ----

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)), db_(other.db_), bind_error_(other.bind_error_) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
    db_ = other.db_;
    bind_error_ = other.bind_error_;
  }
  return *this;
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(int index, std::int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
  return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
  const int rc = sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
  return *this;
}

Statement& Statement::bind_blob(int index, std::span<const std::uint8_t> bytes) {
  const int rc = sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
  return *this;
}

Statement& Statement::bind_null(int index) {
  const int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
  return *this;
}

Result<bool> Statement::step() {
  if (bind_error_ != SQLITE_OK) {
    const int rc = bind_error_;
    bind_error_ = SQLITE_OK;
    return fail(errc_for(rc), std::string("binding a parameter failed: ") + sqlite3_errstr(rc));
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const char* sql = sqlite3_sql(stmt_);
  std::string msg = std::string(sqlite3_errmsg(db_)) + " (" + sqlite3_errstr(rc) + ") in: " + (sql ? sql : "?");
  sqlite3_reset(stmt_);
  return fail(errc_for(rc), std::move(msg));
}

Status Statement::run() {
  for (;;) {
    auto r = step();
    if (!r) {
      reset();
      return std::unexpected(r.error());
    }
    if (!*r) break;
  }
  reset();
  return {};
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_error_ = SQLITE_OK;
}

std::int64_t Statement::column_int64(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string Statement::column_text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  const int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::string(p, static_cast<std::size_t>(n)) : std::string();
}

std::vector<std::uint8_t> Statement::column_blob(int col) const {
  const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, col));
  const int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::vector<std::uint8_t>(p, p + n) : std::vector<std::uint8_t>();
}

bool Statement::column_is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

std::optional<std::int64_t> Statement::column_opt_int64(int col) const {
  if (column_is_null(col)) return std::nullopt;
  return column_int64(col);
}

std::optional<std::string> Statement::column_opt_text(int col) const {
  if (column_is_null(col)) return std::nullopt;
  return column_text(col);
}

int Statement::column_count() const { return sqlite3_column_count(stmt_); }

// ---- Transaction ----

Transaction::Transaction(Transaction&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), done_(other.done_) {}

Transaction::~Transaction() { rollback(); }

Status Transaction::commit() {
  if (db_ == nullptr || done_) {
    return fail(Errc::kInternal, "commit on a finished transaction");
  }
  if (auto s = db_->exec("COMMIT"); !s) {
    // A failed COMMIT (disk full, I/O error) leaves the transaction open or rolled
    // back depending on the error; make it rolled back so the state is known.
    rollback();
    return s;
  }
  done_ = true;
  return {};
}

void Transaction::rollback() {
  if (db_ != nullptr && !done_) {
    done_ = true;
    if (db_->in_transaction()) {
      sqlite3_exec(db_->raw(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
}

// ---- Database ----

Result<Database> Database::open(const std::filesystem::path& path, const DatabaseOptions& options) {
  if (!options.read_only && is_file_path(path)) {
    // Created here rather than by SQLite, which would apply the process umask (0644 from
    // a shell): the file holds money records and personal data. SQLite creates -wal and
    // -shm with the main file's mode, so they are owner-only too. An empty file is an
    // empty database. Any failure other than "exists" is left for sqlite3_open_v2 to
    // report in its own words.
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
  }
  sqlite3* raw = nullptr;
  const int flags = (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = "cannot open database " + path.string() + ": " +
                      (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
    sqlite3_close(raw);
    return fail(errc_for(rc), std::move(msg));
  }
  sqlite3_extended_result_codes(raw, 1);
  Database db(raw, path);
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  if (!options.read_only) {
    auto mode = db.prepare("PRAGMA journal_mode=WAL");
    if (!mode) return std::unexpected(mode.error());
    auto row = mode->step();
    if (!row) return std::unexpected(row.error());
    if (!*row || mode->column_text(0) != "wal") {
      return fail(Errc::kDatabase, "cannot switch " + path.string() + " to WAL mode");
    }
  }
  if (auto s = db.exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"); !s) {
    return std::unexpected(s.error());
  }
  if (options.max_page_count > 0) {
    if (auto s = db.exec("PRAGMA max_page_count=" + std::to_string(options.max_page_count)); !s) {
      return std::unexpected(s.error());
    }
  }
  return db;
}

Database::Database(Database&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), path_(std::move(other.path_)) {}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

Database::~Database() { sqlite3_close_v2(db_); }

Error Database::error(int rc, std::string_view what) const {
  std::string msg(what);
  msg += ": ";
  msg += db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  msg += " (";
  msg += sqlite3_errstr(rc);
  msg += ")";
  return Error{errc_for(rc), std::move(msg), {}};
}

Status Database::exec(std::string_view sql) {
  char* err = nullptr;
  const std::string s(sql);
  const int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = std::string(err ? err : sqlite3_errstr(rc)) + " in: " + s.substr(0, 200);
    sqlite3_free(err);
    return fail(errc_for(sqlite3_extended_errcode(db_)), std::move(msg));
  }
  return {};
}

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                    &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return std::unexpected(error(rc, "prepare \"" + std::string(sql.substr(0, 200)) + "\""));
  }
  return Statement(stmt, db_);
}

Result<Transaction> Database::begin() {
  if (auto s = exec("BEGIN IMMEDIATE"); !s) {
    return std::unexpected(s.error());
  }
  return Transaction(this);
}

Result<int> Database::user_version() {
  auto st = prepare("PRAGMA user_version");
  if (!st) return std::unexpected(st.error());
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  return static_cast<int>(st->column_int64(0));
}

Status Database::migrate(std::span<const Migration> migrations) {
  auto current = user_version();
  if (!current) return std::unexpected(current.error());
  int newest = 0;
  for (std::size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i) + 1) {
      return fail(Errc::kInternal, "migration " + std::to_string(i) + " has version " +
                                       std::to_string(migrations[i].version) + ", expected " +
                                       std::to_string(i + 1));
    }
    newest = migrations[i].version;
  }
  if (*current > newest) {
    return fail(Errc::kDatabase, path_.string() + " has schema version " + std::to_string(*current) +
                                     ", newer than this build's " + std::to_string(newest) +
                                     ": refusing to downgrade");
  }
  for (const Migration& m : migrations) {
    if (m.version <= *current) continue;
    auto txn = begin();
    if (!txn) return std::unexpected(txn.error());
    if (auto s = exec(m.sql); !s) {
      return fail(s.error().code, "migration to version " + std::to_string(m.version) + " failed: " +
                                      s.error().message);
    }
    if (auto s = exec("PRAGMA user_version=" + std::to_string(m.version)); !s) return s;
    if (auto s = txn->commit(); !s) return s;
  }
  return {};
}

Status Database::migrate(std::span<const std::string_view> steps) {
  std::vector<Migration> list;
  list.reserve(steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    list.push_back(Migration{static_cast<int>(i) + 1, steps[i]});
  }
  return migrate(std::span<const Migration>(list));
}

std::int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int Database::changes() const { return sqlite3_changes(db_); }
bool Database::in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }

}  // namespace lanegate
