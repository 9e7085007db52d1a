#pragma once
// Secret files named by the configuration (issue #9): private keys, the APIv3 key, the
// invoicing app secret and access token, the API's TLS key. One rule for all of them: a
// secret file must be a regular file readable by its owner only (no group or other
// permission bits). lanegated refuses to start when one breaks the rule and
// `lanegate check-config` reports it; both name the file and its mode.
//
// Thread-safety: any thread (reads file metadata only).

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/error.h"

namespace lanegate::config {

struct SecretFile {
  std::string key;  // the config key naming it, e.g. "provider.apiv3_key_file"
  std::filesystem::path path;
};

// Every secret file the configuration names (sections switched off are skipped:
// invoicing when disabled, the provider when mchid is empty).
std::vector<SecretFile> secret_files(const Config& config);

// The rule. Errors (field = `key`): kPermission "FILE has mode 0644: readable by group or
// others; run chmod 600 FILE", kPermission for a non-regular file, kNotFound / kIo when it
// cannot be inspected.
[[nodiscard]] Status check_secret_file(const std::filesystem::path& path,
                                       std::string_view key = {});

// check_secret_file for every secret_files() entry; `missing_ok` skips files that do not
// exist (check-config on a machine where the keys are not installed yet).
std::vector<Error> check_secret_files(const Config& config, bool missing_ok);

}  // namespace lanegate::config
