#pragma once
// Keys and certificates the fuzz targets make for themselves in LLVMFuzzerInitialize
// (nothing secret is committed, and no test PKI script has to run first): an RSA-2048
// key as PEM, a self-signed TLS certificate for 127.0.0.1, files in a scratch directory.
// Header-only; each fuzz target is its own executable. Any failure aborts: a fuzzer
// that cannot set itself up must not report "ok".
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace fuzz_pki {

[[noreturn]] inline void die(const char* what) {
  fprintf(stderr, "fuzz setup failed: %s\n", what);
  abort();
}

struct KeyPem {
  std::string private_pem;
  std::string public_pem;
  std::string certificate_pem;  // self-signed, CN=127.0.0.1 (only when asked for)
};

inline std::string bio_string(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string s(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return s;
}

inline KeyPem generate_rsa(bool with_certificate = false) {
  EVP_PKEY* key = EVP_RSA_gen(2048);
  if (key == nullptr) {
    die("EVP_RSA_gen");
  }
  KeyPem out;
  BIO* bio = BIO_new(BIO_s_mem());
  if (PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    die("PEM_write_bio_PrivateKey");
  }
  out.private_pem = bio_string(bio);
  bio = BIO_new(BIO_s_mem());
  if (PEM_write_bio_PUBKEY(bio, key) != 1) {
    die("PEM_write_bio_PUBKEY");
  }
  out.public_pem = bio_string(bio);
  if (with_certificate) {
    X509* cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600L * 24 * 365 * 10);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    if (X509_sign(cert, key, EVP_sha256()) == 0) {
      die("X509_sign");
    }
    bio = BIO_new(BIO_s_mem());
    if (PEM_write_bio_X509(bio, cert) != 1) {
      die("PEM_write_bio_X509");
    }
    out.certificate_pem = bio_string(bio);
    X509_free(cert);
  }
  EVP_PKEY_free(key);
  return out;
}

// A scratch directory in /dev/shm when there is one (SQLite's fsyncs cost nothing there).
inline std::filesystem::path make_scratch_dir(const char* name) {
  std::string base = std::filesystem::exists("/dev/shm")
                         ? std::string("/dev/shm")
                         : std::filesystem::temp_directory_path().string();
  std::string tmpl = base + "/lanegate-" + name + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    die("mkdtemp");
  }
  return tmpl;
}

// Writes a file readable by its owner only (the product refuses secrets others can read).
inline void write_secret(const std::filesystem::path& path, const std::string& data) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
    if (!out) {
      die("write_secret");
    }
  }
  chmod(path.c_str(), 0600);
}

}  // namespace fuzz_pki
