// Store: camera events and the evidence of passages (schema steps gateway/4 and 5 in store.cc).
#include "gateway/store.h"

namespace lanegate::gateway {
namespace {

std::int64_t to_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
SystemTime from_ms(std::int64_t ms) { return SystemTime(std::chrono::milliseconds(ms)); }

constexpr std::string_view kPassageColumns =
    "id, lane, plate, decision, reason, out_trade_no, state, latency_us, created_at, "
    "camera_event, images, entered_by, entered_reason";

Store::PassageRow passage_row(const Statement& st) {
  Store::PassageRow r;
  r.id = st.column_int64(0);
  r.lane = st.column_text(1);
  r.plate = st.column_text(2);
  r.decision = st.column_text(3);
  r.reason = st.column_text(4);
  r.out_trade_no = st.column_text(5);
  r.state = st.column_text(6);
  r.latency_us = st.column_int64(7);
  r.created_at = from_ms(st.column_int64(8));
  r.camera_event = st.column_opt_int64(9).value_or(0);
  r.images = st.column_text(10);
  r.entered_by = st.column_text(11);
  r.entered_reason = st.column_text(12);
  return r;
}

}  // namespace

Status Store::set_passage_evidence(Transaction& txn, std::int64_t passage,
                                   std::int64_t camera_event, std::string_view images_json,
                                   std::string_view entered_by, std::string_view entered_reason) {
  auto st = txn.db().prepare(
      "UPDATE passages SET camera_event = ?, images = ?, entered_by = ?, entered_reason = ? "
      "WHERE id = ?");
  if (!st) return std::unexpected(st.error());
  std::optional<std::int64_t> event;
  if (camera_event != 0) event = camera_event;
  st->bind_all(event, images_json, entered_by, entered_reason, passage);
  return st->run();
}

Result<std::optional<Store::PassageRow>> Store::find_passage(std::int64_t id) {
  auto st = db_->prepare("SELECT " + std::string(kPassageColumns) + " FROM passages WHERE id = ?");
  if (!st) return std::unexpected(st.error());
  st->bind_all(id);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<PassageRow>();
  return std::optional<PassageRow>(passage_row(*st));
}

Result<std::vector<Store::PassageRow>> Store::recent_passages(std::string_view lane, int limit) {
  auto st = db_->prepare("SELECT " + std::string(kPassageColumns) +
                         " FROM passages WHERE (?1 = '' OR lane = ?1) ORDER BY id DESC LIMIT ?2");
  if (!st) return std::unexpected(st.error());
  st->bind_all(lane, limit);
  std::vector<PassageRow> out;
  for (;;) {
    auto row = st->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    out.push_back(passage_row(*st));
  }
  return out;
}

Result<std::optional<std::int64_t>> Store::insert_camera_event(Transaction& txn,
                                                               const CameraEvent& e) {
  auto st = txn.db().prepare(
      "INSERT INTO camera_events(device, event_id, vendor, lane, received_at, capture_ms, plate, "
      "plate_raw, colour, confidence, offline, outcome, images) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?) "
      "ON CONFLICT(device, event_id) DO NOTHING");
  if (!st) return std::unexpected(st.error());
  st->bind_all(e.device, e.event_id, e.vendor, e.lane, to_ms(e.received_at), e.capture_ms,
               e.plate, e.plate_raw, e.colour, e.confidence, e.offline ? 1 : 0, e.outcome,
               e.images);
  if (auto r = st->run(); !r) return std::unexpected(r.error());
  if (txn.db().changes() == 0) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(txn.db().last_insert_rowid());
}

Result<std::optional<Store::CameraEvent>> Store::find_camera_event(std::int64_t id) {
  auto st = db_->prepare(
      "SELECT id, device, event_id, vendor, lane, received_at, capture_ms, plate, plate_raw, "
      "colour, confidence, offline, outcome, images FROM camera_events WHERE id = ?");
  if (!st) return std::unexpected(st.error());
  st->bind_all(id);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<CameraEvent>();
  CameraEvent e;
  e.id = st->column_int64(0);
  e.device = st->column_text(1);
  e.event_id = st->column_text(2);
  e.vendor = st->column_text(3);
  e.lane = st->column_text(4);
  e.received_at = from_ms(st->column_int64(5));
  e.capture_ms = st->column_opt_int64(6);
  e.plate = st->column_text(7);
  e.plate_raw = st->column_text(8);
  e.colour = st->column_text(9);
  e.confidence = static_cast<int>(st->column_int64(10));
  e.offline = st->column_int64(11) != 0;
  e.outcome = st->column_text(12);
  e.images = st->column_text(13);
  return std::optional<CameraEvent>(std::move(e));
}

}  // namespace lanegate::gateway
