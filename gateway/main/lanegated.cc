// lanegated: the gateway daemon. See gateway/daemon.h for what it does with signals and
// systemd; docs/ARCHITECTURE.md for the whole picture.

#include <sys/stat.h>

#include <cstring>
#include <iostream>
#include <string_view>

#include "core/process.h"
#include "gateway/daemon.h"

namespace {

int usage(std::ostream& out, int code) {
  out << "usage: lanegated [--config FILE]\n"
         "  --config FILE   configuration (default /etc/lanegate/lanegate.toml)\n"
         "  --version       print the version\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // First, before anything can write to a peer or crash: SIGPIPE ignored, fatal signals
  // logged, without relying on systemd's IgnoreSIGPIPE= (core/process.h).
  lanegate::process::install_signal_policy("lanegated");
  // Everything lanegated creates (state directory, database, -wal, -shm, lock file) is
  // for its own user: claim tokens, buyer data, plates. systemd's UMask=0077 is not
  // everywhere it runs (a shell, Docker, runit).
  ::umask(0077);
  lanegate::gateway::DaemonOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      options.config_file = argv[++i];
    } else if (arg == "--version") {
      std::cout << "lanegated " << LANEGATE_VERSION << "\n";
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      return usage(std::cout, 0);
    } else {
      std::cerr << "lanegated: unknown argument '" << arg << "'\n";
      return usage(std::cerr, 2);
    }
  }
  lanegate::gateway::Daemon daemon(options);
  return daemon.run();
}
