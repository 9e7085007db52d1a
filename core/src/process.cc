#include "core/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace lanegate::process {
namespace {

// ---- fatal signals ----
// Everything the handler touches is set up before it can run and only read by it; the
// handler itself calls nothing but async-signal-safe functions (clock_gettime, write,
// sigaction, raise).

constexpr std::array<int, 5> kFatalSignals = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL};

struct sigaction g_previous[NSIG];
char g_program[64] = "lanegate";
bool g_journal = false;
// Own stack for the handler: a SIGSEGV from a stack overflow has no stack left to run
// it on. Covers the main thread (sigaltstack is per thread).
alignas(16) char g_alt_stack[64 * 1024];

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGABRT:
      return "SIGABRT";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    default:
      return "?";
  }
}

// A bounded line buffer that never allocates.
struct Line {
  char buf[256];
  std::size_t len = 0;
  void add(const char* s) {
    while (*s != '\0' && len < sizeof buf - 1) buf[len++] = *s++;
  }
  void add_uint(unsigned long long v, int min_digits = 1) {
    char digits[24];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0 && n < 24);
    while (n < min_digits && n < 24) digits[n++] = '0';
    while (n > 0 && len < sizeof buf - 1) buf[len++] = digits[--n];
  }
};

// "2026-01-31T08:00:00.123Z": civil date from days since the epoch (H. Hinnant's
// algorithm), since gmtime_r is not async-signal-safe.
void add_utc_time(Line& line) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  const long long secs = ts.tv_sec;
  long long days = secs / 86400;
  long long rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  const long long z = days + 719468;
  const long long era = (z >= 0 ? z : z - 146096) / 146097;
  const long long doe = z - era * 146097;
  const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const long long mp = (5 * doy + 2) / 153;
  const long long d = doy - (153 * mp + 2) / 5 + 1;
  const long long m = mp < 10 ? mp + 3 : mp - 9;
  const long long y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  line.add_uint(static_cast<unsigned long long>(y), 4);
  line.add("-");
  line.add_uint(static_cast<unsigned long long>(m), 2);
  line.add("-");
  line.add_uint(static_cast<unsigned long long>(d), 2);
  line.add("T");
  line.add_uint(static_cast<unsigned long long>(rem / 3600), 2);
  line.add(":");
  line.add_uint(static_cast<unsigned long long>(rem / 60 % 60), 2);
  line.add(":");
  line.add_uint(static_cast<unsigned long long>(rem % 60), 2);
  line.add(".");
  line.add_uint(static_cast<unsigned long long>(ts.tv_nsec / 1'000'000), 3);
  line.add("Z ");
}

void on_fatal_signal(int sig, siginfo_t* info, void*) {
  const int saved_errno = errno;
  Line line;
  if (g_journal) {
    line.add("<2>");  // syslog priority "critical" for the journal's stream parser
  } else {
    add_utc_time(line);
    line.add("ERROR ");
  }
  line.add("fatal signal, terminating signal=");
  line.add(signal_name(sig));
  line.add(" pid=");
  line.add_uint(static_cast<unsigned long long>(getpid()));
  line.add(" program=");
  line.add(g_program);
  line.add("\n");
  const char* p = line.buf;
  std::size_t left = line.len;
  while (left > 0) {
    const ssize_t n = write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  // Hand the signal to what was there before us (default: terminate and dump core; under
  // a sanitizer: its report). A fault raised by an instruction (si_code > 0) recurs when
  // this handler returns; a signal that was sent (kill, raise, abort) is sent again, and
  // stays pending until this handler returns because it is blocked while it runs.
  sigaction(sig, &g_previous[sig], nullptr);
  if (info == nullptr || info->si_code <= 0) {
    raise(sig);
  }
  errno = saved_errno;
}

// ---- lock file ----

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

void install_signal_policy(std::string_view program) {
  ::signal(SIGPIPE, SIG_IGN);

  const std::size_t n = std::min(program.size(), sizeof g_program - 1);
  std::memcpy(g_program, program.data(), n);
  g_program[n] = '\0';
  const char* js = std::getenv("JOURNAL_STREAM");
  g_journal = js != nullptr && *js != '\0';

  // Keep an alternate stack someone installed before us (a sanitizer runtime does).
  stack_t current{};
  if (sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) != 0) {
    stack_t alt{};
    alt.ss_sp = g_alt_stack;
    alt.ss_size = sizeof g_alt_stack;
    alt.ss_flags = 0;
    (void)sigaltstack(&alt, nullptr);
  }
  struct sigaction action{};
  action.sa_sigaction = on_fatal_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  for (int sig : kFatalSignals) {
    (void)sigaction(sig, &action, &g_previous[sig]);
  }
}

Result<ExclusiveFileLock> ExclusiveFileLock::acquire(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    const int err = errno;
    return fail(Errc::kIo, "cannot open the lock file " + file.string() + ": " + errno_text(err));
  }
  // Not truncated before the lock is ours: the file holds the running holder's pid.
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      const auto pid = recorded_pid(file);
      return fail(Errc::kBusy, file.string() + " is locked by another process" +
                                   (pid ? " (pid " + std::to_string(*pid) + ")" : std::string()));
    }
    return fail(Errc::kIo, "cannot lock " + file.string() + ": " + errno_text(err));
  }
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    const int err = errno;
    ::close(fd);
    return fail(Errc::kIo, "cannot write the lock file " + file.string() + ": " + errno_text(err));
  }
  return ExclusiveFileLock(fd, file);
}

std::optional<pid_t> ExclusiveFileLock::recorded_pid(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  char buf[32];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  long long pid = 0;
  bool any = false;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) {
    pid = pid * 10 + (buf[i] - '0');
    any = true;
    if (pid > 0x7fffffff) return std::nullopt;
  }
  if (!any || pid <= 0) return std::nullopt;
  return static_cast<pid_t>(pid);
}

ExclusiveFileLock::ExclusiveFileLock(ExclusiveFileLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

ExclusiveFileLock& ExclusiveFileLock::operator=(ExclusiveFileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

ExclusiveFileLock::~ExclusiveFileLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace lanegate::process
