#include "config/secrets.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace lanegate::config {
namespace {

std::string mode_octal(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777u);
  return buf;
}

}  // namespace

std::vector<SecretFile> secret_files(const Config& c) {
  std::vector<SecretFile> out;
  if (c.provider.configured()) {
    out.push_back({"provider.merchant_private_key_file", c.provider.merchant_private_key_file});
    out.push_back({"provider.apiv3_key_file", c.provider.apiv3_key_file});
  }
  if (c.invoicing.enabled) {
    out.push_back({"invoicing.app_secret_file", c.invoicing.app_secret_file});
    out.push_back({"invoicing.access_token_file", c.invoicing.access_token_file});
  }
  if (c.api.tls) out.push_back({"api.tls.key_file", c.api.tls->key_file});
  std::erase_if(out, [](const SecretFile& s) { return s.path.empty(); });
  return out;
}

Status check_secret_file(const std::filesystem::path& path, std::string_view key) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int e = errno;
    return fail(e == ENOENT ? Errc::kNotFound : Errc::kIo,
                "cannot inspect secret file " + path.string() + ": " + std::strerror(e),
                std::string(key));
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(Errc::kPermission, "secret file " + path.string() + " is not a regular file",
                std::string(key));
  }
  if ((st.st_mode & 077) != 0) {
    return fail(Errc::kPermission,
                "secret file " + path.string() + " has mode " + mode_octal(st.st_mode) +
                    ": readable by group or others; run chmod 600 " + path.string() +
                    " (and consider the secret leaked)",
                std::string(key));
  }
  return {};
}

std::vector<Error> check_secret_files(const Config& config, bool missing_ok) {
  std::vector<Error> errors;
  for (const SecretFile& s : secret_files(config)) {
    auto r = check_secret_file(s.path, s.key);
    if (!r && !(missing_ok && r.error().code == Errc::kNotFound)) errors.push_back(r.error());
  }
  return errors;
}

}  // namespace lanegate::config
