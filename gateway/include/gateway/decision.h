#pragma once
// The pass/charge decision for a vehicle at a paid lane (DESIGN.md, hot path step 3).
// Pure: every input is passed in, so each branch is unit-tested without devices or
// network.
//
//   fee == 0                                  -> kFree        (barrier opens)
//   online charge answered ACCEPTED           -> kPassOnline  (barrier opens)
//   online charge refused (PAY_FAIL, blocked,
//     permanent error)                        -> kFallback    (pay by QR / attendant)
//   uplink down, or no answer by the deadline -> offline rule:
//       cached binding NORMAL and fresh (its stamp neither older than binding_max_age_s
//       nor in the future), fee <= per-transaction limit, the plate's
//       outstanding offline amount + fee <= per-plate limit, site exposure + fee <=
//       site limit, and the outbox accepts items (not full)
//                                             -> kPassOffline (barrier opens; the charge
//                                                is sent when the uplink returns)
//       otherwise                             -> kFallback, with the first failed rule
//
// An operator's manual open is recorded separately (not a decision of this policy).

#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "core/clock.h"
#include "core/money.h"
#include "gateway/binding.h"

namespace lanegate::gateway {

enum class DecisionKind { kFree, kPassOnline, kPassOffline, kFallback };
std::string_view to_string(DecisionKind kind);

// What the gateway last learned about a plate's payment binding.
struct CachedBinding {
  BindingState state = BindingState::kNormal;
  SystemTime refreshed_at;
};

enum class OnlineOutcome {
  kNotTried,   // uplink known down: no request was made
  kAccepted,   // provider answered ACCEPTED (or SUCCESS)
  kRefused,    // provider answered with a definite refusal
  kNoAnswer,   // timeout, 5xx, connection failure: the charge state is unknown
};

struct DecisionInput {
  Money fee;
  OnlineOutcome online = OnlineOutcome::kNotTried;
  std::optional<CachedBinding> binding;
  Money plate_outstanding;   // offline-approved, not yet settled, for this plate
  Money site_exposure;       // offline-approved, not yet settled, whole site
  // False when the two sums above could not be read: an unknown exposure is not within
  // any limit, so no offline pass.
  bool exposure_known = true;
  bool queue_accepting = true;
  SystemTime now;
};

struct Decision {
  DecisionKind kind = DecisionKind::kFallback;
  // Machine-readable reason: "free", "accepted", "refused", "offline_within_limits",
  // "no_binding", "binding_not_normal", "binding_stale", "binding_from_future",
  // "over_transaction_limit", "exposure_unknown", "over_plate_limit", "over_site_limit",
  // "queue_full".
  std::string reason;
  bool opens_barrier() const { return kind != DecisionKind::kFallback; }
};

Decision decide(const DecisionInput& in, const config::OfflineLimits& limits);

}  // namespace lanegate::gateway
