// Secret files readable by anyone but the service user: lanegated refuses to start and
// `lanegate check-config` refuses the file, each naming the config key, the file, its
// mode and the fix. (A leaked APIv3 key lets its holder forge notification contents.)

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "hostile_site.h"

namespace lanegate::hostile {
namespace {

class SecretsHostileTest : public HostileTest {
 protected:
  // A copy of the site's config whose APIv3 key file is a copy with `mode`.
  fs::path config_with_key_mode(mode_t mode) {
    const fs::path key = site().dir() / ("apiv3-" + std::to_string(mode) + ".key");
    fs::copy_file(site().pki() / "apiv3.key", key, fs::copy_options::overwrite_existing);
    EXPECT_EQ(::chmod(key.c_str(), mode), 0);
    std::string text = read_text(site().config_file());
    const std::string from = (site().pki() / "apiv3.key").string();
    const std::size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos);
    text.replace(at, from.size(), key.string());
    const fs::path cfg = site().dir() / ("lanegate-" + std::to_string(mode) + ".toml");
    std::ofstream(cfg) << text;
    return cfg;
  }

  static std::string bin(const char* name) {
    const char* dir = std::getenv("LANEGATE_BIN_DIR");
    return std::string(dir != nullptr ? dir : LANEGATE_BINARY_DIR) + "/" + name;
  }

  // Runs a command with a bounded time; returns its exit status and fills `output`.
  int run(const std::string& cmd, std::string& output) {
    const fs::path out = site().dir() / "secrets.out";
    const int rc = std::system(("timeout 20 " + cmd + " >" + out.string() + " 2>&1").c_str());
    output = read_text(out);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
};

TEST_F(SecretsHostileTest, LanegatedRefusesToStartWithAGroupOrWorldReadableKey) {
  for (mode_t mode : {0644, 0640, 0604}) {
    const fs::path cfg = config_with_key_mode(mode);
    std::string output;
    EXPECT_EQ(run(bin("lanegated") + " --config " + cfg.string(), output), 1) << output;
    EXPECT_NE(output.find("provider.apiv3_key_file"), std::string::npos) << output;
    EXPECT_NE(output.find("chmod 600"), std::string::npos) << output;
    EXPECT_NE(output.find("not starting"), std::string::npos) << output;
  }
}

TEST_F(SecretsHostileTest, CheckConfigRefusesAReadableKeyAndAcceptsMode0600) {
  std::string output;
  EXPECT_NE(run(bin("lanegate") + " check-config " + config_with_key_mode(0644).string(), output),
            0)
      << output;
  EXPECT_NE(output.find("provider.apiv3_key_file"), std::string::npos) << output;
  EXPECT_EQ(run(bin("lanegate") + " check-config " + config_with_key_mode(0600).string(), output),
            0)
      << output;
}

}  // namespace
}  // namespace lanegate::hostile
