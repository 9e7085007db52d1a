// lanegate: the operator's command-line tool. Each subcommand is implemented in the
// module that owns the subject; this file only dispatches.

#include <iostream>
#include <span>
#include <string>
#include <vector>

#include "config/check.h"

namespace {

int usage(std::ostream& out, int code) {
  out << "usage: lanegate COMMAND [ARGS]\n"
         "\n"
         "  check-config FILE          validate a configuration file, print every error\n"
         "  version                    print the version\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    return usage(std::cerr, 2);
  }
  const std::string& cmd = args[0];
  std::span<const std::string> rest(args.begin() + 1, args.end());
  if (cmd == "check-config") {
    if (rest.size() != 1) {
      std::cerr << "usage: lanegate check-config FILE\n";
      return 2;
    }
    return lanegate::config::check_config_command(rest[0], std::cout, std::cerr);
  }
  if (cmd == "version" || cmd == "--version") {
    std::cout << "lanegate " << LANEGATE_VERSION << "\n";
    return 0;
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    return usage(std::cout, 0);
  }
  std::cerr << "lanegate: unknown command '" << cmd << "'\n";
  return usage(std::cerr, 2);
}
