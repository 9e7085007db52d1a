// The production database's migration list, composed from every module's schema steps.
//
// APPEND-ONLY: a step that has been released is never edited, removed or reordered.
// When a module adds a step to its own list, add {module, index} at the END of kPlan.
// tests/unit/schema checks that every module step appears exactly once.

#include <vector>

#include "core/ledger.h"
#include "audit/audit.h"
#include "gateway/daemon.h"
#include "gateway/provider_notify.h"
#include "gateway/store.h"
#include "invoice/claims.h"
#include "offline_queue/queue.h"

namespace lanegate::gateway {
namespace {

constexpr std::string_view kGatewayRunsV1 = R"sql(
CREATE TABLE gateway_runs (
  id          INTEGER PRIMARY KEY,
  started_at  INTEGER NOT NULL,      -- unix seconds
  version     TEXT NOT NULL,
  config_file TEXT NOT NULL
);
)sql";

std::span<const std::string_view> runs_steps() {
  static constexpr std::string_view kSteps[] = {kGatewayRunsV1};
  return kSteps;
}

struct PlanStep {
  SchemaModule module;
  std::size_t index;
};

constexpr PlanStep kPlan[] = {
    {SchemaModule::kRuns, 0},   {SchemaModule::kQueue, 0},   {SchemaModule::kLedger, 0},
    {SchemaModule::kProvider, 0}, {SchemaModule::kAudit, 0}, {SchemaModule::kGateway, 0},
    {SchemaModule::kInvoice, 0}, {SchemaModule::kGateway, 1}, {SchemaModule::kInvoice, 1},
    {SchemaModule::kGateway, 2}, {SchemaModule::kGateway, 3}, {SchemaModule::kGateway, 4},
    {SchemaModule::kGateway, 5}, {SchemaModule::kInvoice, 2}, {SchemaModule::kGateway, 6},
    {SchemaModule::kInvoice, 3}, {SchemaModule::kInvoice, 4},
};

}  // namespace

std::span<const std::string_view> module_schema_steps(SchemaModule m) {
  switch (m) {
    case SchemaModule::kRuns: return runs_steps();
    case SchemaModule::kQueue: return queue::schema_steps();
    case SchemaModule::kLedger: return ledger::ledger_schema_steps();
    case SchemaModule::kProvider: return provider_schema_steps();
    case SchemaModule::kAudit: return audit::audit_schema_steps();
    case SchemaModule::kGateway: return gateway_schema_steps();
    case SchemaModule::kInvoice: return invoice::invoice_schema_steps();
  }
  return {};
}

std::span<const std::pair<SchemaModule, std::size_t>> schema_plan() {
  static const std::vector<std::pair<SchemaModule, std::size_t>> plan = [] {
    std::vector<std::pair<SchemaModule, std::size_t>> v;
    for (const auto& s : kPlan) v.emplace_back(s.module, s.index);
    return v;
  }();
  return plan;
}

std::span<const std::string_view> database_schema() {
  static const std::vector<std::string_view> steps = [] {
    std::vector<std::string_view> v;
    for (const auto& [m, i] : schema_plan()) {
      const auto module_steps = module_schema_steps(m);
      // A plan entry beyond a module's list is a build error in spirit: crash early.
      if (i >= module_steps.size()) std::abort();
      v.push_back(module_steps[i]);
    }
    return v;
  }();
  return steps;
}

}  // namespace lanegate::gateway
