#pragma once
// `lanegate queue ...`: the operator's view of the outbox.
//
//   lanegate queue stats
//   lanegate queue list [--parked] [--topic T] [--limit N]
//   lanegate queue show ID
//   lanegate queue unpark ID
//   lanegate queue retry-now ID
//
// `args` are the words after "queue". Output is human-readable text on `out`; problems go to
// `err`. Exit codes: 0 done, 1 the action failed (no such item, wrong state, database error),
// 2 usage error. Times are printed in UTC.
//
// THREADING: runs on the calling thread with its own Database (the CLI process opens the
// gateway's database file; SQLite serialises it with the running daemon's writes).

#include <ostream>
#include <span>
#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "core/sqlite.h"

namespace lanegate::queue {

int queue_command(Database& db, const config::QueueLimits& limits,
                  std::span<const std::string> args, std::ostream& out, std::ostream& err);

// The same with an explicit clock (tests).
int queue_command(Database& db, const config::QueueLimits& limits,
                  std::span<const std::string> args, std::ostream& out, std::ostream& err,
                  const Clock& clock);

}  // namespace lanegate::queue
