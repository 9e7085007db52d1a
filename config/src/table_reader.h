#pragma once
// Private to the config module: strict, typed reading of a toml++ table.
//
// A TableReader wraps one TOML table and a dotted path ("lane[2]"). Every getter
//   - records the key as known (so finish() can report the keys nobody asked for),
//   - leaves the output untouched when the key is absent (the default in config.h stays),
//   - on a present key of the wrong type or out of range adds a ConfigError naming the
//     file, line, column, dotted key and rule, and leaves the output untouched,
//   - remembers where the key was written, so cross-reference checks run after parsing
//     can point at the line of the referencing key.
// Errors are collected in a Diagnostics sink; nothing throws.
//
// Single-threaded: a Diagnostics and its readers belong to one load call.

#include <toml++/toml.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/money.h"

namespace lanegate::config::detail {

struct Pos {
  int line = 0;
  int column = 0;
};

Pos pos_of(const toml::source_region& region);

// Collects errors and the positions of every key that was read.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void add(Pos pos, std::string key, std::string rule);
  void remember(const std::string& key, Pos pos) { positions_[key] = pos; }
  // Position of a key read earlier; {0,0} when it was never seen.
  Pos where(const std::string& key) const;
  bool empty() const { return errors_.empty(); }
  // Errors ordered by line and column (discovery order among equal positions).
  std::vector<ConfigError> take();

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
  std::map<std::string, Pos, std::less<>> positions_;
};

enum class Need { kOptional, kRequired };

template <typename E>
using EnumNames = std::initializer_list<std::pair<std::string_view, E>>;

class TableReader {
 public:
  TableReader(Diagnostics& diag, const toml::table& table, std::string path);

  const std::string& path() const { return path_; }
  Diagnostics& diag() { return diag_; }
  std::string key_path(std::string_view key) const;
  Pos table_pos() const { return pos_of(table_.source()); }
  bool has(std::string_view key) const { return table_.contains(key); }

  bool string(std::string_view key, std::string& out, Need need = Need::kOptional);
  bool boolean(std::string_view key, bool& out, Need need = Need::kOptional);
  // Integer in [lo, hi]; the rule names the range.
  bool integer(std::string_view key, std::int64_t& out, std::int64_t lo, std::int64_t hi,
               Need need = Need::kOptional);
  template <typename T>
  bool integer_as(std::string_view key, T& out, std::int64_t lo, std::int64_t hi,
                  Need need = Need::kOptional) {
    std::int64_t v = static_cast<std::int64_t>(out);
    if (!integer(key, v, lo, hi, need)) {
      return false;
    }
    out = static_cast<T>(v);
    return true;
  }
  // Integer that must be one of `allowed` (baud rates, stop bits).
  bool integer_in(std::string_view key, int& out, std::initializer_list<int> allowed,
                  Need need = Need::kOptional);
  // Money is a TOML string of yuan ("12.34"), parsed with Money::parse, within [lo, hi].
  bool money(std::string_view key, Money& out, Money lo, Money hi, Need need = Need::kOptional);
  // An absolute filesystem path.
  bool path(std::string_view key, std::filesystem::path& out, Need need = Need::kOptional);
  // A string naming one of `names`; the rule lists the allowed values.
  template <typename E>
  bool enumeration(std::string_view key, E& out, EnumNames<E> names, Need need = Need::kOptional) {
    std::string text;
    if (!string(key, text, need)) {
      return false;
    }
    for (const auto& [name, value] : names) {
      if (name == text) {
        out = value;
        return true;
      }
    }
    std::string allowed;
    for (const auto& [name, value] : names) {
      (void)value;
      allowed += allowed.empty() ? "" : ", ";
      allowed += name;
    }
    fail(key, "must be one of: " + allowed + " (got \"" + text + "\")");
    return false;
  }
  // A string that must be one of `allowed` (kept as text in the config struct).
  bool string_in(std::string_view key, std::string& out,
                 std::initializer_list<std::string_view> allowed, Need need = Need::kOptional);
  // An array of strings.
  bool string_array(std::string_view key, std::vector<std::string>& out,
                    Need need = Need::kOptional);

  // Sub-table (TOML [a.b] or inline {..}); nullptr when absent or of the wrong type.
  const toml::table* table(std::string_view key, Need need = Need::kOptional);
  // Array of tables ([[a.b]]); calls fn(TableReader&, index) for each element that is a
  // table, reports the others. Returns the number of elements.
  template <typename Fn>
  std::size_t tables(std::string_view key, Fn&& fn) {
    const toml::array* arr = array_node(key);
    if (arr == nullptr) {
      return 0;
    }
    std::size_t index = 0;
    for (const toml::node& element : *arr) {
      std::string element_path = key_path(key) + "[" + std::to_string(index) + "]";
      if (const toml::table* t = element.as_table()) {
        TableReader reader(diag_, *t, element_path);
        fn(reader, index);
        reader.finish();
      } else {
        diag_.add(pos_of(element.source()), element_path,
                  std::string("expected table, got ") + type_name(element.type()));
      }
      ++index;
    }
    return index;
  }

  // A key that is not valid in this context ("only with transport = \"rtu\""): when
  // present, reports `why` at its line. Marks the key known either way.
  void reject_if_present(std::string_view key, std::string_view why);
  // Marks a key known without judging it (its context is already reported broken).
  void ignore(std::string_view key) { known_.emplace(key); }
  // Adds an error about a key of this table (at the key's line when present, else at
  // the table's line).
  void fail(std::string_view key, std::string rule);
  // Reports every key of the table that no getter asked for.
  void finish();

  static const char* type_name(toml::node_type type);

 private:
  // Looks up the node, marks it known, remembers its position; reports a missing
  // required key at the table's line.
  const toml::node* lookup(std::string_view key, Need need);
  void wrong_type(std::string_view key, const toml::node& node, std::string_view expected);
  const toml::array* array_node(std::string_view key);

  Diagnostics& diag_;
  const toml::table& table_;
  std::string path_;
  std::set<std::string, std::less<>> known_;
  bool finished_ = false;
};

// Reading of a whole document into Config; defined in load_sections.cc.
void read_document(const toml::table& root, Diagnostics& diag, Config& config);
// Cross-reference and consistency rules over a parsed Config; defined in cross_checks.cc.
void check_references(const Config& config, Diagnostics& diag);

}  // namespace lanegate::config::detail
