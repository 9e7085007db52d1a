#pragma once
// The demo scenario: the simulated world around a real lanegated.
//
// Starts the provider sandbox and the lane devices in this process, starts `lanegated`
// as a child process on the same configuration, then plays traffic: vehicles entering
// and leaving the parking lot, vehicles at the toll exit, taxi trips. In the middle the
// uplink is cut (the sandbox refuses connections) and restored. Afterwards it waits for
// the gateway's outbox to drain and for every charge to settle, and accounts for every
// fen: each provider charge lanegate recorded must exist exactly once at the sandbox
// with the same amount and final state, and the sandbox must hold nothing else.
//
// With --kill N the gateway is SIGKILLed N times at random moments and restarted (the
// crash-recovery proof); the accounting must still balance.
//
// The configuration is a lanegate config (config/examples/demo.toml). The scenario
// rewrites its /tmp/lanegate-demo paths to --workdir and shifts every port by
// --port-offset, so several runs can share a machine.

#include <span>
#include <string>

namespace lanegate::sim {

// `lanegate-sim scenario --config FILE --bin-dir DIR [--workdir DIR] [--port-offset N]
//   [--vehicles N] [--trips N] [--kill N] [--seed N] [--no-outage] [--quiet]`
// Prints a progress line while running and a summary at the end. Exit code 0 when every
// fen is accounted for, 1 when not (the summary says what), 2 for usage errors.
int run_scenario(std::span<const std::string> args);

}  // namespace lanegate::sim
