#pragma once
// Logging: structured fields to the journal (sd_journal_send) when running under
// systemd, "LEVEL msg key=value ..." on stderr otherwise. Never pass secrets; pass
// plates through mask_plate() (the audit ledger is the only place with full plates).

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace lanegate::log {

enum class Level { kDebug = 7, kInfo = 6, kNotice = 5, kWarning = 4, kError = 3 };

struct Field {
  std::string_view key;  // upper-case journal field name, e.g. "LANE"
  std::string value;
  Field(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  template <typename N>
    requires std::is_arithmetic_v<N>
  Field(std::string_view k, N v) : key(k), value(std::to_string(v)) {}
};

void write(Level level, std::string_view message, std::initializer_list<Field> fields = {});
inline void debug(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::kDebug, m, f); }
inline void info(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::kInfo, m, f); }
inline void notice(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::kNotice, m, f); }
inline void warn(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::kWarning, m, f); }
inline void error(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::kError, m, f); }

// Messages below this level are dropped (default kInfo; LANEGATE_LOG_LEVEL=debug).
void set_min_level(Level level);
// Force the destination (tests): true = journal, false = stderr.
void set_journal(bool enabled);

// Sink for tests: when set, every record is also passed here, formatted as stderr.
using Sink = void (*)(Level, std::string_view line);
void set_test_sink(Sink sink);

// "粤B***45": keeps the province character, the city letter and the last two
// characters; works on UTF-8 code points.
std::string mask_plate(std::string_view plate);

}  // namespace lanegate::log
