// ETC contract statements into the contract table and the binding cache
// (gateway/contract_state.h).
#include "gateway/contract_state.h"

#include <string>

#include "core/log.h"
#include "core/metrics.h"

namespace lanegate::gateway {

ContractRules contract_rules(const config::ProviderSection& p) {
  return ContractRules{p.etc.bound_state, p.caller_mchid(), p.sub_mchid};
}

ContractStatement statement_of(const ContractStateEvent& e) {
  return ContractStatement{e.contract_id, e.plate_number, e.bind_state, e.sp_mchid,
                           e.sub_mchid,   e.stated_at,    "notification"};
}

ContractStatement statement_of(const EtcContract& c, SystemTime answered_at) {
  return ContractStatement{c.contract_id, c.plate_number,    c.bind_state, c.merchant_id,
                           c.sub_merchant_id, answered_at, "query"};
}

bool contract_chargeable(const Store::EtcContractRow& row, const ContractRules& rules) {
  return row.bind_state.empty() || row.bind_state == rules.bound_state;
}

Result<ContractApplied> apply_contract_state(Transaction& txn, Store& store, const ContractStatement& s,
                                             const ContractRules& rules) {
  if (s.contract_id.empty() || s.plate_number.empty() || s.bind_state.empty()) {
    return fail(Errc::kInvalidArgument, "contract statement lacks contract_id, plate_number or bind_state",
                "bind_state");
  }
  auto& registry = metrics::Registry::global();
  if (s.sp_mchid != rules.mchid || (!s.sub_mchid.empty() && s.sub_mchid != rules.sub_mchid)) {
    registry
        .counter("lanegate_etc_contract_other_merchant_total",
                 "ETC contract statements about another merchant, not applied (alarm)")
        .inc();
    log::error("ETC contract statement names another merchant: not applied",
               {{"CONTRACT", s.contract_id}, {"SP_MCHID", s.sp_mchid}, {"SUB_MCHID", s.sub_mchid},
                {"SOURCE", s.source}});
    return ContractApplied::kOtherMerchant;
  }
  auto current = store.put_contract_state(txn, s.contract_id, s.plate_number, s.bind_state, s.stated_at, s.source);
  if (!current) return std::unexpected(current.error());
  if (!*current) {
    log::info("older ETC contract statement kept out", {{"CONTRACT", s.contract_id}, {"SOURCE", s.source}});
    return ContractApplied::kOlder;
  }
  const bool bound = !rules.bound_state.empty() && s.bind_state == rules.bound_state;
  const BindingState binding = bound ? BindingState::kNormal : BindingState::kBlocked;
  if (auto st = store.put_binding(txn, s.plate_number, binding, s.stated_at); !st) {
    return std::unexpected(st.error());
  }
  registry
      .counter("lanegate_contract_state_changes_total", "ETC contract statements applied to the binding cache",
               {{"state", std::string(to_string(binding))}})
      .inc();
  if (!bound) {
    registry
        .counter("lanegate_etc_contract_not_bound_total",
                 "ETC contracts whose bind_state is not the bound value: no charge, no offline pass (alarm)")
        .inc();
    log::warn("ETC contract not bound: charges and offline passes stop for it",
              {{"CONTRACT", s.contract_id},
               {"PLATE", log::mask_plate(s.plate_number)},
               {"BIND_STATE", s.bind_state.substr(0, 32)},
               {"SOURCE", s.source}});
    return ContractApplied::kNotBound;
  }
  log::notice("ETC contract bound", {{"CONTRACT", s.contract_id},
                                     {"PLATE", log::mask_plate(s.plate_number)},
                                     {"SOURCE", s.source}});
  return ContractApplied::kBound;
}

}  // namespace lanegate::gateway
