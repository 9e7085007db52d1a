#include "core/metrics.h"

namespace lanegate::metrics {
namespace {

void append_labels(std::string& out, const Labels& labels) {
  if (labels.empty()) return;
  out.push_back('{');
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out.push_back(',');
    first = false;
    out.append(k).append("=\"");
    for (char c : v) {
      if (c == '\\' || c == '"') {
        out.push_back('\\');
        out.push_back(c);
      } else if (c == '\n') {
        out.append("\\n");
      } else {
        out.push_back(c);
      }
    }
    out.push_back('"');
  }
  out.push_back('}');
}

}  // namespace

Registry& Registry::global() {
  static Registry* r = new Registry();  // never destroyed: threads may still count at exit
  return *r;
}

Counter& Registry::counter(std::string_view name, std::string_view help, Labels labels) {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{std::string(help), true, {}, {}}).first;
  }
  auto& slot = it->second.counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, Labels labels) {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{std::string(help), false, {}, {}}).first;
  }
  auto& slot = it->second.gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

std::string Registry::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, fam] : families_) {
    out.append("# HELP ").append(name).append(" ").append(fam.help).append("\n");
    out.append("# TYPE ").append(name).append(fam.is_counter ? " counter\n" : " gauge\n");
    for (const auto& [labels, c] : fam.counters) {
      out.append(name);
      append_labels(out, labels);
      out.append(" ").append(std::to_string(c->value())).append("\n");
    }
    for (const auto& [labels, g] : fam.gauges) {
      out.append(name);
      append_labels(out, labels);
      out.append(" ").append(std::to_string(g->value())).append("\n");
    }
  }
  return out;
}

std::int64_t Registry::value(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return -1;
  if (auto c = it->second.counters.find(labels); c != it->second.counters.end()) return c->second->value();
  if (auto g = it->second.gauges.find(labels); g != it->second.gauges.end()) return g->second->value();
  return -1;
}

}  // namespace lanegate::metrics
