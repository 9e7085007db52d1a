#include <gtest/gtest.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/time_format.h"

namespace lanegate {
namespace {

using namespace std::chrono;

TEST(Crypto, Sha256MatchesKnownVector) {
  EXPECT_EQ(crypto::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Crypto, HmacSha256MatchesRfc4231Case2) {
  auto mac = crypto::hmac_sha256(crypto::as_bytes("Jefe"), crypto::as_bytes("what do ya want for nothing?"));
  EXPECT_EQ(crypto::hex_encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// RFC 2202 test cases 2 and 6 (a key longer than the block size is hashed first).
TEST(Crypto, HmacSha1MatchesRfc2202) {
  auto mac = crypto::hmac_sha1(crypto::as_bytes("Jefe"), crypto::as_bytes("what do ya want for nothing?"));
  EXPECT_EQ(crypto::hex_encode(mac), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
  const std::string key(80, '\xaa');
  mac = crypto::hmac_sha1(crypto::as_bytes(key),
                          crypto::as_bytes("Test Using Larger Than Block-Size Key - Hash Key First"));
  EXPECT_EQ(crypto::hex_encode(mac), "aa4ae5e15272d00e95705637ce8a3b55ed402112");
}

TEST(Crypto, Base64RoundTripAndStrictDecoding) {
  EXPECT_EQ(crypto::base64_encode(std::string_view("foobar")), "Zm9vYmFy");
  EXPECT_EQ(crypto::base64_encode(std::string_view("fo")), "Zm8=");
  auto d = crypto::base64_decode("Zm8=");
  ASSERT_TRUE(d);
  EXPECT_EQ(std::string(d->begin(), d->end()), "fo");
  EXPECT_FALSE(crypto::base64_decode("Zm8"));
  EXPECT_FALSE(crypto::base64_decode("Zm=8"));
  EXPECT_FALSE(crypto::base64_decode("Z!8="));
}

TEST(Crypto, RandomTokensDifferAndUseTheAlphabet) {
  auto a = crypto::random_token(24);
  auto b = crypto::random_token(24);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), 24u);
  EXPECT_NE(*a, *b);
  for (char c : *a) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)));
}

TEST(Crypto, HexRejectsBadDigits) {
  EXPECT_FALSE(crypto::hex_decode("abc"));
  EXPECT_FALSE(crypto::hex_decode("zz"));
  EXPECT_EQ(crypto::hex_decode("00ff")->size(), 2u);
}

TEST(TimeFormat, FormatsRfc3339AtTheConfiguredOffset) {
  const SystemTime t = from_unix_seconds(1795325375);  // 2026-11-22T05:29:35Z
  EXPECT_EQ(format_rfc3339(t, UtcOffset{480}), "2026-11-22T13:29:35+08:00");
  EXPECT_EQ(format_rfc3339(t, UtcOffset{0}), "2026-11-22T05:29:35+00:00");
  EXPECT_EQ(format_rfc3339(t, UtcOffset{-330}), "2026-11-21T23:59:35-05:30");
  EXPECT_EQ(format_local_date(from_unix_seconds(1795363200), UtcOffset{480}), "2026-11-23");
}

TEST(TimeFormat, ParsesRfc3339WithOffsetsAndRejectsNonsense) {
  EXPECT_EQ(to_unix_seconds(*parse_rfc3339("2026-11-22T13:29:35+08:00")), 1795325375);
  EXPECT_EQ(to_unix_seconds(*parse_rfc3339("2026-11-22T05:29:35Z")), 1795325375);
  EXPECT_EQ(to_unix_seconds(*parse_rfc3339("2026-11-22T05:29:35.250Z")), 1795325375);
  for (const char* bad : {"", "2026-11-22", "2026-11-22 05:29:35Z", "2026-02-30T00:00:00Z",
                          "2026-11-22T25:00:00Z", "2026-11-22T05:29:35", "2026-11-22T05:29:35+8:00"}) {
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
  }
}

TEST(TimeFormat, LocalDateStartsAtLocalMidnight) {
  auto t = parse_local_date("2026-11-22", UtcOffset{480});
  ASSERT_TRUE(t);
  EXPECT_EQ(format_rfc3339(*t, UtcOffset{480}), "2026-11-22T00:00:00+08:00");
  EXPECT_FALSE(parse_local_date("2026-13-01", UtcOffset{480}));
}

TEST(FakeClock, AdvancesBothClocksAndJumpsOnlyTheWallClock) {
  FakeClock clock;
  const auto wall = clock.now();
  const auto mono = clock.steady_now();
  clock.advance(seconds(5));
  EXPECT_EQ(clock.now() - wall, seconds(5));
  EXPECT_EQ(clock.steady_now() - mono, seconds(5));
  clock.set_wall(wall - hours(1));
  EXPECT_EQ(clock.steady_now() - mono, seconds(5));
  EXPECT_EQ(clock.now(), wall - hours(1));
}

TEST(Log, MasksPlatesKeepingProvinceCityAndLastTwo) {
  EXPECT_EQ(log::mask_plate("粤B12345"), "粤B***45");
  EXPECT_EQ(log::mask_plate("粤BD12345"), "粤B****45");
  EXPECT_EQ(log::mask_plate("AB"), "**");
}

std::vector<std::string>* g_lines = nullptr;
void capture(log::Level, std::string_view line) { g_lines->emplace_back(line); }

TEST(Log, WritesStructuredFieldsToStderrFormat) {
  std::vector<std::string> lines;
  g_lines = &lines;
  log::set_journal(false);
  log::set_test_sink(&capture);
  log::warn("barrier did not confirm", {{"LANE", "exit-1"}, {"RETRIES", 2}});
  log::set_test_sink(nullptr);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "WARN barrier did not confirm lane=exit-1 retries=2");
}

TEST(Metrics, RendersPrometheusText) {
  metrics::Registry reg;
  reg.counter("lanegate_test_total", "A test counter", {{"lane", "exit-1"}}).inc(3);
  reg.gauge("lanegate_test_depth", "A test gauge").set(7);
  const std::string text = reg.render();
  EXPECT_NE(text.find("# TYPE lanegate_test_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("lanegate_test_total{lane=\"exit-1\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("lanegate_test_depth 7\n"), std::string::npos);
  EXPECT_EQ(reg.value("lanegate_test_total", {{"lane", "exit-1"}}), 3);
  EXPECT_EQ(reg.value("missing"), -1);
}

}  // namespace
}  // namespace lanegate
