#pragma once
// lanegate-sim regulator: a taxi regulator platform that takes JT/T 905 operation-data
// uploads (0x0B05) over TCP and answers each with the general reply 0x8001, so the
// gateway's RegulatorUplink, the demo and tests run the real protocol on one machine.
//
// Written from the spec (lane-devices.md "Uplink: JT/T 905 operation-data upload" and the
// 0x00E8 record table under "Taxi meter") independently of the gateway's codec, which sim/
// must not link: its own 7E framing, unescaping, XOR check, header, 0x0B05 body and
// embedded 0x00E8 body readers. A frame it refuses is answered with result 2 (message
// error) when its header can be read, and counted either way.
//
// Every accepted upload is recorded, duplicates included: a duplicate is a second upload of
// the same (ISU id, trip number, boarding time), which is what a terminal that lost a reply
// sends. Tests assert "delivered once, duplicates reported".
//
// Fault knobs (inject()) apply to the next N valid uploads, in this order of precedence:
//   close_connections  close the connection without a reply; the upload is not recorded
//   fail_replies       answer result 1 (failed); the upload is not recorded
//   drop_replies       record the upload, send no reply (the reply was "lost")
//   reply_delay        wait this long before every reply
//
// Threading: start() runs the server on its own thread; all public methods are thread-safe.

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"

namespace lanegate::sim {

struct RegulatorSandboxOptions {
  int port = 0;                // 0: any free port (127.0.0.1)
  bool print_uploads = false;  // one JSON line per upload on stdout (the CLI's view)
};

struct RegulatorFaults {
  int close_connections = 0;
  int fail_replies = 0;
  int drop_replies = 0;
  std::chrono::milliseconds reply_delay{0};
};

struct RegulatorUpload {
  std::string isu_id;        // 12 digits from the frame header
  std::uint16_t serial = 0;  // the frame's serial
  std::uint32_t trip_number = 0;
  std::int64_t fare_fen = 0;  // the meter record's fare (BCD 0.1 yuan) in fen
  std::string boarding;       // the meter record's boarding time, "YYYY-MM-DD hh:mm"
  std::string occupied_at;    // the occupied position's time, "YYYY-MM-DD hh:mm:ss"
  bool duplicate = false;     // an earlier upload had the same isu, trip number, boarding
};

class RegulatorSandbox {
 public:
  [[nodiscard]] static Result<std::unique_ptr<RegulatorSandbox>> start(
      RegulatorSandboxOptions options);
  ~RegulatorSandbox();  // stops the server, closes every connection
  RegulatorSandbox(const RegulatorSandbox&) = delete;
  RegulatorSandbox& operator=(const RegulatorSandbox&) = delete;

  int port() const;
  // Adds to the pending fault counts; sets the delay.
  void inject(const RegulatorFaults& faults);

  std::vector<RegulatorUpload> uploads() const;  // in arrival order, duplicates included
  int duplicates() const;
  int connections() const;  // TCP connections accepted so far
  int malformed() const;    // frames refused (answered result 2 when the header was readable)
  // The admin view: {"uploads":[...], "duplicates":N, "malformed":N}.
  std::string uploads_json() const;

 private:
  struct Impl;
  explicit RegulatorSandbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// `lanegate-sim regulator [--port N] [--drop-replies N] [--fail-replies N] [--close N]
// [--delay-ms N]`: prints "ready PORT", then one JSON line per upload, until SIGINT/SIGTERM.
int run_regulator_sandbox(std::span<const std::string> args);

}  // namespace lanegate::sim
