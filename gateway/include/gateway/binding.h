#pragma once
// What the gateway knows about whether an account may pay without asking: the plate
// binding cache that the offline rule reads (gateway/decision.h). One enum, one text form
// for the database, and one mapping per provider vocabulary that feeds it:
//
//   plate service state   (find_plate_service)          NORMAL | PAUSE | OUT_SERVICE
//   parking entry reply   (create_parking_entry)        state NORMAL | BLOCKED + block_reason
//   entrance notification (VEHICLE.ENTRANCE_STATE_CHANGE) parking_state + blocked_state_description
//   ETC contract bind_state (VEHICLE.USER_STATE_CHANGE, contract query): the configured
//                         bound value -> NORMAL, anything else -> BLOCKED (gateway/contract_state.h)
//   rider account         (the outcome of a rider charge) accepted -> NORMAL, refused -> BLOCKED
//
// Every value a vocabulary does not name as payable maps to a blocking state: unknown is
// never payable offline.
//
// Invariants (Store::put_binding enforces 2 and 3):
//  1. Only kNormal lets an offline pass through.
//  2. A stamp from the future is not trusted: it is stored as "now" (a clock that was
//     ahead, or a peer's clock, must not keep a binding fresh forever).
//  3. Newest wins, except that a blocking state always replaces a cached NORMAL whose stamp
//     is less than kBlockingWinsWithin newer: a late PAUSE or BLOCKED of about the same age
//     is the safe answer (the driver pays online or at the attendant), a late NORMAL is not.

#include <chrono>
#include <optional>
#include <string_view>

#include "core/error.h"

namespace lanegate::gateway {

enum class BindingState { kNormal, kPause, kOutService, kBlocked };

// Database and API text: "NORMAL" | "PAUSE" | "OUT_SERVICE" | "BLOCKED".
std::string_view to_string(BindingState s);
[[nodiscard]] Result<BindingState> parse_binding_state(std::string_view text);
// True for every state but kNormal.
inline bool blocks(BindingState s) { return s != BindingState::kNormal; }

inline constexpr std::chrono::minutes kBlockingWinsWithin{10};

// The provider vocabularies (see above).
BindingState binding_from_service_state(std::string_view service_state);
BindingState binding_from_parking_entry(std::string_view state,
                                        const std::optional<std::string>& block_reason);
BindingState binding_from_entrance_state(std::string_view parking_state,
                                         const std::optional<std::string>& blocked_description);

}  // namespace lanegate::gateway
