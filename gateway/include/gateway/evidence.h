#pragma once
// Evidence images from plate cameras, kept with the passage they belong to.
//
// An image is named by its SHA-256: the hash goes into the camera event, the passage and
// the decision's ledger record (so an auditor can prove a file is the one the decision
// saw), the bytes into <state_dir>/evidence/<first two hex digits>/<sha256>.jpg.
//
// Rules:
//  1. An image problem never delays or refuses the event it came with: put() hashes on the
//     caller's thread (about 1 ms per 300 KB) and hands the bytes to one writer thread; a
//     full queue, a full disk or a write error drops the file (counted in
//     lanegate_evidence_images_total{result="dropped"|"failed"} and logged), never the
//     event, and the hash stays in the records.
//  2. Files are written to a temporary name, fsynced and renamed: a file under its final
//     name is whole. The same image twice is stored once.
//  3. Retention: sweep() removes files older than `retention_days` (by modification time),
//     then the oldest until the directory holds at most `max_bytes`. Images are evidence
//     kept by policy; the records that name them (ledger, passages) are never deleted.
//
// Threading: every member may be called from any thread.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/error.h"

namespace lanegate::gateway {

struct EvidenceLimits {
  int retention_days = 30;                       // 1..3650
  std::int64_t max_bytes = 2048LL * 1024 * 1024;  // whole evidence directory
  std::size_t max_queued_bytes = 64 * 1024 * 1024;  // writes waiting: beyond, dropped
};

struct StoredImage {
  std::string kind;        // "full" | "plate" | "vehicle"
  std::string sha256_hex;  // 64 lower-case hex digits
  std::int64_t bytes = 0;
};

class EvidenceStore {
 public:
  // `dir` is created on first write (mode 0750).
  EvidenceStore(std::filesystem::path dir, EvidenceLimits limits);
  ~EvidenceStore();  // writes what is queued, then stops the writer
  EvidenceStore(const EvidenceStore&) = delete;
  EvidenceStore& operator=(const EvidenceStore&) = delete;

  // Hashes `bytes` and queues the file. Never blocks on the disk.
  // An image already queued or on disk is counted as result="duplicate" and not written
  // again; one already on disk gets its modification time refreshed, so retention counts
  // from the newest event that names it.
  StoredImage put(std::string kind, std::string bytes);

  // The bytes of a stored image; kNotFound when it was never written, dropped or removed
  // by retention; kInvalidArgument (field "sha256") when `sha256_hex` is not 64 hex digits.
  // An image still queued (or being written) is found too, from memory: neither read() nor
  // has() waits for the writer. has() is false for a malformed hash.
  [[nodiscard]] Result<std::string> read(std::string_view sha256_hex) const;
  [[nodiscard]] bool has(std::string_view sha256_hex) const;

  // Applies retention now (the daemon calls it hourly). Returns the files removed.
  // Walks the directory on the caller's thread and holds up the writer meanwhile (never
  // put()). Only <2 hex>/<sha256>.jpg and their temporary files are counted or removed;
  // a temporary file younger than an hour may be a write in progress and is kept.
  std::int64_t sweep(SystemTime now);

  // Blocks until every queued write finished (tests, shutdown).
  void flush();

  void set_limits(EvidenceLimits limits);  // SIGHUP reload
  const std::filesystem::path& dir() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lanegate::gateway
