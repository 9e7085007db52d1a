#include "lane/health.h"

#include "core/log.h"

namespace lanegate::lane {
namespace {

int gauge_value(Health h) {
  switch (h) {
    case Health::kUp:
      return 2;
    case Health::kDegraded:
      return 1;
    case Health::kDown:
      return 0;
  }
  return 0;
}

}  // namespace

metrics::Gauge& device_health_gauge(const std::string& device) {
  return metrics::Registry::global().gauge(
      "lanegate_device_health", "Device health: 2 up, 1 degraded, 0 down", {{"device", device}});
}

void announce_health(const std::string& device, std::string_view where_key, std::string_view where,
                     Health from, Health to, const std::string& detail) {
  device_health_gauge(device).set(gauge_value(to));
  metrics::Registry::global()
      .counter("lanegate_device_transitions_total", "Device health transitions",
               {{"device", device}, {"to", std::string(health_name(to))}})
      .inc();
  const auto level = to == Health::kUp ? log::Level::kNotice : log::Level::kWarning;
  log::write(level, "device health changed",
             {{"DEVICE", device},
              {std::string(where_key), std::string(where)},
              {"FROM", health_name(from)},
              {"TO", health_name(to)},
              {"DETAIL", detail}});
}

std::string count_missed_vehicle(const std::string& device, int missed_in_a_row) {
  metrics::Registry::global()
      .counter("lanegate_camera_missed_vehicles_total",
               "Vehicles the loop saw with no plate read from the lane's camera",
               {{"device", device}})
      .inc();
  if (missed_in_a_row < kMissedVehiclesDegraded) return "";
  return std::to_string(missed_in_a_row) + " vehicles in a row without a read";
}

}  // namespace lanegate::lane
