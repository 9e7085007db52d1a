// Red-letter confirmation forms: the code tables (red_letter.h) and the ClaimStore's form
// rows (table invoice_red_confirm, invoice schema step 4).
#include "invoice/red_letter.h"

#include <array>

#include "core/log.h"
#include "core/metrics.h"
#include "core/time_format.h"
#include "invoice/claims.h"

namespace lanegate::invoice {

namespace {

// The reasons, each with its code in both numberings, written out: the platform's and the
// bureau's numberings differ (R5), so neither is derived from the other.
struct ReasonRow {
  RedLetterReason reason;
  std::string_view name, nuonuo, bureau, label;
};
constexpr std::array<ReasonRow, 4> kReasons = {{
    {RedLetterReason::kReturned, "returned", "1", "02", "销货退回"},
    {RedLetterReason::kInvoicingError, "invoicing_error", "2", "01", "开票有误"},
    {RedLetterReason::kServiceStopped, "service_stopped", "3", "03", "服务中止"},
    {RedLetterReason::kDiscount, "discount", "4", "04", "销售折让"},
}};

const ReasonRow& row_of(RedLetterReason reason) {
  for (const ReasonRow& r : kReasons) {
    if (r.reason == reason) return r;
  }
  return kReasons.front();
}

}  // namespace

std::string_view to_string(RedLetterReason reason) { return row_of(reason).name; }
std::string_view nuonuo_red_reason(RedLetterReason reason) { return row_of(reason).nuonuo; }
std::string_view bureau_red_reason(RedLetterReason reason) { return row_of(reason).bureau; }
std::string_view red_reason_label(RedLetterReason reason) { return row_of(reason).label; }

Result<RedLetterReason> parse_red_reason(std::string_view name) {
  for (const ReasonRow& r : kReasons) {
    if (r.name == name) return r.reason;
  }
  return fail(Errc::kInvalidArgument,
              "reason must be returned, invoicing_error, service_stopped or discount (got '" +
                  std::string(name) + "')",
              "reason");
}

Result<RedLetterReason> red_reason_from_nuonuo(int code) {
  for (const ReasonRow& r : kReasons) {
    if (r.nuonuo == std::to_string(code)) return r.reason;
  }
  return fail(Errc::kInternal, "stored red reason " + std::to_string(code) + " is not 1..4",
              "red_reason");
}

namespace {

constexpr std::array<std::pair<RedConfirmState, std::string_view>, 9> kStateNames = {{
    {RedConfirmState::kNew, "new"},
    {RedConfirmState::kApplying, "applying"},
    {RedConfirmState::kApplied, "applied"},
    {RedConfirmState::kAwaitingBuyer, "awaiting_buyer"},
    {RedConfirmState::kAwaitingSeller, "awaiting_seller"},
    {RedConfirmState::kConfirmed, "confirmed"},
    {RedConfirmState::kUsed, "used"},
    {RedConfirmState::kVoid, "void"},
    {RedConfirmState::kRefused, "refused"},
}};

// Tax-bureau states 01-10 (spec) and Nuonuo's own 15/16 (its queryInvoiceRedConfirm doc).
constexpr std::array<std::pair<std::string_view, std::string_view>, 12> kBillStatus = {{
    {"01", "无需确认"},
    {"02", "销方录入待购方确认"},
    {"03", "购方录入待销方确认"},
    {"04", "购销双方已确认"},
    {"05", "作废（销方录入购方否认）"},
    {"06", "作废（购方录入销方否认）"},
    {"07", "作废（超72小时未确认）"},
    {"08", "作废（发起方已撤销）"},
    {"09", "作废（确认后撤销）"},
    {"10", "作废（异常凭证）"},
    {"15", "申请中"},
    {"16", "申请失败"},
}};

metrics::Counter& red_void_counter(std::string_view bill_status) {
  return metrics::Registry::global().counter(
      "lanegate_invoice_red_confirm_void_total",
      "Red-letter confirmation forms that ended void or refused (the blue invoice stays issued)",
      {{"bill_status", std::string(bill_status)}});
}

constexpr std::string_view kFormColumns =
    "id, red_invoice_id, attempt, bill_id, red_reason, state, bill_status, bill_no, bill_uuid, "
    "message, apply_sent_at, applied_at, created_at, updated_at";

Result<RedConfirmation> read_form(Statement& st) {
  RedConfirmation f;
  f.id = st.column_int64(0);
  f.red_invoice_id = st.column_int64(1);
  f.attempt = static_cast<int>(st.column_int64(2));
  f.bill_id = st.column_text(3);
  auto reason = red_reason_from_nuonuo(static_cast<int>(st.column_int64(4)));
  auto state = parse_red_confirm_state(st.column_text(5));
  if (!reason || !state) {
    return std::unexpected(reason ? state.error() : reason.error());
  }
  f.reason = *reason;
  f.state = *state;
  f.bill_status = st.column_text(6);
  f.bill_no = st.column_text(7);
  f.bill_uuid = st.column_text(8);
  f.message = st.column_text(9);
  if (auto t = st.column_opt_int64(10)) f.apply_sent_at = from_unix_seconds(*t);
  if (auto t = st.column_opt_int64(11)) f.applied_at = from_unix_seconds(*t);
  f.created_at = from_unix_seconds(st.column_int64(12));
  f.updated_at = from_unix_seconds(st.column_int64(13));
  return f;
}

bool is_live(RedConfirmState s) { return s != RedConfirmState::kVoid && s != RedConfirmState::kRefused; }

}  // namespace

std::string_view to_string(RedConfirmState state) {
  for (const auto& [s, name] : kStateNames) {
    if (s == state) return name;
  }
  return "new";
}

Result<RedConfirmState> parse_red_confirm_state(std::string_view text) {
  for (const auto& [s, name] : kStateNames) {
    if (name == text) return s;
  }
  return fail(Errc::kInternal, "unknown red-letter form state '" + std::string(text) + "'", "state");
}

std::string_view bill_status_label(std::string_view code) {
  for (const auto& [c, label] : kBillStatus) {
    if (c == code) return label;
  }
  return "";
}

Result<RedConfirmState> red_confirm_state_from_bill_status(std::string_view code) {
  if (code == "01" || code == "04") return RedConfirmState::kConfirmed;
  if (code == "02") return RedConfirmState::kAwaitingBuyer;
  if (code == "03") return RedConfirmState::kAwaitingSeller;
  if (code == "15") return RedConfirmState::kApplied;
  if (code == "16") return RedConfirmState::kRefused;
  for (std::string_view v : {"05", "06", "07", "08", "09", "10"}) {
    if (code == v) return RedConfirmState::kVoid;
  }
  return fail(Errc::kProtocol,
              "the platform reports red-letter form status '" + std::string(code) +
                  "', which the spec does not list; nothing was changed",
              "bill_status");
}

// --- ClaimStore: the form rows -------------------------------------------------------

Status ClaimStore::insert_red_confirm(std::int64_t red_id, int attempt, std::string_view bill_id,
                                      RedLetterReason reason) {
  const std::int64_t now = clock_.unix_seconds();
  auto st = db_.prepare(
      "INSERT INTO invoice_red_confirm(red_invoice_id, attempt, bill_id, red_reason, "
      "nuonuo_reason, bureau_reason, state, created_at, updated_at) "
      "VALUES (?, ?, ?, ?, ?, ?, 'new', ?, ?)");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind_all(red_id, attempt, bill_id, static_cast<int>(reason), nuonuo_red_reason(reason),
               bureau_red_reason(reason), now, now);
  return st->run();
}

Result<std::optional<std::int64_t>> ClaimStore::red_letter_of(std::int64_t blue_id) {
  return document_linked_to("original_id", blue_id);
}

Result<std::vector<RedConfirmation>> ClaimStore::red_confirmations(std::int64_t red_id) {
  auto st = db_.prepare("SELECT " + std::string(kFormColumns) +
                        " FROM invoice_red_confirm WHERE red_invoice_id = ? ORDER BY attempt");
  if (!st) {
    return std::unexpected(st.error());
  }
  st->bind(1, red_id);
  std::vector<RedConfirmation> out;
  while (true) {
    auto row = st->step();
    if (!row) {
      return std::unexpected(row.error());
    }
    if (!*row) {
      break;
    }
    auto f = read_form(*st);
    if (!f) {
      return std::unexpected(f.error());
    }
    out.push_back(std::move(*f));
  }
  return out;
}

Result<RedConfirmation> ClaimStore::red_confirmation(std::int64_t red_id) {
  auto forms = red_confirmations(red_id);
  if (!forms) {
    return std::unexpected(forms.error());
  }
  if (!forms->empty() && is_live(forms->back().state)) {
    return forms->back();
  }
  auto red = get_invoice(red_id);
  if (!red) {
    return std::unexpected(red.error());
  }
  if (red->kind != InvoiceKind::kRed) {
    return fail(Errc::kInvalidArgument, "invoice " + std::to_string(red_id) + " is not a red letter",
                "invoice_id");
  }
  if (!forms->empty()) {
    return fail(Errc::kRejected,
                "the last red-letter form of invoice " + std::to_string(red_id) + " is " +
                    std::string(to_string(forms->back().state)) + "; retry the invoice for a new one",
                "state");
  }
  // A red invoice created before forms existed (or a crash between the two rows, which
  // one transaction rules out): its first form, billId = the red order number.
  auto reason = red_reason_from_nuonuo(red->red_reason);
  if (!reason) {
    return std::unexpected(reason.error());
  }
  if (auto s = insert_red_confirm(red_id, 1, red->order_no, *reason); !s) {
    return std::unexpected(s.error());
  }
  return red_confirmation(red_id);
}

Status ClaimStore::update_red_confirm(std::int64_t form_id, RedConfirmState from,
                                      RedConfirmState to, std::string_view set_sql,
                                      std::span<const std::string> args) {
  auto changed =
      update_state("invoice_red_confirm", form_id, to_string(from), to_string(to), set_sql, args);
  if (!changed) {
    return std::unexpected(changed.error());
  }
  if (!*changed) {
    return fail(Errc::kRejected,
                "red-letter form " + std::to_string(form_id) + " is no longer " +
                    std::string(to_string(from)),
                "state");
  }
  return {};
}

Status ClaimStore::mark_red_apply_sent(const RedConfirmation& form) {
  const std::array<std::string, 1> args = {std::to_string(clock_.unix_seconds())};
  return update_red_confirm(form.id, RedConfirmState::kNew, RedConfirmState::kApplying,
                            "apply_sent_at = ?", args);
}

Status ClaimStore::note_red_confirm(const RedConfirmation& form, RedConfirmState to,
                                    const RedConfirmView& view) {
  if (to == RedConfirmState::kVoid || to == RedConfirmState::kRefused ||
      to == RedConfirmState::kUsed) {
    return fail(Errc::kInvalidArgument, "use close_red_confirm / mark_red_confirm_used", "state");
  }
  const std::string applied =
      form.applied_at ? std::to_string(to_unix_seconds(*form.applied_at))
                      : std::to_string(clock_.unix_seconds());
  const std::array<std::string, 5> args = {view.bill_status, view.bill_no.empty() ? form.bill_no : view.bill_no,
                                           view.bill_uuid.empty() ? form.bill_uuid : view.bill_uuid,
                                           view.message, applied};
  auto s = update_red_confirm(form.id, form.state, to,
                              "bill_status = ?, bill_no = ?, bill_uuid = ?, message = ?, applied_at = ?",
                              args);
  if (s && form.state != to) {
    log::info("red-letter form moved",
              {{"INVOICE_ID", form.red_invoice_id},
               {"BILL_ID", form.bill_id},
               {"FROM", std::string(to_string(form.state))},
               {"TO", std::string(to_string(to))},
               {"BILL_STATUS", view.bill_status}});
  }
  return s;
}

Status ClaimStore::close_red_confirm(const RedConfirmation& form, RedConfirmState to,
                                     std::string_view bill_status, std::string message) {
  if (to != RedConfirmState::kVoid && to != RedConfirmState::kRefused) {
    return fail(Errc::kInvalidArgument, "a form closes void or refused", "state");
  }
  auto txn = db_.begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  const std::array<std::string, 2> args = {std::string(bill_status), message};
  if (auto s = update_red_confirm(form.id, form.state, to, "bill_status = ?, message = ?", args); !s) {
    return s;
  }
  const std::string label(bill_status_label(bill_status));
  const std::string reason = "红字确认单 " + (bill_status.empty() ? std::string("refused") : std::string(bill_status)) +
                             (label.empty() ? "" : " " + label) + (message.empty() ? "" : ": " + message) +
                             "; the blue invoice stays issued";
  const std::array<std::string, 1> fargs = {reason};
  if (auto s = transition(form.red_invoice_id, InvoiceState::kClaimed, InvoiceState::kFailed,
                          "fail_reason = ?", fargs);
      !s) {
    return s;
  }
  if (auto s = txn->commit(); !s) {
    return s;
  }
  red_void_counter(bill_status.empty() ? "refused" : bill_status).inc();
  metrics::Registry::global()
      .counter("lanegate_invoice_failed_total", "Invoices the platform refused or failed")
      .inc();
  // R3: an alarm, not a silent stop: the driver's refund is not reflected on an invoice.
  log::error("red-letter form ended without a red invoice; the blue invoice stays issued",
             {{"INVOICE_ID", form.red_invoice_id},
              {"BILL_ID", form.bill_id},
              {"BILL_STATUS", std::string(bill_status)},
              {"REASON", reason}});
  return {};
}

Status ClaimStore::mark_red_confirm_used(const RedConfirmation& form, std::string_view serial_num) {
  auto txn = db_.begin();
  if (!txn) {
    return std::unexpected(txn.error());
  }
  if (auto s = update_red_confirm(form.id, RedConfirmState::kConfirmed, RedConfirmState::kUsed, "", {});
      !s) {
    return s;
  }
  const std::array<std::string, 1> args = {std::string(serial_num)};
  if (auto s = transition(form.red_invoice_id, InvoiceState::kClaimed, InvoiceState::kIssuing,
                          "serial_num = ?", args);
      !s) {
    return s;
  }
  return txn->commit();
}

}  // namespace lanegate::invoice
