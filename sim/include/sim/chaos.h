#pragma once
// The chaos scenario (issue #9): the demo's world (ScenarioWorld) under steady traffic —
// vehicles on every lane, taxi trips, invoice claims — while a fault scheduler injects,
// at random and repeatedly, every fault an edge box meets:
//
//   kill           SIGKILL of lanegated, restarted at once (a crash, the watchdog)
//   uplink_down    the provider refuses connections (cable cut, carrier down)
//   provider_5xx   half the provider's answers are 500/503 before any processing
//   latency        every provider reply waits longer than the lane's charge deadline
//   lost_replies   the provider commits a charge, then drops the connection
//   notify_paused  the provider's result notifications stop arriving
//   device_silent  a lane camera stops answering Modbus
//   barrier_stuck  a barrier ignores open commands
//   disk_full      the database cannot grow (max_database_mb + SIGHUP, or a full tmpfs)
//   clock_jump     lanegated's wall clock jumps minutes forward or back (libfaketime)
//
// Scheduling: at most one fault per group runs at a time (provider: the six uplink
// faults; devices: silent and stuck; database: disk full), kill only when nothing else
// runs (its metrics reset). Kinds never injected yet are chosen first, so a short run
// still injects every kind. Each fault runs for a random time, then lanegated must have
// produced the operator's proof of it — a log line and a metric (table in chaos.cc) —
// before it is cleared, and must recover after it (recovery proofs in the same table).
//
// Under the same faults the traffic carries the pairing cases of issue 13:
//   toll    a roadside-unit record whose plate the camera missed (attendant), a plate whose
//           record is missing, and three vehicles back to back while the lane is still
//           deciding (TollCase in sim/scenario.h), in a fixed cycle on every toll slot;
//   taxi    a second meter and taxi lane (added to the config the world writes); every
//           other trip ends on both meters with one trip number and boarding minute.
//
// At the end every fault is cleared, the lot empties, the outbox drains, and the demo's
// accounting applies (every passage one transaction, every settled fen at the sandbox,
// nothing lost or duplicated, every claimed invoice issued, and each charge's contract or
// account and amount those of the vehicle or trip the world sent) plus the audit ledger
// must export and verify. A table prints each fault kind injected / survived and how often
// each toll and taxi case was driven; the exit code is non-zero on any violation, each
// named, and when a case was never driven.
//
// Threading: runs on the calling thread; ScenarioWorld's rules apply.

#include "sim/scenario.h"

namespace lanegate::sim {

// `lanegate-sim scenario --chaos ...` (see parse_scenario_options). REQUIRES: o.chaos.
// Returns 0 when every check held, 1 on any violation, 2 when the world did not start.
int run_chaos(const ScenarioOptions& o);

}  // namespace lanegate::sim
