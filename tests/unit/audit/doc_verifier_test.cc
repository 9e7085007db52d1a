// docs/AUDIT.md must be precise enough for an authority to write its own verifier: the
// Python reference verifier printed in it (an independent implementation) must accept
// a package lanegate exported and reject a tampered one, naming the same first bad record.
// Skipped where python3 with the `cryptography` package is not installed.
#include <cstdlib>

#include "audit_fixture.h"

namespace lanegate::gateway::audit::testing {
namespace {

class DocVerifierTest : public AuditTest {
 protected:
  void SetUp() override {
    AuditTest::SetUp();
    if (std::system("timeout 30 python3 -c 'import cryptography' >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "python3 with the cryptography package is not available";
    }
    // Extract the ```python block of section 10.
    const std::string doc = read_text(std::filesystem::path(LANEGATE_SOURCE_DIR) / "docs/AUDIT.md");
    const auto start = doc.find("```python\n");
    ASSERT_NE(start, std::string::npos);
    const auto end = doc.find("\n```", start + 10);
    ASSERT_NE(end, std::string::npos);
    script_ = dir_.path() / "verify.py";
    write_text(script_, doc.substr(start + 10, end - start - 10) + "\n");
  }

  // Runs the reference verifier; returns its exit status and fills `output`.
  int run(const std::filesystem::path& pkg, std::string& output) {
    const auto out_file = dir_.path() / "verify.out";
    const std::string cmd = "timeout 60 python3 '" + script_.string() + "' '" + pkg.string() +
                            "' " + key_->public_key().hex() + " > '" + out_file.string() + "' 2>&1";
    const int rc = std::system(cmd.c_str());
    output = read_text(out_file);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }

  std::filesystem::path script_;
};

TEST_F(DocVerifierTest, ReferenceVerifierAgreesWithLanegate) {
  // Records exercising the escaping rules: quotes, backslashes, control characters,
  // non-ASCII, a formula-like lane, JSON detail.
  fill_day("2026-11-22", 30);
  auto odd = event(ledger::Kind::kManualOpen, "", 0, at("2026-11-22T12:00:00+08:00"),
                   "opened \"by hand\"\\", "=lane\t2");
  odd.actor = "operator:王工";
  odd.detail = R"({"reason":"camera\nfault","ctl":"\u0001","path":"a/b"})";
  append_one(odd);
  const auto pkg = export_day("2026-11-22");
  ASSERT_TRUE(verify_package(pkg, key_->public_key()).ok());
  std::string output;
  EXPECT_EQ(run(pkg, output), 0) << output;
  EXPECT_NE(output.find("OK"), std::string::npos) << output;

  auto lines = read_lines(pkg / "records.jsonl");
  const auto pos = lines[11].find("\"amount_fen\":111");
  ASSERT_NE(pos, std::string::npos);
  lines[11][pos + 15] = '7';
  write_lines(pkg / "records.jsonl", lines);
  EXPECT_EQ(run(pkg, output), 1) << output;
  EXPECT_NE(output.find("first bad record seq 12"), std::string::npos) << output;
  EXPECT_EQ(verify_package(pkg, key_->public_key()).first_bad_seq(), 12);
}

}  // namespace
}  // namespace lanegate::gateway::audit::testing
