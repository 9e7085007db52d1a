#include "meter_port.h"

#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/log.h"

namespace lanegate::lane {
namespace {

Result<speed_t> baud_constant(int baud, const std::string& field) {
  switch (baud) {
    case 1200:
      return B1200;
    case 2400:
      return B2400;
    case 4800:
      return B4800;
    case 9600:
      return B9600;
    case 19200:
      return B19200;
    case 38400:
      return B38400;
    case 57600:
      return B57600;
    case 115200:
      return B115200;
    case 230400:
      return B230400;
    default:
      return fail(Errc::kInvalidArgument, "baud " + std::to_string(baud) + " is not supported",
                  field);
  }
}

}  // namespace

Result<int> open_serial_port(const config::SerialPortSection& port, std::string_view section) {
  const std::string field = std::string(section) + "." + port.id;
  auto speed = baud_constant(port.baud, field + ".baud");
  if (!speed) {
    return std::unexpected(speed.error());
  }
  const int fd = ::open(port.device.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    return fail(Errc::kUnavailable, "open " + port.device + ": " + std::strerror(errno),
                field + ".device");
  }
  termios t{};
  if (tcgetattr(fd, &t) != 0) {
    const int e = errno;
    ::close(fd);
    return fail(Errc::kIo, "tcgetattr " + port.device + ": " + std::strerror(e), field + ".device");
  }
  cfmakeraw(&t);
  cfsetispeed(&t, *speed);
  cfsetospeed(&t, *speed);
  t.c_cflag |= CLOCAL | CREAD;
  t.c_cflag &= ~(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
  switch (port.data_bits) {
    case 7:
      t.c_cflag |= CS7;
      break;
    case 8:
      t.c_cflag |= CS8;
      break;
    default:
      ::close(fd);
      return fail(Errc::kInvalidArgument, "data_bits must be 7 or 8", field + ".data_bits");
  }
  switch (port.parity) {
    case 'N':
      break;
    case 'E':
      t.c_cflag |= PARENB;
      t.c_iflag |= INPCK;
      break;
    case 'O':
      t.c_cflag |= PARENB | PARODD;
      t.c_iflag |= INPCK;
      break;
    default:
      ::close(fd);
      return fail(Errc::kInvalidArgument, "parity must be N, E or O", field + ".parity");
  }
  if (port.stop_bits == 2) {
    t.c_cflag |= CSTOPB;
  } else if (port.stop_bits != 1) {
    ::close(fd);
    return fail(Errc::kInvalidArgument, "stop_bits must be 1 or 2", field + ".stop_bits");
  }
  t.c_cc[VMIN] = 0;
  t.c_cc[VTIME] = 0;
  if (tcsetattr(fd, TCSANOW, &t) != 0) {
    const int e = errno;
    ::close(fd);
    return fail(Errc::kIo, "tcsetattr " + port.device + ": " + std::strerror(e), field + ".device");
  }
  tcflush(fd, TCIOFLUSH);
  return fd;
}

MeterPort::MeterPort(const config::SerialPortSection& port, std::string lane, EventSink& sink,
                     const Clock& clock, DriverOptions options)
    : port_(port), lane_(std::move(lane)), sink_(sink), clock_(clock), options_(options) {
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    wake_[0] = wake_[1] = -1;
  }
}

MeterPort::~MeterPort() {
  stop();
  for (int fd : wake_) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

void MeterPort::start() {
  thread_ = std::thread([this] { run(); });
}

void MeterPort::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  if (wake_[1] >= 0) {
    [[maybe_unused]] auto n = ::write(wake_[1], "x", 1);
  }
  if (thread_.joinable()) {
    thread_.join();
  }
}

void MeterPort::ack(std::uint32_t trip_number, const CivilTime& boarding) {
  {
    std::lock_guard lock(mu_);
    pending_acks_.emplace_back(trip_number, boarding);
  }
  if (wake_[1] >= 0) {
    [[maybe_unused]] auto n = ::write(wake_[1], "a", 1);
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

void MeterPort::run() {
  int backoff_ms = 0;
  bool reported_down = false;
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) {
        break;
      }
    }
    if (fd_ < 0) {
      auto fd = open_serial_port(port_);
      if (!fd) {
        if (!reported_down) {
          log::warn("meter port unavailable, retrying",
                    {{"METER", port_.id}, {"ERROR", fd.error().to_string()}});
          reported_down = true;
        }
        backoff_ms = std::clamp(backoff_ms * 2, 100, 3000);
        pollfd w{wake_[0], POLLIN, 0};
        ::poll(&w, 1, backoff_ms);
        char buf[64];
        while (::read(wake_[0], buf, sizeof buf) > 0) {
        }
        continue;
      }
      fd_ = *fd;
      backoff_ms = 0;
      reported_down = false;
      log::info("meter port open", {{"METER", port_.id}, {"DEVICE", port_.device}});
    }
    // Acks requested by the gateway.
    std::deque<TripKey> acks;
    {
      std::lock_guard lock(mu_);
      acks.swap(pending_acks_);
    }
    for (const auto& key : acks) {
      remember(key, TripState::kAcked);
      write_ack(key.first);
    }
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    const int rc = ::poll(fds, 2, options_.meter_partial_frame_ms);
    if (rc < 0 && errno != EINTR) {
      break;
    }
    if (fds[1].revents & POLLIN) {
      char buf[64];
      while (::read(wake_[0], buf, sizeof buf) > 0) {
      }
    }
    if (rc == 0) {
      // Line quiet: a partial frame will never complete (truncated).
      if (auto fault = decoder_.flush_partial()) {
        count(fault_name(fault->fault));
        log::warn("meter frame truncated",
                  {{"METER", port_.id}, {"BYTES", static_cast<int>(fault->bytes_dropped)}});
      }
      continue;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      std::uint8_t buf[512];
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n > 0) {
        handle_bytes(std::span(buf, static_cast<size_t>(n)));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        log::warn("meter port closed, reopening", {{"METER", port_.id}});
        ::close(fd_);
        fd_ = -1;
        decoder_.flush_partial();
        // Avoid a hot loop on a hung-up pty.
        pollfd w{wake_[0], POLLIN, 0};
        ::poll(&w, 1, 100);
      }
    }
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
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
  if (fd_ < 0) {
    return;
  }
  const auto bytes = encode_meter_frame(make_trip_ack(trip_number));
  size_t off = 0;
  int spins = 0;
  while (off < bytes.size() && spins < 100) {
    const ssize_t n = ::write(fd_, bytes.data() + off, bytes.size() - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EINTR) {
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 10);
      ++spins;
    } else {
      break;
    }
  }
  count(off == bytes.size() ? "ack_sent" : "ack_failed");
}

}  // namespace lanegate::lane
