#include "gateway/evidence.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"

// Design (see the header for the contract):
//
//  - put() runs on the caller's thread (the io thread): it hashes, then, under `mu`, either
//    counts a duplicate (same hash already queued), drops the image (queue over
//    max_queued_bytes) or appends it to `queue` and to `pending`. It never touches the disk.
//  - One writer thread pops the queue and writes one file at a time. An image stays in
//    `pending` (and its bytes in `queued_bytes`) until its write finished, successfully or
//    not, so read() and has() find an image that is queued or being written without
//    waiting for the disk: they look in `pending` first, then on disk. The writer removes
//    an entry only after the rename, so "not pending" means "on disk, failed or never put".
//  - `disk_mu` serialises the writer's file operations with sweep(): a sweep never sees a
//    write half done by this store, and the known byte total stays exact. put(), read(),
//    has() and flush() never take `disk_mu`, so a long sweep delays writes, never events.
//  - An image already on disk is not written again: it is counted as "duplicate" and its
//    modification time is refreshed, so retention counts from the newest event naming it.
//  - Before its first job the writer walks the directory once to learn the byte total for
//    lanegate_evidence_bytes; `busy` starts true so flush() also waits for that walk.
namespace lanegate::gateway {
namespace {

namespace fs = std::filesystem;

constexpr mode_t kDirMode = 0750;
constexpr mode_t kFileMode = 0640;
constexpr std::string_view kTmpMarker = ".tmp-";
// A temporary file younger than this may be a write in progress (another process).
constexpr auto kTmpGrace = std::chrono::hours(1);

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_sha256_hex(std::string_view s) { return s.size() == 64 && is_lower_hex(s); }

// "<2 hex>": the directory of the images whose hash starts with those digits.
bool is_shard_name(std::string_view s) { return s.size() == 2 && is_lower_hex(s); }

// "<64 hex>.jpg": a stored image.
bool is_image_name(std::string_view s) {
  return s.size() == 68 && s.ends_with(".jpg") && is_sha256_hex(s.substr(0, 64));
}

// "<64 hex>.jpg.tmp-<anything>": a write in progress or left by a crash.
bool is_tmp_name(std::string_view s) {
  return s.size() > 68 + kTmpMarker.size() && is_image_name(s.substr(0, 68)) &&
         s.substr(68, kTmpMarker.size()) == kTmpMarker;
}

std::string hash_prefix(std::string_view sha) { return std::string(sha.substr(0, 12)); }

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

Errc errc_from_errno(int e) {
  if (e == ENOSPC || e == EDQUOT) {
    return Errc::kDiskFull;
  }
  if (e == EACCES || e == EPERM || e == EROFS) {
    return Errc::kPermission;
  }
  return Errc::kIo;
}

Status fail_errno(int e, std::string what, const fs::path& p) {
  return fail(errc_from_errno(e), what + " " + p.string() + ": " + errno_text(e));
}

// mkdir with mode 0750 exactly (the umask may narrow it); an existing directory is fine.
Status make_dir(const fs::path& p) {
  if (::mkdir(p.c_str(), kDirMode) == 0) {
    if (::chmod(p.c_str(), kDirMode) != 0) {
      return fail_errno(errno, "cannot chmod", p);
    }
    return {};
  }
  const int e = errno;
  struct stat st{};
  if (e == EEXIST && ::stat(p.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      return {};
    }
    return fail(Errc::kIo, "cannot create directory " + p.string() + ": not a directory there");
  }
  return fail_errno(e, "cannot create directory", p);
}

SystemTime to_system(fs::file_time_type t) {
  return std::chrono::time_point_cast<SystemTime::duration>(std::chrono::file_clock::to_sys(t));
}

// One file of the evidence directory, as seen by a walk.
struct DirEntry {
  fs::path path;
  SystemTime mtime;
  std::int64_t bytes = 0;
  bool tmp = false;
};

// Lists images and temporary files under <dir>/<2 hex>/; anything else is left alone (never
// removed, never counted). Entries that vanish or cannot be read during the walk are skipped.
std::vector<DirEntry> walk(const fs::path& dir) {
  std::vector<DirEntry> out;
  std::error_code ec;
  for (fs::directory_iterator shard(dir, ec), end; !ec && shard != end; shard.increment(ec)) {
    std::error_code sec;
    if (!is_shard_name(shard->path().filename().string()) || !shard->is_directory(sec)) {
      continue;
    }
    std::error_code fec;
    for (fs::directory_iterator it(shard->path(), fec); !fec && it != end; it.increment(fec)) {
      const std::string name = it->path().filename().string();
      const bool tmp = is_tmp_name(name);
      std::error_code eec;
      if ((!tmp && !is_image_name(name)) || !it->is_regular_file(eec) || eec) {
        continue;
      }
      const auto mtime = fs::last_write_time(it->path(), eec);
      if (eec) {
        continue;
      }
      const auto size = fs::file_size(it->path(), eec);
      if (eec) {
        continue;
      }
      out.push_back(DirEntry{it->path(), to_system(mtime), static_cast<std::int64_t>(size), tmp});
    }
  }
  return out;
}

std::atomic<std::uint64_t> tmp_counter{0};

}  // namespace

struct EvidenceStore::Impl {
  struct Job {
    std::string sha;
    std::string kind;
    std::shared_ptr<const std::string> bytes;
  };

  explicit Impl(fs::path d, EvidenceLimits l)
      : dir(std::move(d)),
        limits(l),
        stored(result_counter("stored")),
        duplicate(result_counter("duplicate")),
        dropped(result_counter("dropped")),
        failed(result_counter("failed")),
        bytes_gauge(metrics::Registry::global().gauge(
            "lanegate_evidence_bytes", "Bytes of evidence images on disk, as last known")),
        removed(metrics::Registry::global().counter(
            "lanegate_evidence_removed_total",
            "Evidence files removed by retention (age, size, stale temporary files)")) {}

  static metrics::Counter& result_counter(std::string_view result) {
    return metrics::Registry::global().counter("lanegate_evidence_images_total",
                                               "Evidence images by outcome of their write",
                                               {{"result", std::string(result)}});
  }

  fs::path shard_dir(std::string_view sha) const { return dir / std::string(sha.substr(0, 2)); }
  fs::path image_path(std::string_view sha) const {
    return shard_dir(sha) / (std::string(sha) + ".jpg");
  }

  void writer_loop();
  // REQUIRES: disk_mu held. Writes one image; "duplicate" when it was already on disk.
  Result<bool> write_image(const Job& job);
  void record_bytes(std::int64_t delta);

  const fs::path dir;

  std::mutex mu;                 // guards everything below up to disk_mu
  std::condition_variable wake;  // writer: a job or stop
  std::condition_variable idle;  // flush(): queue empty and writer idle
  EvidenceLimits limits;
  std::deque<Job> queue;
  std::map<std::string, std::shared_ptr<const std::string>, std::less<>> pending;
  std::size_t queued_bytes = 0;  // bytes in `pending`, including the write in progress
  bool busy = true;              // the writer is walking the directory or writing a file
  bool stop = false;

  std::mutex disk_mu;            // serialises the writer's file operations with sweep()
  std::int64_t known_bytes = 0;  // guarded by disk_mu

  metrics::Counter& stored;
  metrics::Counter& duplicate;
  metrics::Counter& dropped;
  metrics::Counter& failed;
  metrics::Gauge& bytes_gauge;
  metrics::Counter& removed;

  std::thread writer;  // started by EvidenceStore's constructor once Impl is whole
};

void EvidenceStore::Impl::record_bytes(std::int64_t delta) {
  known_bytes = std::max<std::int64_t>(0, known_bytes + delta);
  bytes_gauge.set(known_bytes);
}

Result<bool> EvidenceStore::Impl::write_image(const Job& job) {
  const fs::path final_path = image_path(job.sha);
  struct stat st{};
  if (::lstat(final_path.c_str(), &st) == 0) {
    // Refresh the modification time: retention counts from the newest event naming it.
    std::error_code ec;
    fs::last_write_time(final_path, fs::file_time_type::clock::now(), ec);
    return false;
  }
  if (auto s = make_dir(dir); !s) {
    return std::unexpected(s.error());
  }
  const fs::path shard = shard_dir(job.sha);
  if (auto s = make_dir(shard); !s) {
    return std::unexpected(s.error());
  }
  const fs::path tmp = final_path.string() + std::string(kTmpMarker) + std::to_string(::getpid()) +
                       "-" + std::to_string(tmp_counter.fetch_add(1));
  // O_EXCL: never write into a file someone else prepared (and possibly opened).
  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, kFileMode);
  if (fd < 0) {
    return std::unexpected(fail_errno(errno, "cannot create", tmp).error());
  }
  auto fail_io = [&](const char* what, bool close_fd) -> Result<bool> {
    const int e = errno;
    if (close_fd) {
      ::close(fd);
    }
    ::unlink(tmp.c_str());
    return std::unexpected(fail_errno(e, what, tmp).error());
  };
  if (::fchmod(fd, kFileMode) != 0) {
    return fail_io("cannot chmod", true);
  }
  const std::string& data = *job.bytes;
  std::size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail_io("cannot write", true);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    return fail_io("cannot fsync", true);
  }
  if (::close(fd) != 0) {
    return fail_io("cannot close", false);
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return fail_io("cannot rename", false);
  }
  record_bytes(static_cast<std::int64_t>(data.size()));
  // The rename is durable only once the directory is synced; the file itself is whole.
  const int dfd = ::open(shard.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    return std::unexpected(fail_errno(errno, "cannot open directory", shard).error());
  }
  if (::fsync(dfd) != 0) {
    const int e = errno;
    ::close(dfd);
    return std::unexpected(fail_errno(e, "cannot fsync directory", shard).error());
  }
  ::close(dfd);
  return true;
}

void EvidenceStore::Impl::writer_loop() {
  {
    std::lock_guard disk(disk_mu);
    std::int64_t total = 0;
    for (const DirEntry& e : walk(dir)) {
      total += e.bytes;
    }
    record_bytes(total - known_bytes);
  }
  std::unique_lock lock(mu);
  busy = false;
  idle.notify_all();
  for (;;) {
    wake.wait(lock, [&] { return stop || !queue.empty(); });
    if (queue.empty()) {
      return;  // stop requested and everything queued is written
    }
    Job job = std::move(queue.front());
    queue.pop_front();
    busy = true;
    lock.unlock();

    Result<bool> written = [&] {
      std::lock_guard disk(disk_mu);
      return write_image(job);
    }();
    if (!written) {
      failed.inc();
      log::warn("evidence image not stored", {{"SHA256", hash_prefix(job.sha)},
                                              {"KIND", job.kind},
                                              {"BYTES", job.bytes->size()},
                                              {"ERROR", written.error().message},
                                              {"ERRC", errc_name(written.error().code)}});
    } else if (*written) {
      stored.inc();
    } else {
      duplicate.inc();
    }

    lock.lock();
    queued_bytes -= job.bytes->size();
    pending.erase(job.sha);
    busy = false;
    if (queue.empty()) {
      idle.notify_all();
    }
  }
}

EvidenceStore::EvidenceStore(std::filesystem::path dir, EvidenceLimits limits)
    : impl_(std::make_unique<Impl>(std::move(dir), limits)) {
  impl_->writer = std::thread([impl = impl_.get()] { impl->writer_loop(); });
}

EvidenceStore::~EvidenceStore() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->wake.notify_all();
  impl_->writer.join();
}

StoredImage EvidenceStore::put(std::string kind, std::string bytes) {
  StoredImage image{std::move(kind), crypto::sha256_hex(bytes),
                    static_cast<std::int64_t>(bytes.size())};
  const std::size_t size = bytes.size();
  std::size_t queued = 0;
  std::size_t limit = 0;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->pending.contains(image.sha256_hex)) {
      impl_->duplicate.inc();
      return image;
    }
    limit = impl_->limits.max_queued_bytes;
    queued = impl_->queued_bytes;
    if (size <= limit && queued <= limit - size) {
      auto shared = std::make_shared<const std::string>(std::move(bytes));
      impl_->pending.emplace(image.sha256_hex, shared);
      impl_->queue.push_back(Impl::Job{image.sha256_hex, image.kind, std::move(shared)});
      impl_->queued_bytes += size;
      impl_->wake.notify_one();
      return image;
    }
  }
  impl_->dropped.inc();
  log::warn("evidence image dropped",
            {{"SHA256", hash_prefix(image.sha256_hex)},
             {"KIND", image.kind},
             {"BYTES", size},
             {"ERROR", "write queue full: " + std::to_string(queued) + " of " +
                           std::to_string(limit) + " bytes queued"}});
  return image;
}

Result<std::string> EvidenceStore::read(std::string_view sha256_hex) const {
  if (!is_sha256_hex(sha256_hex)) {
    return fail(Errc::kInvalidArgument, "must be 64 lower-case hex digits", "sha256");
  }
  {
    std::lock_guard lock(impl_->mu);
    if (auto it = impl_->pending.find(sha256_hex); it != impl_->pending.end()) {
      return *it->second;
    }
  }
  const fs::path p = impl_->image_path(sha256_hex);
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) {
      return fail(Errc::kNotFound, "no evidence image " + std::string(sha256_hex), "sha256");
    }
    return std::unexpected(fail_errno(e, "cannot open", p).error());
  }
  std::string out;
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      const int e = errno;
      ::close(fd);
      return std::unexpected(fail_errno(e, "cannot read", p).error());
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

bool EvidenceStore::has(std::string_view sha256_hex) const {
  if (!is_sha256_hex(sha256_hex)) {
    return false;
  }
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->pending.contains(sha256_hex)) {
      return true;
    }
  }
  std::error_code ec;
  return fs::is_regular_file(impl_->image_path(sha256_hex), ec);
}

std::int64_t EvidenceStore::sweep(SystemTime now) {
  EvidenceLimits limits;
  {
    std::lock_guard lock(impl_->mu);
    limits = impl_->limits;
  }
  const SystemTime cutoff = now - std::chrono::days(limits.retention_days);
  const SystemTime tmp_cutoff = now - kTmpGrace;

  std::lock_guard disk(impl_->disk_mu);
  std::int64_t removed = 0;
  std::int64_t total = 0;
  std::vector<DirEntry> kept;
  auto remove = [&](const DirEntry& e) {
    std::error_code ec;
    if (fs::remove(e.path, ec) && !ec) {
      ++removed;
      return true;
    }
    if (ec) {
      log::warn("evidence file not removed",
                {{"FILE", e.path.filename().string()}, {"ERROR", ec.message()}});
    }
    return false;
  };
  for (DirEntry& e : walk(impl_->dir)) {
    if (e.tmp) {
      // Younger: a write in progress. Older: left by a crash mid-write.
      if (e.mtime < tmp_cutoff && remove(e)) {
        continue;
      }
      total += e.bytes;
      continue;
    }
    if (e.mtime < cutoff && remove(e)) {
      continue;
    }
    total += e.bytes;
    kept.push_back(std::move(e));
  }
  if (total > limits.max_bytes) {
    // Oldest first; the path breaks ties so the order does not depend on the walk.
    std::sort(kept.begin(), kept.end(), [](const DirEntry& a, const DirEntry& b) {
      return std::tie(a.mtime, a.path) < std::tie(b.mtime, b.path);
    });
    for (const DirEntry& e : kept) {
      if (total <= limits.max_bytes) {
        break;
      }
      if (remove(e)) {
        total -= e.bytes;
      }
    }
  }
  impl_->record_bytes(total - impl_->known_bytes);
  impl_->removed.inc(removed);
  return removed;
}

void EvidenceStore::flush() {
  std::unique_lock lock(impl_->mu);
  impl_->idle.wait(lock, [&] { return impl_->queue.empty() && !impl_->busy; });
}

void EvidenceStore::set_limits(EvidenceLimits limits) {
  std::lock_guard lock(impl_->mu);
  impl_->limits = limits;
}

const std::filesystem::path& EvidenceStore::dir() const { return impl_->dir; }

}  // namespace lanegate::gateway
