// Runs the curl + openssl block of docs/PROVIDER.md against a test sandbox, so the
// documented independent-client walkthrough cannot rot.
#include "provider_fixture.h"

namespace provider_test {
namespace {

using DocCurlExample = ProviderFixture;

TEST_F(DocCurlExample, WalkthroughSignsCallsAndVerifies) {
  int rc = 0;
  run("command -v curl >/dev/null", &rc);
  if (rc != 0) {
    GTEST_SKIP() << "curl not installed";
  }
  std::string doc = read_file(std::filesystem::path(LANEGATE_SOURCE_DIR) / "docs/PROVIDER.md");
  auto begin = doc.find("<!-- curl-example:begin -->\n```bash\n");
  auto end = doc.find("```\n<!-- curl-example:end -->");
  ASSERT_NE(begin, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  begin += std::string("<!-- curl-example:begin -->\n```bash\n").size();
  write_file(dir_.path() / "example.sh", "set -euo pipefail\n" + doc.substr(begin, end - begin));
  std::string out = run("cd " + shell_quote(dir_.path().string()) +
                            " && PKI=" + shell_quote(demo_pki().string()) +
                            " BASE=" + sandbox_->base_url() + " bash example.sh 2>&1",
                        &rc);
  EXPECT_EQ(rc, 0) << out;
  // Four replies verified with the platform key by the openssl CLI.
  std::size_t verified = 0;
  for (auto at = out.find("Verified OK"); at != std::string::npos;
       at = out.find("Verified OK", at + 1)) {
    ++verified;
  }
  EXPECT_EQ(verified, 4u) << out;
  EXPECT_NE(out.find(R"("service_state":"NORMAL")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("out_trade_no":"CURL0001")"), std::string::npos) << out;
  auto list = sandbox_->transactions();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].amount_fen, 1500);
  EXPECT_EQ(sandbox_->sign_errors(), 0);
}

}  // namespace
}  // namespace provider_test
