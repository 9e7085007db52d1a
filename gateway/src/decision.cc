#include "gateway/decision.h"

namespace lanegate::gateway {

std::string_view to_string(DecisionKind kind) {
  switch (kind) {
    case DecisionKind::kFree: return "free";
    case DecisionKind::kPassOnline: return "pass_online";
    case DecisionKind::kPassOffline: return "pass_offline";
    case DecisionKind::kFallback: return "fallback";
  }
  return "?";
}

Decision decide(const DecisionInput& in, const config::OfflineLimits& limits) {
  if (in.fee.is_zero()) {
    return {DecisionKind::kFree, "free"};
  }
  switch (in.online) {
    case OnlineOutcome::kAccepted: return {DecisionKind::kPassOnline, "accepted"};
    case OnlineOutcome::kRefused: return {DecisionKind::kFallback, "refused"};
    case OnlineOutcome::kNotTried:
    case OnlineOutcome::kNoAnswer: break;
  }
  if (!in.queue_accepting) {
    return {DecisionKind::kFallback, "queue_full"};
  }
  if (!in.binding) {
    return {DecisionKind::kFallback, "no_binding"};
  }
  if (in.binding->state != BindingState::kNormal) {
    return {DecisionKind::kFallback, "binding_not_normal"};
  }
  if (in.binding->refreshed_at > in.now) {
    // A stamp from the future would stay "fresh" forever: not trusted.
    return {DecisionKind::kFallback, "binding_from_future"};
  }
  if (in.now - in.binding->refreshed_at > std::chrono::seconds(limits.binding_max_age_s)) {
    return {DecisionKind::kFallback, "binding_stale"};
  }
  if (in.fee > limits.per_transaction) {
    return {DecisionKind::kFallback, "over_transaction_limit"};
  }
  if (!in.exposure_known) {
    return {DecisionKind::kFallback, "exposure_unknown"};
  }
  // Overflow in these sums means "far beyond any limit".
  auto plate_total = in.plate_outstanding.add(in.fee);
  if (!plate_total || *plate_total > limits.per_plate_outstanding) {
    return {DecisionKind::kFallback, "over_plate_limit"};
  }
  auto site_total = in.site_exposure.add(in.fee);
  if (!site_total || *site_total > limits.site_exposure) {
    return {DecisionKind::kFallback, "over_site_limit"};
  }
  return {DecisionKind::kPassOffline, "offline_within_limits"};
}

}  // namespace lanegate::gateway
