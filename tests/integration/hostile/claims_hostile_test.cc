// Brute-forcing invoice claim codes over HTTP against lanegated: a client typing wrong
// human codes is locked out (429 with Retry-After), the lockout is counted, a correct
// code from the locked client is refused too until the lockout ends, and another client
// (another address) is unaffected. Guessing changes no money.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "core/sqlite.h"
#include "hostile_site.h"

namespace lanegate::hostile {
namespace {

constexpr std::string_view kAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";

class ClaimsHostileTest : public HostileTest {
 protected:
  void SetUp() override {
    HostileTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(site().ensure_settled_charge()) << site().stderr_text();
    const std::string out = site().first_out_trade_no();
    ASSERT_FALSE(out.empty());
    // The receipt (what the passenger gets printed) carries the human code.
    HttpReply r;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    do {
      r = site().get_as(kOperatorToken, "/api/v1/transactions/" + out + "/receipt");
      if (r.status == 200) break;
      std::this_thread::sleep_for(100ms);
    } while (std::chrono::steady_clock::now() < deadline);
    ASSERT_EQ(r.status, 200) << r.body;
    boost::system::error_code ec;
    auto v = boost::json::parse(r.body, ec);
    ASSERT_FALSE(ec) << r.body;
    code_ = std::string(v.as_object().at("human_code").as_string());
    token_ = std::string(v.as_object().at("token").as_string());
    ASSERT_FALSE(code_.empty());
  }

  HttpReply try_code(const std::string& code, const char* from) {
    TlsOptions o;
    o.source_address = from;
    return site().request("POST", "/api/v1/claim-codes", {{"Content-Type", "application/json"}},
                          "{\"code\":\"" + code + "\"}", o);
  }

  // A well-formed code that is not the real one (differs in the last typed character).
  std::string wrong_code(int i) const {
    std::string c = code_;
    std::size_t last = c.find_last_not_of(" -");
    const char now = c[last];
    char next = kAlphabet[static_cast<std::size_t>(i) % kAlphabet.size()];
    if (next == now) next = kAlphabet[(static_cast<std::size_t>(i) + 1) % kAlphabet.size()];
    c[last] = next;
    return c;
  }

  std::string code_;
  std::string token_;
};

TEST_F(ClaimsHostileTest, GuessingCodesLocksTheGuesserOutButNotOthers) {
  const std::string money = site().money_snapshot();
  const double lockouts = site().metric("lanegate_invoice_claim_code_lockouts_total");
  const double misses = site().metric("lanegate_invoice_claim_code_misses_total");
  // The real code works (from a client that never guessed).
  HttpReply r = try_code(code_, "127.0.0.5");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(token_), std::string::npos);
  // A guesser at 127.0.0.4: wrong codes until it is locked out.
  int tries = 0;
  for (; tries < 20; ++tries) {
    r = try_code(wrong_code(tries), "127.0.0.4");
    if (r.status == 429) break;
    EXPECT_EQ(r.status, 404) << r.body;
  }
  ASSERT_EQ(r.status, 429) << "no lockout after " << tries << " wrong codes";
  EXPECT_LE(tries, 5);
  EXPECT_FALSE(r.header("retry-after").empty());
  EXPECT_GT(std::atoi(r.header("retry-after").c_str()), 0);
  EXPECT_GE(site().metric("lanegate_invoice_claim_code_lockouts_total"), lockouts + 1);
  EXPECT_GE(site().metric("lanegate_invoice_claim_code_misses_total"), misses + tries);
  // Locked: even the right code is refused, so the lockout cannot be probed around.
  r = try_code(code_, "127.0.0.4");
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_FALSE(r.header("retry-after").empty());
  EXPECT_EQ(r.body.find(token_), std::string::npos);
  // Another client is unaffected.
  r = try_code(code_, "127.0.0.5");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(site().money_snapshot(), money);
}

// Issue 13: a wrong code from each of many addresses used to leave one committed row per
// address in lanegated's database (a BEGIN IMMEDIATE + fsync on the io thread each), until
// the database reached max_database_mb and the site went to attendant mode. Now the
// counters are in memory: nothing is written, and the limit still holds for a guesser.
TEST_F(ClaimsHostileTest, ManyAddressesGuessingOnceEachWriteNothingToTheDatabase) {
  const std::string money = site().money_snapshot();
  auto db =
      Database::open(site().dir() / "state" / "lanegate.db", DatabaseOptions{.read_only = true});
  ASSERT_TRUE(db) << db.error().to_string();
  // The old table is gone once the schema step that drops it is applied; until then it
  // must not grow.
  auto guess_rows = [&]() -> std::int64_t {
    auto t = db->prepare(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'invoice_code_guess'");
    if (!t || !t->step().value_or(false) || t->column_int64(0) == 0) return 0;
    auto n = db->prepare("SELECT count(*) FROM invoice_code_guess");
    if (!n || !n->step().value_or(false)) return -1;
    return n->column_int64(0);
  };
  const std::int64_t rows = guess_rows();
  const double misses = site().metric("lanegate_invoice_claim_code_misses_total");
  constexpr int kAddresses = 200;
  for (int i = 0; i < kAddresses; ++i) {
    const std::string from =
        "127.13." + std::to_string(i / 250) + "." + std::to_string(1 + i % 250);
    HttpReply r = try_code(wrong_code(i), from.c_str());
    ASSERT_EQ(r.status, 404) << from << ": " << r.body;
  }
  EXPECT_GE(site().metric("lanegate_invoice_claim_code_misses_total"), misses + kAddresses);
  EXPECT_EQ(guess_rows(), rows) << "wrong codes were written to the database";
  const double clients = site().metric("lanegate_invoice_claim_code_clients");
  EXPECT_GE(clients, kAddresses);
  EXPECT_LE(clients, 16384);
  // The limit still holds for one of them.
  HttpReply r;
  for (int i = 0; i < 5; ++i) r = try_code(wrong_code(i + 1), "127.13.0.1");
  EXPECT_EQ(r.status, 429) << r.body;
  r = try_code(code_, "127.13.0.1");
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(site().money_snapshot(), money);
}

TEST_F(ClaimsHostileTest, MalformedClaimRequestsAreRefusedNamingTheField) {
  const std::string money = site().money_snapshot();
  for (const std::string& body : std::vector<std::string>{
           "{\"code\": 12345678}", "{\"code\":\"ABCD\",\"extra\":1}", "[", "{}",
           std::string("{\"code\":\"") + std::string(5000, 'A') + "\"}"}) {
    TlsOptions o;
    o.source_address = "127.0.0.6";
    const HttpReply r = site().request("POST", "/api/v1/claim-codes",
                                       {{"Content-Type", "application/json"}}, body, o);
    EXPECT_GE(r.status, 400) << body;
    EXPECT_LT(r.status, 500) << body << " -> " << r.body;
  }
  // Unknown and malformed claim tokens: not found, and nothing of them is reflected.
  EXPECT_EQ(site().request("GET", "/api/v1/claims/AAAAAAAAAAAAAAAAAAAAAA").status, 404);
  HttpReply r = site().request("GET", "/api/v1/claims/%3Cscript%3Ealert(1)%3C%2Fscript%3E");
  EXPECT_GE(r.status, 400);
  EXPECT_EQ(r.body.find("<script>alert"), std::string::npos) << r.body;
  r = site().request("GET", "/claim/x%22onload%3Dalert(1)");
  EXPECT_EQ(r.body.find("\"onload=alert"), std::string::npos) << r.body.substr(0, 300);
  EXPECT_EQ(site().money_snapshot(), money);
}

// What a phone's browser is told: the claim page may not be framed, leak its token in a
// Referer, be cached, or load anything from elsewhere; API answers are data, never pages.
TEST_F(HostileTest, ResponsesCarryTheBrowserSecurityHeaders) {
  const HttpReply page = site().request("GET", "/claim/AAAAAAAAAAAAAAAAAAAAAA");
  ASSERT_EQ(page.status, 200) << page.body.substr(0, 200);
  EXPECT_NE(page.header("content-type").find("text/html"), std::string::npos);
  const std::string csp = page.header("content-security-policy");
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos) << csp;
  EXPECT_EQ(page.header("referrer-policy"), "no-referrer");
  EXPECT_EQ(page.header("cache-control"), "no-store");
  EXPECT_EQ(page.header("x-content-type-options"), "nosniff");
  // Server values are written as text, never parsed as markup.
  EXPECT_EQ(page.body.find("innerHTML"), std::string::npos);
  EXPECT_EQ(page.body.find("document.write"), std::string::npos);
  for (const char* target :
       {"/healthz", "/api/v1/claims/AAAAAAAAAAAAAAAAAAAAAA", "/no/such/path"}) {
    const HttpReply r = site().request("GET", target);
    EXPECT_EQ(r.header("content-security-policy"), "default-src 'none'; frame-ancestors 'none'")
        << target;
    EXPECT_EQ(r.header("referrer-policy"), "no-referrer") << target;
    EXPECT_EQ(r.header("x-content-type-options"), "nosniff") << target;
    EXPECT_EQ(r.header("cache-control"), "no-store") << target;
  }
}

}  // namespace
}  // namespace lanegate::hostile
