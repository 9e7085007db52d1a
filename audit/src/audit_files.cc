#include "audit/audit_files.h"

#include <algorithm>
#include <array>
#include <system_error>
#include <tuple>

namespace lanegate::audit {
namespace {

namespace fs = std::filesystem;

constexpr std::array<std::string_view, 4> kPackageFiles{"records.jsonl", "records.csv", "seal.json",
                                                        "seal.sig"};

bool safe_name(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '.') {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
           c == '_' || c == '-';
  });
}

}  // namespace

fs::path packages_dir(const fs::path& state_dir) { return state_dir / "packages"; }
fs::path reports_dir(const fs::path& state_dir) { return state_dir / "reports"; }

Result<std::vector<AuditArtifact>> list_artifacts(const fs::path& state_dir) {
  std::vector<AuditArtifact> out;
  std::error_code ec;
  if (fs::is_directory(packages_dir(state_dir), ec)) {
    for (const auto& entry : fs::directory_iterator(packages_dir(state_dir), ec)) {
      const std::string name = entry.path().filename().string();
      if (!entry.is_directory() || !safe_name(name) || name.ends_with(".partial")) {
        continue;
      }
      AuditArtifact a{"package", name, 0, {}};
      for (std::string_view f : kPackageFiles) {
        std::error_code fec;
        const auto size = fs::file_size(entry.path() / f, fec);
        if (!fec) {
          a.bytes += size;
          a.files.emplace_back(f);
        }
      }
      out.push_back(std::move(a));
    }
    if (ec) {
      return fail(Errc::kIo,
                  "cannot list " + packages_dir(state_dir).string() + ": " + ec.message());
    }
  }
  if (fs::is_directory(reports_dir(state_dir), ec)) {
    for (const auto& entry : fs::directory_iterator(reports_dir(state_dir), ec)) {
      const std::string name = entry.path().filename().string();
      if (!entry.is_regular_file() || !safe_name(name) || name.ends_with(".tmp")) {
        continue;
      }
      std::error_code fec;
      const auto size = fs::file_size(entry.path(), fec);
      out.push_back(AuditArtifact{"report", name, fec ? 0 : size, {name}});
    }
    if (ec) {
      return fail(Errc::kIo,
                  "cannot list " + reports_dir(state_dir).string() + ": " + ec.message());
    }
  }
  std::sort(out.begin(), out.end(), [](const AuditArtifact& a, const AuditArtifact& b) {
    return std::tie(a.kind, a.name) < std::tie(b.kind, b.name);
  });
  return out;
}

Result<fs::path> resolve_artifact(const fs::path& state_dir, std::string_view kind,
                                  std::string_view name, std::string_view file) {
  if (!safe_name(name)) {
    return fail(Errc::kInvalidArgument,
                "must be 1-128 characters of [0-9A-Za-z._-] and not start with '.'", "name");
  }
  fs::path path;
  if (kind == "package") {
    if (std::find(kPackageFiles.begin(), kPackageFiles.end(), file) == kPackageFiles.end()) {
      return fail(Errc::kInvalidArgument,
                  "must be one of records.jsonl, records.csv, seal.json, seal.sig", "file");
    }
    if (name.ends_with(".partial")) {
      return fail(Errc::kNotFound, "package " + std::string(name) + " is incomplete");
    }
    path = packages_dir(state_dir) / std::string(name) / std::string(file);
  } else if (kind == "report") {
    if (!file.empty()) {
      return fail(Errc::kInvalidArgument, "must be empty for a report", "file");
    }
    path = reports_dir(state_dir) / std::string(name);
  } else {
    return fail(Errc::kInvalidArgument, "must be \"package\" or \"report\"", "kind");
  }
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return fail(Errc::kNotFound, "no such " + std::string(kind) + " file: " + std::string(name) +
                                     (file.empty() ? "" : "/") + std::string(file));
  }
  return path;
}

}  // namespace lanegate::audit
