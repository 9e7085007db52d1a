#include "core/log.h"

#include <systemd/sd-journal.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace lanegate::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};
std::atomic<Sink> g_sink{nullptr};

int detect_journal() {
  // systemd sets JOURNAL_STREAM when stderr is connected to the journal.
  const char* js = std::getenv("JOURNAL_STREAM");
  return js != nullptr && *js != '\0' ? 1 : 0;
}
std::atomic<int> g_journal{-1};

int env_level() {
  const char* v = std::getenv("LANEGATE_LOG_LEVEL");
  if (v == nullptr) return -1;
  if (std::strcmp(v, "debug") == 0) return 7;
  if (std::strcmp(v, "info") == 0) return 6;
  if (std::strcmp(v, "notice") == 0) return 5;
  if (std::strcmp(v, "warning") == 0) return 4;
  if (std::strcmp(v, "error") == 0) return 3;
  return -1;
}

std::string_view level_name(Level l) {
  switch (l) {
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO";
    case Level::kNotice: return "NOTICE";
    case Level::kWarning: return "WARN";
    case Level::kError: return "ERROR";
  }
  return "?";
}

std::mutex g_stderr_mu;

}  // namespace

void set_min_level(Level level) { g_min_level = static_cast<int>(level); }
void set_journal(bool enabled) { g_journal = enabled ? 1 : 0; }
void set_test_sink(Sink sink) { g_sink = sink; }

void write(Level level, std::string_view message, std::initializer_list<Field> fields) {
  static const int from_env = env_level();
  const int min = from_env >= 0 ? from_env : g_min_level.load();
  if (static_cast<int>(level) > min) return;
  int journal = g_journal.load();
  if (journal < 0) {
    journal = detect_journal();
    g_journal = journal;
  }
  std::string line;
  line.reserve(message.size() + 64);
  line.append(level_name(level)).append(" ").append(message);
  for (const Field& f : fields) {
    line.append(" ");
    for (char c : f.key) line.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
    line.append("=");
    const bool quote = f.value.find(' ') != std::string::npos || f.value.empty();
    if (quote) line.push_back('"');
    line.append(f.value);
    if (quote) line.push_back('"');
  }
  if (Sink sink = g_sink.load()) {
    sink(level, line);
  }
  if (journal == 1) {
    std::vector<std::string> owned;
    owned.reserve(fields.size() + 3);
    owned.push_back("MESSAGE=" + std::string(message));
    owned.push_back("PRIORITY=" + std::to_string(static_cast<int>(level)));
    owned.push_back("SYSLOG_IDENTIFIER=lanegate");
    for (const Field& f : fields) {
      owned.push_back("LANEGATE_" + std::string(f.key) + "=" + f.value);
    }
    std::vector<iovec> iov;
    iov.reserve(owned.size());
    for (auto& s : owned) iov.push_back(iovec{s.data(), s.size()});
    sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
    return;
  }
  // Outside the journal (demo, tests, a foreground run) the line carries its own UTC
  // time, so an operator can line a log up with metrics and the ledger.
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&secs, &utc);
  char stamp[32];
  const std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  std::string out;
  out.reserve(line.size() + 32);
  out.append(stamp, n);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ ", static_cast<int>(ms % 1000));
  out.append(frac).append(line).push_back('\n');
  std::lock_guard lock(g_stderr_mu);
  std::fwrite(out.data(), 1, out.size(), stderr);
}

std::string mask_plate(std::string_view plate) {
  // Split into UTF-8 code points.
  std::vector<std::string_view> cps;
  for (std::size_t i = 0; i < plate.size();) {
    const auto c = static_cast<unsigned char>(plate[i]);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
    len = std::min(len, plate.size() - i);
    cps.push_back(plate.substr(i, len));
    i += len;
  }
  if (cps.size() <= 4) {
    return std::string(cps.size(), '*');
  }
  std::string out;
  for (std::size_t i = 0; i < cps.size(); ++i) {
    if (i < 2 || i + 2 >= cps.size()) {
      out.append(cps[i]);
    } else {
      out.push_back('*');
    }
  }
  return out;
}

}  // namespace lanegate::log
