#pragma once
// The box side of the fleet upload (docs/FLEET.md, "Upload = the ledger"): the ledger is the
// upload queue, so an outbox item of topic `fleet.sync` carries nothing but the wish to catch
// up. Draining one, on a worker thread with its own SQLite connection:
//   1. GET /v1/head from lanegate-fleetd (mutual TLS, this box's certificate);
//   2. POST the records after the centre's head, batch_records at a time (gzip), until the
//      centre holds what the ledger held when the sync began (at most kMaxBatches per item;
//      the rest is the next attempt's, at once);
//   3. GET /v1/seals/latest and POST every day seal after it whose records the centre holds.
//
//   all caught up                                      ack
//   409 gap                                            resend from the head the centre gave
//   503 (Retry-After)                                  retry after what the centre said
//   unreachable, TLS failure, timeout                  retry with backoff (link down)
//   403 unknown box, 409 fork, 422 bad record          park + error log: an operator must look
//                                                      (the ledger keeps every record meanwhile)
//   a seal refused (422)                               logged and counted; records go on
// Counted in lanegate_fleet_uploads_total{result} and lanegate_fleet_records_sent_total;
// lanegate_fleet_centre_seq is the centre's last known head.
//
// Lifecycle: create -> sink()* -> stop() -> destroy. sink() on the io thread; the completion
// runs on the worker thread (the Drainer posts it to the io thread).

#include <chrono>
#include <memory>
#include <string_view>

#include "config/config.h"
#include "core/sqlite.h"
#include "offline_queue/drainer.h"
#include "offline_queue/queue.h"

namespace lanegate::gateway {

inline constexpr std::string_view kTopicFleetSync = "fleet.sync";

class FleetUplink {
 public:
  static constexpr int kMaxBatches = 20;
  static constexpr std::chrono::milliseconds kLinkDownRetry{5000};

  // `db` is this uplink's own connection to the state database (read only here).
  FleetUplink(const config::FleetSection& section, Database db);
  ~FleetUplink();
  FleetUplink(const FleetUplink&) = delete;
  FleetUplink& operator=(const FleetUplink&) = delete;

  static bool handles(std::string_view topic);
  void sink(const queue::Item& item, queue::Drainer::Completion done);
  void stop();

  // One sync, on the caller's thread (the worker's step; tests call it directly).
  queue::Outcome sync_once();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lanegate::gateway
