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
      loop_(port, "readers", "code reader", "READER", options.meter_partial_frame_ms * 10,
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
                      // A line without its end after a long quiet: the reader lost it (never a code).
                      if (splitter_.partial_bytes() > 0) {
                        count("truncated");
                        splitter_.clear_partial();
                      }
                      forget_expired_code();
                    },
                .on_reset = [this] { splitter_.clear_partial(); },
            }) {}

ReaderPort::~ReaderPort() { stop(); }

void ReaderPort::start() { loop_.start(); }

void ReaderPort::stop() { loop_.stop(); }

void ReaderPort::count(std::string_view result) {
  metrics::Registry::global()
      .counter("lanegate_payment_codes_total", "Payment-code reader lines by result",
               {{"reader", port_.id}, {"result", std::string(result)}})
      .inc();
}

void ReaderPort::forget_expired_code() {
  if (!last_code_.empty() && clock_.steady_now() - last_code_at_ >= kRepeatWindow) {
    last_code_.assign(last_code_.size(), '\0');  // overwritten before it is released
    last_code_.clear();
  }
}

void ReaderPort::handle_line(const ReaderLineSplitter::Line& line) {
  if (line.overlong) {
    count("overlong_line");
    log::warn("code reader line too long: dropped", {{"READER", port_.id}});
    return;
  }
  auto code = validate_payment_code(line.text);
  if (!code) {
    const std::string_view reason = payment_code_reject_reason(code.error());
    count(reason);
    // The code pays: never logged, not even in part; only the reason and the length.
    log::warn("payment code rejected", {{"READER", port_.id},
                                        {"REASON", std::string(reason)},
                                        {"LENGTH", static_cast<std::int64_t>(line.text.size())}});
    return;
  }
  forget_expired_code();
  const SteadyTime now = clock_.steady_now();
  if (*code == last_code_) {
    count("repeat");
    last_code_at_ = now;
    return;
  }
  last_code_ = *code;
  last_code_at_ = now;
  count("ok");
  PaymentCode ev;
  ev.lane = lane_;
  ev.reader = port_.id;
  ev.code = std::move(*code);
  ev.received_at = clock_.now();
  ev.received_steady = now;
  sink_.post(std::move(ev));
}

}  // namespace lanegate::lane
