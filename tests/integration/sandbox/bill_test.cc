// The trade bill against the spec's "Trade bill" section: header and summary header byte
// for byte, backticked fields, yuan with 2 decimals, fee with 5 decimals (negative on
// refund lines), refunds as their own lines, the summary, the SHA-1; and admin refunds.
#include <regex>

#include "sandbox_fixture.h"

namespace sandbox_test {
namespace {

// Copied from the spec (its code block, joined): the test fails if either drifts.
constexpr std::string_view kSpecHeader =
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
    "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
constexpr std::string_view kSpecSummaryHeader =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

std::vector<std::string> split(const std::string& s, std::string_view sep) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (true) {
    auto next = s.find(sep, at);
    out.push_back(s.substr(at, next == std::string::npos ? std::string::npos : next - at));
    if (next == std::string::npos) {
      return out;
    }
    at = next + sep.size();
  }
}

class BillTest : public SandboxFixture {
 protected:
  // One ETC deduction of `fen` (synchronous SUCCESS).
  std::string etc(const std::string& no, std::int64_t fen, const std::string& contract = kContract,
                  const std::string& plate = kPlate) {
    auto r =
        post("/v3/vehicle/etc/transactions/highway",
             json::object{{"out_trade_no", no},
                          {"appid", kSpAppid},
                          {"sub_mchid", kSubMchid},
                          {"contract_id", contract},
                          {"description", "高速通行费"},
                          {"highway_info",
                           {{"plate_number", plate},
                            {"start_time", now_rfc3339(-std::chrono::hours(1))},
                            {"end_time", now_rfc3339()},
                            {"channel_type", "ETC"},
                            {"entrance", "广州北站"}}},
                          {"amount", {{"total", fen}}},
                          {"device_info", {{"device_id", "rsu-7"}, {"device_ip", "10.0.0.7"}}}});
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? std::string(r.obj().at("transaction_id").as_string()) : "";
  }

  // Asks for the bill, downloads it with a signed GET and checks its SHA-1.
  std::string bill(const std::string& query, const std::string& mchid = kSpMchid) {
    auto r = call("GET", "/v3/bill/tradebill?" + query, {}, mchid);
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) {
      return "";
    }
    EXPECT_EQ(r.obj().at("hash_type").as_string(), "SHA1");
    const std::string url(r.obj().at("download_url").as_string());
    const std::string prefix = sandbox_->base_url();
    EXPECT_TRUE(url.starts_with(prefix + "/v3/billdownload/file?token=")) << url;
    auto file = call("GET", url.substr(prefix.size()), {}, mchid, /*signed_reply=*/false);
    EXPECT_EQ(file.status, 200);
    EXPECT_EQ(lanegate::pki::sha1_hex(file.body), r.obj().at("hash_value").as_string());
    // And by the openssl CLI, an independent SHA-1.
    provider_test::write_file(dir_.path() / "bill.csv", file.body);
    EXPECT_EQ(
        provider_test::trim(provider_test::run(
            "openssl dgst -sha1 -r " +
            provider_test::shell_quote((dir_.path() / "bill.csv").string()) + " | cut -d' ' -f1")),
        r.obj().at("hash_value").as_string());
    return file.body;
  }
};

TEST_F(BillTest, AllBillHasSpecHeadersSuccessAndRefundLinesAndTheSummary) {
  const std::string paid = etc("BILL0001", 1234);
  etc("BILL0002", 800);
  etc("BILLFAIL", 999, kOverdueContract, "粤B66666");  // PAY_FAIL: never in the bill
  auto refund = sandbox_->refund("BILL0001", 500, "RFD0001");
  ASSERT_TRUE(refund) << refund.error().to_string();
  EXPECT_EQ(refund->transaction_id, paid);
  auto q = call("GET", "/v3/vehicle/etc/transactions/out-trade-no/BILL0001?sub_mchid=" + kSubMchid);
  EXPECT_EQ(q.obj().at("trade_state").as_string(), "REFUND");

  const std::string csv = bill("bill_date=" + today() + "&bill_type=ALL");
  auto lines = split(csv, "\r\n");
  ASSERT_EQ(lines.size(), 7u) << csv;  // header, 2 payments, 1 refund, summary header, summary, ""
  EXPECT_EQ(lines[0], kSpecHeader);
  EXPECT_EQ(lines[4], kSpecSummaryHeader);
  EXPECT_EQ(lines[6], "");
  const auto header = split(lines[0], ",");
  ASSERT_EQ(header.size(), 27u);
  auto col = [&header](std::string_view name) {
    return static_cast<std::size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  const std::regex time_re("`\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}");
  for (int i = 1; i <= 3; ++i) {
    auto f = split(lines[i], ",");
    ASSERT_EQ(f.size(), 27u) << lines[i];
    for (const auto& field : f) {
      EXPECT_TRUE(field.starts_with("`")) << lines[i];
    }
    EXPECT_TRUE(std::regex_match(f[col("交易时间")], time_re)) << f[0];
    EXPECT_EQ(f[col("商户号")], "`" + kSpMchid);
    EXPECT_EQ(f[col("特约商户号")], "`" + kSubMchid);
    EXPECT_EQ(f[col("公众账号ID")], "`" + kSpAppid);
    EXPECT_EQ(f[col("设备号")], "`rsu-7");
    EXPECT_EQ(f[col("费率")], "`0.60%");
    EXPECT_EQ(f[col("货币种类")], "`CNY");
  }
  auto first = split(lines[1], ",");
  EXPECT_EQ(first[col("商户订单号")], "`BILL0001");
  EXPECT_EQ(first[col("微信订单号")], "`" + paid);
  EXPECT_EQ(first[col("交易状态")], "`SUCCESS");
  EXPECT_EQ(first[col("应结订单金额")], "`12.34");
  EXPECT_EQ(first[col("订单金额")], "`12.34");
  EXPECT_EQ(first[col("手续费")], "`0.07404");  // 0.60 % of 12.34
  EXPECT_EQ(first[col("退款金额")], "`0.00");
  EXPECT_EQ(first[col("用户标识")], "`" + kOpenid);
  EXPECT_EQ(first[col("商品名称")], "`高速通行费");

  auto r = split(lines[3], ",");
  EXPECT_EQ(r[col("交易状态")], "`REFUND");
  EXPECT_EQ(r[col("商户订单号")], "`BILL0001");
  EXPECT_EQ(r[col("微信订单号")], "`" + paid);
  EXPECT_EQ(r[col("微信退款单号")], "`" + refund->refund_id);
  EXPECT_EQ(r[col("商户退款单号")], "`RFD0001");
  EXPECT_EQ(r[col("退款金额")], "`5.00");
  EXPECT_EQ(r[col("申请退款金额")], "`5.00");
  EXPECT_EQ(r[col("退款类型")], "`ORIGINAL");
  EXPECT_EQ(r[col("退款状态")], "`SUCCESS");
  EXPECT_EQ(r[col("手续费")], "`-0.03000");
  EXPECT_EQ(r[col("应结订单金额")], "`0.00");

  // 3 lines; settled 12.34 + 8.00; refunded 5.00; fees 0.07404 + 0.04800 - 0.03000.
  EXPECT_EQ(lines[5], "`3,`20.34,`5.00,`0.00,`0.09204,`20.34,`5.00");
}

TEST_F(BillTest, BillTypesFilterAndDirectMerchantsShowZeroSubMerchant) {
  etc("BILL0101", 1000);
  ASSERT_TRUE(sandbox_->refund("BILL0101", 1000));  // full refund, out_refund_no made up
  auto success_only = split(bill("bill_date=" + today() + "&bill_type=SUCCESS"), "\r\n");
  ASSERT_EQ(success_only.size(), 5u);
  EXPECT_NE(success_only[1].find(",`SUCCESS,"), std::string::npos);
  auto refund_only = split(bill("bill_date=" + today() + "&bill_type=REFUND"), "\r\n");
  ASSERT_EQ(refund_only.size(), 5u);
  EXPECT_NE(refund_only[1].find(",`REFUND,"), std::string::npos);
  EXPECT_EQ(refund_only[3], "`1,`0.00,`10.00,`0.00,`-0.06000,`0.00,`10.00");
  auto for_sub = split(bill("bill_date=" + today() + "&sub_mchid=" + kSubMchid), "\r\n");
  EXPECT_EQ(for_sub.size(), 6u);  // bill_type defaults to ALL

  // A direct merchant: 特约商户号 is 0, and sub_mchid is not one of its query fields.
  std::string csv = bill("bill_date=" + today() + "&bill_type=ALL", kDirectMchid);
  EXPECT_TRUE(csv.starts_with(std::string(kSpecHeader) + "\r\n"));
  auto bad = call("GET", "/v3/bill/tradebill?bill_date=" + today() + "&sub_mchid=" + kSubMchid, {},
                  kDirectMchid);
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(bad.detail("field"), "sub_mchid");
  EXPECT_EQ(bad.detail("location"), "query");
  auto type = call("GET", "/v3/bill/tradebill?bill_date=" + today() + "&bill_type=FUND");
  EXPECT_EQ(type.status, 400);
  EXPECT_EQ(type.detail("field"), "bill_type");
}

TEST_F(BillTest, RefundsNeverExceedTheAmountAndOnlyPaidOrdersRefund) {
  etc("REF0001", 1000);
  etc("REFFAIL", 1000, kOverdueContract, "粤B66666");
  ASSERT_TRUE(sandbox_->refund("REF0001", 600, "R1"));
  auto resent = sandbox_->refund("REF0001", 600, "R1");  // idempotent on out_refund_no
  ASSERT_TRUE(resent);
  EXPECT_FALSE(sandbox_->refund("REF0001", 500, "R2"));  // 600 + 500 > 1000
  ASSERT_TRUE(sandbox_->refund("REF0001", 400, "R3"));
  EXPECT_FALSE(sandbox_->refund("REFFAIL", 100));
  EXPECT_FALSE(sandbox_->refund("NOSUCH", 100));
  EXPECT_FALSE(sandbox_->refund("REF0001", 0));
  auto rows = sandbox_->transactions();
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->at(0).refunded_fen, 1000);
  EXPECT_EQ(rows->at(0).trade_state, "REFUND");

  httplib::Client admin("127.0.0.1", sandbox_->admin_port());
  auto over =
      admin.Post("/admin/refunds", R"({"out_trade_no":"REF0001","amount":1})", "application/json");
  ASSERT_TRUE(over);
  EXPECT_EQ(over->status, 400) << over->body;
  auto csv = bill("bill_date=" + today() + "&bill_type=REFUND");
  EXPECT_EQ(split(csv, "\r\n").size(), 6u) << csv;  // R1 and R3, once each
}

}  // namespace
}  // namespace sandbox_test
