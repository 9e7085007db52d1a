// lanegate: the operator's command-line tool. Each subcommand is implemented in the
// module that owns the subject; this file parses global options and dispatches.

#include <httplib.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "config/check.h"
#include "config/config.h"
#include "core/process.h"
#include "core/sqlite.h"
#include "audit/audit_cli.h"
#include "gateway/daemon.h"
#include "gateway/provider_wechatpay.h"
#include "invoice/cli.h"
#include "lane/cli.h"
#include "offline_queue/queue_cli.h"

namespace {

namespace json = boost::json;
using lanegate::config::Config;

int usage(std::ostream& out, int code) {
  out << "usage: lanegate [--config FILE] COMMAND [ARGS]\n"
         "\n"
         "  check-config FILE                     validate a configuration file, print every error\n"
         "  status                                lanes, devices, uplink, queue (via the local API)\n"
         "  tx list [--lane L] [--plate P] [--state S] [--from T] [--to T] [--arrears] [--refund-due] [--limit N]\n"
         "  tx receipt OUT_TRADE_NO                the passenger's receipt: claim URL, code, text, QR (SVG);\n"
         "                                        a toll: the trip and where its invoice comes from\n"
         "  lanes open LANE --reason TEXT         open a barrier by hand (recorded with who and why)\n"
         "  lanes plate LANE PLATE [--colour C] --reason TEXT\n"
         "                                        type the plate of a vehicle the camera could not read\n"
         "  passages [--lane L] [--limit N] | passages show ID\n"
         "                                        passages with their camera evidence (images: auditor)\n"
         "  queue stats | list [--parked] | show ID | unpark ID | retry-now ID\n"
         "  meter decode HEX                      decode a captured taxi-meter frame to JSON\n"
         "  modbus read DEVICE [--holding|--input|--coils|--discrete] ADDRESS COUNT\n"
         "  invoice split --total YUAN --rate PERCENT | check-buyer-id CODE\n"
         "  invoice list --tx OUT_TRADE_NO        the invoices of a transaction (and its red letter)\n"
         "  invoice show ID                       an invoice; a red one with its confirmation forms\n"
         "  invoice reverse ID --reason R         red letter for an issued invoice (R: returned,\n"
         "                                        invoicing_error, service_stopped, discount)\n"
         "  invoice retry ID                      issue a failed invoice again (a red: a new form)\n"
         "  keys show                             the device's public key and fingerprint\n"
         "  audit export --date D | verify PACKAGE --pubkey KEY | reconcile --date D | seal --date D\n"
         "  version\n"
         "\n"
         "--config defaults to /etc/lanegate/lanegate.toml. API commands read the bearer token\n"
         "from $LANEGATE_TOKEN or --token-file FILE.\n";
  return code;
}

std::optional<Config> load(const std::string& path) {
  auto cfg = lanegate::config::load_file(path);
  if (!cfg) {
    for (const auto& e : cfg.error()) std::cerr << e.to_string() << "\n";
    std::cerr << "lanegate: the configuration " << path << " has errors (see `lanegate check-config`)\n";
    return std::nullopt;
  }
  return *cfg;
}

std::optional<lanegate::Database> open_db(const Config& cfg) {
  const auto path = cfg.gateway.state_dir / "lanegate.db";
  auto db = lanegate::Database::open(path);
  if (!db) {
    std::cerr << "lanegate: cannot open " << path << ": " << db.error().message << "\n";
    return std::nullopt;
  }
  if (auto s = db->migrate(lanegate::gateway::database_schema()); !s) {
    std::cerr << "lanegate: " << path << ": " << s.error().message << "\n";
    return std::nullopt;
  }
  return std::move(*db);
}

struct ApiClient {
  std::unique_ptr<httplib::ClientImpl> client;
  std::string token;
};

std::optional<ApiClient> api_client(const Config& cfg, const std::string& token_file) {
  ApiClient c;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    std::getline(in, c.token);
  } else if (const char* t = std::getenv("LANEGATE_TOKEN")) {
    c.token = t;
  }
  if (c.token.empty()) {
    std::cerr << "lanegate: an operator token is needed: set LANEGATE_TOKEN or pass --token-file FILE\n";
    return std::nullopt;
  }
  const std::string host = cfg.api.listen_address == "0.0.0.0" ? "127.0.0.1" : cfg.api.listen_address;
  if (cfg.api.tls) {
    auto ssl = std::make_unique<httplib::SSLClient>(host, cfg.api.listen_port);
    // The local API's own certificate: the CLI runs on the box and talks to loopback.
    ssl->enable_server_certificate_verification(false);
    c.client = std::move(ssl);
  } else {
    c.client = std::make_unique<httplib::ClientImpl>(host, cfg.api.listen_port);
  }
  c.client->set_connection_timeout(3, 0);
  c.client->set_read_timeout(10, 0);
  return c;
}

int print_reply(const httplib::Result& r) {
  if (!r) {
    std::cerr << "lanegate: the gateway's API did not answer: " << httplib::to_string(r.error()) << "\n";
    return 1;
  }
  boost::system::error_code ec;
  json::value v = json::parse(r->body, ec);
  if (ec) {
    std::cout << r->body << "\n";
  } else {
    std::cout << json::serialize(v) << "\n";
  }
  return r->status >= 200 && r->status < 300 ? 0 : 1;
}

std::string percent(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // SIGPIPE ignored: a reply cut off by the gateway's API, or stdout piped into `head`,
  // is an error to report, not a silent death (core/process.h).
  lanegate::process::install_signal_policy("lanegate");
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string config_path = "/etc/lanegate/lanegate.toml";
  std::string token_file;
  while (!args.empty() && args[0].starts_with("--") && args[0] != "--help" && args[0] != "--version") {
    if (args[0] == "--config" && args.size() >= 2) {
      config_path = args[1];
      args.erase(args.begin(), args.begin() + 2);
    } else if (args[0] == "--token-file" && args.size() >= 2) {
      token_file = args[1];
      args.erase(args.begin(), args.begin() + 2);
    } else {
      std::cerr << "lanegate: unknown option '" << args[0] << "'\n";
      return usage(std::cerr, 2);
    }
  }
  if (args.empty()) return usage(std::cerr, 2);
  const std::string cmd = args[0];
  std::span<const std::string> rest(args.begin() + 1, args.end());

  if (cmd == "help" || cmd == "--help" || cmd == "-h") return usage(std::cout, 0);
  if (cmd == "version" || cmd == "--version") {
    std::cout << "lanegate " << LANEGATE_VERSION << "\n";
    return 0;
  }
  if (cmd == "check-config") {
    if (rest.size() != 1) {
      std::cerr << "usage: lanegate check-config FILE\n";
      return 2;
    }
    return lanegate::config::check_config_command(rest[0], std::cout, std::cerr);
  }
  if (cmd == "meter" && !rest.empty() && rest[0] == "decode") {
    return lanegate::lane::meter_decode_command(rest.subspan(1), std::cout, std::cerr);
  }
  const bool invoice_via_api =
      cmd == "invoice" && !rest.empty() &&
      (rest[0] == "list" || rest[0] == "show" || rest[0] == "reverse" || rest[0] == "retry");
  if (cmd == "invoice" && !invoice_via_api) {
    lanegate::config::InvoicingSection section;
    if (auto cfg = lanegate::config::load_file(config_path)) section = cfg->invoicing;
    return lanegate::invoice::invoice_command(rest, section, std::cout, std::cerr);
  }
  if (cmd == "audit" && !rest.empty() && rest[0] == "verify") {
    // Verification needs nothing of this box: an authority runs it anywhere.
    // An in-memory database cannot switch to WAL: open it read-only (nothing is written).
    lanegate::DatabaseOptions options;
    options.read_only = true;
    auto db = lanegate::Database::open(":memory:", options);
    if (!db) {
      std::cerr << "lanegate audit verify: " << db.error().to_string() << "\n";
      return 1;
    }
    return lanegate::audit::audit_command(*db, ".", 480, rest, {}, std::cout, std::cerr);
  }

  auto cfg = load(config_path);
  if (!cfg) return 1;
  if (cmd == "modbus" && !rest.empty() && rest[0] == "read") {
    return lanegate::lane::modbus_read_command(*cfg, rest.subspan(1), std::cout, std::cerr);
  }
  if (cmd == "keys") {
    return lanegate::audit::keys_command(cfg->gateway.state_dir, rest, std::cout, std::cerr);
  }
  if (cmd == "queue") {
    auto db = open_db(*cfg);
    if (!db) return 1;
    return lanegate::queue::queue_command(*db, cfg->queue, rest, std::cout, std::cerr);
  }
  if (cmd == "audit") {
    auto db = open_db(*cfg);
    if (!db) return 1;
    lanegate::audit::FetchBill fetch;
    if (cfg->provider.configured()) {
      fetch = [&cfg](std::string date) -> lanegate::Result<std::string> {
        auto client = lanegate::gateway::WechatPayClient::create(cfg->provider);
        if (!client) return std::unexpected(client.error());
        auto bill = (*client)->download_trade_bill(date);
        if (!bill) return std::unexpected(bill.error().error);
        return bill->csv;
      };
    }
    // The trade bill's lines this box reconciles: its merchant, or in partner mode the
    // service provider's lines for the box's special merchant.
    std::optional<lanegate::audit::BillOwner> owner;
    if (cfg->provider.configured()) {
      owner = lanegate::audit::BillOwner{cfg->provider.caller_mchid(),
                                                   cfg->provider.partner() ? cfg->provider.sub_mchid : ""};
    }
    return lanegate::audit::audit_command(*db, cfg->gateway.state_dir, cfg->gateway.utc_offset_minutes, rest,
                                                   fetch, std::cout, std::cerr,
                                                   lanegate::SystemClock::instance(), owner);
  }
  if (cmd == "status" || cmd == "tx" || cmd == "lanes" || cmd == "passages" || invoice_via_api) {
    auto api = api_client(*cfg, token_file);
    if (!api) return 1;
    httplib::Headers h{{"Authorization", "Bearer " + api->token}};
    if (cmd == "status") return print_reply(api->client->Get("/api/v1/status", h));
    if (cmd == "tx" && !rest.empty() && rest[0] == "list") {
      std::string q;
      for (std::size_t i = 1; i < rest.size(); ++i) {
        const std::string& a = rest[i];
        if (a == "--arrears") {
          q += "&arrears=1";
        } else if (a == "--refund-due") {
          q += "&refund_due=1";  // paid after the passage fell back: refund the driver
        } else if (a.starts_with("--") && i + 1 < rest.size()) {
          q += "&" + a.substr(2) + "=" + percent(rest[++i]);
        } else {
          std::cerr << "lanegate tx list: unexpected '" << a << "'\n";
          return 2;
        }
      }
      return print_reply(api->client->Get(("/api/v1/transactions?" + (q.empty() ? "" : q.substr(1))).c_str(), h));
    }
    if (cmd == "tx" && rest.size() == 2 && rest[0] == "receipt") {
      return print_reply(api->client->Get(("/api/v1/transactions/" + percent(rest[1]) + "/receipt").c_str(), h));
    }
    if (cmd == "lanes" && rest.size() == 4 && rest[0] == "open" && rest[2] == "--reason") {
      const std::string body = json::serialize(json::object{{"reason", rest[3]}});
      return print_reply(
          api->client->Post(("/api/v1/lanes/" + percent(rest[1]) + "/open").c_str(), h, body, "application/json"));
    }
    if (cmd == "lanes" && rest.size() >= 5 && rest[0] == "plate") {
      json::object body{{"plate", rest[2]}};
      for (std::size_t i = 3; i + 1 < rest.size(); i += 2) {
        if (rest[i] == "--reason") {
          body["reason"] = rest[i + 1];
        } else if (rest[i] == "--colour") {
          body["colour"] = rest[i + 1];
        } else {
          std::cerr << "lanegate lanes plate: unexpected '" << rest[i] << "'\n";
          return 2;
        }
      }
      return print_reply(api->client->Post(("/api/v1/lanes/" + percent(rest[1]) + "/plate").c_str(),
                                           h, json::serialize(body), "application/json"));
    }
    if (invoice_via_api) {
      const std::string path = "/api/v1/invoices/" + (rest.size() > 1 ? percent(rest[1]) : std::string());
      if (rest[0] == "list" && rest.size() == 3 && rest[1] == "--tx") {
        return print_reply(api->client->Get(("/api/v1/invoices?transaction_id=" + percent(rest[2])).c_str(), h));
      }
      if (rest[0] == "show" && rest.size() == 2) return print_reply(api->client->Get(path.c_str(), h));
      if (rest[0] == "retry" && rest.size() == 2) {
        return print_reply(api->client->Post((path + "/retry").c_str(), h, "{}", "application/json"));
      }
      if (rest[0] == "reverse" && rest.size() == 4 && rest[2] == "--reason") {
        const std::string body = json::serialize(json::object{{"reason", rest[3]}});
        return print_reply(api->client->Post((path + "/red-letter").c_str(), h, body, "application/json"));
      }
      std::cerr << "lanegate invoice: list --tx OUT_TRADE_NO | show ID | reverse ID --reason returned|invoicing_error|"
                   "service_stopped|discount | retry ID\n";
      return 2;
    }
    if (cmd == "passages" && rest.size() == 2 && rest[0] == "show") {
      return print_reply(api->client->Get(("/api/v1/passages/" + percent(rest[1])).c_str(), h));
    }
    if (cmd == "passages") {
      std::string q;
      for (std::size_t i = 0; i < rest.size(); ++i) {
        if ((rest[i] == "--lane" || rest[i] == "--limit") && i + 1 < rest.size()) {
          q += "&" + rest[i].substr(2) + "=" + percent(rest[i + 1]);
          ++i;
        } else {
          std::cerr << "lanegate passages: unexpected '" << rest[i] << "'\n";
          return 2;
        }
      }
      return print_reply(
          api->client->Get(("/api/v1/passages?" + (q.empty() ? "" : q.substr(1))).c_str(), h));
    }
    return usage(std::cerr, 2);
  }
  std::cerr << "lanegate: unknown command '" << cmd << "'\n";
  return usage(std::cerr, 2);
}
