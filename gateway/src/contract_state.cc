// ETC contract state notifications into the binding cache (gateway/contract_state.h).
#include "gateway/contract_state.h"

#include <string>

#include "core/log.h"
#include "core/metrics.h"

namespace lanegate::gateway {

Status apply_contract_state(Transaction& txn, Store& store, const ContractStateEvent& e) {
  if (e.plate_number.empty()) {
    return fail(Errc::kInvalidArgument, "contract state without a plate", "plate_number");
  }
  const BindingState binding = binding_from_contract_state(e.state);
  if (binding == BindingState::kBlocked && e.state != "BLOCKED") {
    log::warn("ETC contract state unknown to the gateway: treated as blocked",
              {{"CONTRACT", e.contract_id}, {"STATE", e.state}});
  }
  if (auto s = store.put_binding(txn, e.plate_number, binding, e.updated_at); !s) {
    return s;
  }
  metrics::Registry::global()
      .counter("lanegate_contract_state_changes_total",
               "ETC contract state notifications applied to the binding cache",
               {{"state", std::string(to_string(binding))}})
      .inc();
  log::notice("ETC contract state changed", {{"CONTRACT", e.contract_id},
                                             {"PLATE", log::mask_plate(e.plate_number)},
                                             {"STATE", std::string(to_string(binding))}});
  return {};
}

}  // namespace lanegate::gateway
