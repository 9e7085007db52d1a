// Keys added for the running gateway's invoices and for operators: [gateway]
// max_database_mb, [invoicing] ca_file / verify_tls, and the secret-file rule that
// lanegated and `lanegate check-config` apply (issue #9).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/check.h"
#include "config/secrets.h"
#include "test_configs.h"

namespace lanegate::config {
namespace {

namespace fs = std::filesystem;

std::string with_gateway_key(std::string_view line) {
  return testing::edit(testing::kMinimal, "site_name = \"Test lot\"\n",
                       "site_name = \"Test lot\"\n" + std::string(line) + "\n");
}

std::string with_invoicing(std::string_view extra,
                           std::string_view base_url = "https://inv.example.cn") {
  return std::string(testing::kMinimal) + "\n[invoicing]\nenabled = true\nbase_url = \"" +
         std::string(base_url) +
         "\"\napp_key = \"k\"\napp_secret_file = \"/keys/inv.secret\"\naccess_token_file = "
         "\"/keys/inv.token\"\n"
         "seller_name = \"S\"\nseller_tax_id = \"91350100M000100Y43\"\nclerk = \"王敏\"\n" +
         std::string(extra);
}

TEST(WireKeysTest, MaxDatabaseMbDefaultsToUnlimitedAndIsRangeChecked) {
  auto plain = load_string(testing::kMinimal, "test.toml");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->gateway.max_database_mb, 0);
  auto set = load_string(with_gateway_key("max_database_mb = 256"), "test.toml");
  ASSERT_TRUE(set) << testing::dump(set.error());
  EXPECT_EQ(set->gateway.max_database_mb, 256);
  auto errs = testing::errors_of(with_gateway_key("max_database_mb = -1"));
  const ConfigError* e = testing::find_error(errs, "gateway.max_database_mb");
  ASSERT_NE(e, nullptr) << testing::dump(errs);
  EXPECT_NE(e->rule.find("1048576"), std::string::npos) << e->rule;
}

TEST(WireKeysTest, InvoicingTrustsAPrivateCaAndVerifiesByDefault) {
  auto c = load_string(with_invoicing("ca_file = \"/etc/lanegate/ca.pem\"\n"), "test.toml");
  ASSERT_TRUE(c) << testing::dump(c.error());
  ASSERT_TRUE(c->invoicing.ca_file);
  EXPECT_EQ(*c->invoicing.ca_file, "/etc/lanegate/ca.pem");
  EXPECT_TRUE(c->invoicing.verify_tls);
  // Switching verification off is for a loopback platform only.
  auto errs = testing::errors_of(with_invoicing("verify_tls = false\n"));
  const ConfigError* e = testing::find_error(errs, "invoicing.verify_tls");
  ASSERT_NE(e, nullptr) << testing::dump(errs);
  EXPECT_NE(e->rule.find("loopback"), std::string::npos);
  EXPECT_TRUE(
      load_string(with_invoicing("verify_tls = false\n", "https://127.0.0.1:18444"), "test.toml"));
  EXPECT_FALSE(testing::errors_of(with_invoicing("ca_file = \"relative.pem\"\n")).empty());
}

class SecretFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "lanegate-secrets-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path secret(const std::string& name, mode_t mode) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << "s3cret";
    ::chmod(p.c_str(), mode);
    return p;
  }
  fs::path dir_;
};

TEST_F(SecretFilesTest, OwnerOnlyPassesGroupOrOtherReadableIsRefusedWithItsMode) {
  EXPECT_TRUE(check_secret_file(secret("a", 0600), "k"));
  EXPECT_TRUE(check_secret_file(secret("b", 0400), "k"));
  for (mode_t m : {0640, 0604, 0644, 0660}) {
    auto r = check_secret_file(secret("m" + std::to_string(m), m), "provider.apiv3_key_file");
    ASSERT_FALSE(r) << m;
    EXPECT_EQ(r.error().code, Errc::kPermission);
    EXPECT_EQ(r.error().field, "provider.apiv3_key_file");
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(m));
    EXPECT_NE(r.error().message.find(mode), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find((dir_ / ("m" + std::to_string(m))).string()),
              std::string::npos);
  }
  EXPECT_EQ(check_secret_file(dir_ / "missing", "k").error().code, Errc::kNotFound);
  EXPECT_EQ(check_secret_file(dir_, "k").error().code, Errc::kPermission);  // not a regular file
}

TEST_F(SecretFilesTest, ListsEverySecretTheConfigNames) {
  Config c;
  c.provider.mchid = "1900000001";
  c.provider.merchant_private_key_file = "/k/merchant.key";
  c.provider.apiv3_key_file = "/k/apiv3.key";
  c.invoicing.enabled = true;
  c.invoicing.app_secret_file = "/k/inv.secret";
  c.invoicing.access_token_file = "/k/inv.token";
  c.api.tls = TlsServer{"/k/server.pem", "/k/server.key"};
  std::vector<std::string> keys;
  for (const auto& s : secret_files(c)) keys.push_back(s.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"provider.merchant_private_key_file",
                                            "provider.apiv3_key_file", "invoicing.app_secret_file",
                                            "invoicing.access_token_file", "api.tls.key_file"}));
  c.invoicing.enabled = false;
  c.provider.mchid.clear();
  EXPECT_EQ(secret_files(c).size(), 1u);
}

TEST_F(SecretFilesTest, CheckConfigReportsAGroupReadableSecret) {
  const fs::path key = secret("apiv3.key", 0644);
  std::string text = testing::edit(testing::kMinimal, "/keys/apiv3.key", key.string());
  const fs::path file = dir_ / "lanegate.toml";
  std::ofstream(file) << text;
  std::ostringstream out, err;
  EXPECT_EQ(check_config_command(file, out, err), 1);
  EXPECT_NE(err.str().find("provider.apiv3_key_file"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find(key.string() + " has mode 0644"), std::string::npos) << err.str();
  ::chmod(key.c_str(), 0600);
  std::ostringstream out2, err2;
  EXPECT_EQ(check_config_command(file, out2, err2), 0)
      << err2.str();  // others not installed: not checked
}

}  // namespace
}  // namespace lanegate::config
