// Entry points of the loader: bytes -> toml++ table -> Config, with every error collected.
// toml++ reports syntax errors by throwing toml::parse_error; it is caught here, and so is
// anything else, so no exception leaves the config module.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "config/config.h"
#include "core/metrics.h"
#include "table_reader.h"

namespace lanegate::config {
namespace {

// A config file is a few kilobytes; anything this large is a mistake (wrong file).
constexpr std::size_t kMaxConfigBytes = 8 * 1024 * 1024;

void count_load(const LoadResult& result) {
  auto& registry = metrics::Registry::global();
  if (result) {
    registry.counter("lanegate_config_loads_total", "Config loads by result", {{"result", "ok"}})
        .inc();
    return;
  }
  registry.counter("lanegate_config_loads_total", "Config loads by result", {{"result", "error"}})
      .inc();
  registry.counter("lanegate_config_errors_total", "Errors found in loaded config files")
      .inc(static_cast<std::int64_t>(result.error().size()));
}

LoadResult one_error(const std::filesystem::path& file, std::string rule) {
  return std::unexpected(
      std::vector<ConfigError>{ConfigError{file.string(), 0, 0, "", std::move(rule)}});
}

}  // namespace

LoadResult load_string(std::string_view toml, std::string_view source_name) {
  detail::Diagnostics diag{std::string(source_name)};
  Config config;
  config.source = std::filesystem::path(source_name);
  try {
    toml::table root = toml::parse(toml, source_name);
    detail::read_document(root, diag, config);
    detail::check_references(config, diag);
  } catch (const toml::parse_error& e) {
    diag.add(detail::pos_of(e.source()), "", "TOML syntax error: " + std::string(e.description()));
  } catch (const std::exception& e) {
    diag.add({}, "", std::string("cannot load: ") + e.what());
  } catch (...) {
    diag.add({}, "", "cannot load: unexpected failure");
  }
  LoadResult result = diag.empty() ? LoadResult(std::move(config)) : std::unexpected(diag.take());
  count_load(result);
  return result;
}

LoadResult load_file(const std::filesystem::path& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (!file) {
    LoadResult r = one_error(path, std::string("cannot open: ") + std::strerror(errno));
    count_load(r);
    return r;
  }
  std::string text;
  char buffer[64 * 1024];
  while (true) {
    std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get());
    text.append(buffer, n);
    if (text.size() > kMaxConfigBytes) {
      LoadResult r = one_error(path, "file is larger than " + std::to_string(kMaxConfigBytes) +
                                         " bytes; is this the right file?");
      count_load(r);
      return r;
    }
    if (n < sizeof buffer) {
      if (std::ferror(file.get()) != 0) {
        LoadResult r = one_error(path, std::string("cannot read: ") + std::strerror(errno));
        count_load(r);
        return r;
      }
      break;
    }
  }
  return load_string(text, path.string());
}

}  // namespace lanegate::config
