// The regulator sandbox (sim/regulator_sandbox.h). Its wire code is its own on purpose: a
// bug shared with the gateway's codec would otherwise pass every test.
#include "sim/regulator_sandbox.h"

#include <signal.h>

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <tuple>
#include <variant>

namespace lanegate::sim {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

constexpr std::uint8_t kFlag = 0x7E;
constexpr std::uint16_t kUpload = 0x0B05;
constexpr std::uint16_t kReply = 0x8001;
constexpr std::size_t kHeader = 12;       // MsgId, length, ISU BCD[6], serial
constexpr std::size_t kUploadFixed = 65;  // two 25-byte positions + 4 + 4 + 1 + 2 + 4
constexpr std::size_t kMeterFixed = 66;   // 0x00E8 record before the card data
constexpr std::size_t kMaxRun = 8192;     // escaped bytes without an end flag: garbage

std::uint32_t read_u32(const std::vector<std::uint8_t>& b, std::size_t at) {
  return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
         (std::uint32_t{b[at + 2]} << 8) | b[at + 3];
}

std::uint16_t read_u16(const std::vector<std::uint8_t>& b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}

// Decimal value of `n` BCD bytes, or nullopt when a nibble is above 9.
std::optional<std::int64_t> read_bcd(const std::vector<std::uint8_t>& b, std::size_t at,
                                     std::size_t n) {
  std::int64_t v = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    const int hi = b[i] >> 4;
    const int lo = b[i] & 0x0F;
    if (hi > 9 || lo > 9) return std::nullopt;
    v = v * 100 + hi * 10 + lo;
  }
  return v;
}

std::string two(std::int64_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02d", static_cast<int>(v % 100));
  return buf;
}

// "20YY-MM-DD hh:mm[:ss]" from BCD YYMMDDhhmm[ss]; nullopt on a bad nibble or a field out
// of its calendar range.
std::optional<std::string> read_bcd_time(const std::vector<std::uint8_t>& b, std::size_t at,
                                         bool seconds) {
  std::array<std::int64_t, 6> f{};
  const std::size_t n = seconds ? 6 : 5;
  for (std::size_t i = 0; i < n; ++i) {
    auto v = read_bcd(b, at + i, 1);
    if (!v) return std::nullopt;
    f[i] = *v;
  }
  if (f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > 31 || f[3] > 23 || f[4] > 59 || f[5] > 59) {
    return std::nullopt;
  }
  std::string s =
      "20" + two(f[0]) + "-" + two(f[1]) + "-" + two(f[2]) + " " + two(f[3]) + ":" + two(f[4]);
  if (seconds) s += ":" + two(f[5]);
  return s;
}

std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

std::string upload_json(const RegulatorUpload& u) {
  return "{\"isu_id\":" + json_str(u.isu_id) + ",\"serial\":" + std::to_string(u.serial) +
         ",\"trip_number\":" + std::to_string(u.trip_number) +
         ",\"fare_fen\":" + std::to_string(u.fare_fen) + ",\"boarding\":" + json_str(u.boarding) +
         ",\"occupied_at\":" + json_str(u.occupied_at) +
         ",\"duplicate\":" + (u.duplicate ? "true" : "false") + "}";
}

// One unescaped message: header fields and body.
struct Message {
  std::uint16_t msg_id = 0;
  std::array<std::uint8_t, 6> isu{};
  std::uint16_t serial = 0;
  std::vector<std::uint8_t> body;
};

// Why a frame was refused, and the header when it could be read (to answer result 2).
struct Refusal {
  std::string rule;
  std::optional<Message> header;
};

// Parses one escaped frame `7E ... 7E` (flags included).
std::variant<Message, Refusal> parse_frame(const std::vector<std::uint8_t>& frame) {
  std::vector<std::uint8_t> raw;
  for (std::size_t i = 1; i + 1 < frame.size(); ++i) {
    if (frame[i] != 0x7D) {
      raw.push_back(frame[i]);
      continue;
    }
    if (i + 2 >= frame.size() || (frame[i + 1] != 0x01 && frame[i + 1] != 0x02)) {
      return Refusal{"escape", std::nullopt};
    }
    raw.push_back(frame[i + 1] == 0x01 ? 0x7D : 0x7E);
    ++i;
  }
  if (raw.size() < kHeader + 1) return Refusal{"length", std::nullopt};
  Message m;
  m.msg_id = read_u16(raw, 0);
  std::copy(raw.begin() + 4, raw.begin() + 10, m.isu.begin());
  m.serial = read_u16(raw, 10);
  std::uint8_t x = 0;
  for (std::size_t i = 0; i + 1 < raw.size(); ++i) x ^= raw[i];
  if (x != raw.back()) return Refusal{"xor", m};
  if (read_u16(raw, 2) != raw.size() - kHeader - 1) return Refusal{"body_length", m};
  if (!read_bcd(raw, 4, 6)) return Refusal{"isu_id", m};
  m.body.assign(raw.begin() + kHeader, raw.end() - 1);
  return m;
}

std::vector<std::uint8_t> reply_frame(const Message& to, std::uint16_t serial,
                                      std::uint8_t result) {
  std::vector<std::uint8_t> raw = {static_cast<std::uint8_t>(kReply >> 8),
                                   static_cast<std::uint8_t>(kReply & 0xFF), 0x00, 0x05};
  raw.insert(raw.end(), to.isu.begin(), to.isu.end());
  raw.push_back(static_cast<std::uint8_t>(serial >> 8));
  raw.push_back(static_cast<std::uint8_t>(serial));
  raw.push_back(static_cast<std::uint8_t>(to.serial >> 8));
  raw.push_back(static_cast<std::uint8_t>(to.serial));
  raw.push_back(static_cast<std::uint8_t>(to.msg_id >> 8));
  raw.push_back(static_cast<std::uint8_t>(to.msg_id));
  raw.push_back(result);
  std::uint8_t x = 0;
  for (std::uint8_t b : raw) x ^= b;
  raw.push_back(x);
  std::vector<std::uint8_t> out = {kFlag};
  for (std::uint8_t b : raw) {
    if (b == 0x7E || b == 0x7D) {
      out.push_back(0x7D);
      out.push_back(b == 0x7E ? 0x02 : 0x01);
    } else {
      out.push_back(b);
    }
  }
  out.push_back(kFlag);
  return out;
}

// The 0x0B05 body and its embedded 0x00E8 record; the refusal names the field.
std::variant<RegulatorUpload, std::string> parse_upload(const Message& m) {
  const auto& b = m.body;
  if (b.size() < kUploadFixed + kMeterFixed) return std::string("body_length");
  RegulatorUpload u;
  for (std::uint8_t byte : m.isu) {
    u.isu_id += static_cast<char>('0' + (byte >> 4));
    u.isu_id += static_cast<char>('0' + (byte & 0x0F));
  }
  u.serial = m.serial;
  // Position: alarm, status, lat, lng (4 each), speed 2, direction 1, then the time.
  for (std::size_t pos : {std::size_t{0}, std::size_t{25}}) {
    if (b[pos + 18] > 179) return std::string("direction");
    if (!read_bcd_time(b, pos + 19, true)) return std::string("position_time");
  }
  u.occupied_at = *read_bcd_time(b, 19, true);
  const std::size_t meter = kUploadFixed;
  // 0x00E8: plate 6, licence 16, qualification 19, boarding BCD5 @41, alighting BCD2 @46,
  // distance BCD3 @48, empty BCD2 @51, surcharge BCD3 @53, waiting BCD2 @56, fare BCD3 @58,
  // trip u32 @61, payment type @65.
  auto boarding = read_bcd_time(b, meter + 41, false);
  if (!boarding) return std::string("boarding");
  u.boarding = *boarding;
  for (auto [at, n, name] : {std::tuple{46, 2, "alighting"}, std::tuple{48, 3, "distance"},
                             std::tuple{51, 2, "empty_distance"}, std::tuple{53, 3, "surcharge"},
                             std::tuple{56, 2, "waiting_time"}}) {
    if (!read_bcd(b, meter + at, n)) return std::string(name);
  }
  auto fare = read_bcd(b, meter + 58, 3);
  if (!fare) return std::string("fare");
  u.fare_fen = *fare * 10;
  u.trip_number = read_u32(b, meter + 61);
  return u;
}

}  // namespace

struct RegulatorSandbox::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread thread;

  mutable std::mutex mu;
  RegulatorFaults faults;
  std::vector<RegulatorUpload> uploads;
  std::set<std::tuple<std::string, std::uint32_t, std::string>> seen;
  int duplicates = 0;
  int malformed = 0;
  int connections = 0;
  std::uint16_t next_serial = 0;
  bool print_uploads = false;

  enum class Action { kReply, kFail, kDrop, kClose };

  // Decides what to do with a valid upload and records it. Any thread.
  Action admit(RegulatorUpload u, std::chrono::milliseconds& delay, std::uint16_t& serial) {
    std::lock_guard lock(mu);
    delay = faults.reply_delay;
    serial = next_serial++;
    if (faults.close_connections > 0) {
      --faults.close_connections;
      return Action::kClose;
    }
    if (faults.fail_replies > 0) {
      --faults.fail_replies;
      return Action::kFail;
    }
    u.duplicate = !seen.emplace(u.isu_id, u.trip_number, u.boarding).second;
    if (u.duplicate) ++duplicates;
    uploads.push_back(u);
    if (print_uploads) std::cout << upload_json(u) << std::endl;
    if (faults.drop_replies > 0) {
      --faults.drop_replies;
      return Action::kDrop;
    }
    return Action::kReply;
  }

  std::uint16_t refuse() {
    std::lock_guard lock(mu);
    ++malformed;
    return next_serial++;
  }

  struct Session : std::enable_shared_from_this<Session> {
    Impl& owner;
    tcp::socket socket;
    std::array<std::uint8_t, 2048> buf{};
    std::vector<std::uint8_t> pending;  // bytes not yet split into frames
    std::deque<std::vector<std::uint8_t>> writes;

    Session(Impl& o, tcp::socket s) : owner(o), socket(std::move(s)) {}

    void read() {
      socket.async_read_some(asio::buffer(buf), [self = shared_from_this()](
                                                    boost::system::error_code ec, std::size_t n) {
        if (ec) return;
        self->pending.insert(self->pending.end(), self->buf.begin(),
                             self->buf.begin() + static_cast<long>(n));
        if (self->split()) self->read();
      });
    }

    // Handles every complete frame; false when the connection was closed on purpose.
    bool split() {
      for (;;) {
        auto start = std::find(pending.begin(), pending.end(), kFlag);
        pending.erase(pending.begin(), start);
        if (pending.empty()) return true;
        auto end = std::find(pending.begin() + 1, pending.end(), kFlag);
        if (end == pending.end()) {
          if (pending.size() > kMaxRun) {
            owner.refuse();
            pending.clear();
          }
          return true;
        }
        if (end == pending.begin() + 1) {  // 7E 7E: the second flag opens the next frame
          pending.erase(pending.begin());
          continue;
        }
        std::vector<std::uint8_t> frame(pending.begin(), end + 1);
        pending.erase(pending.begin(), end + 1);
        if (!handle(frame)) return false;
      }
    }

    bool handle(const std::vector<std::uint8_t>& frame) {
      auto parsed = parse_frame(frame);
      if (auto* r = std::get_if<Refusal>(&parsed)) {
        const std::uint16_t serial = owner.refuse();
        if (r->header) send(reply_frame(*r->header, serial, 2), std::chrono::milliseconds(0));
        return true;
      }
      const Message& m = std::get<Message>(parsed);
      if (m.msg_id != kUpload) {
        send(reply_frame(m, owner.refuse(), 2), std::chrono::milliseconds(0));
        return true;
      }
      auto upload = parse_upload(m);
      if (std::holds_alternative<std::string>(upload)) {
        send(reply_frame(m, owner.refuse(), 2), std::chrono::milliseconds(0));
        return true;
      }
      std::chrono::milliseconds delay{0};
      std::uint16_t serial = 0;
      switch (owner.admit(std::get<RegulatorUpload>(upload), delay, serial)) {
        case Action::kClose: {
          boost::system::error_code ignored;
          socket.close(ignored);
          return false;
        }
        case Action::kFail:
          send(reply_frame(m, serial, 1), delay);
          return true;
        case Action::kDrop:
          return true;
        case Action::kReply:
          send(reply_frame(m, serial, 0), delay);
          return true;
      }
      return true;
    }

    void send(std::vector<std::uint8_t> bytes, std::chrono::milliseconds delay) {
      if (delay.count() <= 0) return enqueue(std::move(bytes));
      auto timer = std::make_shared<asio::steady_timer>(owner.io, delay);
      timer->async_wait([self = shared_from_this(), timer,
                         bytes = std::move(bytes)](boost::system::error_code ec) mutable {
        if (!ec) self->enqueue(std::move(bytes));
      });
    }

    // Writes one at a time so replies never interleave.
    void enqueue(std::vector<std::uint8_t> bytes) {
      writes.push_back(std::move(bytes));
      if (writes.size() == 1) write_next();
    }

    void write_next() {
      asio::async_write(socket, asio::buffer(writes.front()),
                        [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                          if (ec) return;
                          self->writes.pop_front();
                          if (!self->writes.empty()) self->write_next();
                        });
    }
  };

  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      {
        std::lock_guard lock(mu);
        ++connections;
      }
      std::make_shared<Session>(*this, std::move(s))->read();
      accept();
    });
  }

  ~Impl() {
    io.stop();
    if (thread.joinable()) thread.join();
  }
};

RegulatorSandbox::RegulatorSandbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RegulatorSandbox::~RegulatorSandbox() = default;

Result<std::unique_ptr<RegulatorSandbox>> RegulatorSandbox::start(RegulatorSandboxOptions options) {
  auto impl = std::make_unique<Impl>();
  boost::system::error_code ec;
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"),
                         static_cast<unsigned short>(options.port));
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail(Errc::kIo, "regulator sandbox cannot listen on 127.0.0.1:" +
                               std::to_string(options.port) + ": " + ec.message());
  }
  impl->print_uploads = options.print_uploads;
  impl->accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<RegulatorSandbox>(new RegulatorSandbox(std::move(impl)));
}

int RegulatorSandbox::port() const { return impl_->acceptor.local_endpoint().port(); }

void RegulatorSandbox::inject(const RegulatorFaults& f) {
  std::lock_guard lock(impl_->mu);
  impl_->faults.close_connections += f.close_connections;
  impl_->faults.fail_replies += f.fail_replies;
  impl_->faults.drop_replies += f.drop_replies;
  impl_->faults.reply_delay = f.reply_delay;
}

std::vector<RegulatorUpload> RegulatorSandbox::uploads() const {
  std::lock_guard lock(impl_->mu);
  return impl_->uploads;
}

int RegulatorSandbox::duplicates() const {
  std::lock_guard lock(impl_->mu);
  return impl_->duplicates;
}

int RegulatorSandbox::connections() const {
  std::lock_guard lock(impl_->mu);
  return impl_->connections;
}

int RegulatorSandbox::malformed() const {
  std::lock_guard lock(impl_->mu);
  return impl_->malformed;
}

std::string RegulatorSandbox::uploads_json() const {
  std::lock_guard lock(impl_->mu);
  std::string out = "{\"uploads\":[";
  for (std::size_t i = 0; i < impl_->uploads.size(); ++i) {
    if (i) out += ",";
    out += upload_json(impl_->uploads[i]);
  }
  return out + "],\"duplicates\":" + std::to_string(impl_->duplicates) +
         ",\"malformed\":" + std::to_string(impl_->malformed) + "}";
}

int run_regulator_sandbox(std::span<const std::string> args) {
  RegulatorSandboxOptions o;
  o.print_uploads = true;
  RegulatorFaults f;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (i + 1 >= args.size()) {
      std::cerr << "regulator: " << a << " needs a value\n";
      return 2;
    }
    const int v = std::atoi(args[++i].c_str());
    if (a == "--port") {
      o.port = v;
    } else if (a == "--drop-replies") {
      f.drop_replies = v;
    } else if (a == "--fail-replies") {
      f.fail_replies = v;
    } else if (a == "--close") {
      f.close_connections = v;
    } else if (a == "--delay-ms") {
      f.reply_delay = std::chrono::milliseconds(v);
    } else {
      std::cerr << "regulator: unknown option " << a
                << "\nusage: lanegate-sim regulator [--port N] [--drop-replies N]"
                   " [--fail-replies N] [--close N] [--delay-ms N]\n";
      return 2;
    }
  }
  // Block the stop signals before the server thread starts, then wait for them here.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  auto sandbox = RegulatorSandbox::start(o);
  if (!sandbox) {
    std::cerr << "regulator: " << sandbox.error().to_string() << "\n";
    return 1;
  }
  (*sandbox)->inject(f);
  std::cout << "ready " << (*sandbox)->port() << std::endl;
  int sig = 0;
  sigwait(&set, &sig);
  std::cout << (*sandbox)->uploads_json() << std::endl;
  return 0;
}

}  // namespace lanegate::sim
