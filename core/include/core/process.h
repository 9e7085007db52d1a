#pragma once
// Process-level policy shared by every lanegate binary (lanegated, lanegate, lanegate-sim):
// what signals do to the process, and the lock that makes a daemon the only one on its
// state directory.

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string_view>

#include "core/error.h"

namespace lanegate::process {

// Sets the signal dispositions every lanegate binary runs with:
//  - SIGPIPE is ignored. A write to a peer that has gone (a TLS write on a kept-alive
//    connection the provider closed, a CLI's stdout piped into `head`) then fails with
//    EPIPE where it happens and is handled there, instead of killing the process without
//    a word (exit status 141). systemd's IgnoreSIGPIPE= default hid this; a shell, Docker
//    or runit does not, and a payment gateway must not depend on its supervisor for it.
//  - SIGSEGV, SIGABRT, SIGBUS, SIGFPE and SIGILL write one line to stderr naming the
//    signal, the pid and `program`, then the disposition that was in place before runs
//    (the default: terminate, dump core), so a crash is never silent. The line is
//    "<UTC time> ERROR fatal signal ..." like log.h's stderr lines, or "<2>fatal signal ..."
//    (priority critical) when stderr is the journal (JOURNAL_STREAM set).
// Dispositions set to SIG_IGN survive exec: a child this process starts inherits the
// ignored SIGPIPE (reset it in the child if that matters to it).
// REQUIRES: called once, first thing in main(), before any thread is started.
void install_signal_policy(std::string_view program);

// An exclusive advisory lock (flock) on one file, held until this object is destroyed or
// the process ends (a crash or SIGKILL releases it too, so no stale lock survives). It
// makes the holder the only process of its kind on a directory: processes that do not
// take it (the lanegate CLI) are not affected. The file keeps the holder's pid as text
// so a refused process can say who holds it.
class ExclusiveFileLock {
 public:
  // Creates `file` (mode 0600) if missing, then takes the lock without waiting and
  // writes this process's pid into it. Fails with kBusy when another open file holds the
  // lock (another process, or another lock object in this one); the message names the
  // file and the holder's pid when the holder wrote it. Other failures are kIo.
  [[nodiscard]] static Result<ExclusiveFileLock> acquire(const std::filesystem::path& file);

  // The pid written into `file` by its current or last holder, if it holds a number.
  static std::optional<pid_t> recorded_pid(const std::filesystem::path& file);

  ExclusiveFileLock(ExclusiveFileLock&& other) noexcept;
  ExclusiveFileLock& operator=(ExclusiveFileLock&& other) noexcept;
  ExclusiveFileLock(const ExclusiveFileLock&) = delete;
  ExclusiveFileLock& operator=(const ExclusiveFileLock&) = delete;
  // Releases the lock. The file stays: removing it would let a process that opened the
  // old file lock it while another locks a new one.
  ~ExclusiveFileLock();

  const std::filesystem::path& path() const { return path_; }

 private:
  ExclusiveFileLock(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::filesystem::path path_;
};

}  // namespace lanegate::process
