#pragma once
// The invoicing platform's request signature as specs/e-invoice.md ("Invoicing platform
// API") writes it, computed here with OpenSSL's HMAC directly, so that tests of the client
// and of the sandbox check both against the spec rather than against each other.

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <string_view>

#include "support/wire_text.h"

namespace lanegate::wire_test {

// Base64(HMAC-SHA1(appSecret, "a=services&l=v1&p=open&k={appKey}&i={senid}&n={nonce}&t={timestamp}&f={content}")).
inline std::string nuonuo_signature(std::string_view secret, std::string_view app_key,
                                    std::string_view senid, std::string_view nonce,
                                    std::string_view timestamp, std::string_view content) {
  const std::string text = "a=services&l=v1&p=open&k=" + std::string(app_key) + "&i=" +
                           std::string(senid) + "&n=" + std::string(nonce) + "&t=" +
                           std::string(timestamp) + "&f=" + std::string(content);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len);
  return base64(std::string_view(reinterpret_cast<const char*>(mac), len));
}

}  // namespace lanegate::wire_test
