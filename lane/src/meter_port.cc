#include "meter_port.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include "core/log.h"

namespace lanegate::lane {
MeterPort::MeterPort(const config::SerialPortSection& port, std::string lane, EventSink& sink,
                     const Clock& clock, DriverOptions options)
    : port_(port),
      lane_(std::move(lane)),
      sink_(sink),
      clock_(clock),
      options_(options),
      loop_(port, "meters", "meter", "METER", options.meter_partial_frame_ms,
            SerialLineLoop::Callbacks{
                .before_poll = [this] { write_pending_acks(); },
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
                .on_reset = [this] { decoder_.flush_partial(); },
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

// Acks requested by the gateway. Loop thread, port open.
void MeterPort::write_pending_acks() {
  std::deque<TripKey> acks;
  {
    std::lock_guard lock(mu_);
    acks.swap(pending_acks_);
  }
  for (const auto& key : acks) {
    remember(key, TripState::kAcked);
    write_ack(key.first);
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
  if (f.cmd != kCmdTripRecord || f.device != kDeviceMeter) {
    count("ignored");
    return;
  }
  auto trip = decode_trip_record(f.body);
  if (!trip) {
    // A frame with a valid XOR but an impossible record: never acknowledge it, so the
    // meter keeps it; an operator sees the error and the counter.
    count("bad_record");
    if (f.body != last_bad_body_) {  // the meter retransmits it: log once, count always
      last_bad_body_ = f.body;
      log::error("meter trip record rejected",
                 {{"METER", port_.id}, {"ERROR", trip.error().to_string()}});
    }
    return;
  }
  const TripKey key{trip->trip_number, trip->boarding};
  if (auto it = trips_.find(key); it != trips_.end()) {
    const bool unrecorded = it->second.state == TripState::kPosted && !options_.ack_trips_on_receive &&
                            clock_.steady_now() - it->second.posted_at >= kRepostAfter;
    if (!unrecorded) {
      count("duplicate");
      if (it->second.state == TripState::kAcked || options_.ack_trips_on_receive) {
        write_ack(trip->trip_number);  // our ack was lost: say it again
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
                                  {"TRIP", static_cast<std::int64_t>(trip->trip_number)},
                                  {"FARE", trip->fare.to_string()}});
  const std::uint32_t number = trip->trip_number;
  sink_.post(std::move(*trip));
  if (options_.ack_trips_on_receive) {
    remember(key, TripState::kAcked);
    write_ack(number);
  }
}

void MeterPort::write_ack(std::uint32_t trip_number) {
  const int fd = loop_.fd();
  if (fd < 0) {
    return;
  }
  const auto bytes = encode_meter_frame(make_trip_ack(trip_number));
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
  count(off == bytes.size() ? "ack_sent" : "ack_failed");
}

}  // namespace lanegate::lane
