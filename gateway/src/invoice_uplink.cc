#include "gateway/invoice_uplink.h"

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json.hpp>

#include "core/log.h"
#include "core/metrics.h"
#include "gateway/settlement.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

bool no_answer(Errc c) {
  return c == Errc::kUnavailable || c == Errc::kTimeout || c == Errc::kCrypto;
}

metrics::Gauge& up_gauge() {
  return metrics::Registry::global().gauge(
      "lanegate_invoicing_up", "1 when the last invoicing platform exchange got an answer");
}

metrics::Counter& unexpected_answers(std::string_view field) {
  return metrics::Registry::global().counter(
      "lanegate_invoice_unexpected_answer_total",
      "Invoicing platform answers that parked an item (unknown status, conflicting number or amount)",
      {{"field", std::string(field)}});
}

}  // namespace

IssueStep issue_step(const Result<invoice::Advance>& state) {
  using std::chrono::milliseconds;
  if (!state) {
    const Error& e = state.error();
    if (no_answer(e.code)) {
      return {queue::Outcome::retry(e.message, InvoiceUplink::kLinkDownRetry), false};
    }
    if (e.code == Errc::kNotFound && e.field == "invoice_id") {
      return {queue::Outcome::park(e.message), std::nullopt};  // no such invoice: an operator looks
    }
    if (e.code == Errc::kPermission) {
      return {queue::Outcome::retry(e.message), true};  // backoff; resumes once fixed
    }
    if (e.code == Errc::kBusy && e.field == "order_no") {
      // The platform's daily retry limit (E9613): try again in an hour.
      return {queue::Outcome::retry(e.message, std::chrono::hours(1)), true};
    }
    if (e.code == Errc::kProtocol &&
        (e.field == "status" || e.field == "bill_status" || e.field == "invoice_number" ||
         e.field == "amount")) {
      // An answer we cannot act on without guessing (an unknown status, a number or an
      // amount that contradicts what we hold): nothing changes, the item waits for an
      // operator (`lanegate queue unpark` after looking), and the alarm says why.
      unexpected_answers(e.field).inc();
      log::error("invoicing platform answer not understood; item parked",
                 {{"FIELD", e.field}, {"ERROR", e.message}});
      return {queue::Outcome::park(e.message), true};
    }
    if (e.code == Errc::kProtocol || e.code == Errc::kRejected) {
      return {queue::Outcome::retry(e.message), true};
    }
    // Local trouble (database busy or full): the platform was not the problem.
    return {queue::Outcome::retry(e.message), std::nullopt};
  }
  if (state->state == invoice::InvoiceState::kClaimed && state->red) {
    if (*state->red == invoice::RedConfirmState::kAwaitingBuyer) {
      return {queue::Outcome::retry("red-letter form awaits the buyer's confirmation",
                                    InvoiceUplink::kRedConfirmPoll),
              true};
    }
    if (*state->red == invoice::RedConfirmState::kAwaitingSeller) {
      unexpected_answers("bill_status").inc();
      log::error("red-letter form awaits the seller's confirmation; item parked",
                 {{"BILL_STATUS", "03"}});
      return {queue::Outcome::park("red-letter form awaits the seller's confirmation (03): "
                                   "answer it on the platform, then `lanegate queue unpark`"),
              true};
    }
  }
  switch (state->state) {
    case invoice::InvoiceState::kNone:
    case invoice::InvoiceState::kClaimed:
    case invoice::InvoiceState::kIssuing:
      return {queue::Outcome::retry("platform still issuing", InvoiceUplink::kIssuingPoll), true};
    case invoice::InvoiceState::kIssued:
    case invoice::InvoiceState::kFailed:
    case invoice::InvoiceState::kReversed:
      return {queue::Outcome::ack(), true};
  }
  return {queue::Outcome::ack(), true};
}

DatabaseOptions state_database_options(const config::GatewaySection& gateway) {
  DatabaseOptions o;
  // SQLite's default page size for new files is 4096 bytes.
  if (gateway.max_database_mb > 0)
    o.max_page_count = gateway.max_database_mb * (1024 * 1024 / 4096);
  return o;
}

Status apply_database_limit(Database& db, const config::GatewaySection& gateway) {
  auto ps = db.prepare("PRAGMA page_size");
  if (!ps) return std::unexpected(ps.error());
  auto row = ps->step();
  if (!row) return std::unexpected(row.error());
  const std::int64_t page = *row ? std::max<std::int64_t>(512, ps->column_int64(0)) : 4096;
  // 0 = unlimited: SQLite's own ceiling (it clamps to the largest value it supports).
  const std::int64_t pages =
      gateway.max_database_mb > 0 ? gateway.max_database_mb * 1024 * 1024 / page : 4294967294LL;
  return db.exec("PRAGMA max_page_count=" + std::to_string(pages));
}

struct InvoiceUplink::Impl : std::enable_shared_from_this<InvoiceUplink::Impl> {
  asio::io_context& io;
  invoice::ClaimStore& io_claims;
  const Clock& clock;
  // Worker-only state (see the header): its own copy of the section, connection, store
  // and platform client.
  config::InvoicingSection section;
  Database worker_db;
  std::unique_ptr<invoice::InvoicingPlatform> platform;
  invoice::ClaimStore worker_claims;
  invoice::Seller seller;
  asio::thread_pool worker{1};
  std::atomic<bool> up{true};
  std::atomic<bool> stopped{false};
  std::function<void()> on_link_up;

  Impl(asio::io_context& i, const config::InvoicingSection& s, Database db,
       std::unique_ptr<invoice::InvoicingPlatform> p, invoice::ClaimStore& c, const Clock& cl)
      : io(i),
        io_claims(c),
        clock(cl),
        section(s),
        worker_db(std::move(db)),
        platform(std::move(p)),
        worker_claims(worker_db, section, cl),
        seller(invoice::seller_from_config(section)) {
    up_gauge().set(1);
  }

  // Any thread.
  void set_link(bool now_up, const std::string& why) {
    const bool was = up.exchange(now_up);
    if (was == now_up) return;
    up_gauge().set(now_up ? 1 : 0);
    metrics::Registry::global()
        .counter("lanegate_invoicing_transitions_total", "Invoicing platform link changes",
                 {{"to", now_up ? "up" : "down"}})
        .inc();
    if (now_up) {
      log::notice("invoicing platform reachable again: issuing queued invoices");
      asio::post(io, [self = shared_from_this()] {
        if (self->on_link_up) self->on_link_up();
      });
    } else {
      log::warn("invoicing platform unreachable: invoice requests stay queued", {{"ERROR", why}});
    }
  }

  // Worker thread.
  queue::Outcome advance(std::int64_t invoice_id) {
    auto state = invoice::advance_invoice(worker_claims, *platform, seller, invoice_id, clock);
    const IssueStep step = issue_step(state);
    if (step.link_up) set_link(*step.link_up, state ? std::string() : state.error().message);
    if (!state && state.error().code == Errc::kPermission) {
      log::error("invoicing platform refused the credentials: fix [invoicing] and restart",
                 {{"INVOICE_ID", invoice_id}, {"ERROR", state.error().message}});
    }
    return step.outcome;
  }

  // io thread.
  queue::Outcome refund(const std::string& transaction_id) {
    auto r = io_claims.on_refund(transaction_id);
    if (r) return queue::Outcome::ack();
    if (r.error().code == Errc::kBusy)
      return queue::Outcome::retry(r.error().message, kRefundBusyRetry);
    if (r.error().code == Errc::kNotFound) return queue::Outcome::park(r.error().message);
    return queue::Outcome::retry(r.error().message);
  }

  // io thread: the kept trips' new invoice enqueues through the io thread's Outbox.
  queue::Outcome reissue(std::int64_t red_id) {
    auto r = io_claims.reissue_kept(red_id);
    if (r) return queue::Outcome::ack();
    if (r.error().code == Errc::kBusy) return queue::Outcome::retry(r.error().message, kRefundBusyRetry);
    if (r.error().code == Errc::kRejected || r.error().code == Errc::kNotFound ||
        r.error().code == Errc::kInvalidArgument) {
      log::error("kept trips not reissued; item parked", {{"INVOICE_ID", red_id}, {"ERROR", r.error().message}});
      return queue::Outcome::park(r.error().message);
    }
    return queue::Outcome::retry(r.error().message);
  }

  void sink(const queue::Item& item, queue::Drainer::Completion done) {
    boost::system::error_code ec;
    json::value v = json::parse(item.payload, ec);
    if (ec || !v.is_object()) return done(queue::Outcome::park("payload is not a JSON object"));
    const json::object& p = v.as_object();
    if (item.topic == kTopicInvoiceRefund) {
      auto it = p.find("transaction_id");
      if (it == p.end() || !it->value().is_string()) {
        return done(queue::Outcome::park("payload needs a string transaction_id"));
      }
      return done(refund(std::string(it->value().as_string())));
    }
    if (item.topic == kTopicInvoiceReissue) {
      auto red = p.find("red_invoice_id");
      if (red == p.end() || !red->value().is_int64()) {
        return done(queue::Outcome::park("payload needs an integer red_invoice_id"));
      }
      return done(reissue(red->value().as_int64()));
    }
    auto it = p.find("invoice_id");
    if (item.topic != kTopicInvoiceIssue || it == p.end() || !it->value().is_int64()) {
      return done(queue::Outcome::park("not an invoice.issue item with an integer invoice_id"));
    }
    if (stopped) return done(queue::Outcome::retry("stopping", kLinkDownRetry));
    const std::int64_t id = it->value().as_int64();
    asio::post(worker, [self = shared_from_this(), id, done = std::move(done)]() mutable {
      done(self->advance(id));  // the completion may be called from any thread
    });
  }
};

InvoiceUplink::InvoiceUplink(asio::io_context& io, const config::InvoicingSection& section,
                             Database worker_db,
                             std::unique_ptr<invoice::InvoicingPlatform> platform,
                             invoice::ClaimStore& io_claims, const Clock& clock)
    : impl_(std::make_shared<Impl>(io, section, std::move(worker_db), std::move(platform),
                                   io_claims, clock)) {}

InvoiceUplink::~InvoiceUplink() { stop(); }

std::vector<std::string> InvoiceUplink::topics() {
  return {std::string(kTopicInvoiceIssue), std::string(kTopicInvoiceRefund),
          std::string(kTopicInvoiceReissue)};
}

bool InvoiceUplink::handles(std::string_view topic) {
  for (const std::string& t : topics()) {
    if (t == topic) return true;
  }
  return false;
}

void InvoiceUplink::sink(const queue::Item& item, queue::Drainer::Completion done) {
  impl_->sink(item, std::move(done));
}

bool InvoiceUplink::link_up() const { return impl_->up.load(); }

void InvoiceUplink::set_on_link_up(std::function<void()> callback) {
  impl_->on_link_up = std::move(callback);
}

void InvoiceUplink::apply_database_limit(const config::GatewaySection& limits) {
  if (impl_->stopped) return;
  asio::post(impl_->worker, [self = impl_, limits] {
    if (auto s = gateway::apply_database_limit(self->worker_db, limits); !s) {
      log::error("cannot apply max_database_mb to the invoicing worker's connection",
                 {{"ERROR", s.error().message}});
    }
  });
}

void InvoiceUplink::stop() {
  if (impl_->stopped.exchange(true)) return;
  impl_->worker.join();
}

}  // namespace lanegate::gateway
