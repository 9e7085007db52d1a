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
}

}  // namespace
}  // namespace lanegate::config
