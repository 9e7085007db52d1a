// `lanegate check-config FILE`: exit code and output an operator sees.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/check.h"
#include "test_configs.h"

namespace lanegate::config {
namespace {

class CheckCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ =
        (std::filesystem::temp_directory_path() / "lanegate-config-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::filesystem::path write(const std::string& name, std::string_view text) {
    std::filesystem::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  std::filesystem::path dir_;
};

TEST_F(CheckCommandTest, ValidFilePrintsASummaryAndReturnsZero) {
  auto file = write("ok.toml", testing::kMinimal);
  std::ostringstream out, err;
  EXPECT_EQ(check_config_command(file, out, err), 0);
  EXPECT_EQ(err.str(), "");
  EXPECT_NE(out.str().find(file.string() + ": OK"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("gateway: lot1 (Test lot)"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("lanes: 1 (1 parking-entry)"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("devices: 2 (1 camera, 1 barrier)"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("buses: 1 (1 tcp)"), std::string::npos) << out.str();
}

TEST_F(CheckCommandTest, EveryErrorOnItsOwnLineAndReturnsOne) {
  std::string text = testing::edit(testing::kMinimal, "id = \"lot1\"", "id = \"lot 1\"");
  text = testing::edit(text, "mode = \"parking-entry\"", "mode = \"parking\"");
  auto file = write("bad.toml", text);
  std::ostringstream out, err;
  EXPECT_EQ(check_config_command(file, out, err), 1);
  EXPECT_EQ(out.str(), "");
  std::string f = file.string();
  EXPECT_EQ(err.str(),
            f + ":2:6: gateway.id: must be 1..32 characters of A-Z a-z 0-9 _ - (got \"lot 1\")\n" +
                f +
                ":29:8: lane[0].mode: must be one of: parking-entry, parking-exit, toll-exit, "
                "taxi (got \"parking\")\n");
}

TEST_F(CheckCommandTest, MissingFileIsOneError) {
  std::ostringstream out, err;
  EXPECT_EQ(check_config_command(dir_ / "nope.toml", out, err), 1);
  EXPECT_EQ(err.str(),
            (dir_ / "nope.toml").string() + ": cannot open: No such file or directory\n");
}

TEST_F(CheckCommandTest, DemoExampleSummary) {
  std::ostringstream out, err;
  auto demo = std::filesystem::path(LANEGATE_SOURCE_DIR) / "config/examples/demo.toml";
  ASSERT_EQ(check_config_command(demo, out, err), 0) << err.str();
  EXPECT_NE(out.str().find("lanes: 6 (2 parking-entry, 2 parking-exit, 1 toll-exit, 1 taxi)"),
            std::string::npos)
      << out.str();
  // The demo's parking rule, then the built-in taxi rule; no toll line, no warning.
  EXPECT_NE(out.str().find("invoice line parking: 9% flag - (06 lease)\n"
                           "invoice line taxi: 3% flag 08\n"),
            std::string::npos)
      << out.str();
  EXPECT_EQ(out.str().find("toll:"), std::string::npos) << out.str();
  EXPECT_EQ(out.str().find("warning"), std::string::npos) << out.str();
}

// A small-scale seller with a cab and a lot: what will be sent, and what will likely fail.
std::string small_scale_site(std::string_view certificate, int taxi_rate) {
  return testing::with_taxi_lane(testing::with_exit_lane(
      std::string(testing::kMinimal) +
      "\n[invoicing]\nenabled = true\nbase_url = \"https://sdk.nuonuo.com\"\napp_key = \"k\"\n"
      "app_secret_file = \"/keys/inv.secret\"\naccess_token_file = \"/keys/inv.token\"\n"
      "seller_name = \"S\"\nseller_tax_id = \"91350100M000100Y43\"\nclerk = \"王敏\"\n"
      "taxpayer = \"small_scale\"\n"
      "[invoicing.parking]\nproperty_address = \"广东省深圳市南山区\"\n"
      "detail_address = \"科技南十二路18号\"\narea_unit = 2\n" +
      std::string(certificate) +
      "[[invoicing.tax]]\nservice = \"taxi\"\nitem_name = \"*运输服务*客运服务费\"\n"
      "code = \"3010101020203000000\"\nrate_percent = " +
      std::to_string(taxi_rate) +
      "\nsurvey_answer_type = \"3\"\n"
      "[[invoicing.tax]]\nservice = \"parking\"\nitem_name = \"*经营租赁*停车费\"\n"
      "code = \"3040502020200000000\"\nrate_percent = 5\n"));
}

TEST_F(CheckCommandTest, InvoiceLinesAndWarnings) {
  auto file = write("cab.toml", small_scale_site("", 1));
  std::ostringstream out, err;
  ASSERT_EQ(check_config_command(file, out, err), 0) << err.str();
  EXPECT_EQ(err.str(), "");
  EXPECT_NE(out.str().find("api tokens: 0, invoicing: enabled\n"
                           "invoice line taxi: 1% flag - survey 3\n"
                           "invoice line parking: 5% flag - (06 lease)\n"),
            std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("warning: invoice line taxi: the 1% reduction runs to 2027-12-31 per "
                           "specs/e-invoice.md"),
            std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("warning: invoice line parking: specific business 06 without "
                           "[invoicing.parking] certificate: the tax bureau lists it as required "
                           "for 06; expect refusal"),
            std::string::npos)
      << out.str();

  // At 3% and with a certificate: nothing to warn about.
  auto fixed = write("fixed.toml", small_scale_site("certificate = \"粤(2021)第1号\"\n", 3));
  std::ostringstream out2, err2;
  ASSERT_EQ(check_config_command(fixed, out2, err2), 0) << err2.str();
  EXPECT_NE(out2.str().find("invoice line taxi: 3% flag - survey 3\n"), std::string::npos)
      << out2.str();
  EXPECT_EQ(out2.str().find("warning"), std::string::npos) << out2.str();
}

TEST_F(CheckCommandTest, NoInvoiceLinesWithoutInvoicing) {
  auto file = write("off.toml", testing::with_exit_lane(std::string(testing::kMinimal)));
  std::ostringstream out, err;
  ASSERT_EQ(check_config_command(file, out, err), 0) << err.str();
  EXPECT_EQ(out.str().find("invoice line"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace lanegate::config
