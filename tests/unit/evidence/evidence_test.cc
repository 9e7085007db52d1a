// EvidenceStore: content-addressed image files written off the caller's thread.

#include "gateway/evidence.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>

#include "core/log.h"
#include "core/metrics.h"

namespace lanegate::gateway {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;

// `printf 'abc' | sha256sum`
constexpr std::string_view kAbcSha =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
// `printf '' | sha256sum`
constexpr std::string_view kEmptySha =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "lanegate-evidence-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed";
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, ec);
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

mode_t mode_of(const fs::path& p) {
  struct stat st{};
  if (::stat(p.c_str(), &st) != 0) {
    return 0;
  }
  return st.st_mode & 07777;
}

std::int64_t images(std::string_view result) {
  return metrics::Registry::global().value("lanegate_evidence_images_total",
                                           {{"result", std::string(result)}});
}
std::int64_t bytes_gauge() { return metrics::Registry::global().value("lanegate_evidence_bytes"); }
std::int64_t removed_total() {
  return metrics::Registry::global().value("lanegate_evidence_removed_total");
}

void set_mtime(const fs::path& p, SystemTime t) {
  std::error_code ec;
  fs::last_write_time(p, std::chrono::file_clock::from_sys(t), ec);
  ASSERT_FALSE(ec) << ec.message();
}

std::mutex g_log_mu;
std::string g_log;
void capture(log::Level, std::string_view line) {
  std::lock_guard lock(g_log_mu);
  g_log += std::string(line) + "\n";
}
std::string captured() {
  std::lock_guard lock(g_log_mu);
  return g_log;
}

class EvidenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    {
      std::lock_guard lock(g_log_mu);
      g_log.clear();
    }
    log::set_test_sink(&capture);
  }
  void TearDown() override { log::set_test_sink(nullptr); }

  fs::path evidence_dir() const { return tmp_.path() / "evidence"; }
  fs::path image_path(std::string_view sha) const {
    return evidence_dir() / std::string(sha.substr(0, 2)) / (std::string(sha) + ".jpg");
  }

  TempDir tmp_;
};

TEST_F(EvidenceTest, CreatesEverySeriesAtConstruction) {
  EvidenceStore store(evidence_dir(), {});
  for (std::string_view r : {"stored", "duplicate", "dropped", "failed"}) {
    EXPECT_GE(images(r), 0) << r;
  }
  EXPECT_GE(bytes_gauge(), 0);
  EXPECT_GE(removed_total(), 0);
  EXPECT_EQ(store.dir(), evidence_dir());
}

TEST_F(EvidenceTest, PutReturnsTheSha256AndWritesTheFileWithItsModes) {
  EvidenceStore store(evidence_dir(), {});  // creates the series: read them after
  const auto stored_before = images("stored");
  const StoredImage img = store.put("plate", "abc");
  EXPECT_EQ(img.sha256_hex, kAbcSha);
  EXPECT_EQ(img.kind, "plate");
  EXPECT_EQ(img.bytes, 3);
  EXPECT_EQ(store.put("full", "").sha256_hex, kEmptySha);
  store.flush();

  const fs::path p = image_path(kAbcSha);
  EXPECT_EQ(p, evidence_dir() / "ba" / (std::string(kAbcSha) + ".jpg"));
  ASSERT_TRUE(fs::is_regular_file(p));
  EXPECT_EQ(read_file(p), "abc");
  EXPECT_EQ(mode_of(p), 0640u);
  EXPECT_EQ(mode_of(p.parent_path()), 0750u);
  EXPECT_EQ(mode_of(evidence_dir()), 0750u);
  EXPECT_TRUE(fs::is_regular_file(image_path(kEmptySha)));
  EXPECT_EQ(images("stored"), stored_before + 2);
  EXPECT_EQ(bytes_gauge(), 3);
  // No temporary file left behind.
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(evidence_dir())) {
    if (e.is_regular_file()) {
      ++files;
      EXPECT_EQ(e.path().extension(), ".jpg") << e.path();
    }
  }
  EXPECT_EQ(files, 2);
}

TEST_F(EvidenceTest, ReadsKnownUnknownAndMalformedHashes) {
  EvidenceStore store(evidence_dir(), {});
  store.put("plate", "abc");
  store.flush();

  auto got = store.read(kAbcSha);
  ASSERT_TRUE(got) << got.error().to_string();
  EXPECT_EQ(*got, "abc");
  EXPECT_TRUE(store.has(kAbcSha));

  auto missing = store.read(kEmptySha);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
  EXPECT_FALSE(store.has(kEmptySha));

  const std::string upper = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
  for (std::string_view bad : {std::string_view(upper), kAbcSha.substr(0, 63),
                               std::string_view("../../../../etc/passwd"), std::string_view()}) {
    auto r = store.read(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument) << bad;
    EXPECT_EQ(r.error().field, "sha256") << bad;
    EXPECT_FALSE(store.has(bad)) << bad;
  }
}

TEST_F(EvidenceTest, ReadFindsImagesStillQueued) {
  // No flush between put and read: each image is either pending or on disk, never missing.
  EvidenceStore store(evidence_dir(), {});
  std::vector<std::pair<std::string, std::string>> puts;
  for (int i = 0; i < 50; ++i) {
    std::string bytes(20'000, static_cast<char>('a' + i % 26));
    bytes += std::to_string(i);
    const std::string sha = store.put("full", bytes).sha256_hex;
    puts.emplace_back(sha, std::move(bytes));
    EXPECT_TRUE(store.has(sha)) << i;
    auto got = store.read(sha);
    ASSERT_TRUE(got) << i << ": " << got.error().to_string();
    EXPECT_EQ(*got, puts.back().second) << i;
  }
  store.flush();
  for (const auto& [sha, bytes] : puts) {
    EXPECT_EQ(read_file(image_path(sha)), bytes);
  }
}

TEST_F(EvidenceTest, TheSameImageTwiceIsStoredOnce) {
  EvidenceStore store(evidence_dir(), {});
  const auto stored_before = images("stored");
  const auto duplicate_before = images("duplicate");
  store.put("plate", "abc");
  store.flush();
  store.put("vehicle", "abc");  // already on disk
  store.flush();
  store.put("plate", "abc");
  store.put("plate", "abc");
  store.flush();
  EXPECT_EQ(images("stored"), stored_before + 1);
  EXPECT_EQ(images("duplicate"), duplicate_before + 3);
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(evidence_dir())) {
    files += e.is_regular_file() ? 1 : 0;
  }
  EXPECT_EQ(files, 1);
  EXPECT_EQ(read_file(image_path(kAbcSha)), "abc");
}

TEST_F(EvidenceTest, AFullQueueDropsTheImageAtOnceAndLogsIt) {
  EvidenceLimits limits;
  limits.max_queued_bytes = 1;
  EvidenceStore store(evidence_dir(), limits);
  const auto dropped_before = images("dropped");
  const auto stored_before = images("stored");
  const auto start = std::chrono::steady_clock::now();
  const StoredImage img = store.put("plate", "abc");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_EQ(img.sha256_hex, kAbcSha);
  store.flush();
  EXPECT_EQ(images("dropped"), dropped_before + 1);
  EXPECT_EQ(images("stored"), stored_before);
  EXPECT_FALSE(fs::exists(image_path(kAbcSha)));
  EXPECT_FALSE(store.has(kAbcSha));
  EXPECT_EQ(store.read(kAbcSha).error().code, Errc::kNotFound);

  const std::string log = captured();
  EXPECT_NE(log.find("evidence image dropped"), std::string::npos) << log;
  EXPECT_NE(log.find(std::string(kAbcSha.substr(0, 12))), std::string::npos) << log;
  EXPECT_EQ(log.find(std::string(kAbcSha)), std::string::npos) << "full hash logged: " << log;

  // A reload that raises the limit lets the next image through.
  limits.max_queued_bytes = 1024;
  store.set_limits(limits);
  store.put("plate", "abc");
  store.flush();
  EXPECT_EQ(images("stored"), stored_before + 1);
  EXPECT_TRUE(store.has(kAbcSha));
}

TEST_F(EvidenceTest, AWriteErrorIsCountedAndLoggedNotThrown) {
  // The evidence directory is a regular file: fails even for root.
  write_file(evidence_dir(), "not a directory");
  EvidenceStore store(evidence_dir(), {});
  const auto failed_before = images("failed");
  const std::string bytes = "SECRET-IMAGE-BYTES";
  const StoredImage img = store.put("plate", bytes);
  EXPECT_NO_THROW(store.flush());
  EXPECT_EQ(images("failed"), failed_before + 1);
  EXPECT_FALSE(store.has(img.sha256_hex));
  const std::string log = captured();
  EXPECT_NE(log.find("evidence image not stored"), std::string::npos) << log;
  EXPECT_NE(log.find(img.sha256_hex.substr(0, 12)), std::string::npos) << log;
  EXPECT_EQ(log.find(bytes), std::string::npos) << "image bytes logged: " << log;
}

TEST_F(EvidenceTest, DestructionWritesWhatIsQueued) {
  std::vector<std::string> shas;
  {
    EvidenceStore store(evidence_dir(), {});
    for (int i = 0; i < 20; ++i) {
      shas.push_back(store.put("full", std::string(50'000, 'x') + std::to_string(i)).sha256_hex);
    }
  }
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(read_file(image_path(shas[i])), std::string(50'000, 'x') + std::to_string(i));
  }
}

TEST_F(EvidenceTest, SweepRemovesFilesOlderThanTheRetention) {
  EvidenceLimits limits;
  limits.retention_days = 30;
  EvidenceStore store(evidence_dir(), limits);
  store.put("plate", "abc");
  const std::string young = store.put("plate", "young").sha256_hex;
  store.flush();
  const SystemTime now = std::chrono::system_clock::now();
  set_mtime(image_path(kAbcSha), now - std::chrono::days(30) - hours(1));
  set_mtime(image_path(young), now - std::chrono::days(29));

  const auto removed_before = removed_total();
  EXPECT_EQ(store.sweep(now), 1);
  EXPECT_EQ(removed_total(), removed_before + 1);
  EXPECT_FALSE(store.has(kAbcSha));
  EXPECT_EQ(store.read(kAbcSha).error().code, Errc::kNotFound);
  EXPECT_TRUE(store.has(young));
  EXPECT_EQ(bytes_gauge(), 5);

  // A shorter retention after a reload applies at the next sweep.
  limits.retention_days = 7;
  store.set_limits(limits);
  EXPECT_EQ(store.sweep(now), 1);
  EXPECT_FALSE(store.has(young));
  EXPECT_EQ(bytes_gauge(), 0);
}

TEST_F(EvidenceTest, AnImageSentAgainIsKeptFromItsNewestEvent) {
  EvidenceStore store(evidence_dir(), {});
  store.put("plate", "abc");
  store.flush();
  const SystemTime now = std::chrono::system_clock::now();
  set_mtime(image_path(kAbcSha), now - std::chrono::days(40));
  store.put("plate", "abc");  // a new event names the same image
  store.flush();
  EXPECT_EQ(store.sweep(now), 0);
  EXPECT_TRUE(store.has(kAbcSha));
}

TEST_F(EvidenceTest, SweepRemovesTheOldestUntilWithinMaxBytes) {
  EvidenceLimits limits;
  limits.max_bytes = 25;
  EvidenceStore store(evidence_dir(), limits);
  std::vector<std::string> shas;  // ten bytes each, oldest first
  for (std::string_view b : {"aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc", "dddddddddd"}) {
    shas.push_back(store.put("full", std::string(b)).sha256_hex);
  }
  store.flush();
  EXPECT_EQ(bytes_gauge(), 40);
  const SystemTime now = std::chrono::system_clock::now();
  for (std::size_t i = 0; i < shas.size(); ++i) {
    set_mtime(image_path(shas[i]), now - hours(10 - static_cast<int>(i)));
  }
  // Files beside the images are none of the store's business: never counted or removed.
  write_file(evidence_dir() / "README", std::string(1000, 'r'));

  EXPECT_EQ(store.sweep(now), 2);
  EXPECT_FALSE(store.has(shas[0]));
  EXPECT_FALSE(store.has(shas[1]));
  EXPECT_TRUE(store.has(shas[2]));
  EXPECT_TRUE(store.has(shas[3]));
  EXPECT_TRUE(fs::exists(evidence_dir() / "README"));
  EXPECT_EQ(bytes_gauge(), 20);
  EXPECT_EQ(store.sweep(now), 0);
}

TEST_F(EvidenceTest, SweepKeepsAFreshTemporaryFileAndRemovesAnOldOne) {
  EvidenceStore store(evidence_dir(), {});
  store.put("plate", "abc");
  store.flush();
  const fs::path fresh = image_path(kAbcSha).string() + ".tmp-fresh";
  const fs::path old = image_path(kAbcSha).string() + ".tmp-old";
  write_file(fresh, "ab");
  write_file(old, "a");
  const SystemTime now = std::chrono::system_clock::now();
  set_mtime(fresh, now - std::chrono::minutes(50));
  set_mtime(old, now - std::chrono::minutes(70));

  EXPECT_EQ(store.sweep(now), 1);
  EXPECT_TRUE(fs::exists(fresh));
  EXPECT_FALSE(fs::exists(old));
  EXPECT_TRUE(store.has(kAbcSha));
  EXPECT_EQ(bytes_gauge(), 5);  // the image and the write in progress
}

TEST_F(EvidenceTest, LearnsTheBytesAlreadyOnDiskAtStart) {
  {
    EvidenceStore store(evidence_dir(), {});
    store.put("plate", "abc");
    store.put("plate", "young");
  }
  EvidenceStore store(evidence_dir(), {});
  store.flush();
  EXPECT_EQ(bytes_gauge(), 8);
  EXPECT_TRUE(store.has(kAbcSha));
}

}  // namespace
}  // namespace lanegate::gateway
