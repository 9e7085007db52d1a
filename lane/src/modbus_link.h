#pragma once
// RAII wrapper over one libmodbus context (TCP or RTU). The one place where libmodbus
// errno codes are translated into Error values. Never uses libmodbus' error recovery:
// callers run their own reconnect loop (spec: it can hang for seconds).
// Not thread-safe: owned by one bus thread (or the CLI).

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "config/config.h"
#include "core/error.h"

struct _modbus;

namespace lanegate::lane {

class ModbusLink {
 public:
  // Creates the context (no I/O yet). kInvalidArgument naming the bus field.
  [[nodiscard]] static Result<std::unique_ptr<ModbusLink>> create(const config::BusSection& bus);
  ~ModbusLink();
  ModbusLink(const ModbusLink&) = delete;
  ModbusLink& operator=(const ModbusLink&) = delete;

  [[nodiscard]] Status connect();
  void close();
  bool connected() const { return connected_; }
  // Discards buffered input (a late reply after a timeout must not answer the next request).
  void flush();

  [[nodiscard]] Status read_holding(int unit, int addr, std::span<std::uint16_t> dest);
  [[nodiscard]] Status read_input_registers(int unit, int addr, std::span<std::uint16_t> dest);
  [[nodiscard]] Status read_coils(int unit, int addr, std::span<std::uint8_t> dest);
  [[nodiscard]] Status read_discrete(int unit, int addr, std::span<std::uint8_t> dest);
  [[nodiscard]] Status write_coil(int unit, int addr, bool on);
  [[nodiscard]] Status write_registers(int unit, int addr, std::span<const std::uint16_t> values);

  // True when the last failure means the link itself is broken (socket reset, port gone):
  // the caller should close() and reconnect rather than just count a device failure.
  bool link_broken() const { return link_broken_; }
  const config::BusSection& bus() const { return bus_; }

 private:
  explicit ModbusLink(const config::BusSection& bus, _modbus* ctx);
  Status check(int rc, int expected, std::string_view what);
  Status select(int unit);

  config::BusSection bus_;
  _modbus* ctx_;
  bool connected_ = false;
  bool link_broken_ = false;
};

}  // namespace lanegate::lane
