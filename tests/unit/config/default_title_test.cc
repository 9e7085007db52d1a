// [[invoicing.default_title]]: accounts (a plate, an ETC contract, a rider account) whose
// invoices are issued at settlement without asking. Each rule is named on a bad entry.
#include <gtest/gtest.h>

#include "test_configs.h"

namespace lanegate::config {
namespace {

std::string with_titles(std::string_view titles) {
  return std::string(testing::kMinimal) +
         "\n[invoicing]\nenabled = true\nbase_url = \"https://inv.example.cn\"\napp_key = \"k\"\n"
         "app_secret_file = \"/keys/inv.secret\"\naccess_token_file = \"/keys/inv.token\"\n"
         "seller_name = \"S\"\nseller_tax_id = \"91350100M000100Y43\"\nclerk = \"王敏\"\n" +
         std::string(titles);
}

TEST(DefaultTitleTest, ACompanyTitleLoads) {
  auto c = load_string(with_titles("[[invoicing.default_title]]\naccount = \"粤B12345\"\n"
                                   "title = \"示例科技有限公司\"\ntax_id = \"91350100M000100Y43\"\n"
                                   "email = \"fin@example.cn\"\n"),
                       "test.toml");
  ASSERT_TRUE(c) << testing::dump(c.error());
  ASSERT_EQ(c->invoicing.default_titles.size(), 1u);
  const DefaultTitle& d = c->invoicing.default_titles[0];
  EXPECT_EQ(d.account, "粤B12345");
  EXPECT_EQ(d.kind, "company");
  EXPECT_EQ(d.tax_id, "91350100M000100Y43");
}

TEST(DefaultTitleTest, EachBrokenRuleIsNamed) {
  // A wrong check character, no delivery address, a duplicate account.
  auto errs = testing::errors_of(with_titles(
      "[[invoicing.default_title]]\naccount = \"粤B12345\"\ntitle = \"A\"\n"
      "tax_id = \"91350100M000100Y40\"\nemail = \"a@example.cn\"\n"
      "[[invoicing.default_title]]\naccount = \"粤B12345\"\nkind = \"person\"\n"));
  const ConfigError* tax = testing::find_error(errs, "invoicing.default_title[0].tax_id");
  ASSERT_NE(tax, nullptr) << testing::dump(errs);
  EXPECT_NE(tax->rule.find("check"), std::string::npos) << tax->rule;
  const ConfigError* dup = testing::find_error(errs, "invoicing.default_title[1].account");
  ASSERT_NE(dup, nullptr) << testing::dump(errs);
  EXPECT_NE(dup->rule.find("duplicate"), std::string::npos) << dup->rule;
  const ConfigError* mail = testing::find_error(errs, "invoicing.default_title[1].email");
  ASSERT_NE(mail, nullptr) << testing::dump(errs);
  EXPECT_NE(mail->rule.find("email or a phone"), std::string::npos) << mail->rule;
}

TEST(DefaultTitleTest, ACompanyNeedsItsTitleAndTaxId) {
  auto errs = testing::errors_of(with_titles(
      "[[invoicing.default_title]]\naccount = \"ETC2026000000000001\"\nphone = \"13800000000\"\n"));
  EXPECT_NE(testing::find_error(errs, "invoicing.default_title[0].title"), nullptr) << testing::dump(errs);
  EXPECT_NE(testing::find_error(errs, "invoicing.default_title[0].tax_id"), nullptr) << testing::dump(errs);
}

}  // namespace
}  // namespace lanegate::config
