#pragma once
// Settlement packages and reconciliation reports as files under the state directory, for
// the CLI and for the HTTP API's auditor role (list and download, nothing else).
//
//   <state_dir>/packages/<name>/{records.jsonl,records.csv,seal.json,seal.sig}
//   <state_dir>/reports/<file>
//
// resolve_artifact() is the only way the API should turn a request into a path: it
// accepts only names made of [0-9A-Za-z._-] that do not start with '.', and only the
// four package files, so no request can reach outside these folders (no "..", no "/").
//
// THREADING: plain file-system reads; any thread.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace lanegate::audit {

std::filesystem::path packages_dir(const std::filesystem::path& state_dir);
std::filesystem::path reports_dir(const std::filesystem::path& state_dir);

struct AuditArtifact {
  std::string kind;                // "package" | "report"
  std::string name;                // package directory name or report file name
  std::uintmax_t bytes = 0;        // total size of the files
  std::vector<std::string> files;  // a package's files; the report itself for a report
};

// Complete packages (not "*.partial") and reports, sorted by kind then name. Missing
// folders are empty lists, not errors.
[[nodiscard]] Result<std::vector<AuditArtifact>> list_artifacts(
    const std::filesystem::path& state_dir);

// kind "package": `name` is a package directory, `file` one of records.jsonl, records.csv,
// seal.json, seal.sig. kind "report": `name` is the report file, `file` must be empty.
// Errors: kInvalidArgument (a name outside the rules, naming the field), kNotFound.
[[nodiscard]] Result<std::filesystem::path> resolve_artifact(const std::filesystem::path& state_dir,
                                                             std::string_view kind,
                                                             std::string_view name,
                                                             std::string_view file);

}  // namespace lanegate::audit
