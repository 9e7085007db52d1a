// The production migration plan (gateway/src/schema.cc) names every module's schema steps
// exactly once and in each module's own order: a step a module adds but the plan forgets
// would never run on a deployed box (a helper found the invoice module's step 1 missing).

#include <gtest/gtest.h>

#include <map>

#include "gateway/daemon.h"

namespace lanegate::gateway {
namespace {

TEST(SchemaPlan, EveryModuleStepRunsExactlyOnceInItsModulesOrder) {
  std::map<SchemaModule, std::size_t> next;
  for (const auto& [module, index] : schema_plan()) {
    EXPECT_EQ(index, next[module]) << "module " << static_cast<int>(module)
                                   << ": step out of order or twice";
    next[module] = index + 1;
  }
  for (auto m : kAllSchemaModules) {
    EXPECT_EQ(next[m], module_schema_steps(m).size())
        << "module " << static_cast<int>(m) << " has steps the plan never runs";
  }
  EXPECT_EQ(database_schema().size(), schema_plan().size());
}

}  // namespace
}  // namespace lanegate::gateway
