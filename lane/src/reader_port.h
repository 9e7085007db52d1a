#pragma once
// One rider-code reader serial port ([[reader]]): one thread reading token lines and
// posting RiderToken events. Private to lane/. See drivers.h for the invariants and
// lane/rider_token.h for the line and token rules.

#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "lane/drivers.h"
#include "lane/events.h"
#include "lane/rider_token.h"
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

  config::SerialPortSection port_;
  std::string lane_;
  EventSink& sink_;
  const Clock& clock_;
  DriverOptions options_;
  ReaderLineSplitter splitter_;
  // Readers fire again while a code stays in view: the same token within
  // kRepeatWindow is one read.
  std::string last_token_;
  SteadyTime last_token_at_{};

  SerialLineLoop loop_;  // last: its thread stops before the members its callbacks use go
};

}  // namespace lanegate::lane
