#pragma once
// The receiver of plate cameras that push over HTTP (spec lane-devices.md "ANPR cameras over
// HTTP"; [[device]] kind = "camera" with protocol vzenith | hikvision | dahua | generic).
//
//   POST /anpr/vzenith                    Vzenith plate results (JSON) and heartbeats (form)
//   POST /anpr/hikvision                  Hikvision ISAPI ANPR (multipart with anpr.xml, or XML)
//   POST /NotificationInfo/TollgateInfo   Dahua plate results      (field detail unconfirmed)
//   POST /NotificationInfo/KeepAlive      Dahua heartbeats
//   POST /anpr/events                     the generic adapter format
//
// served on the API listener, or on a dedicated plain-HTTP listener ([cameras] listen_*).
//
// One push, in order:
//  1. Who: the camera's push token, as `?token=` in the URL configured in the camera or as
//     the password of HTTP Basic (user = its serial), compared by SHA-256 in constant time
//     with the [[device]]'s token_sha256; when the device has an `address`, the connection
//     must come from it. Refused: 401 (lanegate_camera_pushes_total{result="unauthorized"}),
//     nothing stored. The identity the body states must be the device's `serial` (403).
//  2. Parse (lane/camera_push.h). Malformed: 400 naming the field and the rule, counted.
//  3. Images are handed to the evidence store (gateway/evidence.h): hashed, written in the
//     background; an image problem never delays or refuses the event.
//  4. Persist: the event is committed to camera_events before anything answers it;
//     (device, event id) is unique: a duplicate is answered as such and goes no further.
//  5. Classify: the plate rules (lane/plate.h), confidence and the repeat window; a read
//     that fails them, or the camera's "no plate", makes the lane's no-plate flow start
//     (site.h: the display, an event, an attendant). A record the camera stored while it
//     could not reach lanegate and resent (Vzenith isoffline, generic offline) is recorded
//     and never opens a barrier.
//  6. Answer: Vzenith waits (at most the device's reply_wait_ms) for the lane's decision and
//     answers "info":"ok" only when lanegate decided to open; every other vendor gets its
//     200 once the event is stored.
// Every push and heartbeat counts as heard: no push and no heartbeat for
// heartbeat_timeout_s makes the camera down; vehicles the loop saw with no read from the
// camera (site.h) make it degraded; the next read makes it up (lane/health.h: the same log
// line and metrics as Modbus devices).
//
// Threading: every member runs on the io thread.

#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <string_view>

#include "config/config.h"
#include "core/clock.h"
#include "gateway/evidence.h"
#include "gateway/http_api.h"
#include "gateway/store.h"
#include "lane/events.h"

namespace lanegate::gateway {

class CameraReceiver {
 public:
  // `sink` gets the PlateReads (the Site on the io thread); `evidence` may be null (images
  // are then not kept; their hashes still are). REQUIRES: all outlive the receiver.
  CameraReceiver(boost::asio::io_context& io, const config::Config& config, Store& store,
                 EvidenceStore* evidence, lane::EventSink& sink, const Clock& clock);
  ~CameraReceiver();
  CameraReceiver(const CameraReceiver&) = delete;
  CameraReceiver& operator=(const CameraReceiver&) = delete;

  // Mounts the vendor routes on `api` (before api.start()).
  void add_routes(HttpApi& api);
  // Starts the heartbeat watchdog.
  void start();
  void stop();
  void set_config(const config::Config& config);

  // Whether `device` is a camera that pushes (its health is kept here).
  bool owns(std::string_view device) const;
  std::optional<lane::Health> health(std::string_view device) const;
  // The site saw a vehicle leave the loop with no read from `device` (true), or a read
  // arrived (false).
  void vehicle_seen(std::string_view device, bool missed);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace lanegate::gateway
