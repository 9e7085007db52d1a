#include "fleet/pg.h"

#include <libpq-fe.h>

#include <charconv>
#include <vector>

namespace lanegate::fleet::pg {

Rows& Rows::operator=(Rows&& o) noexcept {
  if (this != &o) {
    if (r_ != nullptr) PQclear(r_);
    r_ = o.r_;
    o.r_ = nullptr;
  }
  return *this;
}

Rows::~Rows() {
  if (r_ != nullptr) PQclear(r_);
}

int Rows::size() const { return r_ == nullptr ? 0 : PQntuples(r_); }

std::optional<std::string_view> Rows::get(int row, int col) const {
  if (r_ == nullptr || row >= PQntuples(r_) || col >= PQnfields(r_) || PQgetisnull(r_, row, col)) {
    return std::nullopt;
  }
  return std::string_view(PQgetvalue(r_, row, col),
                          static_cast<std::size_t>(PQgetlength(r_, row, col)));
}

std::int64_t Rows::integer(int row, int col) const {
  const auto v = get(row, col);
  std::int64_t n = 0;
  if (v) std::from_chars(v->data(), v->data() + v->size(), n);
  return n;
}

namespace {

std::string trimmed(const char* msg) {
  std::string s = msg == nullptr ? "" : msg;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Turns a finished result into Rows or the error it carries.
Result<Rows> take(PGconn* c, PGresult* r) {
  if (r == nullptr) {
    return fail(Errc::kUnavailable, "PostgreSQL: " + trimmed(PQerrorMessage(c)));
  }
  const auto st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    return Rows(r);
  }
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  std::string msg = "PostgreSQL: " + trimmed(PQresultErrorMessage(r));
  std::string code = state == nullptr ? "" : state;
  PQclear(r);
  if (PQstatus(c) != CONNECTION_OK || code.starts_with("08") || code == "57P01" ||
      code == "25006") {
    // Lost connection, administrator shutdown, or a read-only server (the primary moved):
    // reconnecting finds the primary.
    return fail(Errc::kUnavailable, std::move(msg), std::move(code));
  }
  return fail(Errc::kDatabase, std::move(msg), std::move(code));
}

}  // namespace

Result<Connection> Connection::open(const std::string& conninfo) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (c == nullptr) {
    return fail(Errc::kUnavailable, "PostgreSQL: out of memory connecting");
  }
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = "PostgreSQL: cannot connect: " + trimmed(PQerrorMessage(c));
    PQfinish(c);
    return fail(Errc::kUnavailable, std::move(msg));
  }
  // Server notices ("relation already exists, skipping") are not errors and not for stderr.
  PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
  return Connection(c);
}

Connection& Connection::operator=(Connection&& o) noexcept {
  if (this != &o) {
    if (c_ != nullptr) PQfinish(c_);
    c_ = o.c_;
    o.c_ = nullptr;
  }
  return *this;
}

Connection::~Connection() {
  if (c_ != nullptr) PQfinish(c_);
}

Result<Rows> Connection::exec(std::string_view sql, std::span<const Param> params) {
  const std::string q(sql);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  PGresult* r = PQexecParams(c_, q.c_str(), static_cast<int>(values.size()), nullptr,
                             values.data(), nullptr, nullptr, 0);
  return take(c_, r);
}

Status Connection::run(std::string_view sql) {
  const std::string q(sql);
  auto r = take(c_, PQexec(c_, q.c_str()));
  if (!r) return std::unexpected(r.error());
  return {};
}

std::string Connection::server() const {
  if (c_ == nullptr) return "";
  return std::string(PQhost(c_)) + ":" + PQport(c_);
}

bool Connection::broken() const { return c_ == nullptr || PQstatus(c_) != CONNECTION_OK; }

Result<Txn> Txn::begin(Connection& c) {
  if (auto s = c.run("BEGIN"); !s) return std::unexpected(s.error());
  return Txn(&c);
}

Txn::~Txn() { rollback(); }

Status Txn::commit() {
  if (c_ == nullptr) return fail(Errc::kInternal, "commit of a finished transaction");
  Connection* c = c_;
  c_ = nullptr;
  // COMMIT returns once the synchronous standby has the WAL too (synchronous_commit=on with
  // synchronous_standby_names set by Patroni): an acknowledged batch survives a failover.
  return c->run("COMMIT");
}

void Txn::rollback() {
  if (c_ == nullptr) return;
  Connection* c = c_;
  c_ = nullptr;
  if (!c->broken()) (void)c->run("ROLLBACK");
}

bool retryable(const Error& e) { return e.field == "40001" || e.field == "40P01"; }

}  // namespace lanegate::fleet::pg
