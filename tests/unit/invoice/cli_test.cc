// `lanegate invoice ...` operator commands.
#include "invoice/cli.h"

#include <gtest/gtest.h>

#include <sstream>
#include <vector>

namespace lanegate::invoice {
namespace {

struct Run {
  int code;
  std::string out;
  std::string err;
};

Run run(std::vector<std::string> args, const config::InvoicingSection& section = {}) {
  std::ostringstream out;
  std::ostringstream err;
  const int code = invoice_command(args, section, out, err);
  return {code, out.str(), err.str()};
}

TEST(InvoiceCli, SplitPrintsExclTaxTotalAndCapitals) {
  auto r = run({"split", "--total", "19.19", "--rate", "3"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("excl:     18.63"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tax:      0.56"), std::string::npos);
  EXPECT_NE(r.out.find("total:    19.19"), std::string::npos);
  EXPECT_NE(r.out.find("capitals: 壹拾玖元壹角玖分"), std::string::npos);
}

TEST(InvoiceCli, SplitByServiceUsesConfiguredRule) {
  auto r = run({"split", "--total", "9.00", "--service", "parking"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("excl:     8.26"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3040502020200000000"), std::string::npos);
  config::InvoicingSection s;
  s.tax.push_back({"parking", "*经营租赁*停车费", "3040502020200000000", 5, "09"});
  auto five = run({"split", "--total", "9.00", "--service", "parking"}, s);
  EXPECT_NE(five.out.find("rate:     5%"), std::string::npos) << five.out;
}

// Tolls are issued by the national toll e-bill platform (spec "Tolls"): no split by rule.
TEST(InvoiceCli, SplitByServiceTollNamesTheRule) {
  auto r = run({"split", "--total", "35.00", "--service", "toll"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("--service: no tax rule for tolls: toll invoices are issued by the "
                       "national toll e-bill platform (www.txffp.com / the 票根 app), never by "
                       "lanegate (specs/e-invoice.md \"Tolls\")"),
            std::string::npos)
      << r.err;
}

TEST(InvoiceCli, SplitRejectsBadInput) {
  EXPECT_EQ(run({"split", "--total", "19.199", "--rate", "3"}).code, 1);
  EXPECT_EQ(run({"split", "--total", "19.19", "--rate", "3.5"}).code, 1);
  EXPECT_EQ(run({"split", "--total", "19.19", "--rate", "18"}).code, 1);
  EXPECT_EQ(run({"split", "--total", "19.19"}).code, 2);
  EXPECT_EQ(run({"split", "--total", "1", "--rate", "3", "--service", "taxi"}).code, 2);
  EXPECT_EQ(run({"split", "--total", "1", "--service", "ferry"}).code, 1);
  EXPECT_EQ(run({}).code, 2);
  EXPECT_EQ(run({"frobnicate"}).code, 2);
}

TEST(InvoiceCli, CheckBuyerId) {
  auto ok = run({"check-buyer-id", "9111 0000 8021 0043 3b"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(ok.out, "91110000802100433B\n");
  auto bad = run({"check-buyer-id", "91110000802100433C"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("check character"), std::string::npos);
  EXPECT_NE(bad.err.find("'B'"), std::string::npos);
  config::InvoicingSection s;
  s.buyer_id_allow_list = {"91110000802100433C"};
  EXPECT_EQ(run({"check-buyer-id", "91110000802100433C"}, s).code, 0);
}

}  // namespace
}  // namespace lanegate::invoice
