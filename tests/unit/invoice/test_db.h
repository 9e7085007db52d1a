#pragma once
// A migrated claims database in a per-test temp dir, removed afterwards.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/ledger.h"
#include "core/sqlite.h"
#include "invoice/claims.h"

namespace lanegate::invoice::testing {

// The claims tables and the audit ledger they append to (claims.h I9), composed the way
// the gateway composes its database.
inline std::span<const std::string_view> claims_schema() {
  static const std::vector<std::string_view> steps = [] {
    std::vector<std::string_view> v;
    for (auto s : ledger::ledger_schema_steps()) {
      v.push_back(s);
    }
    for (auto s : invoice_schema_steps()) {
      v.push_back(s);
    }
    return v;
  }();
  return steps;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "invoice-test-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed";
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline Database open_migrated(const std::filesystem::path& file) {
  auto db = Database::open(file);
  if (!db) {
    ADD_FAILURE() << db.error().to_string();
    std::abort();
  }
  auto m = db->migrate(claims_schema());
  if (!m) {
    ADD_FAILURE() << m.error().to_string();
    std::abort();
  }
  return std::move(*db);
}

inline config::InvoicingSection test_section() {
  config::InvoicingSection s;
  s.enabled = true;
  s.seller_name = "Lanegate Test Parking Co";
  s.seller_tax_id = "91350100M000100Y43";
  s.claim_window_days = 30;
  return s;
}

inline SettledTransaction trip(std::string id, std::string_view amount, const Clock& clock,
                               std::string account = "", std::string service = "taxi") {
  return SettledTransaction{std::move(id), std::move(account), std::move(service),
                            *Money::parse(amount), clock.now(), "test trip"};
}

inline Buyer company() {
  return Buyer{BuyerKind::kCompany, "Example Logistics Ltd", "91110000802100433B",
               "ap@example.cn", ""};
}

inline Buyer person() { return Buyer{BuyerKind::kPerson, "", "", "", "13800138000"}; }

}  // namespace lanegate::invoice::testing
