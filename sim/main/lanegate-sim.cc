// lanegate-sim: the simulated world for the demo and the tests. Never part of a
// deployment: it replaces the outside world (lane devices, the payment provider, the
// invoicing platform), speaking their real wire protocols.

#include <iostream>
#include <span>
#include <string>
#include <vector>

#include "core/process.h"
#include "sim/cameras.h"
#include "sim/devices.h"
#include "sim/invoicing_sandbox.h"
#include "sim/provider_sandbox.h"
#include "sim/regulator_sandbox.h"
#include "sim/scenario.h"

namespace {

int usage(std::ostream& out, int code) {
  out << "usage: lanegate-sim COMMAND [ARGS]\n"
         "\n"
         "  devices --config FILE [--control-port N]       Modbus devices and meters of a lanegate config\n"
         "  provider --pki DIR --seed FILE --db FILE [--port N] [--admin-port N] [--time-factor F]\n"
         "  invoicing --db FILE [--port N] [--app-secret-file F]\n"
         "  regulator [--port N] [--drop-replies N] [--fail-replies N] [--close N] [--delay-ms N]\n"
         "  camera --vendor V --host H --port N --serial S (--plate P | --no-plate) [...]\n"
         "                                                 one plate camera push (camera --help)\n"
         "  scenario --config FILE --bin-dir DIR [...]      the demo: traffic around a real lanegated\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // Like the binaries it drives: a peer that goes away mid-write is handled, not fatal.
  lanegate::process::install_signal_policy("lanegate-sim");
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage(std::cerr, 2);
  const std::string cmd = args[0];
  std::span<const std::string> rest(args.begin() + 1, args.end());
  if (cmd == "devices") return lanegate::sim::run_devices_sim(rest);
  if (cmd == "provider") return lanegate::sim::run_provider_sandbox(rest);
  if (cmd == "invoicing") return lanegate::sim::run_invoicing_sandbox(rest);
  if (cmd == "regulator") return lanegate::sim::run_regulator_sandbox(rest);
  if (cmd == "camera") return lanegate::sim::run_camera(rest);
  if (cmd == "scenario") return lanegate::sim::run_scenario(rest);
  if (cmd == "help" || cmd == "--help" || cmd == "-h") return usage(std::cout, 0);
  std::cerr << "lanegate-sim: unknown command '" << cmd << "'\n";
  return usage(std::cerr, 2);
}
