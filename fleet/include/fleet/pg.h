#pragma once
// A thin RAII layer over libpq for the fleet centre: one connection, text-format parameters,
// results read as strings. Nothing here knows the fleet's tables.
//
// Connections are made from a libpq connection string; with several hosts and
// target_session_attrs=read-write (scripts/fleet-cluster dsn), libpq finds the primary of
// the Patroni cluster itself, so a reconnect after a failover reaches the new primary.
//
// Threading: a Connection is used by one thread at a time.

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"

struct pg_conn;
struct pg_result;

namespace lanegate::fleet::pg {

// A query's rows. Values are text (libpq's text format); NULL reads as nullopt.
class Rows {
 public:
  Rows() = default;
  explicit Rows(pg_result* r) : r_(r) {}
  Rows(Rows&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Rows& operator=(Rows&& o) noexcept;
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;
  ~Rows();

  int size() const;
  std::optional<std::string_view> get(int row, int col) const;
  // The value, "" for NULL.
  std::string_view text(int row, int col) const { return get(row, col).value_or(""); }
  // The value as an integer; 0 for NULL or text that is not one.
  std::int64_t integer(int row, int col) const;

 private:
  pg_result* r_ = nullptr;
};

// A parameter: text, or NULL.
using Param = std::optional<std::string>;

class Connection {
 public:
  // Connects; the error names the server's message (never the password: libpq's messages
  // do not carry it, and the connection string is not logged).
  [[nodiscard]] static Result<Connection> open(const std::string& conninfo);

  Connection(Connection&& o) noexcept : c_(o.c_) { o.c_ = nullptr; }
  Connection& operator=(Connection&& o) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // One statement with $1.. parameters. A server error is Errc::kDatabase with the SQLSTATE
  // in `field`; a lost connection is Errc::kUnavailable.
  [[nodiscard]] Result<Rows> exec(std::string_view sql, std::span<const Param> params = {});
  [[nodiscard]] Result<Rows> exec(std::string_view sql, std::initializer_list<Param> params) {
    return exec(sql, std::span<const Param>(params.begin(), params.size()));
  }
  // Statements without parameters (several allowed, separated by ';').
  [[nodiscard]] Status run(std::string_view sql);

  // "127.0.0.1:26002": the server this connection reached.
  std::string server() const;
  bool broken() const;

 private:
  explicit Connection(pg_conn* c) : c_(c) {}
  pg_conn* c_ = nullptr;
};

// BEGIN on construction; ROLLBACK on destruction unless commit() succeeded.
class Txn {
 public:
  [[nodiscard]] static Result<Txn> begin(Connection& c);
  Txn(Txn&& o) noexcept : c_(o.c_) { o.c_ = nullptr; }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  Txn& operator=(Txn&&) = delete;
  ~Txn();
  [[nodiscard]] Status commit();
  void rollback();

 private:
  explicit Txn(Connection* c) : c_(c) {}
  Connection* c_ = nullptr;
};

// SQLSTATE 40001 / 40P01: the transaction may simply be run again.
bool retryable(const Error& e);

}  // namespace lanegate::fleet::pg
