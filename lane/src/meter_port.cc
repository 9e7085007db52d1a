#include "meter_port.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "core/log.h"

namespace lanegate::lane {
namespace {

std::string cmd_hex(std::uint16_t cmd) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04X", cmd);
  return buf;
}

}  // namespace

MeterPort::MeterPort(const config::SerialPortSection& port, std::string lane, EventSink& sink,
                     const Clock& clock, DriverOptions options)
    : port_(port),
      lane_(std::move(lane)),
      sink_(sink),
      clock_(clock),
      options_(options),
      loop_(port, "meters", "meter", "METER", options.meter_partial_frame_ms,
            SerialLineLoop::Callbacks{
                .before_poll = [this] { before_poll(); },
                .on_bytes = [this](std::span<const std::uint8_t> bytes) { handle_bytes(bytes); },
                .on_quiet =
                    [this] {
                      // Line quiet: a partial frame will never complete (truncated).
                      if (auto fault = decoder_.flush_partial()) {
                        count(fault_name(fault->fault));
                        log::warn("meter frame truncated",
                                  {{"METER", port_.id}, {"BYTES", static_cast<int>(fault->bytes_dropped)}});
                      }
                    },
                .on_reset =
                    [this] {
                      decoder_.flush_partial();
                      // A reopened port may be another meter (or the same one rebooted):
                      // ask for its status again and forget the record in flight.
                      next_status_query_.reset();
                      in_flight_.reset();
                    },
            }) {}

MeterPort::~MeterPort() { stop(); }

void MeterPort::start() { loop_.start(); }

void MeterPort::stop() { loop_.stop(); }

void MeterPort::ack(std::uint32_t trip_number, const CivilTime& boarding) {
  {
    std::lock_guard lock(mu_);
    pending_acks_.emplace_back(trip_number, boarding);
  }
  loop_.wake();
}

void MeterPort::before_poll() {
  std::deque<TripKey> acks;
  {
    std::lock_guard lock(mu_);
    acks.swap(pending_acks_);
  }
  for (const auto& key : acks) {
    remember(key, TripState::kAcked);
    if (in_flight_ == key) {
      write_ack(in_flight_cmd_, true);
    } else {
      // The ack names no trip, so it must not answer whatever the meter sent since:
      // the trip's next retransmission is answered instead (TripState::kAcked).
      log::debug("meter trip acknowledged while not in flight; answering its next retransmission",
                 {{"METER", port_.id}, {"TRIP", static_cast<std::int64_t>(key.first)}});
    }
  }
  const SteadyTime now = clock_.steady_now();
  if (!next_status_query_ || now >= *next_status_query_) {
    // The query proves the link: a meter that answers is there, and its device state
    // says whether it can still store trips.
    const auto query =
        make_status_query(meter_time_at(clock_.unix_seconds(), options_.utc_offset_minutes));
    count(write_frame(query) ? "query_sent" : "query_failed");
    next_status_query_ = now + std::chrono::seconds(options_.meter_status_interval_s);
  }
}

void MeterPort::count(std::string_view result) {
  metrics::Registry::global()
      .counter("lanegate_meter_frames_total", "Meter frames by result",
               {{"meter", port_.id}, {"result", std::string(result)}})
      .inc();
}

void MeterPort::remember(const TripKey& key, TripState st) {
  auto [it, inserted] = trips_.insert_or_assign(key, Remembered{st, clock_.steady_now()});
  if (inserted) {
    trip_order_.push_back(key);
    if (trip_order_.size() > kMaxRemembered) {
      trips_.erase(trip_order_.front());
      trip_order_.pop_front();
    }
  }
}

void MeterPort::handle_bytes(std::span<const std::uint8_t> bytes) {
  decoder_.feed(bytes);
  while (auto item = decoder_.next()) {
    if (auto* fault = std::get_if<FrameFaultReport>(&*item)) {
      count(fault_name(fault->fault));
      log::debug("meter bytes dropped", {{"METER", port_.id},
                                         {"REASON", fault_name(fault->fault)},
                                         {"BYTES", static_cast<int>(fault->bytes_dropped)}});
      continue;
    }
    handle_frame(std::get<MeterFrame>(*item));
  }
}

void MeterPort::handle_frame(const MeterFrame& f) {
  if (!from_meter(f)) {
    count("ignored");
    return;
  }
  switch (f.cmd) {
    case kCmdTripRecord:
    case kCmdStoredTrip:
      handle_trip_record(f);
      return;
    case kCmdTripStarted:
      handle_trip_started(f);
      return;
    case kCmdStatus:
      handle_status(f);
      return;
    case kCmdFareParameters:
      // Read-only for the gateway: the fares are the meter's business (0x0005 is never
      // sent).
      count("fare_parameters");
      log::debug("meter fare parameters", {{"METER", port_.id},
                                           {"BYTES", static_cast<std::int64_t>(f.body.size())}});
      return;
    default:
      count("ignored");
      return;
  }
}

void MeterPort::reject_body(const MeterFrame& f, const Error& error, bool answer) {
  count("bad_record");
  if (!logged_bad_bodies_.contains(f.body)) {
    if (logged_bad_bodies_.size() >= kMaxLoggedBadBodies) {
      logged_bad_bodies_.clear();
    }
    logged_bad_bodies_.insert(f.body);
    log::error("meter frame rejected",
               {{"METER", port_.id}, {"CMD", cmd_hex(f.cmd)}, {"ERROR", error.to_string()}});
  }
  if (answer) {
    write_ack(f.cmd, false);
  }
}

void MeterPort::handle_trip_record(const MeterFrame& f) {
  auto trip = decode_trip_record(f.body);
  if (!trip) {
    // Valid XOR, impossible record: 0xFF tells the meter so (spec); it keeps the record,
    // and an operator sees the error and the counter.
    in_flight_.reset();
    reject_body(f, trip.error(), true);
    return;
  }
  const TripKey key{trip->trip_number, trip->boarding};
  in_flight_ = key;
  in_flight_cmd_ = f.cmd;
  if (auto it = trips_.find(key); it != trips_.end()) {
    const bool unrecorded = it->second.state == TripState::kPosted && !options_.ack_trips_on_receive &&
                            clock_.steady_now() - it->second.posted_at >= kRepostAfter;
    if (!unrecorded) {
      count("duplicate");
      if (it->second.state == TripState::kAcked || options_.ack_trips_on_receive) {
        write_ack(f.cmd, true);  // our ack was lost: say it again
      }
      return;
    }
    count("reposted");
    log::warn("meter trip never acknowledged by the gateway; posting the retransmission again",
              {{"METER", port_.id}, {"TRIP", static_cast<std::int64_t>(trip->trip_number)}});
  } else {
    count("ok");
  }
  remember(key, TripState::kPosted);
  trip->meter = port_.id;
  trip->lane = lane_;
  trip->received_at = clock_.now();
  log::info("meter trip record", {{"METER", port_.id},
                                  {"CMD", cmd_hex(f.cmd)},
                                  {"TRIP", static_cast<std::int64_t>(trip->trip_number)},
                                  {"FARE", trip->fare.to_string()}});
  sink_.post(std::move(*trip));
  if (options_.ack_trips_on_receive) {
    remember(key, TripState::kAcked);
    write_ack(f.cmd, true);
  }
}

void MeterPort::handle_trip_started(const MeterFrame& f) {
  auto at = decode_meter_time(f.body, "occupied_at");
  if (!at) {
    reject_body(f, at.error(), true);
    return;
  }
  // Nothing to store: the event only ends the previous trip's payment window, so the
  // ack goes out at once rather than after a commit.
  write_ack(f.cmd, true);
  if (last_trip_start_ == *at) {
    count("duplicate");
    return;
  }
  last_trip_start_ = *at;
  count("trip_started");
  TripStarted ev;
  ev.meter = port_.id;
  ev.lane = lane_;
  ev.occupied_at = at->civil;
  ev.received_at = clock_.now();
  log::info("meter trip started", {{"METER", port_.id}, {"AT", at->civil.to_string()}});
  sink_.post(std::move(ev));
}

void MeterPort::handle_status(const MeterFrame& f) {
  auto st = decode_meter_status(f.body);
  if (!st) {
    // A reply, not a request: nothing to answer.
    reject_body(f, st.error(), false);
    return;
  }
  count("status");
  metrics::Registry::global()
      .gauge("lanegate_meter_device_state",
             "Device state of the meter's last status reply (0 ok; 1 count-limited, 2 "
             "date-limited, 4 trip store full, 8 sign-in store full, else fault)",
             {{"meter", port_.id}})
      .set(st->device_state);
  if (last_device_state_ < 0) {
    // The licence and qualification numbers identify the driver: not logged.
    log::info("meter status", {{"METER", port_.id},
                               {"VENDOR", st->vendor},
                               {"DEVICE_TYPE", st->device_type},
                               {"SERIAL", st->serial},
                               {"VERSION", std::to_string(st->hw_version) + "/" +
                                               std::to_string(st->sw_major) + "." +
                                               std::to_string(st->sw_minor)},
                               {"WORK_STATE", work_state_meaning(st->work_state)},
                               {"TRIPS", static_cast<std::int64_t>(st->trip_count)}});
  }
  if (st->device_state != last_device_state_) {
    if (st->device_state != 0) {
      log::warn("meter reports a device problem",
                {{"METER", port_.id},
                 {"STATE", static_cast<int>(st->device_state)},
                 {"MEANING", device_state_meaning(st->device_state)}});
    } else if (last_device_state_ > 0) {
      log::notice("meter device state ok again", {{"METER", port_.id}});
    }
    last_device_state_ = st->device_state;
  }
}

void MeterPort::write_ack(std::uint16_t cmd, bool ok) {
  const bool written = write_frame(make_ack(cmd, ok));
  count(!written ? "ack_failed" : ok ? "ack_sent" : "nak_sent");
}

bool MeterPort::write_frame(const MeterFrame& f) {
  const int fd = loop_.fd();
  if (fd < 0) {
    return false;
  }
  const auto bytes = encode_meter_frame(f);
  size_t off = 0;
  int spins = 0;
  while (off < bytes.size() && spins < 100) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EINTR) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 10);
      ++spins;
    } else {
      break;
    }
  }
  return off == bytes.size();
}

}  // namespace lanegate::lane
