#include "core/sqlite.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <filesystem>

namespace lanegate {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "lanegate-sqlite-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::filesystem::path operator/(const char* name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

std::int64_t count_rows(Database& db, std::string_view table) {
  auto st = db.prepare("SELECT count(*) FROM " + std::string(table));
  EXPECT_TRUE(st.has_value());
  EXPECT_TRUE(*st->step());
  return st->column_int64(0);
}

std::string pragma_text(Database& db, const char* pragma) {
  auto st = db.prepare(std::string("PRAGMA ") + pragma);
  EXPECT_TRUE(st.has_value());
  EXPECT_TRUE(*st->step());
  return st->column_text(0);
}

TEST(Sqlite, OpensInWalWithFullSync) {
  TempDir dir;
  auto db = Database::open(dir / "a.db");
  ASSERT_TRUE(db) << db.error().message;
  EXPECT_EQ(pragma_text(*db, "journal_mode"), "wal");
  EXPECT_EQ(pragma_text(*db, "synchronous"), "2");  // FULL
  EXPECT_EQ(pragma_text(*db, "foreign_keys"), "1");
}

TEST(Sqlite, TransactionRollsBackUnlessCommitted) {
  TempDir dir;
  auto db = Database::open(dir / "a.db");
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->exec("CREATE TABLE t(x INTEGER)"));
  {
    auto txn = db->begin();
    ASSERT_TRUE(txn);
    ASSERT_TRUE(db->exec("INSERT INTO t VALUES(1)"));
    // leaves scope without commit, as an early error return would
  }
  EXPECT_EQ(count_rows(*db, "t"), 0);
  {
    auto txn = db->begin();
    ASSERT_TRUE(db->exec("INSERT INTO t VALUES(2)"));
    ASSERT_TRUE(txn->commit());
  }
  EXPECT_EQ(count_rows(*db, "t"), 1);
}

TEST(Sqlite, ErrorInsideTransactionLeavesNothingBehind) {
  TempDir dir;
  auto db = Database::open(dir / "a.db");
  ASSERT_TRUE(db->exec("CREATE TABLE t(x INTEGER PRIMARY KEY)"));
  auto insert = db->prepare("INSERT INTO t VALUES(?)");
  ASSERT_TRUE(insert);
  auto work = [&]() -> Status {
    auto txn = db->begin();
    if (!txn) return std::unexpected(txn.error());
    if (auto s = insert->bind(1, 7).run(); !s) return s;
    if (auto s = insert->bind(1, 7).run(); !s) return s;  // duplicate key
    return txn->commit();
  };
  auto s = work();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kAlreadyExists);
  EXPECT_EQ(count_rows(*db, "t"), 0);
}

TEST(Sqlite, CommittedDataSurvivesProcessKill) {
  TempDir dir;
  const auto path = dir / "crash.db";
  {
    auto db = Database::open(path);
    ASSERT_TRUE(db->exec("CREATE TABLE t(x INTEGER)"));
  }
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto db = Database::open(path);
    auto txn = db->begin();
    (void)db->exec("INSERT INTO t VALUES(1)");
    (void)txn->commit();
    auto open_txn = db->begin();
    (void)db->exec("INSERT INTO t VALUES(2)");  // never committed
    _exit(0);  // like a kill: no destructor, no rollback
  }
  int status = 0;
  waitpid(pid, &status, 0);
  auto db = Database::open(path);
  ASSERT_TRUE(db);
  EXPECT_EQ(count_rows(*db, "t"), 1);
}

TEST(Sqlite, MigrationsApplyInOrderOnceAndRecordTheVersion) {
  TempDir dir;
  const std::array<Migration, 2> v2 = {Migration{1, "CREATE TABLE a(x INTEGER);"},
                                       Migration{2, "ALTER TABLE a ADD COLUMN y TEXT;"}};
  {
    auto db = Database::open(dir / "m.db");
    ASSERT_TRUE(db->migrate(std::span(v2.data(), 1)));
    EXPECT_EQ(*db->user_version(), 1);
    ASSERT_TRUE(db->exec("INSERT INTO a(x) VALUES(1)"));
  }
  auto db = Database::open(dir / "m.db");
  ASSERT_TRUE(db->migrate(v2));
  EXPECT_EQ(*db->user_version(), 2);
  ASSERT_TRUE(db->migrate(v2));  // idempotent
  EXPECT_EQ(*db->user_version(), 2);
  ASSERT_TRUE(db->exec("UPDATE a SET y = 'kept'"));
  EXPECT_EQ(count_rows(*db, "a"), 1);
}

TEST(Sqlite, FailedMigrationRollsBackAndKeepsTheOldVersion) {
  TempDir dir;
  auto db = Database::open(dir / "m.db");
  const std::array<std::string_view, 2> steps = {"CREATE TABLE a(x INTEGER);",
                                                 "CREATE TABLE b(y INTEGER); CREATE TABLE a(z);"};
  auto s = db->migrate(steps);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("version 2"), std::string::npos) << s.error().message;
  EXPECT_EQ(*db->user_version(), 1);
  auto b = db->prepare("SELECT * FROM b");
  EXPECT_FALSE(b) << "half-applied migration left table b behind";
}

TEST(Sqlite, RefusesToDowngradeANewerDatabase) {
  TempDir dir;
  auto db = Database::open(dir / "m.db");
  const std::array<std::string_view, 2> steps = {"CREATE TABLE a(x);", "CREATE TABLE b(x);"};
  ASSERT_TRUE(db->migrate(steps));
  auto s = db->migrate(std::span(steps.data(), 1));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("downgrade"), std::string::npos);
}

TEST(Sqlite, FullDatabaseReportsDiskFull) {
  TempDir dir;
  DatabaseOptions opts;
  opts.max_page_count = 8;
  auto db = Database::open(dir / "full.db", opts);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->exec("CREATE TABLE t(x BLOB)"));
  auto ins = db->prepare("INSERT INTO t VALUES(zeroblob(2000))");
  Status last;
  for (int i = 0; i < 100 && last; ++i) last = ins->run();
  ASSERT_FALSE(last);
  EXPECT_EQ(last.error().code, Errc::kDiskFull);
}

TEST(Sqlite, StatementBindsAndReadsAllTypes) {
  TempDir dir;
  auto db = Database::open(dir / "t.db");
  ASSERT_TRUE(db->exec("CREATE TABLE t(i INTEGER, s TEXT, b BLOB, n TEXT)"));
  const std::vector<std::uint8_t> blob{0, 1, 2, 255};
  auto ins = db->prepare("INSERT INTO t VALUES(?, ?, ?, ?)");
  ins->bind(1, std::int64_t{-42}).bind(2, std::string_view("粤B12345")).bind_blob(3, blob).bind_null(4);
  ASSERT_TRUE(ins->run());
  auto sel = db->prepare("SELECT i, s, b, n FROM t");
  ASSERT_TRUE(*sel->step());
  EXPECT_EQ(sel->column_int64(0), -42);
  EXPECT_EQ(sel->column_text(1), "粤B12345");
  EXPECT_EQ(sel->column_blob(2), blob);
  EXPECT_TRUE(sel->column_is_null(3));
  EXPECT_FALSE(sel->column_opt_text(3).has_value());
  EXPECT_FALSE(*sel->step());
}

}  // namespace
}  // namespace lanegate
