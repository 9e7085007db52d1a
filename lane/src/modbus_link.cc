#include "modbus_link.h"

#include <modbus/modbus.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace lanegate::lane {
namespace {

void set_timeout(modbus_t* ctx, int ms, bool response) {
  const auto sec = static_cast<std::uint32_t>(ms / 1000);
  const auto usec = static_cast<std::uint32_t>((ms % 1000) * 1000);
  if (response) {
    modbus_set_response_timeout(ctx, sec, usec);
  } else {
    modbus_set_byte_timeout(ctx, sec, usec);
  }
}

}  // namespace

ModbusLink::ModbusLink(const config::BusSection& bus, _modbus* ctx) : bus_(bus), ctx_(ctx) {}

ModbusLink::~ModbusLink() {
  close();
  modbus_free(ctx_);
}

Result<std::unique_ptr<ModbusLink>> ModbusLink::create(const config::BusSection& bus) {
  modbus_t* ctx = nullptr;
  if (bus.transport == config::Transport::kTcp) {
    if (bus.host.empty()) {
      return fail(Errc::kInvalidArgument, "tcp bus needs a host", "buses." + bus.id + ".host");
    }
    ctx = modbus_new_tcp_pi(bus.host.c_str(), std::to_string(bus.port).c_str());
  } else {
    if (bus.serial_device.empty()) {
      return fail(Errc::kInvalidArgument, "rtu bus needs serial_device",
                  "buses." + bus.id + ".serial_device");
    }
    ctx = modbus_new_rtu(bus.serial_device.c_str(), bus.baud, bus.parity, bus.data_bits,
                         bus.stop_bits);
  }
  if (ctx == nullptr) {
    return fail(Errc::kInvalidArgument,
                std::string("libmodbus refused the bus settings: ") + modbus_strerror(errno),
                "buses." + bus.id);
  }
  // Our own reconnect loop owns recovery (spec): no libmodbus link/protocol recovery.
  modbus_set_error_recovery(ctx, MODBUS_ERROR_RECOVERY_NONE);
  set_timeout(ctx, bus.response_timeout_ms, true);
  set_timeout(ctx, bus.byte_timeout_ms, false);
  return std::unique_ptr<ModbusLink>(new ModbusLink(bus, ctx));
}

Status ModbusLink::connect() {
  if (connected_) {
    return {};
  }
  if (modbus_connect(ctx_) == -1) {
    const int e = errno;
    return fail(Errc::kUnavailable, std::string("connect: ") + modbus_strerror(e),
                "buses." + bus_.id);
  }
  connected_ = true;
  link_broken_ = false;
  if (bus_.transport == config::Transport::kRtu) {
    modbus_flush(ctx_);
  }
  return {};
}

void ModbusLink::close() {
  if (connected_) {
    modbus_close(ctx_);
    connected_ = false;
  }
}

void ModbusLink::flush() {
  if (connected_) {
    if (bus_.transport == config::Transport::kRtu) {
      // On a shared RS-485 line a late or misaddressed reply may still be on its way:
      // let the line go quiet before discarding, or it answers the next request
      // ("response not from requested slave").
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    modbus_flush(ctx_);
  }
}

Status ModbusLink::select(int unit) {
  if (!connected_) {
    link_broken_ = true;
    return fail(Errc::kUnavailable, "not connected", "buses." + bus_.id);
  }
  if (modbus_set_slave(ctx_, unit) == -1) {
    return fail(Errc::kInvalidArgument, "unit id " + std::to_string(unit) + " is not valid",
                "unit_id");
  }
  return {};
}

Status ModbusLink::check(int rc, int expected, std::string_view what) {
  if (rc == expected) {
    link_broken_ = false;
    return {};
  }
  const int e = rc == -1 ? errno : EMBBADDATA;
  std::string msg = std::string(what) + ": " + modbus_strerror(e);
  switch (e) {
    case ETIMEDOUT:
      // A late reply may still arrive; drop it so it cannot answer the next request.
      flush();
      return fail(Errc::kTimeout, std::move(msg));
    case ECONNRESET:
    case ECONNREFUSED:
    case EPIPE:
    case EBADF:
    case ENOTCONN:
    case EIO:
      link_broken_ = true;
      return fail(Errc::kUnavailable, std::move(msg));
    default:
      if (e >= MODBUS_ENOBASE && e <= MODBUS_ENOBASE + 20) {
        flush();
        return fail(Errc::kProtocol, std::move(msg));
      }
      link_broken_ = true;
      return fail(Errc::kIo, std::move(msg));
  }
}

Status ModbusLink::read_holding(int unit, int addr, std::span<std::uint16_t> dest) {
  if (auto st = select(unit); !st) return st;
  const int n = static_cast<int>(dest.size());
  return check(modbus_read_registers(ctx_, addr, n, dest.data()), n, "read holding registers");
}

Status ModbusLink::read_input_registers(int unit, int addr, std::span<std::uint16_t> dest) {
  if (auto st = select(unit); !st) return st;
  const int n = static_cast<int>(dest.size());
  return check(modbus_read_input_registers(ctx_, addr, n, dest.data()), n, "read input registers");
}

Status ModbusLink::read_coils(int unit, int addr, std::span<std::uint8_t> dest) {
  if (auto st = select(unit); !st) return st;
  const int n = static_cast<int>(dest.size());
  return check(modbus_read_bits(ctx_, addr, n, dest.data()), n, "read coils");
}

Status ModbusLink::read_discrete(int unit, int addr, std::span<std::uint8_t> dest) {
  if (auto st = select(unit); !st) return st;
  const int n = static_cast<int>(dest.size());
  return check(modbus_read_input_bits(ctx_, addr, n, dest.data()), n, "read discrete inputs");
}

Status ModbusLink::write_coil(int unit, int addr, bool on) {
  if (auto st = select(unit); !st) return st;
  return check(modbus_write_bit(ctx_, addr, on ? 1 : 0), 1, "write coil");
}

Status ModbusLink::write_registers(int unit, int addr, std::span<const std::uint16_t> values) {
  if (auto st = select(unit); !st) return st;
  const int n = static_cast<int>(values.size());
  return check(modbus_write_registers(ctx_, addr, n, values.data()), n, "write registers");
}

}  // namespace lanegate::lane
