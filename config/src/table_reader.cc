#include "table_reader.h"

#include <algorithm>

namespace lanegate::config::detail {
namespace {

// Edit distance, for "did you mean" hints on misspelt keys (keys are short).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1);
  std::vector<std::size_t> cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    prev[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t substitute = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, substitute});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Quotes a value for an error message, cutting long or binary text short.
std::string shown(std::string_view text) {
  constexpr std::size_t kMax = 64;
  std::string out = "\"";
  out += text.substr(0, kMax);
  if (text.size() > kMax) {
    out += "...";
  }
  out += "\"";
  return out;
}

}  // namespace

Pos pos_of(const toml::source_region& region) {
  return Pos{static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
}

void Diagnostics::add(Pos pos, std::string key, std::string rule) {
  errors_.push_back(ConfigError{file_, pos.line, pos.column, std::move(key), std::move(rule)});
}

Pos Diagnostics::where(const std::string& key) const {
  auto it = positions_.find(key);
  return it == positions_.end() ? Pos{} : it->second;
}

std::vector<ConfigError> Diagnostics::take() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  return std::move(errors_);
}

TableReader::TableReader(Diagnostics& diag, const toml::table& table, std::string path)
    : diag_(diag), table_(table), path_(std::move(path)) {
  diag_.remember(path_, table_pos());
}

std::string TableReader::key_path(std::string_view key) const {
  if (path_.empty()) {
    return std::string(key);
  }
  return path_ + "." + std::string(key);
}

const char* TableReader::type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "floating-point";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::none:
      return "nothing";
  }
  return "unknown";
}

const toml::node* TableReader::lookup(std::string_view key, Need need) {
  known_.emplace(key);
  const toml::node* node = table_.get(key);
  if (node == nullptr) {
    if (need == Need::kRequired) {
      diag_.add(table_pos(), key_path(key), "required key is missing");
    }
    return nullptr;
  }
  diag_.remember(key_path(key), pos_of(node->source()));
  return node;
}

void TableReader::wrong_type(std::string_view key, const toml::node& node,
                             std::string_view expected) {
  diag_.add(pos_of(node.source()), key_path(key),
            "expected " + std::string(expected) + ", got " + type_name(node.type()));
}

void TableReader::fail(std::string_view key, std::string rule) {
  const toml::node* node = table_.get(key);
  Pos pos = node != nullptr ? pos_of(node->source()) : table_pos();
  diag_.add(pos, key_path(key), std::move(rule));
}

bool TableReader::string(std::string_view key, std::string& out, Need need) {
  const toml::node* node = lookup(key, need);
  if (node == nullptr) {
    return false;
  }
  const auto* value = node->as_string();
  if (value == nullptr) {
    wrong_type(key, *node, "string");
    return false;
  }
  out = value->get();
  return true;
}

bool TableReader::boolean(std::string_view key, bool& out, Need need) {
  const toml::node* node = lookup(key, need);
  if (node == nullptr) {
    return false;
  }
  const auto* value = node->as_boolean();
  if (value == nullptr) {
    wrong_type(key, *node, "boolean (true or false)");
    return false;
  }
  out = value->get();
  return true;
}

bool TableReader::integer(std::string_view key, std::int64_t& out, std::int64_t lo, std::int64_t hi,
                          Need need) {
  const toml::node* node = lookup(key, need);
  if (node == nullptr) {
    return false;
  }
  const auto* value = node->as_integer();
  if (value == nullptr) {
    wrong_type(key, *node, "integer");
    return false;
  }
  std::int64_t v = value->get();
  if (v < lo || v > hi) {
    diag_.add(pos_of(node->source()), key_path(key),
              "must be in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " +
                  std::to_string(v));
    return false;
  }
  out = v;
  return true;
}

bool TableReader::integer_in(std::string_view key, int& out, std::initializer_list<int> allowed,
                             Need need) {
  std::int64_t v = out;
  if (!integer(key, v, INT32_MIN, INT32_MAX, need)) {
    return false;
  }
  if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
    std::string list;
    for (int a : allowed) {
      list += list.empty() ? "" : ", ";
      list += std::to_string(a);
    }
    fail(key, "must be one of: " + list + " (got " + std::to_string(v) + ")");
    return false;
  }
  out = static_cast<int>(v);
  return true;
}

bool TableReader::money(std::string_view key, Money& out, Money lo, Money hi, Need need) {
  const toml::node* node = lookup(key, need);
  if (node == nullptr) {
    return false;
  }
  static constexpr std::string_view kMoneyRule =
      "money must be a string of yuan with at most 2 decimals, e.g. \"12.50\"";
  const auto* text = node->as_string();
  if (text == nullptr) {
    // Floats are refused on purpose: 0.1 + 0.2 is not 0.3, and integers are ambiguous
    // (yuan or fen?). A string is parsed digit by digit into fen.
    diag_.add(pos_of(node->source()), key_path(key),
              std::string(kMoneyRule) + " (got " + type_name(node->type()) + ")");
    return false;
  }
  auto parsed = Money::parse(text->get());
  if (!parsed) {
    diag_.add(pos_of(node->source()), key_path(key),
              std::string(kMoneyRule) + "; " + parsed.error().message);
    return false;
  }
  if (*parsed < lo || *parsed > hi) {
    diag_.add(pos_of(node->source()), key_path(key),
              "must be in " + lo.to_string() + ".." + hi.to_string() + " yuan, got " +
                  parsed->to_string());
    return false;
  }
  out = *parsed;
  return true;
}

bool TableReader::path(std::string_view key, std::filesystem::path& out, Need need) {
  std::string text;
  if (!string(key, text, need)) {
    return false;
  }
  if (text.empty() || text.front() != '/' || text.find('\0') != std::string::npos) {
    fail(key, "must be an absolute path starting with '/' (got " + shown(text) + ")");
    return false;
  }
  out = text;
  return true;
}

bool TableReader::string_in(std::string_view key, std::string& out,
                            std::initializer_list<std::string_view> allowed, Need need) {
  std::string text;
  if (!string(key, text, need)) {
    return false;
  }
  if (std::find(allowed.begin(), allowed.end(), text) == allowed.end()) {
    std::string list;
    for (std::string_view a : allowed) {
      list += list.empty() ? "" : ", ";
      list += a.empty() ? "\"\"" : std::string(a);
    }
    fail(key, "must be one of: " + list + " (got " + shown(text) + ")");
    return false;
  }
  out = std::move(text);
  return true;
}

bool TableReader::string_array(std::string_view key, std::vector<std::string>& out, Need need) {
  const toml::node* node = lookup(key, need);
  if (node == nullptr) {
    return false;
  }
  const auto* arr = node->as_array();
  if (arr == nullptr) {
    wrong_type(key, *node, "array of strings");
    return false;
  }
  std::vector<std::string> values;
  bool ok = true;
  std::size_t index = 0;
  for (const toml::node& element : *arr) {
    std::string element_path = key_path(key) + "[" + std::to_string(index) + "]";
    if (const auto* s = element.as_string()) {
      values.push_back(s->get());
      diag_.remember(element_path, pos_of(element.source()));
    } else {
      diag_.add(pos_of(element.source()), element_path,
                std::string("expected string, got ") + type_name(element.type()));
      ok = false;
    }
    ++index;
  }
  if (ok) {
    out = std::move(values);
  }
  return ok;
}

const toml::table* TableReader::table(std::string_view key, Need need) {
  const toml::node* node = lookup(key, need);
  if (node == nullptr) {
    return nullptr;
  }
  const auto* t = node->as_table();
  if (t == nullptr) {
    wrong_type(key, *node, "table");
  }
  return t;
}

const toml::array* TableReader::array_node(std::string_view key) {
  const toml::node* node = lookup(key, Need::kOptional);
  if (node == nullptr) {
    return nullptr;
  }
  const auto* arr = node->as_array();
  if (arr == nullptr) {
    wrong_type(key, *node, "array of tables ([[" + key_path(key) + "]])");
  }
  return arr;
}

void TableReader::reject_if_present(std::string_view key, std::string_view why) {
  known_.emplace(key);
  if (const toml::node* node = table_.get(key)) {
    diag_.add(pos_of(node->source()), key_path(key), std::string(why));
  }
}

void TableReader::finish() {
  if (finished_) {
    return;
  }
  finished_ = true;
  for (const auto& [key, node] : table_) {
    (void)node;
    std::string_view name = key.str();
    if (known_.contains(name)) {
      continue;
    }
    std::string rule = "unknown key";
    std::string_view best;
    std::size_t best_distance = 3;  // suggest only close matches
    for (const std::string& candidate : known_) {
      std::size_t d = edit_distance(name, candidate);
      if (d < best_distance) {
        best_distance = d;
        best = candidate;
      }
    }
    if (!best.empty()) {
      rule += " (did you mean \"" + std::string(best) + "\"?)";
    }
    diag_.add(pos_of(key.source()), key_path(name), std::move(rule));
  }
}

}  // namespace lanegate::config::detail
