#pragma once
// How a device's health change is told, the same for every kind of device (Modbus devices,
// cameras that push over HTTP): one log line "device health changed" (notice when up,
// warning otherwise) with DEVICE, FROM, TO, DETAIL and where the device hangs (BUS for a
// Modbus device, VIA for a push camera), the gauge lanegate_device_health{device} (2 up,
// 1 degraded, 0 down) and the counter lanegate_device_transitions_total{device,to}.
//
// Thread-safety: callable from any thread (the metrics registry is thread-safe).

#include <string>
#include <string_view>

#include "core/metrics.h"
#include "lane/events.h"

namespace lanegate::lane {

// The device's health gauge (created at 0, down, on first use).
metrics::Gauge& device_health_gauge(const std::string& device);

// Logs and counts one transition and sets the gauge. `where_key`/`where` name what the
// device hangs on ("BUS", "rs485-1" or "VIA", "http").
void announce_health(const std::string& device, std::string_view where_key, std::string_view where,
                     Health from, Health to, const std::string& detail);

// A camera that hears nothing for vehicles its lane's loop sees: this many in a row make an
// up camera degraded (the next read makes it up again), whether it is polled or pushes.
inline constexpr int kMissedVehiclesDegraded = 3;

// Counts one vehicle the loop saw with no read from `device`
// (lanegate_camera_missed_vehicles_total{device}); returns the detail of the transition
// to degraded when `missed_in_a_row` reached kMissedVehiclesDegraded, else "".
std::string count_missed_vehicle(const std::string& device, int missed_in_a_row);

}  // namespace lanegate::lane
