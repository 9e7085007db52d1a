// lanegate-fleetd: the fleet centre's upload service (docs/FLEET.md). Boxes upload their
// ledgers over mutual TLS; records go into the PostgreSQL cluster of scripts/fleet-cluster.
//
//   lanegate-fleetd --dsn DSN --cert F --key F --client-ca F [--listen HOST:PORT]
//   lanegate-fleetd register --dsn DSN BOX_ID PUBLIC_KEY_HEX
#include <signal.h>
#include <sys/stat.h>

#include <charconv>
#include <csignal>
#include <iostream>
#include <string>
#include <string_view>

#include "core/log.h"
#include "core/process.h"
#include "fleet/centre.h"
#include "fleet/pg.h"
#include "fleet/service.h"

namespace {

using namespace lanegate;

int usage(std::ostream& out, int code) {
  out << "usage: lanegate-fleetd --dsn DSN --cert FILE --key FILE --client-ca FILE\n"
         "                       [--listen HOST:PORT] [--utc-offset +08:00] [--retry-after S]\n"
         "       lanegate-fleetd register --dsn DSN BOX_ID PUBLIC_KEY_HEX\n"
         "\n"
         "Serves box ledger uploads over HTTPS with mutual TLS (docs/FLEET.md). A box is the\n"
         "Common Name of its client certificate, signed by the client CA.\n"
         "  --dsn DSN          libpq connection string (scripts/fleet-cluster dsn); put the\n"
         "                     password in a passfile, never in DSN\n"
         "  --cert, --key      the service's certificate chain and private key (PEM)\n"
         "  --client-ca FILE   the CA that signs box certificates (PEM)\n"
         "  --listen HOST:PORT default 0.0.0.0:8443\n"
         "  --utc-offset       the jurisdiction's offset for local days (default +08:00)\n"
         "  --retry-after S    told to boxes while the database is away (default 30)\n"
         "  register           registers a box with its device signing key (Ed25519, hex)\n"
         "  --version, --help\n";
  return code;
}

bool parse_offset(std::string_view s, UtcOffset& out) {
  // "+08:00" / "-05:30"
  if (s.size() != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return false;
  int h = 0, m = 0;
  if (std::from_chars(s.data() + 1, s.data() + 3, h).ec != std::errc{} ||
      std::from_chars(s.data() + 4, s.data() + 6, m).ec != std::errc{} || h > 14 || m > 59) {
    return false;
  }
  out.minutes = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
  return true;
}

volatile std::sig_atomic_t g_stop = 0;

}  // namespace

int main(int argc, char** argv) {
  process::install_signal_policy("lanegate-fleetd");
  ::umask(0077);
  fleet::ServiceConfig cfg;
  cfg.host = "0.0.0.0";
  cfg.port = 8443;
  bool do_register = false;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string& into) {
      if (i + 1 >= argc) return false;
      into = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "--help" || arg == "-h") {
      return usage(std::cout, 0);
    } else if (arg == "--version") {
      std::cout << "lanegate-fleetd " << LANEGATE_VERSION << "\n";
      return 0;
    } else if (arg == "register" && i == 1) {
      do_register = true;
    } else if (arg == "--dsn" && value(cfg.dsn)) {
    } else if (arg == "--cert" && value(cfg.cert_file)) {
    } else if (arg == "--key" && value(cfg.key_file)) {
    } else if (arg == "--client-ca" && value(cfg.client_ca_file)) {
    } else if (arg == "--listen" && value(v)) {
      const auto colon = v.rfind(':');
      int port = 0;
      if (colon == std::string::npos ||
          std::from_chars(v.data() + colon + 1, v.data() + v.size(), port).ec != std::errc{} ||
          port < 1 || port > 65535) {
        std::cerr << "lanegate-fleetd: --listen: must be HOST:PORT with a port 1-65535\n";
        return 2;
      }
      cfg.host = v.substr(0, colon);
      cfg.port = port;
    } else if (arg == "--utc-offset" && value(v)) {
      if (!parse_offset(v, cfg.offset)) {
        std::cerr << "lanegate-fleetd: --utc-offset: must be ±HH:MM, e.g. +08:00\n";
        return 2;
      }
    } else if (arg == "--retry-after" && value(v)) {
      if (std::from_chars(v.data(), v.data() + v.size(), cfg.retry_after_s).ec != std::errc{} ||
          cfg.retry_after_s < 1) {
        std::cerr << "lanegate-fleetd: --retry-after: must be a number of seconds, 1 or more\n";
        return 2;
      }
    } else if (!arg.starts_with("-") && do_register) {
      positional.emplace_back(arg);
    } else {
      std::cerr << "lanegate-fleetd: unknown or incomplete argument '" << arg << "'\n";
      return usage(std::cerr, 2);
    }
  }
  if (cfg.dsn.empty()) {
    std::cerr << "lanegate-fleetd: --dsn is required\n";
    return usage(std::cerr, 2);
  }
  if (do_register) {
    if (positional.size() != 2) {
      std::cerr << "lanegate-fleetd: register takes BOX_ID and PUBLIC_KEY_HEX\n";
      return 2;
    }
    auto c = fleet::pg::Connection::open(cfg.dsn);
    if (!c) {
      std::cerr << "lanegate-fleetd: " << c.error().message << "\n";
      return 1;
    }
    fleet::Centre centre(*c, cfg.offset);
    if (auto s = centre.migrate(); !s) {
      std::cerr << "lanegate-fleetd: " << s.error().to_string() << "\n";
      return 1;
    }
    if (auto s = centre.register_box(positional[0], positional[1]); !s) {
      std::cerr << "lanegate-fleetd: register: " << s.error().to_string() << "\n";
      return 1;
    }
    std::cout << "registered " << positional[0] << "\n";
    return 0;
  }
  fleet::Service service(cfg);
  if (auto s = service.start(); !s) {
    std::cerr << "lanegate-fleetd: " << s.error().to_string() << "\n";
    return 1;
  }
  log::notice("lanegate-fleetd listening", {{"ADDRESS", cfg.host + ":" +
                                                            std::to_string(service.port())}});
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  std::signal(SIGINT, [](int) { g_stop = 1; });
  while (g_stop == 0) ::pause();
  service.stop();
  log::notice("lanegate-fleetd stopped", {});
  return 0;
}
