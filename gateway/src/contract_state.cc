// ETC contract state notifications into the binding cache (gateway/contract_state.h).
#include "gateway/contract_state.h"

#include <string>

#include "core/log.h"
#include "core/metrics.h"

namespace lanegate::gateway {

std::string_view binding_state_for_contract(std::string_view contract_state) {
  if (contract_state == "NORMAL" || contract_state == "PAUSE" || contract_state == "OUT_SERVICE") {
    return contract_state;
  }
  return "BLOCKED";
}

Status apply_contract_state(Transaction& txn, Store& store, const ContractStateEvent& e) {
  if (e.plate_number.empty()) {
    return fail(Errc::kInvalidArgument, "contract state without a plate", "plate_number");
  }
  const std::string_view binding = binding_state_for_contract(e.state);
  if (binding == "BLOCKED" && e.state != "BLOCKED") {
    log::warn("ETC contract state unknown to the gateway: treated as blocked",
              {{"CONTRACT", e.contract_id}, {"STATE", e.state}});
  }
  if (auto s = store.put_binding(txn, e.plate_number, binding, e.updated_at); !s) {
    return s;
  }
  metrics::Registry::global()
      .counter("lanegate_contract_state_changes_total",
               "ETC contract state notifications applied to the binding cache",
               {{"state", std::string(binding)}})
      .inc();
  log::notice("ETC contract state changed", {{"CONTRACT", e.contract_id},
                                             {"PLATE", log::mask_plate(e.plate_number)},
                                             {"STATE", std::string(binding)}});
  return {};
}

}  // namespace lanegate::gateway
