#pragma once
// One payment-code reader serial port ([[reader]]): one thread reading code lines and
// posting PaymentCode events. Private to lane/. See drivers.h for the invariants and
// lane/payment_code.h for the line and code rules.

#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "lane/drivers.h"
#include "lane/events.h"
#include "lane/payment_code.h"
#include "serial_line.h"

namespace lanegate::lane {

class ReaderPort {
 public:
  ReaderPort(const config::SerialPortSection& port, std::string lane, EventSink& sink,
             const Clock& clock, DriverOptions options);
  ~ReaderPort();

  const std::string& id() const { return port_.id; }
  void start();
  void stop();

 private:
  void handle_line(const ReaderLineSplitter::Line& line);
  void count(std::string_view result);
  // Clears the last code once its repeat window has passed.
  void forget_expired_code();

  config::SerialPortSection port_;
  std::string lane_;
  EventSink& sink_;
  const Clock& clock_;
  DriverOptions options_;
  ReaderLineSplitter splitter_;
  // Readers fire again while a code stays in view (or send a line twice): the same code
  // within kRepeatWindow is one read. The last code is held in memory for that window
  // only, then cleared (a code is never stored).
  std::string last_code_;
  SteadyTime last_code_at_{};

  SerialLineLoop loop_;  // last: its thread stops before the members its callbacks use go
};

}  // namespace lanegate::lane
