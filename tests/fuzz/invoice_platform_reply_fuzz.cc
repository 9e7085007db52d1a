// Fuzz target: replies of the invoicing platform (outside bytes from the uplink). The
// reply parser is private to NuonuoPlatform, so the fuzzer drives the real client against
// an in-process HTTP server on 127.0.0.1 that answers with the fuzzed bytes.
//   byte 0: % 5 picks the call (issue, query, red-letter apply, red-letter form query,
//           fastInvoiceRed), / 5 % 8 the HTTP status (mostly 200; 401, 403, 404, 429,
//           500 otherwise);
//   rest:   the reply body.
// Properties: never crashes or leaks an exception; 5xx/429 -> kUnavailable, 401/403 ->
// kPermission (never an invoice outcome); an accepted issue has a serial number; a query
// result is for the order asked, and an issued invoice is only reported with status kIssued
// when the platform said status 2; a red-letter form read back is the one asked for and
// its state is a text the reply carried; an apply never answers another billId.
#include <httplib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "core/clock.h"
#include "core/log.h"
#include "invoice/platform.h"

namespace {

namespace inv = lanegate::invoice;

constexpr std::string_view kOrderNo = "LG-FUZZ-0001";
constexpr std::string_view kBillId = "LG-FUZZ-BILL-1";

struct World {
  httplib::Server server;
  int port = 0;
  std::mutex mu;
  int status = 200;
  std::string body;
  lanegate::FakeClock clock;
  std::unique_ptr<inv::NuonuoPlatform> platform;
};

World* world = nullptr;

inv::IssueRequest sample_request() {
  inv::IssueRequest r;
  r.order_no = std::string(kOrderNo);
  r.seller = {"Fuzz Parking Co", "91440300MA5FUZZ001"};
  r.buyer.title = "个人";
  r.buyer.email = "driver@example.cn";
  inv::InvoiceLine line;
  line.transaction_id = "T1";
  line.service = "parking";
  line.item_name = "*经营租赁*停车费";
  line.tax_code = "3040502020200000000";
  line.rate_percent = 9;
  line.excl = lanegate::Money::from_fen(917);
  line.tax = lanegate::Money::from_fen(83);
  line.incl = lanegate::Money::from_fen(1000);
  r.lines.push_back(line);
  r.invoice_date = world->clock.now();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lanegate::log::set_min_level(lanegate::log::Level::kError);
  world = new World();
  world->server.Post("/open/v1/services", [](const httplib::Request&, httplib::Response& res) {
    std::lock_guard lock(world->mu);
    res.status = world->status;
    res.set_content(world->body, "application/json;charset=utf-8");
  });
  world->port = world->server.bind_to_any_port("127.0.0.1");
  if (world->port <= 0) {
    fprintf(stderr, "invoice_platform_reply_fuzz: cannot bind 127.0.0.1\n");
    abort();
  }
  std::thread([] { world->server.listen_after_bind(); }).detach();
  inv::PlatformClientOptions options;
  options.base_url = "http://127.0.0.1:" + std::to_string(world->port);
  options.app_key = "fuzz-app";
  options.access_token = "fuzz-token";
  options.seller_tax_id = "91440300MA5FUZZ001";
  options.connect_timeout = std::chrono::milliseconds(2000);
  options.request_timeout = std::chrono::milliseconds(5000);
  options.verify_tls = false;
  world->platform = std::make_unique<inv::NuonuoPlatform>(
      std::move(options), std::make_unique<inv::NuonuoSigner>("fuzz-secret"), world->clock);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) {
    return 0;
  }
  static constexpr int kStatuses[] = {200, 200, 200, 401, 403, 429, 500, 404};
  const int call = data[0] % 5;
  const int status = kStatuses[(data[0] / 5) % 8];
  {
    std::lock_guard lock(world->mu);
    world->status = status;
    world->body.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  }
  auto check_error = [&](const lanegate::Error& e) {
    if (e.message.empty()) {
      __builtin_trap();
    }
    if ((status >= 500 || status == 429) && e.code != lanegate::Errc::kUnavailable) {
      __builtin_trap();
    }
    if ((status == 401 || status == 403) && e.code != lanegate::Errc::kPermission) {
      __builtin_trap();
    }
  };
  if (call == 2) {
    inv::RedConfirmApply a;
    a.bill_id = std::string(kBillId);
    a.blue_number = "26447000000012345678";
    a.red_order_no = std::string(kOrderNo);
    auto bill = world->platform->apply_red_confirm(a);
    if (bill) {
      if (status != 200 || *bill != kBillId) __builtin_trap();
    } else {
      check_error(bill.error());
    }
    return 0;
  }
  if (call == 3) {
    auto form = world->platform->query_red_confirm(kBillId);
    if (form) {
      if (status != 200 || form->bill_id != kBillId) __builtin_trap();
      if (!form->bill_status.empty() && world->body.find(form->bill_status) == std::string::npos) {
        __builtin_trap();  // a state the reply never named
      }
    } else {
      check_error(form.error());
    }
    return 0;
  }
  if (call == 4) {
    inv::FastRedRequest f;
    f.order_no = std::string(kOrderNo);
    f.bill_no = "35080224091000701901";
    f.bill_uuid = "322d5d68aa";
    auto accepted = world->platform->fast_red(f);
    if (accepted) {
      if (status != 200 || accepted->serial_num.empty()) __builtin_trap();
    } else {
      check_error(accepted.error());
    }
    return 0;
  }
  if (call == 0) {
    auto accepted = world->platform->issue(sample_request());
    if (accepted) {
      if (status != 200 || accepted->serial_num.empty()) {
        __builtin_trap();
      }
    } else {
      check_error(accepted.error());
    }
  } else {
    auto result = world->platform->query(kOrderNo);
    if (result) {
      if (status != 200 || result->order_no != kOrderNo) {
        __builtin_trap();
      }
      if (result->status == inv::PlatformStatus::kIssued &&
          world->body.find('2') == std::string::npos) {
        __builtin_trap();  // "issued" must come from the platform's status 2
      }
    } else {
      check_error(result.error());
    }
  }
  return 0;
}
