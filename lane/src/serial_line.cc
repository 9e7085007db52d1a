#include "serial_line.h"

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

SerialLineLoop::SerialLineLoop(config::SerialPortSection port, std::string section, std::string noun,
                               std::string log_key, int quiet_ms, Callbacks callbacks)
    : port_(std::move(port)),
      section_(std::move(section)),
      noun_(std::move(noun)),
      log_key_(std::move(log_key)),
      quiet_ms_(quiet_ms),
      cb_(std::move(callbacks)) {
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    wake_[0] = wake_[1] = -1;
  }
}

SerialLineLoop::~SerialLineLoop() {
  stop();
  for (int fd : wake_) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

void SerialLineLoop::start() {
  thread_ = std::thread([this] { run(); });
}

void SerialLineLoop::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void SerialLineLoop::wake() {
  if (wake_[1] >= 0) {
    [[maybe_unused]] auto n = ::write(wake_[1], "x", 1);
  }
}

void SerialLineLoop::drain_wake() {
  char buf[64];
  while (::read(wake_[0], buf, sizeof buf) > 0) {
  }
}

void SerialLineLoop::pause(int ms) {
  pollfd w{wake_[0], POLLIN, 0};
  ::poll(&w, 1, ms);
  drain_wake();
}

void SerialLineLoop::run() {
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
      auto fd = open_serial_port(port_, section_);
      if (!fd) {
        if (!reported_down) {
          log::warn(noun_ + " port unavailable, retrying", {{log_key_, port_.id}, {"ERROR", fd.error().to_string()}});
          reported_down = true;
        }
        backoff_ms = std::clamp(backoff_ms * 2, 100, 3000);
        pause(backoff_ms);
        continue;
      }
      fd_ = *fd;
      backoff_ms = 0;
      reported_down = false;
      log::info(noun_ + " port open", {{log_key_, port_.id}, {"DEVICE", port_.device}});
    }
    if (cb_.before_poll) cb_.before_poll();
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    const int rc = ::poll(fds, 2, quiet_ms_);
    if (rc < 0 && errno != EINTR) {
      break;
    }
    if (fds[1].revents & POLLIN) {
      drain_wake();
    }
    if (rc == 0) {
      if (cb_.on_quiet) cb_.on_quiet();
      continue;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      std::uint8_t buf[512];
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n > 0) {
        if (cb_.on_bytes) cb_.on_bytes(std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        log::warn(noun_ + " port closed, reopening", {{log_key_, port_.id}});
        ::close(fd_);
        fd_ = -1;
        if (cb_.on_reset) cb_.on_reset();
        pause(100);  // no hot loop on a hung-up pty
      }
    }
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

}  // namespace lanegate::lane
