#include "reader_port.h"

#include "core/log.h"
#include "core/metrics.h"

namespace lanegate::lane {
namespace {
constexpr auto kRepeatWindow = std::chrono::seconds(2);
}  // namespace

ReaderPort::ReaderPort(const config::SerialPortSection& port, std::string lane, EventSink& sink,
                       const Clock& clock, DriverOptions options)
    : port_(port),
      lane_(std::move(lane)),
      sink_(sink),
      clock_(clock),
      options_(options),
      loop_(port, "readers", "rider reader", "READER", options.meter_partial_frame_ms * 10,
            SerialLineLoop::Callbacks{
                .before_poll = {},
                .on_bytes =
                    [this](std::span<const std::uint8_t> bytes) {
                      splitter_.feed(bytes);
                      while (auto line = splitter_.next()) {
                        handle_line(*line);
                      }
                    },
                .on_quiet =
                    [this] {
                      // A line without its end after a long quiet: the reader lost it (never a token).
                      if (splitter_.partial_bytes() > 0) {
                        count("truncated");
                        splitter_.clear_partial();
                      }
                    },
                .on_reset = [this] { splitter_.clear_partial(); },
            }) {}

ReaderPort::~ReaderPort() { stop(); }

void ReaderPort::start() { loop_.start(); }

void ReaderPort::stop() { loop_.stop(); }

void ReaderPort::count(std::string_view result) {
  metrics::Registry::global()
      .counter("lanegate_rider_tokens_total", "Rider code reader lines by result",
               {{"reader", port_.id}, {"result", std::string(result)}})
      .inc();
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
  PaymentCode ev;
  ev.lane = lane_;
  ev.reader = port_.id;
  ev.code = std::move(*token);
  ev.received_at = clock_.now();
  ev.received_steady = now;
  sink_.post(std::move(ev));
}

}  // namespace lanegate::lane
