#pragma once
// ETC contract state from the provider (VEHICLE.USER_STATE_CHANGE) into the plate binding
// cache that the toll lane's offline rule reads (gateway/decision.h: an offline pass needs
// a fresh NORMAL binding for the plate).
//
//   NORMAL                 -> binding NORMAL       (offline passes allowed again)
//   PAUSE | OUT_SERVICE    -> binding PAUSE | OUT_SERVICE (offline pass falls back)
//   any other state        -> binding BLOCKED      (conservative: unknown is not payable)
//
// Invariants:
//  1. Only the cache moves: no transaction, session or ledger record is written.
//  2. An older notification never overwrites a newer binding, except that a blocking
//     state beats a NORMAL of about the same age (gateway/binding.h invariants 2 and 3;
//     the event's state_update_time is the binding's time, never later than now).
//  3. The write goes into the caller's transaction (the notification handler's dedup
//     transaction), so the event row and the cache change commit together.
//
// The cache is keyed by plate, shared with parking: a paused ETC contract also stops
// offline parking passes for that plate until a NORMAL state is learned again.
//
// Threading: whoever owns `txn`'s Database (the notification handler's thread).

#include <string_view>

#include "core/error.h"
#include "core/sqlite.h"
#include "gateway/provider_notify.h"
#include "gateway/store.h"

namespace lanegate::gateway {

// REQUIRES: txn active on store.db(); e came from a verified, new notification.
[[nodiscard]] Status apply_contract_state(Transaction& txn, Store& store,
                                          const ContractStateEvent& e);

}  // namespace lanegate::gateway
