// Interoperability: the simulated devices answer an independent Modbus master, mbpoll
// (Debian package), over TCP and over RTU on a pseudo-terminal.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <regex>

#include "lane_it_support.h"
#include "sim/devices.h"

namespace lanegate::lane {
namespace {

using namespace testing;

std::string find_mbpoll() {
  for (const char* p : {"/usr/bin/mbpoll", "/usr/local/bin/mbpoll"}) {
    if (std::filesystem::exists(p)) return p;
  }
  return {};
}

// Runs mbpoll once (bounded by timeout(1)) and returns {reference -> value}.
std::map<int, long> run_mbpoll(const std::string& args, std::string* raw = nullptr) {
  const std::string cmd = "timeout 10 " + find_mbpoll() + " " + args + " 2>&1";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    ::pclose(p);
  }
  if (raw) *raw = out;
  std::map<int, long> values;
  static const std::regex line(R"(\[(\d+)\]:\s+(-?\d+))");
  for (std::sregex_iterator it(out.begin(), out.end(), line), end; it != end; ++it) {
    values[std::stoi((*it)[1])] = std::stol((*it)[2]);
  }
  return values;
}

class Mbpoll : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(find_mbpoll().empty())
        << "mbpoll is not installed: run scripts/install-deps (Debian package mbpoll)";
  }
};

config::Config world(const std::string& rtu_path) {
  config::Config cfg;
  cfg.buses.push_back(tcp_bus("lan"));
  cfg.buses.push_back(rtu_bus("rs485", rtu_path, 19200));
  cfg.devices.push_back(device("tcp-cam", config::DeviceKind::kCamera, "lan", 1));
  cfg.devices.push_back(device("tcp-bar", config::DeviceKind::kBarrier, "lan", 3));
  cfg.devices.push_back(device("rtu-cam", config::DeviceKind::kCamera, "rs485", 5));
  cfg.devices.push_back(device("rtu-bar", config::DeviceKind::kBarrier, "rs485", 6));
  return cfg;
}

TEST_F(Mbpoll, ReadsCameraRecordAndBarrierInputsOverTcpAndRtu) {
  TempDir tmp;
  const std::string rtu_path = (tmp.path() / "rtu0").string();
  sim::DevicesSimOptions opts;
  opts.control_port = -1;
  auto sim = sim::DevicesSim::start(world(rtu_path), opts);
  ASSERT_TRUE(sim) << sim.error().to_string();
  for (const char* cam : {"tcp-cam", "rtu-cam"}) {
    sim::VehicleArrival v;
    v.camera = cam;
    v.plate = "粤B12345";
    v.colour = 1;
    v.confidence = 876;
    v.vehicle_class = 2;
    ASSERT_TRUE((*sim)->vehicle_arrives(v));
  }
  const int port = *(*sim)->tcp_port("lan");
  std::string raw;

  // Holding registers 0..2 of the TCP camera: sequence 1, colour 1 (yellow), confidence.
  auto regs = run_mbpoll(
      "-m tcp -p " + std::to_string(port) + " -a 1 -0 -r 0 -c 3 -t 4 -1 -o 2 127.0.0.1", &raw);
  EXPECT_EQ(regs, (std::map<int, long>{{0, 1}, {1, 1}, {2, 876}})) << raw;
  // Plate text length (register 5: 9 UTF-8 bytes) and vehicle class (register 14).
  regs = run_mbpoll("-m tcp -p " + std::to_string(port) + " -a 1 -0 -r 5 -c 1 -t 4 -1 127.0.0.1",
                    &raw);
  EXPECT_EQ(regs[5], 9) << raw;
  // Barrier discrete inputs 1 (opened) and 2 (closed) of unit 3: closed at rest.
  regs = run_mbpoll("-m tcp -p " + std::to_string(port) + " -a 3 -0 -r 1 -c 2 -t 1 -1 127.0.0.1",
                    &raw);
  EXPECT_EQ(regs, (std::map<int, long>{{1, 0}, {2, 1}})) << raw;

  // The same over RTU on the pty line (19200 8N1), slaves 5 and 6.
  const std::string rtu = "-m rtu -b 19200 -P none -s 1 -d 8 ";
  regs = run_mbpoll(rtu + "-a 5 -0 -r 0 -c 3 -t 4 -1 -o 2 " + rtu_path, &raw);
  EXPECT_EQ(regs, (std::map<int, long>{{0, 1}, {1, 1}, {2, 876}})) << raw;
  regs = run_mbpoll(rtu + "-a 6 -0 -r 1 -c 2 -t 1 -1 -o 2 " + rtu_path, &raw);
  EXPECT_EQ(regs, (std::map<int, long>{{1, 0}, {2, 1}})) << raw;

  // mbpoll writes the open coil; the simulated barrier takes the command.
  run_mbpoll(rtu + "-a 6 -0 -r 0 -t 0 -1 -o 2 " + rtu_path + " 1", &raw);
  auto b = (*sim)->barrier("rtu-bar");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->open_commands, 1) << raw;

  // A slave nobody serves does not answer.
  regs = run_mbpoll(rtu + "-a 9 -0 -r 0 -c 1 -t 4 -1 -o 0.3 " + rtu_path, &raw);
  EXPECT_TRUE(regs.empty()) << raw;
  (*sim)->stop();
}

}  // namespace
}  // namespace lanegate::lane
