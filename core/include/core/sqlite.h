#pragma once
// A thin RAII layer over SQLite. Every money record and every outbox item lives in one
// database file so that "record the transaction" and "queue its upload" are one commit.
//
// Threading: a Database (and the Statements and Transactions made from it) is used by
// one thread at a time. Open a second Database on the same file for another thread.
// Durability: the file is opened in WAL mode with synchronous=FULL, so a committed
// transaction survives power loss; a busy timeout covers brief contention.

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace lanegate {

class Database;

// One ordered migration step. Versions start at 1 and increase by one.
struct Migration {
  int version;
  std::string_view sql;
};

class Statement {
 public:
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Positional parameters are 1-based, as in SQLite.
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
  Statement& bind(int index, const std::string& text) { return bind(index, std::string_view(text)); }
  Statement& bind_blob(int index, std::span<const std::uint8_t> bytes);
  Statement& bind_null(int index);
  template <typename T>
  Statement& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind_null(index);
  }
  // Binds all arguments starting at parameter 1.
  template <typename... Args>
  Statement& bind_all(const Args&... args) {
    int i = 0;
    (bind(++i, args), ...);
    return *this;
  }

  // Advances: true when a row is available, false when done.
  [[nodiscard]] Result<bool> step();
  // Runs a statement that returns no rows (or ignores them) and resets it.
  [[nodiscard]] Status run();
  void reset();

  std::int64_t column_int64(int col) const;
  std::string column_text(int col) const;
  std::vector<std::uint8_t> column_blob(int col) const;
  bool column_is_null(int col) const;
  std::optional<std::int64_t> column_opt_int64(int col) const;
  std::optional<std::string> column_opt_text(int col) const;
  int column_count() const;

  sqlite3_stmt* raw() const { return stmt_; }

 private:
  friend class Database;
  Statement(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
  sqlite3_stmt* stmt_ = nullptr;
  sqlite3* db_ = nullptr;
  int bind_error_ = SQLITE_OK;  // first bind failure, reported by step()
};

// A transaction that rolls back unless commit() succeeded.
class Transaction {
 public:
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  ~Transaction();

  [[nodiscard]] Status commit();
  void rollback();
  Database& db() { return *db_; }
  bool active() const { return db_ != nullptr && !done_; }

 private:
  friend class Database;
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_;
  bool done_ = false;
};

struct DatabaseOptions {
  int busy_timeout_ms = 5000;
  bool read_only = false;
  // Upper bound on the file size in pages (0: SQLite's default). Tests use it to
  // simulate a full disk.
  std::int64_t max_page_count = 0;
};

class Database {
 public:
  // Opens or creates the file, sets WAL, synchronous=FULL, foreign_keys=ON and the
  // busy timeout. A file this creates has mode 0600 whatever the umask (it holds money
  // records and personal data), and so do its -wal and -shm files (SQLite gives them the
  // main file's mode). An existing file's mode is left as it is.
  [[nodiscard]] static Result<Database> open(const std::filesystem::path& path,
                                             const DatabaseOptions& options = {});
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  // Executes one or more statements with no parameters.
  [[nodiscard]] Status exec(std::string_view sql);
  [[nodiscard]] Result<Statement> prepare(std::string_view sql);
  // BEGIN IMMEDIATE: takes the write lock up front, so a writer never fails half-way
  // with SQLITE_BUSY on upgrade.
  [[nodiscard]] Result<Transaction> begin();

  // Applies every migration whose version is above PRAGMA user_version, each in its
  // own transaction together with the version bump. Refuses a database whose version
  // is newer than the newest migration (a downgrade).
  [[nodiscard]] Status migrate(std::span<const Migration> migrations);
  // The same with implicit versions: steps[i] is version i + 1. Modules export their
  // schema as such step lists; the gateway composes the production database's list.
  [[nodiscard]] Status migrate(std::span<const std::string_view> steps);
  [[nodiscard]] Result<int> user_version();

  std::int64_t last_insert_rowid() const;
  int changes() const;
  bool in_transaction() const;
  const std::filesystem::path& path() const { return path_; }
  sqlite3* raw() const { return db_; }

  // Translates the connection's last error (or `rc`) into an Error.
  Error error(int rc, std::string_view what) const;

 private:
  Database(sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
};

}  // namespace lanegate
