// `lanegate-sim devices`: the simulated lane hardware as a process.
#include <signal.h>

#include <charconv>
#include <iostream>

#include "config/config.h"
#include "sim/devices.h"

namespace lanegate::sim {

int run_devices_sim(std::span<const std::string> args) {
  std::string config_path;
  DevicesSimOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--config" && i + 1 < args.size()) {
      config_path = args[++i];
    } else if (a == "--control-port" && i + 1 < args.size()) {
      const std::string& v = args[++i];
      int port = -1;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), port);
      if (ec != std::errc() || p != v.data() + v.size() || port < 0 || port > 65535) {
        std::cerr << "lanegate-sim devices: --control-port: want 0..65535, got \"" << v << "\"\n";
        return 2;
      }
      options.control_port = port;
    } else {
      std::cerr << "usage: lanegate-sim devices --config FILE [--control-port N]\n";
      return 2;
    }
  }
  if (config_path.empty()) {
    std::cerr << "usage: lanegate-sim devices --config FILE [--control-port N]\n";
    return 2;
  }
  auto cfg = config::load_file(config_path);
  if (!cfg) {
    for (const auto& e : cfg.error()) {
      std::cerr << e.to_string() << "\n";
    }
    return 2;
  }
  options.utc_offset_minutes = cfg->gateway.utc_offset_minutes;
  // Block the stop signals before any thread starts, so only sigwait() sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  auto sim = DevicesSim::start(*cfg, options);
  if (!sim) {
    std::cerr << "lanegate-sim devices: " << sim.error().to_string() << "\n";
    return 1;
  }
  for (const auto& b : cfg->buses) {
    if (b.transport == config::Transport::kTcp) {
      if (auto port = (*sim)->tcp_port(b.id)) {
        std::cout << "bus " << b.id << " tcp=127.0.0.1:" << *port << "\n";
      }
    } else if (auto path = (*sim)->pty_path(b.id)) {
      std::cout << "bus " << b.id << " rtu=" << b.serial_device << " -> " << *path << "\n";
    }
  }
  for (const auto& m : cfg->meters) {
    if (auto path = (*sim)->pty_path(m.id)) {
      std::cout << "meter " << m.id << " " << m.device << " -> " << *path << "\n";
    }
  }
  std::cout << "ready control=http://127.0.0.1:" << (*sim)->control_port() << std::endl;
  int sig = 0;
  sigwait(&stop_signals, &sig);
  (*sim)->stop();
  return 0;
}

}  // namespace lanegate::sim
