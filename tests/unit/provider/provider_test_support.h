#pragma once
// Helpers for the provider tests (unit and integration): per-test temp dirs, the demo
// PKI made by scripts/make-demo-pki (once per process), and the openssl CLI as an
// independent implementation of the primitives under test.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace provider_test {

class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "lanegate-provider-XXXXXX").string();
    char* made = mkdtemp(tmpl.data());
    if (made == nullptr) {
      ADD_FAILURE() << "mkdtemp failed";
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::filesystem::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

// Runs a shell command, returns stdout; `rc` gets the exit status.
inline std::string run(const std::string& command, int* rc = nullptr) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    if (rc != nullptr) {
      *rc = -1;
    }
    return out;
  }
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    out.append(buffer.data(), n);
  }
  int status = pclose(pipe);
  if (rc != nullptr) {
    *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  return out;
}

inline std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

// The demo PKI made by scripts/make-demo-pki. Key generation takes seconds and ctest
// runs every test in its own process, so the PKI is cached in the build directory
// (the script is idempotent; flock serialises parallel test processes). Tests never
// write into it.
inline const std::filesystem::path& demo_pki() {
  static const std::filesystem::path dir =
      std::filesystem::path(LANEGATE_BINARY_DIR) / "test-cache" / "provider-pki";
  static bool made = [] {
    std::filesystem::create_directories(dir.parent_path());
    int rc = 0;
    run("flock " + shell_quote(dir.string() + ".lock") + " " + std::string(LANEGATE_SOURCE_DIR) +
            "/scripts/make-demo-pki " + shell_quote(dir.string()) + " >/dev/null 2>&1",
        &rc);
    return rc == 0;
  }();
  EXPECT_TRUE(made) << "scripts/make-demo-pki failed";
  return dir;
}

// SHA256withRSA by the openssl CLI, Base64 without newlines.
inline std::string openssl_sign(const std::filesystem::path& key, const std::string& message,
                                const std::filesystem::path& scratch) {
  write_file(scratch / "to-sign.bin", message);
  return trim(run("openssl dgst -sha256 -sign " + shell_quote(key.string()) + " " +
                  shell_quote((scratch / "to-sign.bin").string()) + " | openssl base64 -A"));
}

// True when the openssl CLI verifies `signature_b64` over `message` with the PEM public key.
inline bool openssl_verify(const std::filesystem::path& pubkey, const std::string& message,
                           const std::string& signature_b64, const std::filesystem::path& scratch) {
  write_file(scratch / "msg.bin", message);
  write_file(scratch / "sig.b64", signature_b64);
  int rc = 0;
  run("openssl base64 -d -A -in " + shell_quote((scratch / "sig.b64").string()) + " -out " +
          shell_quote((scratch / "sig.bin").string()) + " && openssl dgst -sha256 -verify " +
          shell_quote(pubkey.string()) + " -signature " +
          shell_quote((scratch / "sig.bin").string()) + " " +
          shell_quote((scratch / "msg.bin").string()) + " >/dev/null 2>&1",
      &rc);
  return rc == 0;
}

}  // namespace provider_test
