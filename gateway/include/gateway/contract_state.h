#pragma once
// What the provider says of an ETC deduction contract -- a VEHICLE.USER_STATE_CHANGE
// notification or a contract query -- into the gateway's contract table and the plate
// binding cache that the toll lane reads (spec "ETC highway deduction"):
//
//   bind_state == [provider.etc] bound_state  -> binding NORMAL (charges and offline passes)
//   any other bind_state                      -> binding BLOCKED, the contract is not charged
//                                                (the lane falls back), alarm
//   statement about another merchant          -> nothing applied, alarm (a "fake
//                                                notification" in the provider's words)
//
// The bind_state value set is *unconfirmed* in the spec: only equality with the
// operator-configured bound value counts, nothing is guessed from the text.
//
// Invariants:
//  1. Only the contract row and the cache move: no transaction, session or ledger record.
//  2. An older statement never overwrites a newer one, in the contract table and in the
//     cache (gateway/binding.h invariants 2 and 3; a blocking state beats a NORMAL of
//     about the same age). A statement's time is the notification's create_time, or the
//     moment a query answered.
//  3. The writes go into the caller's transaction (the notification handler's dedup
//     transaction, or the contract check's own), so the statement and its effects commit
//     together.
//
// The cache is keyed by plate, shared with parking: a paused ETC contract also stops
// offline parking passes for that plate until a bound state is learned again.
//
// Threading: whoever owns `txn`'s Database.

#include <string>
#include <string_view>

#include "config/config.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/sqlite.h"
#include "gateway/provider.h"
#include "gateway/provider_notify.h"
#include "gateway/store.h"

namespace lanegate::gateway {

// What a statement is checked against: this box's merchant and the bound value.
struct ContractRules {
  std::string bound_state;
  std::string mchid;      // the service provider (sp_mchid)
  std::string sub_mchid;  // the special merchant served
};
ContractRules contract_rules(const config::ProviderSection& provider);

struct ContractStatement {
  std::string contract_id;
  std::string plate_number;
  std::string bind_state;
  std::string sp_mchid;
  std::string sub_mchid;   // empty when not given
  SystemTime stated_at{};  // notification create_time, or when the query answered
  std::string source;      // "notification" | "query"
};
ContractStatement statement_of(const ContractStateEvent& event);
ContractStatement statement_of(const EtcContract& contract, SystemTime answered_at);

enum class ContractApplied {
  kBound,         // the contract may be charged
  kNotBound,      // charges and offline passes stop (alarm)
  kOlder,         // an older statement than the one held: nothing changed
  kOtherMerchant  // about another merchant: nothing applied (alarm)
};

// REQUIRES: txn active on store.db().
[[nodiscard]] Result<ContractApplied> apply_contract_state(Transaction& txn, Store& store,
                                                           const ContractStatement& statement,
                                                           const ContractRules& rules);

// True when the contract may be charged by what is known: never heard of (the provider
// decides), or its last bind_state is the bound value.
bool contract_chargeable(const Store::EtcContractRow& row, const ContractRules& rules);

}  // namespace lanegate::gateway
