#pragma once
// Site's private parts, shared by the files that implement it: site.cc (events, the one
// decide-and-commit step, manual opens, status), site_parking.cc, site_toll.cc and
// site_taxi.cc (one file per lane mode). Not a public header: only gateway/src includes it.
//
// Threading: every member runs on the io thread.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "core/ledger.h"
#include "core/metrics.h"
#include "gateway/charge.h"
#include "gateway/screen.h"
#include "gateway/site.h"

namespace lanegate::gateway {

// The lane phases of site.h's diagram.
enum class LanePhase {
  kIdle,
  kDecided,           // decision committed, barrier command sent
  kOpened,            // barrier confirmed open
  kPassed,            // loop cleared or barrier closed
  kAlarm,             // barrier did not confirm
  kTripAwaitingPayment,  // taxi: a trip's fare may be paid by code or QR (site_taxi.cc)
};
std::string_view to_string(LanePhase p);

struct Site::Impl {
  // One vehicle's (or trip's) charge from the read to the decision: what the shared
  // decide-and-commit step needs, plus the mode's own writes and actions.
  struct Pending {
    std::string lane;
    ChargeOrder order;        // out_trade_no set once a charge may be recorded
    std::string binding_key;  // the binding-cache key the offline rule reads
    std::string payment_method = "provider";
    bool recorded = false;           // row + charge item committed before the decision
    bool learn_binding = false;      // an online answer updates the binding (rider accounts)
    bool passage = true;             // a barrier lane records a passage
    std::optional<Decision> preset;  // decided before the policy runs (over the ceiling...)
    std::optional<Store::Session> session;
    boost::json::object detail;  // tariff and entry data for the record
    SteadyTime started;          // when the read arrived
    // Inside the transaction that records the charge, before its row (a parking exit
    // without an entry opens the session the provider needs). May be empty.
    std::function<Status(Transaction&, ChargeOrder&)> before_record;
    // Inside the decision's transaction, after the charge rows (close the session, record
    // the trip as cash...). May be empty.
    std::function<Status(Transaction&, const Decision&)> in_commit;
    // After the commit: the display, the barrier, the meter's acknowledgement.
    std::function<void(const Decision&, std::int64_t passage_id)> after;
    // The commit failed: nothing was decided.
    std::function<void()> not_decided;
    // Evidence of the read (camera_receiver.h): recorded with the passage.
    std::int64_t camera_event = 0;
    std::vector<lane::ImageRef> images;
    std::string entered_by;  // an attendant typed the plate
    std::string entered_reason;
  };
  // A vehicle at a lane with no plate lanegate can charge (site.cc "no plate").
  struct NoPlate {
    std::string reason;  // no_plate | no_read | a plate rule's reason
    std::string device;
    std::int64_t camera_event = 0;
    std::vector<lane::ImageRef> images;
    SystemTime since;
  };

  // Toll-exit pairing (site_toll.cc): reads and records in arrival order.
  struct TimedPlate {
    lane::PlateRead read;
    SteadyTime at;
  };
  struct TimedRecord {
    lane::RoadsideRecord rec;
    SteadyTime at;
  };
  struct TollWork {
    lane::PlateRead read;
    std::optional<lane::RoadsideRecord> rec;  // nullopt: a plate without a record
  };

  // A taxi lane's open trip (site_taxi.cc). Orders are named by out_trade_no.
  struct TaxiTripState {
    std::string key;  // taxi_trip_key()
    lane::TripRecord record;
    Money fare;
    std::string paying;      // the code's order being confirmed, "" none
    std::string qr_pending;  // the Native order being created, "" none
    std::string qr_out;      // the Native order shown, "" none
    std::string qr_url;      // its code_url
    bool qr_failed = false;  // no QR could be made: the driver collects after qr_wait_s
  };

  // What a `pay` follow-up learned (step 0 query, 1 reverse, 2 close).
  struct FollowupAnswer {
    int step = 0;
    ProviderResult<Payment> query;
    ProviderResult<std::monostate> ended;
  };

  struct LaneState {
    config::LaneSection cfg;
    bool busy = false;
    std::deque<lane::PlateRead> waiting;  // parking exit: reads behind the current vehicle
    std::string last_plate;               // masked
    std::string last_decision;
    LanePhase phase = LanePhase::kIdle;
    std::int64_t passage_id = 0;
    std::uint64_t barrier_command = 0;
    // toll-exit
    std::deque<TimedPlate> toll_plates;
    std::deque<TimedRecord> toll_records;
    std::deque<TollWork> toll_work;
    std::unique_ptr<boost::asio::steady_timer> toll_timer;
    // taxi: the trip whose fare may still be paid electronically (site_taxi.cc)
    std::optional<TaxiTripState> trip;
    std::unique_ptr<boost::asio::steady_timer> trip_timer;
    // recent events an operator should see (bounded), newest last
    std::deque<boost::json::object> events;
    // no plate: the loop's vehicle, whether a read came for it, and what waits for an attendant
    bool present = false;
    bool read_seen = false;
    std::unique_ptr<boost::asio::steady_timer> no_plate_timer;
    std::optional<NoPlate> no_plate;
  };

  boost::asio::io_context& io;
  config::Config cfg;
  Store& store;
  queue::Outbox& outbox;
  const Clock& clock;
  LaneActuator& actuator;
  ChargeGate& gate;
  ChargeBook book;
  std::map<std::string, LaneState, std::less<>> lanes;
  bool attendant = false;
  ScreenBoard* screens = nullptr;
  ClaimLookup claim_lookup;
  // Push cameras' health hears of vehicles the loop saw (camera_receiver.h); may be empty.
  std::function<void(std::string_view device, bool missed)> camera_feedback;
  std::set<std::string> in_flight;  // taxi orders with a request on a worker right now
  std::map<std::string, SteadyTime> last_followup;  // taxi orders: when their last follow-up left
  std::unique_ptr<boost::asio::steady_timer> sweep_timer;  // taxi: OPEN trips no lane holds
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  Impl(boost::asio::io_context& i, const config::Config& c, Store& s, queue::Outbox& o,
       const Clock& cl, LaneActuator& a, ChargeGate& g);

  // ---- site.cc: shared ----
  UtcOffset offset() const { return UtcOffset{cfg.gateway.utc_offset_minutes}; }
  LaneState* lane_of(std::string_view id);
  void display(const LaneState& ls, const std::string& text);
  void set_attendant(bool on, const std::string& why);
  // Runs `work` in one transaction; a storage failure switches to attendant mode.
  Status commit(const std::function<Status(Transaction&)>& work);
  Status append_ledger(Transaction& txn, ledger::Kind kind, const std::string& lane,
                       const std::string& plate, const std::string& out_trade_no, Money amount,
                       std::string state, std::string actor, const boost::json::object& detail);
  void lane_event(LaneState& ls, std::string_view kind, boost::json::object detail);
  void on_event(const lane::LaneEvent& event);
  void handle(const lane::PlateRead& read);
  void handle(const lane::RoadsideRecord& rec);
  void handle(const lane::VehiclePresent& v);
  void handle(const lane::BarrierState& b);
  void handle(const lane::TripRecord& trip);
  void handle(const lane::PaymentCode& tok);
  void handle(const lane::TripStarted& started);
  void handle(const lane::DeviceHealth&) {}
  void handle(const lane::NoPlateRead& np);
  // A vehicle waits with no plate lanegate can charge: the display, an event, a metric.
  void no_plate(LaneState& ls, NoPlate np);
  // A read arrived for the lane's vehicle (valid or not): the no-plate timer stops.
  void read_arrived(LaneState& ls, std::string_view device);
  // A record the camera resent after being offline: recorded, never opens (camera_receiver.h).
  void resent_record(LaneState& ls, const lane::PlateRead& read);
  // Records a read's evidence on its passage (camera event, images, who typed it).
  Status passage_evidence(Transaction& txn, std::int64_t passage, std::int64_t camera_event,
                          const std::vector<lane::ImageRef>& images, const std::string& entered_by,
                          const std::string& entered_reason);
  Status enter_plate(std::string_view lane_id, std::string_view plate,
                     std::optional<lane::PlateColour> colour, std::string_view actor,
                     std::string_view reason);
  void passed(LaneState& ls);
  void open(LaneState& ls, std::int64_t passage_id);
  // The lane is free for its next vehicle.
  void next(LaneState& ls);

  // The one charge-and-decide path of every mode: a fee of zero is free; a fee above the
  // provider's ceiling goes to the attendant; online, the charge is recorded and sent and
  // the lane waits for the answer; otherwise the offline rule decides at once.
  void charge(LaneState& ls, std::shared_ptr<Pending> p);
  // Waits for the answer to a recorded charge, then decides.
  void await_recorded(LaneState& ls, std::shared_ptr<Pending> p);
  // Decides and commits the decision with everything it implies, then acts.
  void decide_and_commit(const std::string& lane_id, const std::shared_ptr<Pending>& p,
                         OnlineOutcome online, bool queue_full = false);
  // A barrier lane's refusal without a charge (no entry, unknown route...).
  void fallback_now(LaneState& ls, const lane::PlateRead& read, std::string_view reason, Money fee);
  // Sets a barrier lane's `after` (barrier_after) and `not_decided` (call the attendant,
  // next vehicle) on `p`.
  void barrier_actions(LaneState& ls, const lane::PlateRead& read, Pending& p);
  // What a barrier lane does after a decision.
  void barrier_after(LaneState& ls, const lane::PlateRead& read, const Decision& d, Money fee,
                     std::int64_t passage_id);

  Result<std::int64_t> manual_open(std::string_view lane_id, std::string_view actor,
                                   std::string_view reason);
  std::string lanes_json() const;

  // ---- site_parking.cc ----
  void parking_entry(LaneState& ls, const lane::PlateRead& read);
  void parking_exit(LaneState& ls, const lane::PlateRead& read);
  const config::ParkingTariff* find_parking_tariff(std::string_view id) const;

  // ---- site_toll.cc ----
  void toll_plate(LaneState& ls, const lane::PlateRead& read);
  void toll_record(LaneState& ls, const lane::RoadsideRecord& rec);
  void toll_pair(LaneState& ls);
  void toll_next(LaneState& ls);
  void toll_exit(LaneState& ls, const lane::PlateRead& read, const lane::RoadsideRecord& rsu);

  // ---- site_taxi.cc ----
  void taxi_trip(const lane::TripRecord& trip);
  void taxi_token(const lane::PaymentCode& tok);
  void taxi_started(const lane::TripStarted& started);
  void taxi_ack(const lane::TripRecord& trip);
  boost::json::object trip_detail(const lane::TripRecord& trip) const;
  Status insert_meter_paid(Transaction& txn, const std::string& lane_id, const Store::TaxiTrip& trip,
                           const std::string& out_trade_no, const std::string& reason);
  Result<bool> settle_at_meter(Transaction& txn, const Store::TaxiTrip& trip, const std::string& reason);
  Status enqueue_regulator(Transaction& txn, const std::string& lane_id, const lane::TripRecord& trip,
                           const Store::TaxiTrip& row);
  void arm_qr_timer(LaneState& ls, std::chrono::milliseconds after);
  void end_trip_at_meter(LaneState& ls, const std::string& reason,
                         ScreenView::Phase shown = ScreenView::Phase::kMeterPaid);
  std::string record_attempt(LaneState& ls, PayProduct product);
  void codepay_start(LaneState& ls, const std::string& code);
  void codepay_result(const std::string& out, const ProviderResult<Payment>& r);
  void native_start(LaneState& ls);
  void native_result(const std::string& out, const ProviderResult<std::string>& r);
  Status apply_payment(Transaction& txn, const Payment& p, AnswerSource source, bool* paid_trip);
  void settle_payment(const Payment& p, AnswerSource source);
  void after_payment(const std::string& out, bool paid_trip);
  void release_code_order(const std::string& out, const std::string& reason);
  void pay_item(const queue::Item& item, std::function<void(queue::Outcome)> done);
  void pay_followup_result(const std::string& out, PayProduct product, std::chrono::milliseconds age,
                           bool wanted, const FollowupAnswer& a, const std::function<void(queue::Outcome)>& done);
  void recover_trips();
  void sweep_trips(const std::string& reason);
  void schedule_sweep();
  void show(const std::string& lane_id, ScreenView view);
  void show_settled(const std::string& lane_id, ScreenView::Phase phase, Money fare, std::string method,
                    const std::string& out_trade_no);
  void show_trip(LaneState& ls, ScreenView::Phase phase, std::string reason = {});
};

std::int64_t unix_ms(SystemTime t);
metrics::Counter& decisions_counter(std::string_view lane, std::string_view decision);

}  // namespace lanegate::gateway
