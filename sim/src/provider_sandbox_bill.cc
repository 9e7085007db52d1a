// Refunds (admin only: the spec has no refund call for these products; a reverse of a
// paid payment-code order is one too, provider_sandbox_pay.cc) and the trade bill
// exactly as the spec's "Trade bill" section: the 27-column ALL header, backticked data,
// yuan with 2 decimals, fee with 5 decimals, SUCCESS lines on the day of success, REFUND
// lines on the day the refund was accepted, the 7-column summary.
#include <algorithm>
#include <map>
#include <tuple>

#include "core/crypto.h"
#include "core/money.h"
#include "provider_sandbox_impl.h"

namespace lanegate::sim {
using namespace sandbox;
using Impl = ProviderSandbox::Impl;

namespace {

constexpr std::string_view kBillHeader =
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
    "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
constexpr std::string_view kSummaryHeader =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";
// The spec does not say; the sandbox ends every line with CRLF, as the bill it replaced did.
constexpr std::string_view kEol = "\r\n";

std::string yuan(std::int64_t fen) { return Money::from_fen(fen).to_string(); }

// Fee in yuan with 5 decimals from a count of 1e-5 yuan (1 fen = 1000 units).
std::string fee_text(std::int64_t units) {
  const bool negative = units < 0;
  const std::int64_t a = negative ? -units : units;
  std::string frac = std::to_string(a % 100000);
  frac.insert(0, 5 - frac.size(), '0');
  return (negative ? "-" : "") + std::to_string(a / 100000) + "." + frac;
}

// The rate applied to `fen`, in 1e-5 yuan, rounded half up (exact for 0.60 %).
std::int64_t fee_units(std::int64_t fen) {
  return (fen * 1000 * kFeeRateBasisPoints + 5000) / 10000;
}

std::string rate_text() {
  return std::to_string(kFeeRateBasisPoints / 100) + "." +
         (kFeeRateBasisPoints % 100 < 10 ? "0" : "") + std::to_string(kFeeRateBasisPoints % 100) +
         "%";
}

// "2026-11-22 13:29:35" from RFC 3339 at +08:00.
std::optional<std::string> bill_time(const std::string& rfc3339, const std::string& date) {
  auto t = parse_rfc3339(rfc3339);
  if (!t || format_local_date(*t, kChina) != date) {
    return std::nullopt;
  }
  std::string local = format_rfc3339(*t, kChina);
  return local.substr(0, 10) + " " + local.substr(11, 8);
}

std::string line(const std::vector<std::string>& fields) {
  std::string out;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    out += (i == 0 ? "`" : ",`") + fields[i];
  }
  return out + std::string(kEol);
}

// A paid order of either table, as the bill shows it.
struct BillOrder {
  std::int64_t rank = 0;  // unique over both tables: orders the lines of one second
  std::string appid, mchid, sub_mchid, device_id, transaction_id, out_trade_no, openid;
  std::string trade_type, description, attach;
  std::int64_t amount = 0;
  std::string success_time;
};

struct BillLine {
  std::string when;
  std::int64_t seq = 0;  // of the order (its rank) or of the refund
  bool refund = false;
  std::int64_t fen = 0;  // the payment's or the refund's amount
  std::vector<std::string> fields;
};

}  // namespace

Reply Impl::trade_bill(const httplib::Request& req, const Merchant& m) {
  if (auto bad = check_query(req, trade_bill_params(m.partner())); bad) {
    return *bad;
  }
  std::string date = req.get_param_value("bill_date");
  std::string type = req.get_param_value("bill_type");
  auto day_start = parse_local_date(date, kChina);
  if (!day_start) {
    json::value shown(date);
    return param_error("bill_date", "YYYY-MM-DD", "query", &shown);
  }
  if (type.empty()) {
    type = "ALL";
  }
  if (type != "ALL" && type != "SUCCESS" && type != "REFUND") {
    json::value shown(type);
    return param_error("bill_type", "ALL, SUCCESS or REFUND", "query", &shown);
  }
  if (req.has_param("tar_type")) {
    json::value shown(req.get_param_value("tar_type"));
    return param_error("tar_type", "the sandbox serves uncompressed bills only", "query", &shown);
  }
  if (*day_start > options.clock->now()) {
    return param_error("bill_date", "in the future", "query");
  }
  std::optional<std::string> only_sub;
  if (req.has_param("sub_mchid")) {
    auto sub = resolve_sub(m, req.get_param_value("sub_mchid"), std::nullopt, "query");
    if (auto* refused = std::get_if<Reply>(&sub)) {
      return *refused;
    }
    only_sub = req.get_param_value("sub_mchid");
  }
  const std::string rate = rate_text();
  std::vector<BillLine> lines;
  std::lock_guard lock(db_mu);
  advance_payments_locked();
  const std::string sub_filter = only_sub.value_or("");
  // Every order that was paid, vehicle transactions first, then in-cab payments
  // (payment code: MICROPAY, Native: NATIVE); `rank` keeps their seqs apart.
  std::vector<BillOrder> orders;
  auto st = db().prepare("SELECT " + std::string(kTxColumns) +
                         " FROM transactions WHERE mchid=? AND success_time IS NOT NULL "
                         "AND (? = '' OR sub_mchid = ?) ORDER BY seq");
  if (!st) {
    return system_error(st.error());
  }
  st->bind_all(m.mchid, sub_filter, sub_filter);
  while (true) {
    auto row = st->step();
    if (!row) {
      return system_error(row.error());
    }
    if (!*row) {
      break;
    }
    TxRow t = read_tx(*st);
    orders.push_back({t.seq * 2, t.appid, t.mchid, t.sub_mchid, t.device_id, t.transaction_id,
                      t.out_trade_no, t.openid, std::string(kVehicleTradeType), t.description,
                      t.attach.value_or(""), t.amount, *t.success_time});
  }
  auto ps = db().prepare("SELECT " + std::string(kPayColumns) +
                         " FROM payments WHERE mchid=? AND success_time IS NOT NULL "
                         "AND (? = '' OR sub_mchid = ?) ORDER BY seq");
  if (!ps) {
    return system_error(ps.error());
  }
  ps->bind_all(m.mchid, sub_filter, sub_filter);
  while (true) {
    auto row = ps->step();
    if (!row) {
      return system_error(row.error());
    }
    if (!*row) {
      break;
    }
    PayRow p = read_pay(*ps);
    orders.push_back({p.seq * 2 + 1, p.appid, p.mchid, p.sub_mchid, p.device_id, p.transaction_id,
                      p.out_trade_no, p.openid, p.trade_type, p.description, p.attach.value_or(""),
                      p.amount, *p.success_time});
  }
  std::map<std::string, const BillOrder*> by_no;  // for the refund lines
  for (const auto& o : orders) {
    auto when = bill_time(o.success_time, date);
    if (when && type != "REFUND") {
      lines.push_back({*when,
                       o.rank * 2,
                       false,
                       o.amount,
                       {*when,
                        o.appid,
                        o.mchid,
                        o.sub_mchid.empty() ? "0" : o.sub_mchid,
                        o.device_id,
                        o.transaction_id,
                        o.out_trade_no,
                        o.openid,
                        o.trade_type,
                        "SUCCESS",
                        "OTHERS",
                        "CNY",
                        yuan(o.amount),
                        "0.00",
                        "0",
                        "0",
                        "0.00",
                        "0.00",
                        "",
                        "",
                        o.description,
                        o.attach,
                        fee_text(fee_units(o.amount)),
                        rate,
                        yuan(o.amount),
                        "0.00",
                        ""}});
    }
    by_no.emplace(o.out_trade_no, &o);
  }
  if (type != "SUCCESS") {
    auto rs = db().prepare(
        "SELECT out_trade_no, refund_id, out_refund_no, amount, create_time, seq FROM refunds "
        "WHERE mchid=? ORDER BY seq");
    if (!rs) {
      return system_error(rs.error());
    }
    rs->bind_all(m.mchid);
    while (true) {
      auto row = rs->step();
      if (!row) {
        return system_error(row.error());
      }
      if (!*row) {
        break;
      }
      auto it = by_no.find(rs->column_text(0));
      auto when = bill_time(rs->column_text(4), date);
      if (it == by_no.end() || !when) {
        continue;  // another sub merchant's, or another day's
      }
      const BillOrder& o = *it->second;
      const std::int64_t refund = rs->column_int64(3);
      lines.push_back({*when,
                       rs->column_int64(5) * 2 + 1,
                       true,
                       refund,
                       {*when,
                        o.appid,
                        o.mchid,
                        o.sub_mchid.empty() ? "0" : o.sub_mchid,
                        o.device_id,
                        o.transaction_id,
                        o.out_trade_no,
                        o.openid,
                        o.trade_type,
                        "REFUND",
                        "OTHERS",
                        "CNY",
                        "0.00",
                        "0.00",
                        rs->column_text(1),
                        rs->column_text(2),
                        yuan(refund),
                        "0.00",
                        "ORIGINAL",
                        "SUCCESS",
                        o.description,
                        o.attach,
                        fee_text(-fee_units(refund)),
                        rate,
                        "0.00",
                        yuan(refund),
                        ""}});
    }
  }
  // seq makes the order total, so std::sort is deterministic (libstdc++ 12's stable_sort
  // trips clang's deprecation error in the sanitizer build).
  std::sort(lines.begin(), lines.end(), [](const BillLine& a, const BillLine& b) {
    // Within one second, payments before refunds (a refund never precedes its payment).
    return std::tie(a.when, a.refund, a.seq) < std::tie(b.when, b.refund, b.seq);
  });
  std::int64_t settled = 0, refunded = 0, fees = 0, ordered = 0, requested = 0;
  std::string csv = std::string(kBillHeader) + std::string(kEol);
  for (const auto& l : lines) {
    csv += line(l.fields);
    (l.refund ? refunded : settled) += l.fen;
    (l.refund ? requested : ordered) += l.fen;
    fees += l.refund ? -fee_units(l.fen) : fee_units(l.fen);
  }
  csv += std::string(kSummaryHeader) + std::string(kEol);
  csv += line({std::to_string(lines.size()), yuan(settled), yuan(refunded), "0.00", fee_text(fees),
               yuan(ordered), yuan(requested)});
  std::string token = crypto::random_token(32).value_or("token");
  auto ins = db().prepare("INSERT INTO bills(token, mchid, csv) VALUES(?,?,?)");
  if (!ins || !ins->bind_all(token, m.mchid, csv).run()) {
    return error_reply(500, "SYSTEM_ERROR", "cannot store bill");
  }
  json::object o;
  o["hash_type"] = "SHA1";
  o["hash_value"] = pki::sha1_hex(csv);
  o["download_url"] =
      "https://127.0.0.1:" + std::to_string(api_port) + "/v3/billdownload/file?token=" + token;
  return Reply{200, json::serialize(o), false};
}

// The bill file itself: signed request, raw CSV reply (checked by hash, not signature).
void Impl::bill_download(const httplib::Request& req, httplib::Response& res) {
  auto who = authenticate(req);
  if (auto* refused = std::get_if<Reply>(&who)) {
    send(req, res, *refused);
    return;
  }
  if (auto bad = check_query(req, Params{{"token"}}); bad) {
    send(req, res, *bad);
    return;
  }
  std::lock_guard lock(db_mu);
  auto st = db().prepare("SELECT csv FROM bills WHERE token=? AND mchid=?");
  if (!st) {
    res.status = 500;
    return;
  }
  st->bind_all(req.get_param_value("token"), std::get<Merchant>(who).mchid);
  auto row = st->step();
  if (!row || !*row) {
    send(req, res, error_reply(404, "NO_STATEMENT_EXIST", "bill token unknown"));
    return;
  }
  res.status = 200;
  res.set_content(st->column_text(0), "text/csv; charset=utf-8");
}

Result<SandboxRefund> Impl::refund(const std::string& out_trade_no, std::int64_t amount_fen,
                                   const std::string& out_refund_no) {
  if (amount_fen <= 0) {
    return fail(Errc::kInvalidArgument, "integer fen > 0", "amount");
  }
  if (!out_refund_no.empty() && !is_out_trade_no(out_refund_no)) {
    return fail(Errc::kInvalidArgument, "1..32 of [0-9A-Za-z_*-]", "out_refund_no");
  }
  std::lock_guard lock(db_mu);
  auto txn = db().begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  auto st = db().prepare("SELECT " + std::string(kTxColumns) +
                         " FROM transactions WHERE out_trade_no=? ORDER BY seq");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind_all(out_trade_no);
  std::vector<TxRow> found;
  while (true) {
    auto row = st->step();
    if (!row) {
      return std::unexpected(row.error());
    }
    if (!*row) {
      break;
    }
    found.push_back(read_tx(*st));
  }
  if (found.empty()) {
    return fail(Errc::kNotFound, "no such transaction", "out_trade_no");
  }
  if (found.size() > 1) {
    return fail(Errc::kInvalidArgument, "names transactions of several merchants", "out_trade_no");
  }
  const TxRow& t = found.front();
  SandboxRefund r{t.mchid, t.out_trade_no, t.transaction_id, "", out_refund_no, amount_fen, ""};
  if (!out_refund_no.empty()) {
    auto old = db().prepare(
        "SELECT refund_id, amount, create_time, out_trade_no FROM refunds WHERE mchid=? AND "
        "out_refund_no=?");
    if (!old) {
      return std::unexpected(old.error());
    }
    old->bind_all(t.mchid, out_refund_no);
    if (auto row = old->step(); row && *row) {
      if (old->column_int64(1) != amount_fen || old->column_text(3) != out_trade_no) {
        return fail(Errc::kAlreadyExists, "out_refund_no already used with other content",
                    "out_refund_no");
      }
      r.refund_id = old->column_text(0);
      r.create_time = old->column_text(2);
      return r;
    }
  }
  if (t.trade_state != "SUCCESS" && t.trade_state != "REFUND") {
    return fail(Errc::kInvalidArgument,
                "only a paid transaction can be refunded (it is " + t.trade_state + ")",
                "out_trade_no");
  }
  if (t.refunded + amount_fen > t.amount) {
    return fail(Errc::kOutOfRange,
                "refunds would exceed the amount (" + std::to_string(t.amount) + " fen, " +
                    std::to_string(t.refunded) + " refunded)",
                "amount");
  }
  r.refund_id = "5030" + digits(24);
  if (r.out_refund_no.empty()) {
    r.out_refund_no = "RF" + digits(20);
  }
  r.create_time = now_text();
  auto ins = db().prepare(
      "INSERT INTO refunds(mchid, out_trade_no, refund_id, out_refund_no, amount, create_time) "
      "VALUES(?,?,?,?,?,?)");
  if (!ins) {
    return std::unexpected(ins.error());
  }
  if (auto x = ins->bind_all(t.mchid, t.out_trade_no, r.refund_id, r.out_refund_no, amount_fen,
                             r.create_time)
                   .run();
      !x) {
    return std::unexpected(x.error());
  }
  auto up = db().prepare(
      "UPDATE transactions SET trade_state='REFUND', refunded = refunded + ? WHERE seq=?");
  if (!up) {
    return std::unexpected(up.error());
  }
  if (auto x = up->bind_all(amount_fen, t.seq).run(); !x) {
    return std::unexpected(x.error());
  }
  if (auto c = txn->commit(); !c) {
    return std::unexpected(c.error());
  }
  return r;
}

}  // namespace lanegate::sim
