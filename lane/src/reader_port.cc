#include "reader_port.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/log.h"
#include "core/metrics.h"
#include "meter_port.h"  // open_serial_port

namespace lanegate::lane {
namespace {
constexpr auto kRepeatWindow = std::chrono::seconds(2);
}  // namespace

ReaderPort::ReaderPort(const config::SerialPortSection& port, std::string lane, EventSink& sink,
                       const Clock& clock, DriverOptions options)
    : port_(port), lane_(std::move(lane)), sink_(sink), clock_(clock), options_(options) {
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    wake_[0] = wake_[1] = -1;
  }
}

ReaderPort::~ReaderPort() {
  stop();
  for (int fd : wake_) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

void ReaderPort::start() {
  thread_ = std::thread([this] { run(); });
}

void ReaderPort::stop() {
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

void ReaderPort::count(std::string_view result) {
  metrics::Registry::global()
      .counter("lanegate_rider_tokens_total", "Rider code reader lines by result",
               {{"reader", port_.id}, {"result", std::string(result)}})
      .inc();
}

void ReaderPort::run() {
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
      auto fd = open_serial_port(port_, "readers");
      if (!fd) {
        if (!reported_down) {
          log::warn("rider reader port unavailable, retrying",
                    {{"READER", port_.id}, {"ERROR", fd.error().to_string()}});
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
      log::info("rider reader port open", {{"READER", port_.id}, {"DEVICE", port_.device}});
    }
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    const int rc = ::poll(fds, 2, options_.meter_partial_frame_ms * 10);
    if (rc < 0 && errno != EINTR) {
      break;
    }
    if (fds[1].revents & POLLIN) {
      char buf[64];
      while (::read(wake_[0], buf, sizeof buf) > 0) {
      }
    }
    if (rc == 0) {
      // A line without its end after a long quiet: the reader lost it (never a token).
      if (splitter_.partial_bytes() > 0) {
        count("truncated");
        splitter_.clear_partial();
      }
      continue;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      std::uint8_t buf[256];
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n > 0) {
        splitter_.feed(std::span(buf, static_cast<size_t>(n)));
        while (auto line = splitter_.next()) {
          handle_line(*line);
        }
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        log::warn("rider reader port closed, reopening", {{"READER", port_.id}});
        ::close(fd_);
        fd_ = -1;
        splitter_.clear_partial();
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

void ReaderPort::handle_line(const ReaderLineSplitter::Line& line) {
  if (line.overlong) {
    count("overlong_line");
    log::warn("rider reader line too long: dropped", {{"READER", port_.id}});
    return;
  }
  auto token = validate_rider_token(line.text);
  if (!token) {
    const std::string_view reason = rider_token_reject_reason(token.error());
    count(reason);
    // The token identifies an account: never logged, only its length.
    log::warn("rider token rejected", {{"READER", port_.id},
                                       {"REASON", std::string(reason)},
                                       {"LENGTH", static_cast<std::int64_t>(line.text.size())}});
    return;
  }
  const SteadyTime now = clock_.steady_now();
  if (*token == last_token_ && now - last_token_at_ < kRepeatWindow) {
    count("repeat");
    last_token_at_ = now;
    return;
  }
  last_token_ = *token;
  last_token_at_ = now;
  count("ok");
  RiderToken ev;
  ev.lane = lane_;
  ev.reader = port_.id;
  ev.token = std::move(*token);
  ev.received_at = clock_.now();
  ev.received_steady = now;
  sink_.post(std::move(ev));
}

}  // namespace lanegate::lane
