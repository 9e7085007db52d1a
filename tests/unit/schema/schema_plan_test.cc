// The production migration plan (gateway/src/schema.cc) names every module's schema steps
// exactly once and in each module's own order: a step a module adds but the plan forgets
// would never run on a deployed box (a helper found the invoice module's step 1 missing).

#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include "core/sqlite.h"
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

// Upgrading a box with unclaimed parking stays (issue 17): the claims made before the trip
// was kept get plate, entry and exit from their transaction, so they can still be invoiced
// as 06 leases; a stay without an entry keeps no period (it is refused, never invented),
// and claims of other services or already invoiced are left alone.
TEST(SchemaPlan, UpgradeGivesOpenParkingClaimsTheirStay) {
  std::string t = (std::filesystem::temp_directory_path() / "schema-upgrade-XXXXXX").string();
  ASSERT_NE(mkdtemp(t.data()), nullptr);
  const std::filesystem::path dir = t;
  {
    Database db = Database::open(dir / "gw.db").value();
    const auto all = database_schema();
    // The plan as released before issue 17: everything up to the invoice module's step 3.
    std::size_t before = 0;
    for (const auto& [module, index] : schema_plan()) {
      if (module == SchemaModule::kInvoice && index == 2) break;
      ++before;
    }
    ASSERT_LT(before, all.size());
    ASSERT_TRUE(db.migrate(all.first(before)));
    ASSERT_TRUE(db.exec(R"sql(
      INSERT INTO transactions(out_trade_no, kind, lane, plate, plate_colour, amount_fen, state,
        decision, decision_reason, offline, arrears, detail, created_at, updated_at)
      VALUES ('P-1', 'parking', 'exit-1', '粤B12345', 'BLUE', 900, 'success', 'open', '', 0, 0,
              '{"entry_time":"2026-11-22T23:50:00+08:00","exit_time":"2026-11-23T00:30:00+08:00"}', 0, 0),
             ('P-2', 'parking', 'exit-1', '粤B67890', 'BLUE', 900, 'success', 'open', '', 0, 0,
              '{"exit_time":"2026-11-23T00:30:00+08:00"}', 0, 0),
             ('T-1', 'taxi', 'cab', '', '', 1919, 'success', 'open', '', 0, 0, '{}', 0, 0);
      INSERT INTO invoice_claim(token, human_code, transaction_id, account_id, service, amount_fen,
        description, settled_at, expires_at, created_at)
      VALUES ('tok1', 'CODE0001', 'P-1', '', 'parking', 900, 'x', 0, 0, 0),
             ('tok2', 'CODE0002', 'P-2', '', 'parking', 900, 'x', 0, 0, 0),
             ('tok3', 'CODE0003', 'T-1', '', 'taxi', 1919, 'x', 0, 0, 0);
    )sql")) << "the fixture rows no longer fit the released schema";
    ASSERT_TRUE(db.migrate(all));
    auto st = db.prepare(
        "SELECT transaction_id, plate, period_start, period_end FROM invoice_claim ORDER BY token");
    ASSERT_TRUE(st);
    std::vector<std::tuple<std::string, std::string, std::optional<std::int64_t>,
                           std::optional<std::int64_t>>> rows;
    while (*st->step()) {
      rows.emplace_back(st->column_text(0), st->column_text(1), st->column_opt_int64(2),
                        st->column_opt_int64(3));
    }
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(std::get<1>(rows[0]), "粤B12345");
    EXPECT_EQ(std::get<2>(rows[0]), 1795362600);
    EXPECT_EQ(std::get<3>(rows[0]), 1795362600 + 40 * 60);
    EXPECT_EQ(std::get<2>(rows[1]), std::nullopt);  // no entry recorded: no period
    EXPECT_EQ(std::get<3>(rows[1]), 1795362600 + 40 * 60);
    EXPECT_EQ(std::get<1>(rows[2]), "");  // a taxi claim is untouched
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lanegate::gateway
