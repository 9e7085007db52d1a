#include "gateway/binding.h"

#include <string>

namespace lanegate::gateway {

std::string_view to_string(BindingState s) {
  switch (s) {
    case BindingState::kNormal:
      return "NORMAL";
    case BindingState::kPause:
      return "PAUSE";
    case BindingState::kOutService:
      return "OUT_SERVICE";
    case BindingState::kBlocked:
      return "BLOCKED";
  }
  return "BLOCKED";
}

Result<BindingState> parse_binding_state(std::string_view text) {
  for (auto s : {BindingState::kNormal, BindingState::kPause, BindingState::kOutService,
                 BindingState::kBlocked}) {
    if (to_string(s) == text) {
      return s;
    }
  }
  return fail(Errc::kParse,
              "unknown binding state '" + std::string(text) +
                  "' (one of NORMAL, PAUSE, OUT_SERVICE, BLOCKED)",
              "state");
}

BindingState binding_from_service_state(std::string_view s) {
  if (s == "NORMAL") {
    return BindingState::kNormal;
  }
  if (s == "PAUSE") {
    return BindingState::kPause;
  }
  if (s == "OUT_SERVICE") {
    return BindingState::kOutService;
  }
  return BindingState::kBlocked;
}

BindingState binding_from_parking_entry(std::string_view state,
                                        const std::optional<std::string>& block_reason) {
  if (state == "NORMAL") {
    return BindingState::kNormal;
  }
  // BLOCKED with block_reason PAUSE | OVERDUE | OUT_SERVICE | EVALUATION_FAILED.
  if (block_reason == "PAUSE") {
    return BindingState::kPause;
  }
  if (block_reason == "OUT_SERVICE") {
    return BindingState::kOutService;
  }
  return BindingState::kBlocked;
}

BindingState binding_from_entrance_state(std::string_view parking_state,
                                         const std::optional<std::string>& blocked_description) {
  if (parking_state == "NORMAL") {
    return BindingState::kNormal;
  }
  // blocked_state_description PAUSE | OVERDUE | REMOVE.
  if (blocked_description == "PAUSE") {
    return BindingState::kPause;
  }
  return BindingState::kBlocked;
}

}  // namespace lanegate::gateway
