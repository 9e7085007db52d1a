#pragma once
// A migrated claims database in a per-test temp dir, removed afterwards.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "core/clock.h"
#include "core/sqlite.h"
#include "invoice/claims.h"

namespace lanegate::invoice::testing {

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
  auto m = db->migrate(invoice_schema_steps());
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
