#pragma once
// lanegated's process shell: loads the configuration, opens (or creates) the database,
// runs the Asio io_context that owns all lane logic, talks to systemd (READY, STATUS,
// WATCHDOG) and handles signals:
//   SIGTERM, SIGINT  -> stop cleanly: the loop finishes the handler it is in, the
//                       database is closed, exit code 0.
//   SIGHUP           -> reload the configuration file. A new file that does not load
//                       is rejected with a log line naming every error; the old
//                       configuration stays in force.
// (SIGPIPE and the fatal signals are set up by process::install_signal_policy() in
// lanegated's main(), before the Daemon exists.)
//
// One lanegated per state directory: run() locks STATE_DIR/lanegated.lock after loading
// and checking the configuration (which reads no state) and before anything in the state
// directory is opened, created or written (database, device key). A second lanegated on
// the same directory exits 1 having changed nothing, naming the directory and the running
// daemon's pid. The lanegate CLI does not take the lock and keeps working beside it.
//
// Threading: run() is called once, from the main thread, and returns when stopped.
// Everything else happens on the io thread.

#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "config/config.h"
#include "core/error.h"
#include "core/process.h"
#include "core/sqlite.h"

namespace lanegate::gateway {

struct DaemonOptions {
  std::filesystem::path config_file = "/etc/lanegate/lanegate.toml";
};

// The production database's migrations, composed from every module's schema steps
// (gateway/src/schema.cc). Append-only: a released step is never edited or reordered.
std::span<const std::string_view> database_schema();

enum class SchemaModule { kRuns, kQueue, kLedger, kProvider, kAudit, kGateway, kInvoice };
inline constexpr SchemaModule kAllSchemaModules[] = {SchemaModule::kRuns,     SchemaModule::kQueue,
                                                     SchemaModule::kLedger,   SchemaModule::kProvider,
                                                     SchemaModule::kAudit,    SchemaModule::kGateway,
                                                     SchemaModule::kInvoice};
std::span<const std::string_view> module_schema_steps(SchemaModule module);
// The composition: (module, index into that module's steps), in migration order.
std::span<const std::pair<SchemaModule, std::size_t>> schema_plan();

// STATE_DIR/lanegated.lock: the file whose lock makes a lanegated the only one on its
// state directory.
std::filesystem::path state_lock_file(const std::filesystem::path& state_dir);

// Creates the state directory if needed and takes its lock without waiting. kBusy when
// another process holds it: the message names the directory and that process's pid.
// The lock lasts as long as the returned object (or the process).
[[nodiscard]] Result<process::ExclusiveFileLock> lock_state_directory(
    const std::filesystem::path& state_dir);

// Opens STATE_DIR/lanegate.db (creating the directory if needed) and migrates it. The
// database, -wal and -shm files are made owner-only (0600) if they were readable by
// group or others (logged).
// REQUIRES: in lanegated, the caller holds lock_state_directory() for this directory.
[[nodiscard]] Result<Database> open_state_database(const config::Config& cfg);

class Daemon {
 public:
  explicit Daemon(DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Loads config and database, then runs the loop until SIGTERM/SIGINT.
  // Returns the process exit code: 0 after a clean stop, 1 when start-up failed.
  int run();

  // How many times a SIGHUP reload was accepted / rejected (tests, status).
  int reloads_accepted() const;
  int reloads_rejected() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lanegate::gateway
