// docs/AUDIT.md must be precise enough for an authority to write its own verifier: the
// Python reference verifier printed in it (an independent implementation) must accept
// a package lanegate exported and reject a tampered one, naming the same first bad record.
// Skipped where python3 with the `cryptography` package is not installed.
#include <chrono>
#include <cstdlib>

#include "audit_fixture.h"

namespace lanegate::audit::testing {
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

  // Runs the reference verifier on packages; returns its exit status and fills `output`.
  int run(const std::vector<std::filesystem::path>& pkgs, std::string& output) {
    const auto out_file = dir_.path() / "verify.out";
    std::string cmd = "timeout 60 python3 '" + script_.string() + "'";
    for (const auto& pkg : pkgs) {
      cmd += " '" + pkg.string() + "'";
    }
    cmd += " " + key_->public_key().hex() + " > '" + out_file.string() + "' 2>&1";
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
  EXPECT_EQ(run({pkg}, output), 0) << output;
  EXPECT_NE(output.find("OK"), std::string::npos) << output;

  auto lines = read_lines(pkg / "records.jsonl");
  const auto pos = lines[11].find("\"amount_fen\":111");
  ASSERT_NE(pos, std::string::npos);
  lines[11][pos + 15] = '7';
  write_lines(pkg / "records.jsonl", lines);
  EXPECT_EQ(run({pkg}, output), 1) << output;
  EXPECT_NE(output.find("first bad record seq 12"), std::string::npos) << output;
  EXPECT_EQ(verify_package(pkg, key_->public_key()).first_bad_seq(), 12);
}

TEST_F(DocVerifierTest, ReferenceVerifierChecksConsecutivePackagesAndReportsClockAnomalies) {
  // A clock stepped back 30 s across midnight 22/23: seq 2 is stamped the 23rd but sealed
  // with the 22nd (section 5's example).
  clock_.set_wall(at("2026-11-22T23:59:50+08:00"));
  for (int i = 1; i <= 4; ++i) {
    append_one(
        event(ledger::Kind::kChargeSettled, "N" + std::to_string(i), 100, clock_.now(), "SUCCESS"));
    clock_.set_wall(clock_.now() + std::chrono::seconds(i == 2 ? -30 : i == 3 ? 40 : 20));
  }
  clock_.set_wall(at("2026-11-24T00:01:00+08:00"));
  auto made = seal_pending_days(*db_, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(made && made->size() == 2u);
  const auto a = package((*made)[0], "pkg-22");
  const auto b = package((*made)[1], "pkg-23");
  std::string output;
  EXPECT_EQ(run({a, b}, output), 0) << output;
  EXPECT_NE(output.find("OK"), std::string::npos) << output;
  EXPECT_NE(output.find("seq 2 at 2026-11-22T16:00:10.000Z is outside 2026-11-22"),
            std::string::npos)
      << output;
  ASSERT_TRUE(verify_packages(std::vector<std::filesystem::path>{a, b}, key_->public_key()).ok());

  // The pre-issue-13 sealer's overlapping seals: both verifiers blame seq 2.
  const auto old_a = package(hand_seal("2026-11-22", 1, 3), "old-22");
  const auto old_b = package(hand_seal("2026-11-23", 2, 4), "old-23");
  EXPECT_EQ(run({old_a}, output), 0) << output;
  EXPECT_EQ(run({old_a, old_b}, output), 1) << output;
  EXPECT_NE(output.find("first bad record seq 2"), std::string::npos) << output;
  EXPECT_NE(output.find("overlap"), std::string::npos) << output;
  EXPECT_EQ(verify_packages(std::vector<std::filesystem::path>{old_a, old_b}, key_->public_key())
                .first_bad_seq(),
            2);
  // A gap: seq 3 in no package.
  const auto gap_a = package(hand_seal("2026-11-22", 1, 2), "gap-22");
  const auto gap_b = package(hand_seal("2026-11-23", 4, 4), "gap-23");
  EXPECT_EQ(run({gap_a, gap_b}, output), 1) << output;
  EXPECT_NE(output.find("first bad record seq 3"), std::string::npos) << output;

  // A format-2 seal that omits its anomaly fails in both, at seq 2.
  Seal quiet = (*made)[0].seal;
  quiet.clock_anomalies.clear();
  SignedSeal forged{quiet, encode_seal(quiet), {}};
  forged.signature = *key_->sign(forged.json);
  const auto q = package(forged, "quiet-22");
  EXPECT_EQ(run({q}, output), 1) << output;
  EXPECT_NE(output.find("first bad record seq 2"), std::string::npos) << output;
  EXPECT_EQ(verify_package(q, key_->public_key()).first_bad_seq(), 2);

  // A format-1 package (before issue 13) still verifies.
  const auto v1 = package(hand_seal("2026-11-22", 1, 3, 1), "v1-22");
  EXPECT_EQ(run({v1}, output), 0) << output;
}

}  // namespace
}  // namespace lanegate::audit::testing
