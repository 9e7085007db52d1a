// RegulatorUplink: the regulator.trip drain sink (gateway/regulator.h).
#include "gateway/regulator.h"

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>

#include "core/log.h"
#include "core/metrics.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using std::chrono::milliseconds;

metrics::Gauge& up_gauge() {
  return metrics::Registry::global().gauge(
      "lanegate_regulator_up", "1 when the last regulator platform exchange got an answer");
}

void count_upload(std::string_view result) {
  metrics::Registry::global()
      .counter("lanegate_regulator_uploads_total", "Regulator uploads by outcome",
               {{"result", std::string(result)}})
      .inc();
}

void count_bad_frame(const Error& e) {
  metrics::Registry::global()
      .counter("lanegate_regulator_bad_frames_total",
               "Frames from the regulator platform refused by the decoder", {{"rule", e.field}})
      .inc();
}

// One TCP connection to the platform, driven synchronously on the worker thread by running
// a private io_context for at most the operation's timeout (Asio has no blocking call with
// a deadline). Worker thread only.
class PlatformLink {
 public:
  bool is_open() const { return socket_.is_open(); }

  Status connect(const std::string& host, int port, milliseconds timeout) {
    drop();
    boost::system::error_code result = asio::error::timed_out;
    tcp::resolver resolver(ctx_);
    resolver.async_resolve(host, std::to_string(port),
                           [&](boost::system::error_code ec, tcp::resolver::results_type eps) {
                             if (ec) {
                               result = ec;
                               return;
                             }
                             asio::async_connect(socket_, eps,
                                                 [&](boost::system::error_code ec2,
                                                     const tcp::endpoint&) { result = ec2; });
                           });
    run_for(timeout, [&] { resolver.cancel(); });
    if (result) {
      drop();
      return fail(Errc::kUnavailable, "cannot connect to " + host + ":" + std::to_string(port) +
                                          ": " + result.message());
    }
    splitter_ = Jt905StreamSplitter();
    return {};
  }

  Status send(std::span<const std::uint8_t> bytes, milliseconds timeout) {
    boost::system::error_code result = asio::error::timed_out;
    asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()),
                      [&](boost::system::error_code ec, std::size_t) { result = ec; });
    run_for(timeout, [] {});
    if (result) {
      drop();
      return fail(Errc::kUnavailable, "cannot send the upload: " + result.message());
    }
    return {};
  }

  // Reads some bytes into the splitter. kTimeout when nothing came, kUnavailable when the
  // peer closed or the read failed (the connection is dropped).
  Status receive(milliseconds timeout) {
    std::array<std::uint8_t, 1024> buf{};
    boost::system::error_code result = asio::error::timed_out;
    std::size_t got = 0;
    socket_.async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t n) {
      result = ec;
      got = n;
    });
    run_for(timeout, [] {});
    if (result == asio::error::timed_out || result == asio::error::operation_aborted) {
      drop();
      return fail(Errc::kTimeout, "no reply within reply_timeout_ms");
    }
    if (result) {
      drop();
      return fail(Errc::kUnavailable, "connection closed by the platform: " + result.message());
    }
    splitter_.feed(std::span<const std::uint8_t>(buf.data(), got));
    return {};
  }

  Jt905StreamSplitter& splitter() { return splitter_; }

  void drop() {
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    splitter_ = Jt905StreamSplitter();
  }

 private:
  // Runs the pending operation for at most `timeout`; on expiry cancels it (`cancel` plus
  // closing the socket) and runs the cancellation to completion, so no handler outlives the
  // caller's locals.
  template <typename Cancel>
  void run_for(milliseconds timeout, Cancel cancel) {
    ctx_.restart();
    ctx_.run_for(timeout);
    if (!ctx_.stopped()) {
      cancel();
      boost::system::error_code ignored;
      socket_.close(ignored);
      ctx_.restart();
      ctx_.run();
    }
  }

  asio::io_context ctx_;
  tcp::socket socket_{ctx_};
  Jt905StreamSplitter splitter_;
};

// What one exchange came to, with its metric label.
struct Exchange {
  queue::Outcome outcome;
  std::string_view result;  // lanegate_regulator_uploads_total{result}
  std::optional<bool> link_up;
};

Exchange no_answer(std::string_view label, const Error& e) {
  return {queue::Outcome::retry(e.message, RegulatorUplink::kLinkDownRetry), label, false};
}

}  // namespace

struct RegulatorUplink::Impl : std::enable_shared_from_this<RegulatorUplink::Impl> {
  asio::io_context& io;
  const config::RegulatorSection section;
  const Clock& clock;
  asio::thread_pool worker{1};
  PlatformLink link;  // worker thread only
  std::atomic<bool> up{true};
  std::atomic<bool> stopped{false};
  std::function<void()> on_link_up;

  Impl(asio::io_context& i, const config::RegulatorSection& s, const Clock& c)
      : io(i), section(s), clock(c) {
    up_gauge().set(1);
  }

  // Any thread.
  void set_link(bool now_up, const std::string& why) {
    const bool was = up.exchange(now_up);
    if (was == now_up) return;
    up_gauge().set(now_up ? 1 : 0);
    if (now_up) {
      log::notice("regulator platform reachable again: uploading queued trips");
      asio::post(io, [self = shared_from_this()] {
        if (self->on_link_up) self->on_link_up();
      });
    } else {
      log::warn("regulator platform unreachable: trip uploads stay queued", {{"ERROR", why}});
    }
  }

  // Waits for the 0x8001 naming `serial`. Worker thread.
  Exchange await_reply(std::uint16_t serial) {
    const SteadyTime deadline = clock.steady_now() + milliseconds(section.reply_timeout_ms);
    for (;;) {
      while (auto bytes = link.splitter().next()) {
        auto frame = decode_jt905_frame(*bytes);
        if (!frame) {
          count_bad_frame(frame.error());
          log::warn("regulator platform sent a frame we refuse",
                    {{"ERROR", frame.error().to_string()}});
          continue;
        }
        // Other platform messages (commands, queries) are not handled by this box.
        if (frame->msg_id != kMsgGeneralReply) continue;
        auto reply = decode_general_reply(frame->body);
        if (!reply) {
          count_bad_frame(reply.error());
          continue;
        }
        // A reply to another message or to an earlier item (late, after its timeout).
        if (reply->reply_msg_id != kMsgOperationUpload || reply->reply_serial != serial) continue;
        return from_result(reply->result, serial);
      }
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - clock.steady_now());
      if (left <= milliseconds(0)) {
        link.drop();
        return no_answer("no_reply",
                         Error{Errc::kTimeout, "no 0x8001 reply within reply_timeout_ms", {}});
      }
      if (auto s = link.receive(left); !s) {
        return no_answer(s.error().code == Errc::kTimeout ? "no_reply" : "closed", s.error());
      }
    }
  }

  static Exchange from_result(std::uint8_t result, std::uint16_t serial) {
    if (result == kReplyOk) return {queue::Outcome::ack(), "ok", true};
    const std::string what = "regulator platform answered result " + std::to_string(result) +
                             " for serial " + std::to_string(serial);
    if (result == kReplyMessageError) {
      // The platform calls our message malformed: a resend is the same bytes, so this needs
      // a person; the item stays queued (backoff) and visible rather than being dropped.
      log::error("regulator platform refused an upload as malformed", {{"ERROR", what}});
      return {queue::Outcome::retry(what + " (message error)"), "message_error", true};
    }
    return {queue::Outcome::retry(what + " (failed)"), "failed", true};
  }

  // One item. Worker thread.
  Exchange upload(const RegulatorTrip& trip, std::uint16_t serial) {
    const Jt905Frame frame{kMsgOperationUpload, trip.isu_id, serial,
                           encode_operation_upload(operation_upload_for(trip))};
    const std::vector<std::uint8_t> bytes = encode_jt905_frame(frame);
    const milliseconds connect_timeout(section.connect_timeout_ms);
    // A kept connection may have been closed by the platform since the last item (its
    // restart, an idle timeout): when it fails before any reply, connect afresh once.
    const bool reused = link.is_open();
    for (int attempt = 0; attempt < (reused ? 2 : 1); ++attempt) {
      if (!link.is_open()) {
        if (auto s = link.connect(section.host, section.port, connect_timeout); !s) {
          return no_answer("unreachable", s.error());
        }
      }
      if (auto s = link.send(bytes, connect_timeout); !s) {
        if (reused && attempt == 0) continue;
        return no_answer("unreachable", s.error());
      }
      Exchange e = await_reply(serial);
      if (reused && attempt == 0 && e.result == "closed") continue;
      return e;
    }
    return no_answer("unreachable", Error{Errc::kUnavailable, "connection lost", {}});
  }

  void sink(const queue::Item& item, queue::Drainer::Completion done) {
    auto trip = decode_regulator_item(item.payload);
    if (!trip) {
      count_upload("bad_payload");
      return done(queue::Outcome::park(trip.error().to_string()));
    }
    if (stopped) return done(queue::Outcome::retry("stopping", kLinkDownRetry));
    if (!section.enabled) {
      // Items enqueued before [regulator] was switched off stay queued, not dropped.
      return done(queue::Outcome::retry("[regulator] enabled = false", kLinkDownRetry));
    }
    const std::uint16_t serial = regulator_serial(item.id);
    asio::post(worker, [self = shared_from_this(), t = std::move(*trip), serial,
                        done = std::move(done)]() mutable {
      Exchange e = self->upload(t, serial);
      count_upload(e.result);
      if (e.link_up) self->set_link(*e.link_up, e.outcome.error);
      asio::post(self->io,
                 [done = std::move(done), outcome = std::move(e.outcome)] { done(outcome); });
    });
  }
};

RegulatorUplink::RegulatorUplink(asio::io_context& io, const config::RegulatorSection& section,
                                 const Clock& clock)
    : impl_(std::make_shared<Impl>(io, section, clock)) {}

RegulatorUplink::~RegulatorUplink() { stop(); }

bool RegulatorUplink::handles(std::string_view topic) { return topic == kTopicRegulatorTrip; }

void RegulatorUplink::sink(const queue::Item& item, queue::Drainer::Completion done) {
  impl_->sink(item, std::move(done));
}

bool RegulatorUplink::link_up() const { return impl_->up.load(); }

void RegulatorUplink::set_on_link_up(std::function<void()> callback) {
  impl_->on_link_up = std::move(callback);
}

void RegulatorUplink::stop() {
  if (impl_->stopped.exchange(true)) return;
  impl_->worker.join();
}

}  // namespace lanegate::gateway
