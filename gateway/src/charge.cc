// The charge's one home (gateway/charge.h).
#include "gateway/charge.h"

#include <boost/json.hpp>

#include "core/ledger.h"
#include "core/log.h"
#include "core/metrics.h"
#include "gateway/store.h"
#include "offline_queue/queue.h"

namespace lanegate::gateway {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

std::int64_t unix_ms(SystemTime t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}
SystemTime from_ms(std::int64_t ms) {
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(milliseconds(ms)));
}

ledger::Kind ledger_kind(ChargeState s) {
  switch (s) {
    case ChargeState::kAccepted:
      return ledger::Kind::kChargeAccepted;
    case ChargeState::kSuccess:
      return ledger::Kind::kChargeSettled;
    case ChargeState::kPayFail:
      return ledger::Kind::kChargeFailed;
    case ChargeState::kRefund:
      return ledger::Kind::kRefund;
    case ChargeState::kUnknown:
      return ledger::Kind::kChargeUnknown;
    case ChargeState::kVoid:
      return ledger::Kind::kCorrection;
    case ChargeState::kRecorded:
    case ChargeState::kSubmitting:
    case ChargeState::kCash:
      break;
  }
  return ledger::Kind::kChargeSubmitted;
}

Status append(Transaction& txn, const Clock& clock, ledger::Kind kind, const TxRecord& tx,
              std::string_view state, std::string_view actor, std::string detail) {
  ledger::LedgerEvent ev;
  ev.kind = kind;
  ev.time = clock.now();
  ev.lane = tx.lane;
  ev.plate = tx.plate;
  ev.out_trade_no = tx.out_trade_no;
  ev.amount = tx.amount;
  ev.state = std::string(state);
  ev.actor = std::string(actor);
  ev.detail = std::move(detail);
  auto r = ledger::append(txn, ev);
  if (!r) {
    return std::unexpected(r.error());
  }
  return {};
}

// Adds "from" to a JSON object text (detail of a state change).
std::string with_from(std::string_view detail_json, ChargeState from) {
  boost::system::error_code ec;
  json::value v = json::parse(detail_json, ec);
  json::object o = (!ec && v.is_object()) ? v.as_object() : json::object{};
  o["from"] = to_string(from);
  return json::serialize(o);
}

const json::value* field(const json::object& o, std::string_view k) {
  auto it = o.find(k);
  return it == o.end() ? nullptr : &it->value();
}

Result<std::string> need_str(const json::object& o, std::string_view k) {
  const json::value* v = field(o, k);
  if (v == nullptr || !v->is_string()) {
    return fail(Errc::kParse, "charge payload: '" + std::string(k) + "' must be a string",
                std::string(k));
  }
  return std::string(v->as_string());
}

std::string opt_str(const json::object& o, std::string_view k) {
  const json::value* v = field(o, k);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

Result<std::int64_t> need_int(const json::object& o, std::string_view k) {
  const json::value* v = field(o, k);
  if (v != nullptr) {
    if (auto p = v->if_int64()) {
      return *p;
    }
    if (auto p = v->if_uint64(); p && *p <= static_cast<std::uint64_t>(INT64_MAX)) {
      return static_cast<std::int64_t>(*p);
    }
  }
  return fail(Errc::kParse, "charge payload: '" + std::string(k) + "' must be an integer",
              std::string(k));
}

std::optional<std::int64_t> opt_int(const json::object& o, std::string_view k) {
  if (field(o, k) == nullptr) {
    return std::nullopt;
  }
  auto r = need_int(o, k);
  return r ? std::optional<std::int64_t>(*r) : std::nullopt;
}

metrics::Counter& mismatch_counter(AnswerSource s, std::string_view field) {
  return metrics::Registry::global().counter(
      "lanegate_provider_money_mismatch_total",
      "Provider answers about other money than the charge they name (never applied)",
      {{"source", std::string(to_string(s))}, {"field", std::string(field)}});
}

}  // namespace

// ---------------- states and kinds ----------------

std::string_view to_string(ChargeState s) {
  switch (s) {
    case ChargeState::kRecorded:
      return "RECORDED";
    case ChargeState::kSubmitting:
      return "SUBMITTING";
    case ChargeState::kAccepted:
      return "ACCEPTED";
    case ChargeState::kSuccess:
      return "SUCCESS";
    case ChargeState::kPayFail:
      return "PAY_FAIL";
    case ChargeState::kUnknown:
      return "UNKNOWN";
    case ChargeState::kRefund:
      return "REFUND";
    case ChargeState::kCash:
      return "CASH";
    case ChargeState::kVoid:
      return "VOID";
  }
  return "?";
}

Result<ChargeState> parse_charge_state(std::string_view s) {
  for (auto st : {ChargeState::kRecorded, ChargeState::kSubmitting, ChargeState::kAccepted,
                  ChargeState::kSuccess, ChargeState::kPayFail, ChargeState::kUnknown,
                  ChargeState::kRefund, ChargeState::kCash, ChargeState::kVoid}) {
    if (to_string(st) == s) {
      return st;
    }
  }
  return fail(Errc::kInvalidArgument,
              "unknown state '" + std::string(s) +
                  "' (one of RECORDED, SUBMITTING, ACCEPTED, SUCCESS, PAY_FAIL, UNKNOWN, REFUND, "
                  "CASH, VOID)",
              "state");
}

bool allowed_transition(ChargeState from, ChargeState to) {
  using S = ChargeState;
  if (from == to) {
    return true;
  }
  switch (from) {
    case S::kRecorded:
      return to == S::kSubmitting || to == S::kVoid;
    case S::kSubmitting:
      return to == S::kAccepted || to == S::kSuccess || to == S::kPayFail || to == S::kUnknown ||
             to == S::kVoid;
    case S::kUnknown:
      return to == S::kAccepted || to == S::kSuccess || to == S::kPayFail || to == S::kSubmitting ||
             to == S::kVoid;
    case S::kAccepted:
      return to == S::kSuccess || to == S::kPayFail;
    case S::kSuccess:
      return to == S::kRefund;
    case S::kPayFail:
      // PAY_BACK: the provider advanced the money and the user repaid: the money arrived.
      return to == S::kSuccess;
    case S::kVoid:
      // The provider had the charge after all (a request delayed beyond every timeout):
      // the record follows the money, and the double payment is flagged (invariant 5).
      return to == S::kAccepted || to == S::kSuccess || to == S::kPayFail;
    case S::kRefund:
    case S::kCash:
      return false;
  }
  return false;
}

bool is_open(ChargeState s) {
  return s == ChargeState::kRecorded || s == ChargeState::kSubmitting ||
         s == ChargeState::kAccepted || s == ChargeState::kUnknown;
}

ChargeState charge_state_of(TradeState s) {
  switch (s) {
    case TradeState::kAccepted:
      return ChargeState::kAccepted;
    case TradeState::kSuccess:
      return ChargeState::kSuccess;
    case TradeState::kPayFail:
      return ChargeState::kPayFail;
    case TradeState::kRefund:
      return ChargeState::kRefund;
  }
  return ChargeState::kUnknown;
}

std::string_view to_string(TxKind k) {
  switch (k) {
    case TxKind::kParking:
      return "parking";
    case TxKind::kToll:
      return "toll";
    case TxKind::kTaxi:
      return "taxi";
  }
  return "?";
}

Result<TxKind> parse_tx_kind(std::string_view s) {
  for (auto k : {TxKind::kParking, TxKind::kToll, TxKind::kTaxi}) {
    if (to_string(k) == s) {
      return k;
    }
  }
  return fail(Errc::kParse, "unknown transaction kind '" + std::string(s) + "'", "kind");
}

std::string_view decision_text(const std::optional<DecisionKind>& d) {
  return d ? to_string(*d) : std::string_view();
}

Result<std::optional<DecisionKind>> parse_decision(std::string_view text) {
  if (text.empty()) {
    return std::optional<DecisionKind>();
  }
  for (auto k : {DecisionKind::kFree, DecisionKind::kPassOnline, DecisionKind::kPassOffline,
                 DecisionKind::kFallback}) {
    if (to_string(k) == text) {
      return std::optional<DecisionKind>(k);
    }
  }
  return fail(Errc::kParse, "unknown decision '" + std::string(text) + "'", "decision");
}

std::string_view to_string(AnswerSource s) {
  switch (s) {
    case AnswerSource::kReply:
      return "reply";
    case AnswerSource::kQuery:
      return "query";
    case AnswerSource::kNotification:
      return "notification";
  }
  return "?";
}

// ---------------- the order and its encoding ----------------

std::string encode_charge_order(const ChargeOrder& o) {
  json::object p{{"v", 2},
                 {"out_trade_no", o.out_trade_no},
                 {"kind", to_string(o.kind)},
                 {"amount_fen", o.amount.fen()},
                 {"lane", o.lane},
                 {"plate", o.plate},
                 {"colour", o.plate_colour},
                 {"contract_id", o.contract_id},
                 {"description", o.description},
                 {"device_id", o.device_id},
                 {"start_time_ms", unix_ms(o.start_time)},
                 {"end_time_ms", unix_ms(o.end_time)},
                 {"passage_key", o.passage_key}};
  if (o.session_id) {
    p["session_id"] = *o.session_id;
    p["out_parking_no"] = o.out_parking_no;
  }
  if (o.kind == TxKind::kToll) {
    p["entrance"] = o.entrance;
    p["exit"] = o.exit;
    p["vehicle_class"] = o.vehicle_class;
  }
  if (o.trip_number) {
    p["trip_number"] = *o.trip_number;
    p["distance_m"] = o.distance_m;
  }
  return json::serialize(p);
}

Result<ChargeOrder> decode_charge_order(std::string_view payload) {
  boost::system::error_code ec;
  json::value v = json::parse(payload, ec);
  if (ec || !v.is_object()) {
    return fail(Errc::kParse, "charge payload is not a JSON object", "payload");
  }
  const json::object& p = v.as_object();
  ChargeOrder o;
  auto out = need_str(p, "out_trade_no");
  if (!out) {
    return std::unexpected(out.error());
  }
  o.out_trade_no = *out;
  if (field(p, "v") != nullptr) {
    auto kind = need_str(p, "kind");
    if (!kind) {
      return std::unexpected(kind.error());
    }
    auto k = parse_tx_kind(*kind);
    if (!k) {
      return std::unexpected(k.error());
    }
    o.kind = *k;
  } else {
    // The previous release's payload: "product" PARKING | HIGHWAY | TAXI, the rider in
    // "rider" (the row's contract_id held it too).
    const std::string product = opt_str(p, "product");
    o.kind = product == "HIGHWAY" ? TxKind::kToll
             : product == "TAXI"  ? TxKind::kTaxi
                                  : TxKind::kParking;
    o.contract_id = o.kind == TxKind::kTaxi ? opt_str(p, "rider") : opt_str(p, "contract_id");
  }
  auto amount = need_int(p, "amount_fen");
  if (!amount) {
    return std::unexpected(amount.error());
  }
  if (*amount < 0) {
    return fail(Errc::kParse, "charge payload: 'amount_fen' must not be negative", "amount_fen");
  }
  o.amount = Money::from_fen(*amount);
  o.lane = opt_str(p, "lane");
  o.plate = opt_str(p, "plate");
  o.plate_colour = opt_str(p, "colour");
  if (field(p, "v") != nullptr) {
    o.contract_id = opt_str(p, "contract_id");
  }
  o.description = opt_str(p, "description");
  o.device_id = opt_str(p, "device_id");
  o.start_time = from_ms(opt_int(p, "start_time_ms").value_or(0));
  o.end_time = from_ms(opt_int(p, "end_time_ms").value_or(0));
  o.session_id = opt_int(p, "session_id");
  o.out_parking_no = opt_str(p, "out_parking_no");
  o.entrance = opt_str(p, "entrance");
  o.exit = opt_str(p, "exit");
  o.vehicle_class = static_cast<int>(opt_int(p, "vehicle_class").value_or(0));
  if (auto t = opt_int(p, "trip_number")) {
    o.trip_number = static_cast<std::uint32_t>(*t);
  }
  o.distance_m = opt_int(p, "distance_m").value_or(0);
  o.passage_key = opt_str(p, "passage_key");
  return o;
}

ChargeRequest provider_request(const ChargeOrder& o, std::string_view parking_id,
                               std::string_view parking_name) {
  ChargeRequest req;
  req.out_trade_no = o.out_trade_no;
  req.description = o.description;
  req.amount = o.amount;
  switch (o.kind) {
    case TxKind::kParking:
      req.product = Product::kParking;
      req.parking.parking_id = std::string(parking_id);
      req.parking.plate_number = o.plate;
      req.parking.plate_color = o.plate_colour;
      req.parking.start_time = o.start_time;
      req.parking.end_time = o.end_time;
      req.parking.parking_name = std::string(parking_name);
      req.parking.charging_duration_s = std::max<std::int64_t>(
          0, std::chrono::duration_cast<std::chrono::seconds>(o.end_time - o.start_time).count());
      req.parking.device_id = o.device_id;
      break;
    case TxKind::kTaxi:
      // No vehicle call exists for a taxi fare (it is an ordinary payment, site_taxi.cc):
      // the uplink parks a taxi `charge` item before it gets here.
      break;
    case TxKind::kToll:
      req.product = Product::kHighway;
      req.contract_id = o.contract_id;
      req.highway.plate_number = o.plate;
      req.highway.start_time = o.start_time;
      req.highway.end_time = o.end_time;
      req.highway.entrance = o.entrance;
      req.highway.exit = o.exit;
      req.highway.vehicle_class = o.vehicle_class;
      break;
  }
  return req;
}

// ---------------- the same-money check ----------------

Status same_money(const TxRecord& ours, const ProviderTransaction& a, const MerchantIds& ids) {
  if (a.out_trade_no != ours.out_trade_no) {
    return fail(
        Errc::kInvalidArgument,
        "answer is about out_trade_no '" + a.out_trade_no + "', not '" + ours.out_trade_no + "'",
        "out_trade_no");
  }
  if (a.amount != ours.amount) {
    return fail(Errc::kInvalidArgument,
                "answer amount " + a.amount.to_string() + " differs from the charge's " +
                    ours.amount.to_string() + " (" + ours.out_trade_no + ")",
                "amount");
  }
  if (!a.merchant_id.empty() && !ids.mchid.empty() && a.merchant_id != ids.mchid) {
    return fail(Errc::kInvalidArgument,
                "answer is for merchant " + a.merchant_id + ", not " + ids.mchid + " (" +
                    ours.out_trade_no + ")",
                "mchid");
  }
  if (!a.sub_merchant_id.empty() && !ids.sub_mchid.empty() && a.sub_merchant_id != ids.sub_mchid) {
    return fail(Errc::kInvalidArgument,
                "answer is for special merchant " + a.sub_merchant_id + ", not " + ids.sub_mchid +
                    " (" + ours.out_trade_no + ")",
                "sub_mchid");
  }
  return {};
}

// ---------------- ChargeBook ----------------

ChargeBook::ChargeBook(Store& store, queue::Outbox& outbox, const Clock& clock, MerchantIds ids)
    : store_(&store), outbox_(&outbox), clock_(&clock), ids_(std::move(ids)) {}

Status ChargeBook::record(Transaction& txn, const ChargeOrder& order,
                          std::optional<DecisionKind> decision, std::string_view reason,
                          bool offline, std::string_view payment_method, std::string detail) {
  TxRecord tx;
  tx.out_trade_no = order.out_trade_no;
  tx.kind = order.kind;
  tx.lane = order.lane;
  tx.plate = order.plate;
  tx.plate_colour = order.plate_colour;
  tx.amount = order.amount;
  tx.state = ChargeState::kRecorded;
  tx.decision = decision;
  tx.decision_reason = std::string(reason);
  tx.offline = offline;
  tx.session_id = order.session_id;
  tx.passage_key = order.passage_key;
  tx.contract_id = order.contract_id;
  tx.payment_method = std::string(payment_method);
  tx.trip_number = order.trip_number;
  tx.detail = std::move(detail);
  auto id = store_->insert_transaction(txn, tx);
  if (!id) {
    return std::unexpected(id.error());
  }
  if (order.kind == TxKind::kToll && !order.contract_id.empty()) {
    // The contract check (gateway/uplink.h) queries the contracts the lanes saw.
    if (auto s = store_->note_contract_seen(txn, order.contract_id, order.plate); !s) {
      return std::unexpected(s.error());
    }
  }
  const std::string key = order.session_id ? "session:" + std::to_string(*order.session_id)
                                           : "trade:" + order.out_trade_no;
  auto q = outbox_->enqueue(txn, kTopicCharge, key, "charge:" + order.out_trade_no,
                            encode_charge_order(order));
  if (!q) {
    return std::unexpected(q.error());
  }
  return {};
}

Result<bool> ChargeBook::move(Transaction& txn, const TxRecord& tx, ChargeState to,
                              std::string_view provider_txn_id, std::string_view actor,
                              std::string detail_json) {
  if (tx.state == to || !allowed_transition(tx.state, to)) {
    return false;
  }
  if (auto s = store_->set_state(txn, tx.out_trade_no, to, provider_txn_id); !s) {
    return std::unexpected(s.error());
  }
  if (auto s = append(txn, *clock_, ledger_kind(to), tx, to_string(to), actor,
                      with_from(detail_json, tx.state));
      !s) {
    return std::unexpected(s.error());
  }
  if (to == ChargeState::kPayFail && tx.offline) {
    if (auto s = append(txn, *clock_, ledger::Kind::kArrears, tx, "PAY_FAIL", "system",
                        R"({"offline_pass":true})");
        !s) {
      return std::unexpected(s.error());
    }
    metrics::Registry::global()
        .counter("lanegate_arrears_total", "Offline passes whose charge failed")
        .inc();
    log::warn("arrears: an offline pass's charge failed", {{"LANE", tx.lane},
                                                           {"PLATE", log::mask_plate(tx.plate)},
                                                           {"AMOUNT", tx.amount.to_string()}});
  }
  if (to == ChargeState::kSuccess && tx.state == ChargeState::kPayFail && tx.arrears) {
    if (auto s =
            append(txn, *clock_, ledger::Kind::kArrearsCleared, tx, "SUCCESS", "provider", "{}");
        !s) {
      return std::unexpected(s.error());
    }
  }
  const bool money_moved = to == ChargeState::kAccepted || to == ChargeState::kSuccess;
  if (money_moved && !tx.refund_due && (tx.fell_back() || tx.state == ChargeState::kVoid)) {
    // Invariant 5: the driver was sent to pay another way (or the charge was given up), and
    // the provider takes the money after all.
    if (auto s = store_->set_refund_due(txn, tx.out_trade_no); !s) {
      return std::unexpected(s.error());
    }
    if (auto s = append(txn, *clock_, ledger::Kind::kCorrection, tx, to_string(to), "system",
                        json::serialize(json::object{{"refund_due", true},
                                                     {"decision", decision_text(tx.decision)},
                                                     {"from", to_string(tx.state)}}));
        !s) {
      return std::unexpected(s.error());
    }
    metrics::Registry::global()
        .counter("lanegate_charges_after_fallback_total",
                 "Charges that reached the provider although the passage fell back or the charge "
                 "was void (refund due)")
        .inc();
    log::warn("a charge succeeded after its passage fell back: refund due",
              {{"OUT_TRADE_NO", tx.out_trade_no},
               {"LANE", tx.lane},
               {"AMOUNT", tx.amount.to_string()},
               {"FROM", std::string(to_string(tx.state))}});
  }
  return true;
}

Result<bool> ChargeBook::move_committed(std::string_view out_trade_no, ChargeState to,
                                        std::string_view provider_txn_id, std::string_view actor,
                                        std::string detail_json) {
  auto txn = store_->db().begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  auto tx = store_->find_transaction(out_trade_no);
  if (!tx) {
    return std::unexpected(tx.error());
  }
  if (!*tx) {
    return fail(Errc::kNotFound, "no transaction " + std::string(out_trade_no), "out_trade_no");
  }
  auto moved = move(*txn, **tx, to, provider_txn_id, actor, std::move(detail_json));
  if (!moved) {
    return moved;
  }
  if (auto s = txn->commit(); !s) {
    return std::unexpected(s.error());
  }
  return *moved;
}

Result<Applied> ChargeBook::apply_answer(Transaction& txn, const TxRecord& tx,
                                         const ProviderTransaction& answer, AnswerSource source,
                                         std::string_view event_id) {
  if (auto same = same_money(tx, answer, ids_); !same) {
    mismatch_counter(source, same.error().field).inc();
    metrics::Registry::global()
        .gauge("lanegate_provider_money_mismatch_alarm",
               "1 once a provider answer about other money was seen (operator review)")
        .set(1);
    log::error("provider answer is about other money: not applied",
               {{"OUT_TRADE_NO", tx.out_trade_no},
                {"SOURCE", std::string(to_string(source))},
                {"FIELD", same.error().field},
                {"ERROR", same.error().message}});
    return Applied::kMismatch;
  }
  const ChargeState to = charge_state_of(answer.state);
  if (tx.state == to) {
    return Applied::kUnchanged;
  }
  if (to == ChargeState::kRefund && tx.state != ChargeState::kSuccess &&
      allowed_transition(tx.state, ChargeState::kSuccess)) {
    // Invariant 8: the money must be known taken before it can be known returned.
    metrics::Registry::global()
        .counter("lanegate_provider_answers_not_yet_applicable_total",
                 "Provider answers the charge's lifecycle cannot take yet (applied when resent)",
                 {{"source", std::string(to_string(source))}})
        .inc();
    log::notice("provider answer arrived before the charge could take it; it must come again",
                {{"OUT_TRADE_NO", tx.out_trade_no},
                 {"RECORDED", std::string(to_string(tx.state))},
                 {"ANSWER", std::string(to_string(to))}});
    return Applied::kNotYet;
  }
  json::object detail{{"source", to_string(source)}};
  if (!answer.transaction_id.empty()) {
    detail["transaction_id"] = answer.transaction_id;
  }
  if (!answer.bank_type.empty()) {
    detail["bank_type"] = answer.bank_type;
  }
  if (!event_id.empty()) {
    detail["event_id"] = event_id;
  }
  auto moved = move(txn, tx, to, answer.transaction_id, "provider", json::serialize(detail));
  if (!moved) {
    return std::unexpected(moved.error());
  }
  if (*moved) {
    return Applied::kMoved;
  }
  if (to == ChargeState::kAccepted) {
    return Applied::kUnchanged;  // a late ACCEPTED after the outcome is only stale
  }
  metrics::Registry::global()
      .counter("lanegate_provider_answers_conflicting_total",
               "Provider answers contradicting the recorded charge (not applied)",
               {{"source", std::string(to_string(source))}})
      .inc();
  log::error("provider answer contradicts the recorded charge; not applied",
             {{"OUT_TRADE_NO", tx.out_trade_no},
              {"SOURCE", std::string(to_string(source))},
              {"RECORDED", std::string(to_string(tx.state))},
              {"ANSWER", std::string(to_string(to))}});
  return Applied::kConflict;
}

}  // namespace lanegate::gateway
