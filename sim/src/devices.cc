#include "sim/devices.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <modbus/modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "core/log.h"
#include "lane/meter_frame.h"
#include "lane/plate.h"
#include "lane/register_map.h"
#include "sim/cameras.h"
#include "sim/devices_impl.h"

namespace lanegate::sim {

using Steady = std::chrono::steady_clock;
using lane::TextEncoding;

namespace {

constexpr int kAddressSpace = 65536;

std::uint16_t device_order(std::uint16_t v, config::ByteOrder bo) {
  return bo == config::ByteOrder::kLittle ? static_cast<std::uint16_t>((v >> 8) | (v << 8)) : v;
}

Result<std::pair<int, int>> open_pty_pair() {
  int master = -1;
  int slave = -1;
  termios t{};
  cfmakeraw(&t);
  t.c_cflag |= CLOCAL | CREAD;
  if (openpty(&master, &slave, nullptr, &t, nullptr) != 0) {
    return fail(Errc::kIo, std::string("openpty: ") + std::strerror(errno));
  }
  fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
  fcntl(master, F_SETFD, FD_CLOEXEC);
  fcntl(slave, F_SETFD, FD_CLOEXEC);
  return std::make_pair(master, slave);
}

std::string slave_path(int slave_fd) {
  char name[128];
  if (ttyname_r(slave_fd, name, sizeof name) != 0) {
    return {};
  }
  return name;
}

Status make_symlink(const std::string& link, const std::string& target, const std::string& field) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(link);
  if (p.has_parent_path()) {
    fs::create_directories(p.parent_path(), ec);
  }
  const auto st = fs::symlink_status(p, ec);
  if (fs::exists(st) || fs::is_symlink(st)) {
    if (!fs::is_symlink(st)) {
      return fail(Errc::kAlreadyExists,
                  link + " exists and is not a symlink; refusing to replace it", field);
    }
    fs::remove(p, ec);
  }
  fs::create_symlink(target, p, ec);
  if (ec) {
    return fail(Errc::kIo, "symlink " + link + " -> " + target + ": " + ec.message(), field);
  }
  return {};
}

// Writes what the peer takes within max_spins * 5 ms; a line nobody reads drops the rest.
void write_all_nonblocking(int fd, const std::uint8_t* data, size_t n, int max_spins = 50) {
  size_t off = 0;
  int spins = 0;
  while (off < n) {
    const ssize_t w = ::write(fd, data + off, n - off);
    if (w > 0) {
      off += static_cast<size_t>(w);
    } else if ((errno == EAGAIN || errno == EINTR) && spins < max_spins) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 5);
      ++spins;
    } else {
      return;
    }
  }
}

// `joiner` becomes part of `owner`'s slave: its initial state moves into owner's map,
// which both use from now on. REQUIRES: no server thread runs yet.
void share_map(SimDevice& owner, SimDevice& joiner) {
  _modbus_mapping_t* own = joiner.map;
  _modbus_mapping_t* shared = owner.map;
  for (int i = 0; i < own->nb_bits; ++i) {
    if (own->tab_bits[i] != 0) shared->tab_bits[i] = own->tab_bits[i];
  }
  for (int i = 0; i < own->nb_input_bits; ++i) {
    if (own->tab_input_bits[i] != 0) shared->tab_input_bits[i] = own->tab_input_bits[i];
  }
  for (int i = 0; i < own->nb_input_registers; ++i) {
    if (own->tab_input_registers[i] != 0) {
      shared->tab_input_registers[i] = own->tab_input_registers[i];
    }
  }
  for (int i = 0; i < own->nb_registers; ++i) {
    if (own->tab_registers[i] != 0) shared->tab_registers[i] = own->tab_registers[i];
  }
  if (joiner.owns_map) {
    modbus_mapping_free(own);
  }
  joiner.map = shared;
  joiner.owns_map = false;
}

}  // namespace

// ---- slaves (devices sharing a unit id on one bus) -----------------------------------------

std::vector<SimSlave> group_into_slaves(const std::vector<SimDevice*>& on_bus) {
  std::vector<SimSlave> slaves;
  for (SimDevice* d : on_bus) {
    SimSlave* same_unit = nullptr;
    for (auto& s : slaves) {
      if (s.dev->cfg.unit_id == d->cfg.unit_id) {
        same_unit = &s;
      }
    }
    if (same_unit != nullptr) {
      share_map(*same_unit->dev, *d);
      same_unit->unit.push_back(d);
      continue;
    }
    slaves.push_back(SimSlave{.dev = d, .unit = {d}});
  }
  return slaves;
}

bool SimSlave::answer(modbus_t* ctx, const std::uint8_t* query, int len, int header_len) {
  // One physical slave: hold every device of this unit (their shared map), reply once.
  std::vector<std::unique_lock<std::mutex>> locks;
  bool silent = false;
  for (SimDevice* d : unit) {
    locks.emplace_back(d->mu);
    silent = silent || d->silent;
  }
  if (silent) {
    return false;
  }
  modbus_reply(ctx, query, len, dev->map);
  for (SimDevice* d : unit) {
    d->after_reply(query, len, header_len);
  }
  return true;
}

// ---- device model -----------------------------------------------------------------------

SimDevice::SimDevice(const config::DeviceSection& c, std::string lane_id)
    : cfg(c), lane(std::move(lane_id)) {
  map = modbus_mapping_new(kAddressSpace, kAddressSpace, kAddressSpace, 0);
  if (cfg.kind == config::DeviceKind::kBarrier) {
    auto m = lane::barrier_map(cfg);
    if (m) {
      barrier_map = *m;
    }
    map->tab_input_bits[barrier_map.closed] = 1;
  }
  if (cfg.kind == config::DeviceKind::kCamera) {
    if (auto m = lane::camera_map(cfg)) {
      record_start = m->record_start;
      record_count = m->record_count;
    }
  }
  if (cfg.kind == config::DeviceKind::kRoadsideUnit) {
    if (auto m = lane::roadside_map(cfg)) {
      record_start = m->record_start;
      record_count = m->record_count;
    }
  }
  if (cfg.kind == config::DeviceKind::kDisplay) {
    if (auto m = lane::display_map(cfg)) {
      text_length_reg = m->text_length;
      text_reg = m->text;
      text_registers = m->text_registers;
    }
  }
}

std::string SimDevice::display_bytes() const {
  std::string bytes;
  if (text_length_reg < 0) {
    return bytes;
  }
  const auto bo = cfg.byte_order;
  const int len =
      std::min<int>(device_order(map->tab_registers[text_length_reg], bo), text_registers * 2);
  for (int i = 0; i < len; ++i) {
    const std::uint16_t r = device_order(map->tab_registers[text_reg + i / 2], bo);
    bytes.push_back(static_cast<char>(i % 2 == 0 ? r >> 8 : r & 0xFF));
  }
  return bytes;
}

SimDevice::~SimDevice() {
  if (owns_map) {
    modbus_mapping_free(map);
  }
}

void SimDevice::after_reply(const std::uint8_t* req, int req_len, int header_len) {
  answered.fetch_add(1);
  if (req_len > header_len + 4) {
    const std::uint8_t fn = req[header_len];
    const int addr = (req[header_len + 1] << 8) | req[header_len + 2];
    const int qty = (req[header_len + 3] << 8) | req[header_len + 4];
    if (fn == MODBUS_FC_READ_HOLDING_REGISTERS && record_count > 0 && addr == record_start &&
        qty == record_count) {
      record_read = sequence;
    }
    if ((fn == MODBUS_FC_WRITE_SINGLE_REGISTER || fn == MODBUS_FC_WRITE_MULTIPLE_REGISTERS) &&
        cfg.kind == config::DeviceKind::kDisplay) {
      std::string bytes = display_bytes();
      // A text written in two requests (length apart from the text) shows up once whole.
      if (texts.empty() || texts.back() != bytes) {
        texts.push_back(std::move(bytes));
      }
    }
  }
  if (cfg.kind != config::DeviceKind::kBarrier || req_len <= header_len) {
    return;
  }
  const std::uint8_t function = req[header_len];
  if (function != MODBUS_FC_WRITE_SINGLE_COIL && function != MODBUS_FC_WRITE_MULTIPLE_COILS) {
    return;
  }
  if (map->tab_bits[barrier_map.open_command] == 0) {
    return;
  }
  // The controller takes the command and resets the coil.
  map->tab_bits[barrier_map.open_command] = 0;
  open_commands++;
  if (stuck) {
    return;
  }
  const auto now = Steady::now();
  switch (phase) {
    case Phase::kClosed:
    case Phase::kLowering:  // a lowering barrier re-raises on a new open
      phase = Phase::kRaising;
      map->tab_input_bits[barrier_map.opened] = 0;
      map->tab_input_bits[barrier_map.closed] = 0;
      deadline = now + std::chrono::milliseconds(open_delay_ms);
      break;
    case Phase::kOpen:
      deadline = now + std::chrono::milliseconds(hold_ms);
      break;
    case Phase::kRaising:
      break;
  }
}

void SimDevice::tick(Steady::time_point now) {
  if (loop_clear_at && now >= *loop_clear_at) {
    auto m = lane::loop_map(cfg);
    map->tab_input_bits[m ? m->present : 0] = 0;
    loop_clear_at.reset();
  }
  if (cfg.kind != config::DeviceKind::kBarrier || now < deadline) {
    return;
  }
  switch (phase) {
    case Phase::kRaising:
      phase = Phase::kOpen;
      map->tab_input_bits[barrier_map.opened] = 1;
      deadline = now + std::chrono::milliseconds(hold_ms);
      break;
    case Phase::kOpen:
      phase = Phase::kLowering;
      map->tab_input_bits[barrier_map.opened] = 0;
      deadline = now + std::chrono::milliseconds(open_delay_ms);
      break;
    case Phase::kLowering:
      phase = Phase::kClosed;
      map->tab_input_bits[barrier_map.closed] = 1;
      break;
    case Phase::kClosed:
      break;
  }
}

// ---- servers ------------------------------------------------------------------------------

void TcpBusServer::run(std::atomic<bool>& stopping) {
  modbus_t* ctx = modbus_new_tcp("127.0.0.1", port);
  std::vector<pollfd> fds;
  std::uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
  std::vector<int> clients;
  while (!stopping.load()) {
    fds.clear();
    fds.push_back({listen_fd, POLLIN, 0});
    for (int c : clients) {
      fds.push_back({c, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 100) <= 0) {
      continue;
    }
    if (fds[0].revents & POLLIN) {
      const int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        clients.push_back(c);
      }
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        continue;
      }
      const int fd = fds[i].fd;
      modbus_set_socket(ctx, fd);
      const int rc = modbus_receive(ctx, query);
      if (rc <= 0) {
        if (rc == -1) {
          ::close(fd);
          std::erase(clients, fd);
        }
        continue;
      }
      const int unit_id = query[6];
      SimSlave* slave = nullptr;
      for (auto& s : slaves) {
        if (s.dev->cfg.unit_id == unit_id) {
          slave = &s;
        }
      }
      if (slave == nullptr) {
        modbus_reply_exception(ctx, query, MODBUS_EXCEPTION_GATEWAY_TARGET);
        continue;
      }
      slave->answer(ctx, query, rc, 7);  // silent: no reply, the client times out
    }
  }
  for (int c : clients) {
    ::close(c);
  }
  modbus_free(ctx);
}

void RtuDeviceServer::run(std::atomic<bool>& stopping) {
  std::uint8_t query[MODBUS_RTU_MAX_ADU_LENGTH];
  while (!stopping.load()) {
    const int rc = modbus_receive(ctx, query);
    if (rc == -1) {
      if (errno != ETIMEDOUT) {
        modbus_flush(ctx);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      continue;
    }
    if (rc == 0) {
      continue;  // addressed to another slave on the line
    }
    slave.answer(ctx, query, rc, 1);  // silent: no reply, the master times out
  }
}

namespace {

std::uint16_t modbus_crc(const std::uint8_t* p, size_t n) {
  std::uint16_t crc = 0xFFFF;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int b = 0; b < 8; ++b) {
      crc = (crc & 1) ? static_cast<std::uint16_t>((crc >> 1) ^ 0xA001)
                      : static_cast<std::uint16_t>(crc >> 1);
    }
  }
  return crc;
}

// Length of the RTU request starting at buf (0 = need more bytes, -1 = not a request).
int rtu_request_length(const std::vector<std::uint8_t>& buf) {
  if (buf.size() < 2) return 0;
  switch (buf[1]) {
    case 0x01:
    case 0x02:
    case 0x03:
    case 0x04:
    case 0x05:
    case 0x06:
      return 8;
    case 0x07:
    case 0x11:
      return 4;
    case 0x16:
      return 10;
    case 0x0F:
    case 0x10:
      return buf.size() < 7 ? 0 : 9 + buf[6];
    case 0x17:
      return buf.size() < 11 ? 0 : 13 + buf[10];
    default:
      return -1;
  }
}

}  // namespace

// The line: the bridge frames each master request (length by function code, CRC) and
// hands it to the device with that slave id only. Handing every slave every byte, as a
// real RS-485 line does, would need every slave to also hear the others' replies:
// libmodbus' RTU server expects to skip the reply to a request addressed to another slave
// and would swallow the next request instead when that reply never comes (silent device).
void RtuBusServer::bridge(std::atomic<bool>& stopping) {
  std::vector<pollfd> fds;
  std::vector<std::uint8_t> pending;
  auto last_byte = std::chrono::steady_clock::now();
  std::uint8_t buf[512];
  while (!stopping.load()) {
    fds.clear();
    fds.push_back({master_fd, POLLIN, 0});
    for (auto& d : devices) {
      fds.push_back({d->master_fd, POLLIN, 0});
    }
    const int rc = ::poll(fds.data(), fds.size(), 20);
    const auto now = std::chrono::steady_clock::now();
    if (!pending.empty() && now - last_byte > std::chrono::milliseconds(50)) {
      pending.clear();  // an incomplete frame followed by silence: line noise
    }
    if (rc <= 0) {
      continue;
    }
    if (fds[0].revents & POLLIN) {
      const ssize_t n = ::read(master_fd, buf, sizeof buf);
      if (n > 0) {
        pending.insert(pending.end(), buf, buf + n);
        last_byte = now;
      }
      while (true) {
        const int len = rtu_request_length(pending);
        if (len < 0) {
          pending.clear();
          break;
        }
        if (len == 0 || pending.size() < static_cast<size_t>(len)) {
          break;
        }
        const std::uint16_t crc = modbus_crc(pending.data(), static_cast<size_t>(len) - 2);
        const bool crc_ok = pending[len - 2] == (crc & 0xFF) && pending[len - 1] == (crc >> 8);
        if (crc_ok) {
          for (auto& d : devices) {
            if (pending[0] == 0 || d->slave.dev->cfg.unit_id == pending[0]) {
              write_all_nonblocking(d->master_fd, pending.data(), static_cast<size_t>(len));
            }
          }
          pending.erase(pending.begin(), pending.begin() + len);
        } else {
          pending.clear();
        }
      }
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents & POLLIN) {
        const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        if (n > 0) {
          write_all_nonblocking(master_fd, buf, static_cast<size_t>(n));
        }
      }
    }
  }
}

// ---- SimMeter ---------------------------------------------------------------------------

namespace {

// The terminal's acknowledgements, written out from the spec (lane-devices.md,
// "Acknowledgement frames") and deliberately not built with the client's codec: the
// simulated meter must catch a terminal whose ack is wrong. The spec prints four; the
// 0x00E7 and 0x00F2 error acks follow its rule (DEVICE 0x02, VENDOR 0, CMD echoed,
// body 0xFF, XOR of LEN..BODY), worked by hand: 05^02^E7^FF = 1F, 05^02^F2^FF = 0A.
struct SpecAck {
  std::uint16_t cmd;
  bool ok;
  std::uint8_t bytes[12];
};
constexpr SpecAck kSpecAcks[] = {
    {0x00E8, true, {0x55, 0xAA, 0x00, 0x05, 0x02, 0x00, 0x00, 0xE8, 0x90, 0x7F, 0x55, 0xAA}},
    {0x00E8, false, {0x55, 0xAA, 0x00, 0x05, 0x02, 0x00, 0x00, 0xE8, 0xFF, 0x10, 0x55, 0xAA}},
    {0x00E7, true, {0x55, 0xAA, 0x00, 0x05, 0x02, 0x00, 0x00, 0xE7, 0x90, 0x70, 0x55, 0xAA}},
    {0x00E7, false, {0x55, 0xAA, 0x00, 0x05, 0x02, 0x00, 0x00, 0xE7, 0xFF, 0x1F, 0x55, 0xAA}},
    {0x00F2, true, {0x55, 0xAA, 0x00, 0x05, 0x02, 0x00, 0x00, 0xF2, 0x90, 0x65, 0x55, 0xAA}},
    {0x00F2, false, {0x55, 0xAA, 0x00, 0x05, 0x02, 0x00, 0x00, 0xF2, 0xFF, 0x0A, 0x55, 0xAA}},
};

}  // namespace

void SimMeter::queue(std::uint16_t cmd, std::uint32_t trip_number, std::vector<std::uint8_t> body) {
  Pending p;
  p.trip_number = trip_number;
  p.bytes = lane::encode_meter_frame(lane::MeterFrame{lane::kDeviceMeter, 0, cmd, std::move(body)});
  p.next_send = std::chrono::steady_clock::now();  // the ticker sends it, then retransmits
  queues[cmd].push_back(std::move(p));
}

void SimMeter::take_terminal_bytes() {
  while (true) {
    size_t start = 0;
    while (start + 1 < rx.size() && !(rx[start] == 0x55 && rx[start + 1] == 0xAA)) {
      ++start;
    }
    if (start + 1 >= rx.size()) {
      // No frame start: keep a trailing 0x55 (the start may be split across reads).
      const bool keep = !rx.empty() && rx.back() == 0x55;
      rx.erase(rx.begin(), rx.end() - (keep ? 1 : 0));
      return;
    }
    rx.erase(rx.begin(), rx.begin() + static_cast<std::ptrdiff_t>(start));
    if (rx.size() < 4) {
      return;
    }
    const size_t len = static_cast<size_t>(rx[2]) << 8 | rx[3];
    if (len < 4 || len > lane::kMaxFrameLen) {
      rx.erase(rx.begin());
      continue;
    }
    if (rx.size() < len + 7) {
      return;
    }
    const std::span<const std::uint8_t> frame(rx.data(), len + 7);
    const std::uint16_t cmd = static_cast<std::uint16_t>(rx[6] << 8 | rx[7]);
    size_t consumed = len + 7;
    if (cmd == 0x00E7 || cmd == 0x00E8 || cmd == 0x00F2) {
      const SpecAck* match = nullptr;
      for (const auto& a : kSpecAcks) {
        if (std::equal(frame.begin(), frame.end(), std::begin(a.bytes), std::end(a.bytes))) {
          match = &a;
        }
      }
      auto& q = queues[cmd];
      if (match == nullptr) {
        ++bad_acks;
        log::warn("sim meter: the terminal's answer is not one of the spec's ack frames",
                  {{"METER", cfg.id}, {"BYTES", static_cast<std::int64_t>(frame.size())}});
      } else if (!q.empty()) {
        const std::uint32_t number = q.front().trip_number;
        q.pop_front();
        if (cmd == 0x00E7) {
          (match->ok ? trip_starts_acked : trip_starts_refused)++;
        } else if (match->ok) {
          acked.push_back(number);
          if (cmd == 0x00F2) acked_stored.push_back(number);
        } else {
          // What a real meter does after 0xFF is unconfirmed: this one stops sending the
          // record and keeps it in its store (an operator may re-send it as 0x00F2).
          refused.push_back(number);
        }
      }
    } else if (auto f = lane::decode_meter_frame(frame); f && f->cmd == lane::kCmdStatus) {
      ++status_queries;
      if (auto body = lane::encode_meter_status(status)) {
        const auto reply = lane::encode_meter_frame(
            lane::MeterFrame{lane::kDeviceMeter, 0, lane::kCmdStatus, std::move(*body)});
        write_all_nonblocking(master_fd, reply.data(), reply.size(), 0);
      }
    } else if (!f) {
      consumed = 1;  // not a frame after all: resynchronise on the next 55 AA
    }
    rx.erase(rx.begin(), rx.begin() + static_cast<std::ptrdiff_t>(consumed));
  }
}

// ---- DevicesSim -------------------------------------------------------------------------

namespace {
bool uses_basic_auth(std::string_view protocol);
void record_failure(SimDevice& d, const std::string& message, bool heartbeat);
}  // namespace

// The [[reader]] lines: one pty each, symlinked at the reader's device path. Writes are
// serialised by `mu` (the HTTP thread and in-process callers).
struct DevicesSim::ReaderLines {
  struct Line {
    std::string id;
    int master_fd = -1;
    int keep_slave_fd = -1;
    std::string slave_path;
    std::string link;
  };
  std::mutex mu;
  std::vector<Line> lines;
};

DevicesSim::DevicesSim(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), readers_(std::make_unique<ReaderLines>()) {}

Status DevicesSim::open_readers(const config::Config& cfg) {
  std::lock_guard lock(readers_->mu);
  for (const auto& r : cfg.readers) {
    auto pair = open_pty_pair();
    if (!pair) {
      return std::unexpected(pair.error());
    }
    ReaderLines::Line line{r.id, pair->first, pair->second, slave_path(pair->second), {}};
    if (auto st = make_symlink(r.device, line.slave_path, "readers." + r.id + ".device"); !st) {
      ::close(line.master_fd);
      ::close(line.keep_slave_fd);
      return st;
    }
    line.link = r.device;
    readers_->lines.push_back(std::move(line));
  }
  return {};
}

void DevicesSim::close_readers() {
  if (!readers_) {
    return;
  }
  std::lock_guard lock(readers_->mu);
  std::error_code ec;
  for (auto& l : readers_->lines) {
    ::close(l.master_fd);
    ::close(l.keep_slave_fd);
    if (!l.link.empty()) std::filesystem::remove(l.link, ec);
  }
  readers_->lines.clear();
}

Status DevicesSim::reader_raw(std::string_view reader, std::string_view bytes) {
  std::lock_guard lock(readers_->mu);
  for (auto& l : readers_->lines) {
    if (l.id == reader) {
      write_all_nonblocking(l.master_fd, reinterpret_cast<const std::uint8_t*>(bytes.data()),
                            bytes.size());
      return {};
    }
  }
  return fail(Errc::kNotFound, "no reader \"" + std::string(reader) + "\"", "reader");
}

Status DevicesSim::reader_scan(std::string_view reader, std::string_view line) {
  return reader_raw(reader, std::string(line) + "\r\n");
}

Result<std::string> DevicesSim::scan_payment_code(std::string_view reader) {
  // A fresh WeChat-shaped code each time (18 digits, prefix 13): a real code pays once.
  static std::atomic<std::uint64_t> counter{0};
  const std::uint64_t n =
      (static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) +
       counter.fetch_add(1) * 7919) %
      10'000'000'000'000'000ULL;
  char buf[24];
  std::snprintf(buf, sizeof buf, "13%016llu", static_cast<unsigned long long>(n));
  if (auto st = reader_scan(reader, buf); !st) {
    return std::unexpected(st.error());
  }
  return std::string(buf);
}

DevicesSim::~DevicesSim() { stop(); }

int DevicesSim::control_port() const { return impl_->control_port; }

Result<std::unique_ptr<DevicesSim>> DevicesSim::start(const config::Config& cfg,
                                                      DevicesSimOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = cfg;
  impl->options = options;
  std::unique_ptr<DevicesSim> self(new DevicesSim(std::move(impl)));
  self->impl_->owner = self.get();
  if (auto st = self->impl_->build(); !st) {
    self->stop();
    return std::unexpected(st.error());
  }
  if (auto st = self->open_readers(cfg); !st) {
    self->stop();
    return std::unexpected(st.error());
  }
  return self;
}

void DevicesSim::stop() {
  if (impl_) {
    impl_->shutdown();
  }
  close_readers();
}

SimDevice* DevicesSim::Impl::find(std::string_view id) {
  for (auto& d : devices) {
    if (d->cfg.id == id) {
      return d.get();
    }
  }
  return nullptr;
}

SimMeter* DevicesSim::Impl::find_meter(std::string_view id) {
  for (auto& m : meters) {
    if (m->cfg.id == id) {
      return m.get();
    }
  }
  return nullptr;
}

std::string DevicesSim::Impl::lane_of(std::string_view device) const {
  for (const auto& l : cfg.lanes) {
    if (l.camera == device || l.loop == device || l.barrier == device || l.display == device ||
        l.roadside_unit == device || l.meter == device) {
      return l.id;
    }
  }
  return {};
}

Status DevicesSim::Impl::build() {
  // Push cameras' event numbers start above anything an earlier run could have sent (a
  // thousand per millisecond of its run time): see SimDevice::event_base.
  const auto start_ms =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  bool any_heartbeat = false;
  for (const auto& d : cfg.devices) {
    auto dev = std::make_unique<SimDevice>(d, lane_of(d.id));
    dev->open_delay_ms = options.barrier_open_delay_ms;
    dev->hold_ms = options.barrier_hold_ms;
    if (d.push()) {
      dev->push.protocol = d.protocol;
      dev->event_base = start_ms * 1000;
      any_heartbeat = any_heartbeat || d.protocol == "vzenith" || d.protocol == "dahua";
    }
    devices.push_back(std::move(dev));
  }
  // The camera receiver: its own listener when [cameras] has one, else the API's.
  push_host = options.gateway_host;
  push_port = options.gateway_port;
  const bool own_listener = !cfg.cameras.listen_address.empty();
  if (push_host.empty()) {
    push_host = own_listener ? cfg.cameras.listen_address : cfg.api.listen_address;
    if (push_host == "0.0.0.0" || push_host.empty()) push_host = "127.0.0.1";
    if (push_host == "::") push_host = "::1";
  }
  if (push_port == 0) {
    push_port = own_listener ? cfg.cameras.listen_port : cfg.api.listen_port;
  }
  for (const auto& b : cfg.buses) {
    std::vector<SimDevice*> on_bus;
    for (auto& d : devices) {
      if (d->cfg.bus == b.id) {
        on_bus.push_back(d.get());
      }
    }
    if (b.transport == config::Transport::kTcp) {
      auto srv = std::make_unique<TcpBusServer>();
      srv->bus = b;
      srv->slaves = group_into_slaves(on_bus);
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<std::uint16_t>(b.port));
      if (inet_pton(AF_INET, b.host.c_str(), &addr.sin_addr) != 1) {
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
      }
      if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
          ::listen(fd, 16) != 0) {
        const int e = errno;
        ::close(fd);
        return fail(Errc::kIo,
                    "listen on " + b.host + ":" + std::to_string(b.port) + ": " + std::strerror(e),
                    "buses." + b.id + ".port");
      }
      socklen_t len = sizeof addr;
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
      srv->listen_fd = fd;
      srv->port = ntohs(addr.sin_port);
      tcp.push_back(std::move(srv));
    } else {
      auto srv = std::make_unique<RtuBusServer>();
      srv->bus = b;
      auto line = open_pty_pair();
      if (!line) {
        return std::unexpected(line.error());
      }
      srv->master_fd = line->first;
      srv->keep_slave_fd = line->second;  // keeps the line up between master connections
      srv->slave_path = slave_path(line->second);
      if (auto st =
              make_symlink(b.serial_device, srv->slave_path, "buses." + b.id + ".serial_device");
          !st) {
        ::close(srv->master_fd);
        ::close(srv->keep_slave_fd);
        return st;
      }
      srv->link = b.serial_device;
      // Owned by `rtu` from here on, so a failure below still closes and unlinks it.
      rtu.push_back(std::move(srv));
      RtuBusServer* line_srv = rtu.back().get();
      // One server per unit id: a real line has one box answering that address, so the
      // simulated line must not send two replies (the second would answer the master's
      // next request).
      for (auto& unit_slave : group_into_slaves(on_bus)) {
        SimDevice* d = unit_slave.dev;
        auto dev = std::make_unique<RtuDeviceServer>();
        dev->slave = std::move(unit_slave);
        auto pair = open_pty_pair();
        if (!pair) {
          return std::unexpected(pair.error());
        }
        dev->master_fd = pair->first;
        dev->keep_slave_fd = pair->second;
        line_srv->devices.push_back(std::move(dev));  // shutdown() closes it on any failure
        RtuDeviceServer* slave = line_srv->devices.back().get();
        const std::string path = slave_path(pair->second);
        slave->ctx = modbus_new_rtu(path.c_str(), b.baud, b.parity, b.data_bits, b.stop_bits);
        if (slave->ctx == nullptr || modbus_set_slave(slave->ctx, d->cfg.unit_id) != 0 ||
            modbus_connect(slave->ctx) != 0) {
          return fail(Errc::kIo, std::string("rtu device: ") + modbus_strerror(errno),
                      "devices." + d->cfg.id);
        }
        modbus_set_indication_timeout(slave->ctx, 0, 100'000);
      }
    }
  }
  for (const auto& m : cfg.meters) {
    auto meter = std::make_unique<SimMeter>();
    meter->cfg = m;
    auto pair = open_pty_pair();
    if (!pair) {
      return std::unexpected(pair.error());
    }
    meter->master_fd = pair->first;
    meter->keep_slave_fd = pair->second;
    meter->slave_path = slave_path(pair->second);
    if (auto st = make_symlink(m.device, meter->slave_path, "meters." + m.id + ".device"); !st) {
      ::close(meter->master_fd);
      ::close(meter->keep_slave_fd);
      return st;
    }
    meter->link = m.device;
    // What a healthy, signed-in meter reports (device type 0x02: a meter).
    meter->status.vendor = 1;
    meter->status.device_type = 2;
    meter->status.serial = static_cast<int>(meters.size()) + 1;
    meter->status.hw_version = 1;
    meter->status.sw_major = 1;
    meter->status.plate = "B12345";
    meter->status.operating_licence = "LIC0000001";
    meter->status.driver_qualification = "QUAL00000000000001";
    meters.push_back(std::move(meter));
  }
  // Threads last: everything they touch exists.
  for (auto& t : tcp) {
    threads.emplace_back([this, s = t.get()] { s->run(stopping); });
  }
  for (auto& r : rtu) {
    threads.emplace_back([this, s = r.get()] { s->bridge(stopping); });
    for (auto& d : r->devices) {
      threads.emplace_back([this, s = d.get()] { s->run(stopping); });
    }
  }
  threads.emplace_back([this] { ticker(); });
  if (any_heartbeat && options.heartbeat_interval_ms > 0) {
    threads.emplace_back([this] { heartbeats(); });
  }
  if (options.control_port >= 0) {
    if (auto st = start_http(); !st) {
      return st;
    }
  }
  return {};
}

void DevicesSim::Impl::ticker() {
  std::uint8_t buf[512];
  while (!stopping.load()) {
    const auto now = Steady::now();
    for (auto& d : devices) {
      std::lock_guard lock(d->mu);
      d->tick(now);
    }
    for (auto& m : meters) {
      std::lock_guard lock(m->mu);
      ssize_t n;
      while ((n = ::read(m->master_fd, buf, sizeof buf)) > 0) {
        m->rx.insert(m->rx.end(), buf, buf + n);
      }
      m->take_terminal_bytes();
      for (auto& [cmd, queue] : m->queues) {
        if (queue.empty()) {
          continue;
        }
        auto& pending = queue.front();
        if (now >= pending.next_send) {
          // No spinning: while no terminal listens, the pty queue fills and the meter
          // just tries again at the next retransmission (the ticker must not stall).
          write_all_nonblocking(m->master_fd, pending.bytes.data(), pending.bytes.size(), 0);
          pending.sends++;
          pending.next_send = now + std::chrono::milliseconds(options.meter_retransmit_ms);
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string DevicesSim::Impl::token_of(const std::string& id) {
  std::lock_guard lock(tokens_mu);
  auto it = options.camera_tokens.find(id);
  return it == options.camera_tokens.end() ? std::string() : it->second;
}

void DevicesSim::Impl::heartbeat(SimDevice& d) {
  const std::string token = token_of(d.cfg.id);
  if (token.empty()) {
    record_failure(d, "camera " + d.cfg.id + ": no push token for its heartbeat", true);
    return;
  }
  auto hb = encode_heartbeat(d.cfg.protocol, d.cfg.serial,
                             d.cfg.address.empty() ? "127.0.0.1" : d.cfg.address);
  if (!hb) {
    record_failure(d, "camera " + d.cfg.id + ": " + hb.error().to_string(), true);
    return;
  }
  // Short: a gateway that does not answer must not hold up stop().
  const auto timeout = std::chrono::milliseconds(std::min(options.push_timeout_ms, 2000));
  auto answer = send_push(push_host, push_port, token, uses_basic_auth(d.cfg.protocol),
                          d.cfg.serial, *hb, timeout);
  if (!answer || answer->status < 200 || answer->status >= 300) {
    record_failure(
        d,
        "camera " + d.cfg.id + ": heartbeat to " + push_host + ":" + std::to_string(push_port) +
            ": " + (answer ? "answered " + std::to_string(answer->status) : answer.error().message),
        true);
    return;
  }
  std::lock_guard lock(d.mu);
  d.push.heartbeats++;
}

void DevicesSim::Impl::heartbeats() {
  while (!stopping.load()) {
    for (auto& d : devices) {
      if (stopping.load()) {
        break;
      }
      if (!d->cfg.push() || (d->cfg.protocol != "vzenith" && d->cfg.protocol != "dahua")) {
        continue;
      }
      bool due = false;
      {
        std::lock_guard lock(d->mu);
        const auto now = Steady::now();
        due = !d->silent && now >= d->next_heartbeat;
        if (due) {
          // Installed for this gateway: well within the timeout it was configured with.
          const int ms =
              std::min(options.heartbeat_interval_ms, d->cfg.heartbeat_timeout_s * 1000 / 3);
          d->next_heartbeat = now + std::chrono::milliseconds(ms);
        }
      }
      if (due) {
        heartbeat(*d);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void DevicesSim::Impl::shutdown() {
  if (stopped) {
    return;
  }
  stopped = true;
  stopping = true;
  stop_http();
  for (auto& t : threads) {
    if (t.joinable()) {
      t.join();
    }
  }
  threads.clear();
  std::error_code ec;
  for (auto& t : tcp) {
    if (t->listen_fd >= 0) ::close(t->listen_fd);
  }
  for (auto& r : rtu) {
    for (auto& d : r->devices) {
      if (d->ctx != nullptr) {
        modbus_close(d->ctx);
        modbus_free(d->ctx);
      }
      ::close(d->master_fd);
      ::close(d->keep_slave_fd);
    }
    ::close(r->master_fd);
    ::close(r->keep_slave_fd);
    if (!r->link.empty()) std::filesystem::remove(r->link, ec);
  }
  for (auto& m : meters) {
    ::close(m->master_fd);
    ::close(m->keep_slave_fd);
    if (!m->link.empty()) std::filesystem::remove(m->link, ec);
  }
}

Result<int> DevicesSim::tcp_port(std::string_view bus) const {
  for (const auto& t : impl_->tcp) {
    if (t->bus.id == bus) {
      return t->port;
    }
  }
  return fail(Errc::kNotFound, "no TCP bus \"" + std::string(bus) + "\"", "bus");
}

Result<std::string> DevicesSim::pty_path(std::string_view id) const {
  for (const auto& r : impl_->rtu) {
    if (r->bus.id == id) return r->slave_path;
  }
  for (const auto& m : impl_->meters) {
    if (m->cfg.id == id) return m->slave_path;
  }
  {
    std::lock_guard lock(readers_->mu);
    for (const auto& l : readers_->lines) {
      if (l.id == id) return l.slave_path;
    }
  }
  return fail(Errc::kNotFound, "no RTU bus, meter or reader \"" + std::string(id) + "\"", "id");
}

namespace {

// The lane's loop detector goes present (and clears after loop_hold_ms when set).
void set_loop_present(DevicesSim::Impl& impl, const config::LaneSection* lane) {
  if (lane == nullptr || lane->loop.empty()) {
    return;
  }
  if (SimDevice* loop = impl.find(lane->loop)) {
    auto lm = lane::loop_map(loop->cfg);
    std::lock_guard lock(loop->mu);
    loop->map->tab_input_bits[lm ? lm->present : 0] = 1;
    if (impl.options.loop_hold_ms > 0) {
      loop->loop_clear_at = Steady::now() + std::chrono::milliseconds(impl.options.loop_hold_ms);
    }
  }
}

// The provider's colour name of a camera register colour code (UNKNOWN outside 0..6).
std::string colour_name_of(int code) {
  if (code < 0 || code > 0xFFFF) {
    return "UNKNOWN";
  }
  auto c = lane::colour_from_code(static_cast<std::uint16_t>(code));
  return c ? std::string(lane::provider_colour_name(*c)) : std::string("UNKNOWN");
}

// Hikvision and Dahua cameras log in with HTTP Basic (user = serial, password = token); the
// Vzenith and generic ones carry the token in their configured URL (?token=). The gateway
// takes either; the demo thereby exercises both.
bool uses_basic_auth(std::string_view protocol) {
  return protocol == "hikvision" || protocol == "dahua";
}

std::chrono::milliseconds push_timeout(const DevicesSim::Impl& impl, const SimDevice& d) {
  int ms = impl.options.push_timeout_ms;
  if (d.cfg.protocol == "vzenith") {
    ms = std::max(ms, d.cfg.reply_wait_ms + 2000);
  }
  return std::chrono::milliseconds(ms);
}

void record_failure(SimDevice& d, const std::string& message, bool heartbeat) {
  std::lock_guard lock(d.mu);
  (heartbeat ? d.push.heartbeat_failures : d.push.push_failures)++;
  d.push.last_error = message;
}

// A vehicle in front of a push camera: the loop first (the vehicle stands on it when the
// camera fires, and a Vzenith reply waits for the lane's decision), then the push.
Result<std::uint16_t> push_vehicle(DevicesSim::Impl& impl, SimDevice& d,
                                   const config::LaneSection* lane, const VehicleArrival& v) {
  const std::string& id = d.cfg.id;
  // Beyond year 9999 is no capture time (and would overflow in milliseconds).
  if (v.time && (*v.time < 0 || *v.time > 253'402'300'799)) {
    return fail(Errc::kOutOfRange, "camera " + id + ": time out of range", "time");
  }
  set_loop_present(impl, lane);
  const std::string token = impl.token_of(id);
  CameraShot shot;
  shot.vendor = d.cfg.protocol;
  shot.serial = d.cfg.serial;
  shot.ip = d.cfg.address.empty() ? "127.0.0.1" : d.cfg.address;
  shot.plate = v.raw_text ? *v.raw_text : v.plate;
  shot.colour = colour_name_of(v.colour);
  // Register confidence is 0..1000, the vendors' 0..100 (Vzenith: 1..100 with a plate).
  shot.confidence = std::clamp(v.confidence / 10, shot.plate.empty() ? 0 : 1, 100);
  shot.capture_unix_ms = v.time ? *v.time * 1000 : 0;
  shot.images = true;
  std::uint16_t seq = 0;
  {
    std::lock_guard lock(d.mu);
    if (d.silent) {
      return fail(Errc::kUnavailable, "camera " + id + " is silent: nothing pushed", "camera");
    }
    d.sequence = static_cast<std::uint16_t>(d.sequence + 1);
    seq = d.sequence;
    // Fresh per push (failed ones too), never wrapping with the 16-bit sequence.
    shot.event_no = d.event_base + ++d.events;
  }
  if (token.empty()) {
    const std::string msg = "camera " + id + ": no push token (give it with --camera-token " + id +
                            "=TOKEN or DevicesSimOptions::camera_tokens)";
    record_failure(d, msg, false);
    return fail(Errc::kInvalidArgument, msg, "camera");
  }
  auto push = encode_plate(shot);
  if (!push) {
    const std::string msg = "camera " + id + ": " + push.error().to_string();
    record_failure(d, msg, false);
    return fail(push.error().code, msg, "camera");
  }
  const std::string where = impl.push_host + ":" + std::to_string(impl.push_port);
  auto answer = send_push(impl.push_host, impl.push_port, token, uses_basic_auth(shot.vendor),
                          shot.serial, *push, push_timeout(impl, d));
  if (!answer) {
    const std::string msg =
        "camera " + id + ": push to " + where + " got no answer: " + answer.error().message;
    record_failure(d, msg, false);
    return fail(Errc::kUnavailable, msg, "camera");
  }
  if (answer->status < 200 || answer->status >= 300) {
    std::string body = answer->body.substr(0, 200);
    const std::string msg = "camera " + id + ": push to " + where + " answered " +
                            std::to_string(answer->status) + " " + body;
    record_failure(d, msg, false);
    return fail(Errc::kRejected, msg, "camera");
  }
  std::optional<std::string> broken;
  std::optional<bool> relay;
  if (shot.vendor == "vzenith") {
    auto reply = read_vzenith_reply(answer->body);
    const Result<bool> opens =
        reply ? check_vzenith_reply(*reply, shot) : Result<bool>(std::unexpected(reply.error()));
    if (opens) {
      relay = *opens;
    } else {
      broken = opens.error().to_string();
    }
  }
  std::lock_guard lock(d.mu);
  // Delivered: the gateway holds the record (it stores before it answers).
  d.push.pushes++;
  d.push.last_event = shot.event_no;
  // Two callers pushing at once may finish out of order: record_read never goes back.
  if (static_cast<std::int16_t>(seq - d.record_read) > 0) {
    d.record_read = seq;
  }
  d.push.last_error.clear();
  if (relay) {
    (*relay ? d.push.relay_pulses : d.push.relay_kept_shut)++;
    d.push.last_relay = relay;
  }
  if (broken) {
    d.push.bad_replies++;
    d.push.last_error = "camera " + id + ": the Vzenith reply breaks the spec: " + *broken;
    return fail(Errc::kProtocol, d.push.last_error, "camera");
  }
  return seq;
}

}  // namespace

Result<std::uint16_t> DevicesSim::vehicle_arrives(const VehicleArrival& v) {
  std::string camera = v.camera;
  const config::LaneSection* lane = nullptr;
  if (camera.empty()) {
    lane = impl_->cfg.find_lane(v.lane);
    if (lane == nullptr || lane->camera.empty()) {
      return fail(Errc::kNotFound, "no lane \"" + v.lane + "\" with a camera", "lane");
    }
    camera = lane->camera;
  } else {
    lane = impl_->cfg.find_lane(impl_->lane_of(camera));
  }
  SimDevice* d = impl_->find(camera);
  if (d == nullptr || d->cfg.kind != config::DeviceKind::kCamera) {
    return fail(Errc::kNotFound, "no camera \"" + camera + "\"", "camera");
  }
  if (d->cfg.push()) {
    return push_vehicle(*impl_, *d, lane, v);
  }
  auto m = lane::camera_map(d->cfg);
  if (!m) {
    return std::unexpected(m.error());
  }
  std::string bytes;
  if (v.raw_text) {
    bytes = *v.raw_text;
  } else {
    auto enc = lane::parse_encoding(d->cfg.encoding);
    if (!enc) return std::unexpected(enc.error());
    auto b = lane::encode_text(v.plate, *enc);
    if (!b) return std::unexpected(b.error());
    bytes = *b;
  }
  if (bytes.size() > 16) {
    return fail(Errc::kInvalidArgument, "plate text is more than 16 bytes", "plate");
  }
  const std::int64_t t = v.time ? *v.time
                                : std::chrono::duration_cast<std::chrono::seconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count();
  std::uint16_t seq = 0;
  {
    std::lock_guard lock(d->mu);
    auto* regs = d->map->tab_registers;
    const auto bo = d->cfg.byte_order;
    std::uint16_t text[lane::CameraMap::kTextRegisters];
    lane::pack_text_registers(bytes, text);
    for (int i = 0; i < lane::CameraMap::kTextRegisters; ++i) {
      regs[m->plate_text + i] = device_order(text[i], bo);
    }
    regs[m->text_length] = device_order(static_cast<std::uint16_t>(bytes.size()), bo);
    regs[m->colour] = device_order(static_cast<std::uint16_t>(v.colour), bo);
    regs[m->confidence] = device_order(static_cast<std::uint16_t>(v.confidence), bo);
    std::uint16_t a = 0;
    std::uint16_t b = 0;
    lane::split_u32(static_cast<std::uint32_t>(t), d->cfg.word_order, a, b);
    regs[m->time] = device_order(a, bo);
    regs[m->time + 1] = device_order(b, bo);
    regs[m->vehicle_class] = device_order(static_cast<std::uint16_t>(v.vehicle_class), bo);
    // The sequence is written last: a reader that sees the new number sees the record.
    d->sequence = static_cast<std::uint16_t>(d->sequence + 1);
    seq = d->sequence;
    regs[m->sequence] = device_order(seq, bo);
  }
  set_loop_present(*impl_, lane);
  return seq;
}

Status DevicesSim::vehicle_leaves(std::string_view lane_id) {
  const config::LaneSection* lane = impl_->cfg.find_lane(lane_id);
  if (lane == nullptr || lane->loop.empty()) {
    return fail(Errc::kNotFound, "no lane \"" + std::string(lane_id) + "\" with a loop", "lane");
  }
  SimDevice* loop = impl_->find(lane->loop);
  if (loop == nullptr) {
    return fail(Errc::kNotFound, "loop device missing", "lane");
  }
  auto lm = lane::loop_map(loop->cfg);
  std::lock_guard lock(loop->mu);
  loop->map->tab_input_bits[lm ? lm->present : 0] = 0;
  return {};
}

namespace {

lane::CivilTime civil_at(std::int64_t unix_s, int offset_min) {
  const std::time_t t = static_cast<std::time_t>(unix_s + offset_min * 60LL);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return lane::CivilTime{tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min};
}

}  // namespace

Result<std::uint32_t> DevicesSim::end_trip(const SimTrip& trip) {
  SimMeter* m = impl_->find_meter(trip.meter);
  if (m == nullptr) {
    return fail(Errc::kNotFound, "no meter \"" + trip.meter + "\"", "meter");
  }
  lane::TripRecord t;
  t.plate = trip.plate;
  t.operating_licence = "LIC0000001";
  t.driver_qualification = "QUAL00000000000001";
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  const int off = impl_->options.utc_offset_minutes;
  if (trip.boarding.empty()) {
    t.boarding = civil_at(now - 20 * 60, off);
  } else if (std::sscanf(trip.boarding.c_str(), "%d-%d-%dT%d:%d", &t.boarding.year,
                         &t.boarding.month, &t.boarding.day, &t.boarding.hour,
                         &t.boarding.minute) != 5) {
    return fail(Errc::kInvalidArgument, "want YYYY-MM-DDThh:mm", "boarding");
  }
  if (trip.alighting.empty()) {
    const auto a = civil_at(now, off);
    t.alighting.hour = a.hour;
    t.alighting.minute = a.minute;
  } else if (std::sscanf(trip.alighting.c_str(), "%d:%d", &t.alighting.hour, &t.alighting.minute) !=
             2) {
    return fail(Errc::kInvalidArgument, "want hh:mm", "alighting");
  }
  t.distance_m = trip.distance_m;
  t.empty_distance_m = 1200;
  t.surcharge = Money::from_fen(0);
  t.waiting_seconds = 180;
  t.fare = Money::from_fen(trip.fare_fen);
  t.payment_type = static_cast<std::uint8_t>(trip.payment_type);
  std::lock_guard lock(m->mu);
  t.trip_number = trip.trip_number ? *trip.trip_number : m->next_trip++;
  auto body = lane::encode_trip_record(t);
  if (!body) {
    return std::unexpected(body.error());
  }
  m->stored[t.trip_number] = *body;
  m->queue(lane::kCmdTripRecord, t.trip_number, std::move(*body));
  return t.trip_number;
}

Status DevicesSim::start_trip(std::string_view meter, std::string_view occupied_at) {
  SimMeter* m = impl_->find_meter(meter);
  if (m == nullptr) {
    return fail(Errc::kNotFound, "no meter \"" + std::string(meter) + "\"", "meter");
  }
  lane::MeterTime t;
  if (occupied_at.empty()) {
    const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    t = lane::meter_time_at(now, impl_->options.utc_offset_minutes);
  } else if (std::sscanf(std::string(occupied_at).c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &t.civil.year,
                         &t.civil.month, &t.civil.day, &t.civil.hour, &t.civil.minute,
                         &t.second) != 6 ||
             t.civil.year < 0 || t.civil.month < 0 || t.civil.day < 0 || t.civil.hour < 0 ||
             t.civil.minute < 0 || t.second < 0) {
    // Impossible but well-formed values (month 13) are sent as they are: tests of the
    // terminal's 0xFF answer.
    return fail(Errc::kInvalidArgument, "want YYYY-MM-DDThh:mm:ss", "occupied_at");
  }
  std::lock_guard lock(m->mu);
  m->queue(lane::kCmdTripStarted, 0, lane::encode_meter_time(t));
  return {};
}

Result<std::vector<std::uint32_t>> DevicesSim::resend_stored(std::string_view meter,
                                                             std::optional<std::uint32_t> trip) {
  SimMeter* m = impl_->find_meter(meter);
  if (m == nullptr) {
    return fail(Errc::kNotFound, "no meter \"" + std::string(meter) + "\"", "meter");
  }
  std::lock_guard lock(m->mu);
  std::vector<std::uint32_t> out;
  for (const auto& [number, body] : m->stored) {
    if (!trip || *trip == number) {
      m->queue(lane::kCmdStoredTrip, number, body);
      out.push_back(number);
    }
  }
  if (trip && out.empty()) {
    return fail(Errc::kNotFound, "meter has no stored trip " + std::to_string(*trip),
                "trip_number");
  }
  return out;
}

Status DevicesSim::set_meter_device_state(std::string_view meter, std::uint8_t state) {
  SimMeter* m = impl_->find_meter(meter);
  if (m == nullptr) {
    return fail(Errc::kNotFound, "no meter \"" + std::string(meter) + "\"", "meter");
  }
  std::lock_guard lock(m->mu);
  m->status.device_state = state;
  return {};
}

Result<MeterLinkState> DevicesSim::meter_link(std::string_view meter) const {
  SimMeter* m = impl_->find_meter(meter);
  if (m == nullptr) {
    return fail(Errc::kNotFound, "no meter \"" + std::string(meter) + "\"", "meter");
  }
  std::lock_guard lock(m->mu);
  MeterLinkState st;
  st.acked = m->acked;
  st.acked_stored = m->acked_stored;
  st.refused = m->refused;
  for (auto cmd : {lane::kCmdTripRecord, lane::kCmdStoredTrip}) {
    if (auto it = m->queues.find(cmd); it != m->queues.end()) {
      for (const auto& p : it->second) st.unacked.push_back(p.trip_number);
    }
  }
  if (auto it = m->queues.find(lane::kCmdTripStarted); it != m->queues.end()) {
    st.trip_starts_unacked = static_cast<int>(it->second.size());
  }
  st.trip_starts_acked = m->trip_starts_acked;
  st.trip_starts_refused = m->trip_starts_refused;
  st.status_queries = m->status_queries;
  st.bad_acks = m->bad_acks;
  st.device_state = m->status.device_state;
  return st;
}

Status DevicesSim::meter_raw(std::string_view meter, std::span<const std::uint8_t> bytes) {
  SimMeter* m = impl_->find_meter(meter);
  if (m == nullptr) {
    return fail(Errc::kNotFound, "no meter \"" + std::string(meter) + "\"", "meter");
  }
  std::lock_guard lock(m->mu);
  write_all_nonblocking(m->master_fd, bytes.data(), bytes.size());
  return {};
}

Result<std::uint16_t> DevicesSim::roadside_entry(const RoadsideEntry& e) {
  std::string id = e.device;
  if (id.empty()) {
    const auto* lane = impl_->cfg.find_lane(e.lane);
    if (lane == nullptr || lane->roadside_unit.empty()) {
      return fail(Errc::kNotFound, "no lane \"" + e.lane + "\" with a roadside unit", "lane");
    }
    id = lane->roadside_unit;
  }
  SimDevice* d = impl_->find(id);
  if (d == nullptr || d->cfg.kind != config::DeviceKind::kRoadsideUnit) {
    return fail(Errc::kNotFound, "no roadside unit \"" + id + "\"", "device");
  }
  auto m = lane::roadside_map(d->cfg);
  if (!m) {
    return std::unexpected(m.error());
  }
  std::lock_guard lock(d->mu);
  auto* regs = d->map->tab_registers;
  const auto bo = d->cfg.byte_order;
  std::uint16_t a = 0;
  std::uint16_t b = 0;
  lane::split_u32(e.entry_station, d->cfg.word_order, a, b);
  regs[m->entry_station] = device_order(a, bo);
  regs[m->entry_station + 1] = device_order(b, bo);
  lane::split_u32(static_cast<std::uint32_t>(e.entry_time), d->cfg.word_order, a, b);
  regs[m->entry_time] = device_order(a, bo);
  regs[m->entry_time + 1] = device_order(b, bo);
  regs[m->vehicle_class] = device_order(static_cast<std::uint16_t>(e.vehicle_class), bo);
  std::uint16_t text[lane::RoadsideMap::kContractRegisters];
  lane::pack_text_registers(e.contract_id, text);
  for (int i = 0; i < lane::RoadsideMap::kContractRegisters; ++i) {
    regs[m->contract_id + i] = device_order(text[i], bo);
  }
  d->sequence = static_cast<std::uint16_t>(d->sequence + 1);
  regs[m->sequence] = device_order(d->sequence, bo);
  return d->sequence;
}

Status DevicesSim::set_silent(std::string_view device, bool silent) {
  SimDevice* d = impl_->find(device);
  if (d == nullptr) {
    return fail(Errc::kNotFound, "no device \"" + std::string(device) + "\"", "device");
  }
  std::lock_guard lock(d->mu);
  if (d->silent && !silent) {
    d->next_heartbeat = {};  // a camera that comes back announces itself at once
  }
  d->silent = silent;
  return {};
}

Status DevicesSim::set_camera_token(std::string_view camera, std::string token) {
  SimDevice* d = impl_->find(camera);
  if (d == nullptr || !d->cfg.push()) {
    return fail(Errc::kNotFound, "no push camera \"" + std::string(camera) + "\"", "camera");
  }
  std::lock_guard lock(impl_->tokens_mu);
  impl_->options.camera_tokens[std::string(camera)] = std::move(token);
  return {};
}

Result<PushCameraState> DevicesSim::push_camera(std::string_view camera) const {
  SimDevice* d = impl_->find(camera);
  if (d == nullptr || !d->cfg.push()) {
    return fail(Errc::kNotFound, "no push camera \"" + std::string(camera) + "\"", "camera");
  }
  std::lock_guard lock(d->mu);
  return d->push;
}

Status DevicesSim::set_barrier_stuck(std::string_view device, bool stuck) {
  SimDevice* d = impl_->find(device);
  if (d == nullptr || d->cfg.kind != config::DeviceKind::kBarrier) {
    return fail(Errc::kNotFound, "no barrier \"" + std::string(device) + "\"", "device");
  }
  std::lock_guard lock(d->mu);
  d->stuck = stuck;
  return {};
}

Result<BarrierSnapshot> DevicesSim::barrier(std::string_view device) const {
  SimDevice* d = impl_->find(device);
  if (d == nullptr || d->cfg.kind != config::DeviceKind::kBarrier) {
    return fail(Errc::kNotFound, "no barrier \"" + std::string(device) + "\"", "device");
  }
  std::lock_guard lock(d->mu);
  BarrierSnapshot s;
  s.open_commands = d->open_commands;
  s.opened = d->map->tab_input_bits[d->barrier_map.opened] != 0;
  s.closed = d->map->tab_input_bits[d->barrier_map.closed] != 0;
  s.stuck = d->stuck;
  return s;
}

Result<std::string> DevicesSim::display_text(std::string_view device) const {
  SimDevice* d = impl_->find(device);
  if (d == nullptr || d->cfg.kind != config::DeviceKind::kDisplay) {
    return fail(Errc::kNotFound, "no display \"" + std::string(device) + "\"", "device");
  }
  auto m = lane::display_map(d->cfg);
  if (!m) {
    return std::unexpected(m.error());
  }
  std::string bytes;
  {
    std::lock_guard lock(d->mu);
    bytes = d->display_bytes();
  }
  return lane::decode_text(bytes, TextEncoding::kGbk);
}

Result<std::vector<std::string>> DevicesSim::display_texts(std::string_view device,
                                                           std::size_t from) const {
  SimDevice* d = impl_->find(device);
  if (d == nullptr || d->cfg.kind != config::DeviceKind::kDisplay) {
    return fail(Errc::kNotFound, "no display \"" + std::string(device) + "\"", "device");
  }
  std::vector<std::string> raw;
  {
    std::lock_guard lock(d->mu);
    if (from < d->texts.size()) {
      raw.assign(d->texts.begin() + static_cast<std::ptrdiff_t>(from), d->texts.end());
    }
  }
  std::vector<std::string> out;
  out.reserve(raw.size());
  for (const auto& bytes : raw) {
    // An undecodable text still takes its place, so indexes stay stable for the caller.
    out.push_back(lane::decode_text(bytes, TextEncoding::kGbk).value_or(std::string()));
  }
  return out;
}

Result<std::size_t> DevicesSim::display_writes(std::string_view device) const {
  SimDevice* d = impl_->find(device);
  if (d == nullptr || d->cfg.kind != config::DeviceKind::kDisplay) {
    return fail(Errc::kNotFound, "no display \"" + std::string(device) + "\"", "device");
  }
  std::lock_guard lock(d->mu);
  return d->texts.size();
}

Result<std::uint16_t> DevicesSim::record_read(std::string_view device) const {
  SimDevice* d = impl_->find(device);
  if (d == nullptr || (d->cfg.kind != config::DeviceKind::kCamera &&
                       d->cfg.kind != config::DeviceKind::kRoadsideUnit)) {
    return fail(Errc::kNotFound, "no camera or roadside unit \"" + std::string(device) + "\"",
                "device");
  }
  std::lock_guard lock(d->mu);
  return d->record_read;
}

Result<std::vector<std::uint32_t>> DevicesSim::meter_acked(std::string_view meter) const {
  SimMeter* m = impl_->find_meter(meter);
  if (m == nullptr) {
    return fail(Errc::kNotFound, "no meter \"" + std::string(meter) + "\"", "meter");
  }
  std::lock_guard lock(m->mu);
  return m->acked;
}

Result<std::vector<std::uint32_t>> DevicesSim::meter_unacked(std::string_view meter) const {
  SimMeter* m = impl_->find_meter(meter);
  if (m == nullptr) {
    return fail(Errc::kNotFound, "no meter \"" + std::string(meter) + "\"", "meter");
  }
  auto st = meter_link(meter);
  if (!st) {
    return std::unexpected(st.error());
  }
  return st->unacked;
}

Result<std::int64_t> DevicesSim::requests_answered(std::string_view device) const {
  SimDevice* d = impl_->find(device);
  if (d == nullptr) {
    return fail(Errc::kNotFound, "no device \"" + std::string(device) + "\"", "device");
  }
  return d->answered.load();
}

}  // namespace lanegate::sim
