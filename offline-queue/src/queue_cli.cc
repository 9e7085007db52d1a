#include "offline_queue/queue_cli.h"

#include <charconv>
#include <cstdio>
#include <optional>

#include "core/crypto.h"
#include "core/time_format.h"
#include "offline_queue/queue.h"

namespace lanegate::queue {
namespace {

constexpr std::string_view kUsage =
    "usage: lanegate queue stats\n"
    "       lanegate queue list [--parked] [--topic T] [--limit N]\n"
    "       lanegate queue show ID\n"
    "       lanegate queue unpark ID\n"
    "       lanegate queue retry-now ID\n";

int usage(std::ostream& err, std::string_view problem) {
  err << "lanegate queue: " << problem << "\n" << kUsage;
  return 2;
}

std::optional<std::int64_t> parse_positive(std::string_view s) {
  std::int64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 1) return std::nullopt;
  return v;
}

std::string utc(SystemTime t) { return format_rfc3339(t, UtcOffset{0}); }

// "3 s", "5 min", "2 h 10 min", "3 d 4 h": how long ago or how long until.
std::string span_text(std::chrono::milliseconds d) {
  if (d.count() > 0 && d.count() < 1000) return "under 1 s";
  const std::int64_t s = std::max<std::int64_t>(0, d.count() / 1000);
  if (s < 120) return std::to_string(s) + " s";
  if (s < 7200) return std::to_string(s / 60) + " min";
  if (s < 2 * 86400)
    return std::to_string(s / 3600) + " h " + std::to_string(s % 3600 / 60) + " min";
  return std::to_string(s / 86400) + " d " + std::to_string(s % 86400 / 3600) + " h";
}

std::chrono::milliseconds since(const Clock& clock, SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.now() - t);
}

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

std::string rpad(const std::string& s, std::size_t width) {
  return s.size() < width ? std::string(width - s.size(), ' ') + s : s;
}

// What an operator most wants to know about an item in one phrase.
std::string status_text(const Item& it, const Clock& clock) {
  switch (it.state) {
    case ItemState::kPending: {
      if (!it.head) return "waiting for an earlier item of its key";
      const auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(it.available_at - clock.now());
      std::string s = wait.count() > 0 ? "next attempt in " + span_text(wait) : "ready";
      if (!it.last_error.empty()) s += "; last error: " + it.last_error;
      return s;
    }
    case ItemState::kLeased: {
      std::string s = "in flight";
      if (it.lease_expires) {
        s += ", lease ends in " + span_text(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      *it.lease_expires - clock.now()));
      }
      return s;
    }
    case ItemState::kParked:
      return "parked: " + it.last_error;
    case ItemState::kAcked:
      return "delivered";
  }
  return "";
}

bool printable(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 && c != '\n' && c != '\t' && c != '\r') return false;
    if (c == 0x7f) return false;
  }
  return true;
}

int stats_cmd(Outbox& outbox, const config::QueueLimits& limits, std::ostream& out,
              std::ostream& err, const Clock& clock) {
  auto st = outbox.stats();
  if (!st) {
    err << "lanegate queue: " << st.error().to_string() << "\n";
    return 1;
  }
  out << "items held:  " << st->live_rows << " of queue.max_rows = " << limits.max_rows << "\n";
  out << "bytes held:  " << st->live_bytes << " of queue.max_bytes = " << limits.max_bytes << "\n";
  out << "pending " << st->pending << ", in flight " << st->leased << ", parked " << st->parked
      << ", delivered and retained " << st->acked << "\n";
  if (st->oldest_active_created) {
    out << "oldest undelivered item: created " << utc(*st->oldest_active_created) << " ("
        << span_text(since(clock, *st->oldest_active_created)) << " ago)\n";
  } else {
    out << "oldest undelivered item: none\n";
  }
  if (st->topics.empty()) return 0;
  out << "\n"
      << pad("TOPIC", 20) << rpad("PENDING", 9) << rpad("IN-FLIGHT", 11) << rpad("PARKED", 8)
      << rpad("DELIVERED", 11) << rpad("BYTES", 12) << "\n";
  for (const TopicStats& t : st->topics) {
    out << pad(t.topic, 20) << rpad(std::to_string(t.pending), 9)
        << rpad(std::to_string(t.leased), 11) << rpad(std::to_string(t.parked), 8)
        << rpad(std::to_string(t.acked), 11) << rpad(std::to_string(t.live_bytes), 12) << "\n";
  }
  return 0;
}

int list_cmd(Outbox& outbox, std::span<const std::string> args, std::ostream& out,
             std::ostream& err, const Clock& clock) {
  ListFilter filter;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--parked") {
      filter.parked = true;
    } else if (args[i] == "--topic" && i + 1 < args.size()) {
      filter.topic = args[++i];
    } else if (args[i] == "--limit" && i + 1 < args.size()) {
      auto n = parse_positive(args[++i]);
      if (!n || *n > 100000) return usage(err, "--limit must be 1..100000");
      filter.limit = static_cast<int>(*n);
    } else {
      return usage(err, "list: unexpected argument '" + args[i] + "'");
    }
  }
  auto items = outbox.list(filter);
  if (!items) {
    err << "lanegate queue: " << items.error().to_string() << "\n";
    return 1;
  }
  if (items->empty()) {
    out << (filter.parked ? "no parked items\n" : "no undelivered items\n");
    return 0;
  }
  out << rpad("ID", 10) << "  " << pad("TOPIC", 16) << pad("STATE", 9) << rpad("TRIES", 6) << "  "
      << pad("AGE", 12) << "STATUS\n";
  for (const Item& it : *items) {
    out << rpad(std::to_string(it.id), 10) << "  " << pad(it.topic, 16)
        << pad(std::string(to_string(it.state)), 9) << rpad(std::to_string(it.attempts), 6) << "  "
        << pad(span_text(since(clock, it.created_at)), 12) << status_text(it, clock) << "\n";
  }
  if (static_cast<int>(items->size()) == filter.limit) {
    out << "(first " << filter.limit << " shown; --limit N for more)\n";
  }
  return 0;
}

int show_cmd(Outbox& outbox, std::int64_t id, std::ostream& out, std::ostream& err,
             const Clock& clock) {
  auto it = outbox.get(id);
  if (!it) {
    err << "lanegate queue: " << it.error().to_string() << "\n";
    return 1;
  }
  out << "id:              " << it->id << "\n"
      << "topic:           " << it->topic << "\n"
      << "state:           " << to_string(it->state) << "\n"
      << "status:          " << status_text(*it, clock) << "\n"
      << "ordering key:    " << (it->ordering_key.empty() ? "(none)" : it->ordering_key) << "\n"
      << "idempotency key: " << it->idempotency_key << "\n"
      << "attempts:        " << it->attempts << " (retries since last reset: " << it->retries
      << ")\n"
      << "created:         " << utc(it->created_at) << " ("
      << span_text(since(clock, it->created_at)) << " ago)\n";
  if (it->state == ItemState::kPending) out << "next attempt:    " << utc(it->available_at) << "\n";
  if (it->lease_expires) out << "lease ends:      " << utc(*it->lease_expires) << "\n";
  if (it->finished_at) {
    out << (it->state == ItemState::kParked ? "parked:          " : "delivered:       ")
        << utc(*it->finished_at) << "\n";
  }
  if (!it->last_error.empty()) out << "last error:      " << it->last_error << "\n";
  out << "payload (" << it->payload.size() << " bytes";
  if (printable(it->payload)) {
    out << "):\n" << it->payload << "\n";
  } else {
    out << ", base64):\n" << crypto::base64_encode(std::string_view(it->payload)) << "\n";
  }
  return 0;
}

}  // namespace

int queue_command(Database& db, const config::QueueLimits& limits,
                  std::span<const std::string> args, std::ostream& out, std::ostream& err) {
  return queue_command(db, limits, args, out, err, SystemClock::instance());
}

int queue_command(Database& db, const config::QueueLimits& limits,
                  std::span<const std::string> args, std::ostream& out, std::ostream& err,
                  const Clock& clock) {
  if (args.empty()) return usage(err, "missing command");
  const std::string& cmd = args[0];
  const auto rest = args.subspan(1);
  const bool takes_id = cmd == "show" || cmd == "unpark" || cmd == "retry-now";
  if (cmd != "stats" && cmd != "list" && !takes_id) {
    return usage(err, "unknown command '" + cmd + "'");
  }
  if (cmd == "stats" && !rest.empty()) return usage(err, "stats takes no arguments");
  std::int64_t id = 0;
  if (takes_id) {
    if (rest.size() != 1) return usage(err, cmd + " takes exactly one item ID");
    auto parsed = parse_positive(rest[0]);
    if (!parsed) return usage(err, "ID must be a positive integer, got '" + rest[0] + "'");
    id = *parsed;
  }
  auto outbox = Outbox::open(db, limits, clock);
  if (!outbox) {
    err << "lanegate queue: " << outbox.error().to_string() << "\n";
    return 1;
  }
  if (cmd == "stats") return stats_cmd(*outbox, limits, out, err, clock);
  if (cmd == "list") return list_cmd(*outbox, rest, out, err, clock);
  if (cmd == "show") return show_cmd(*outbox, id, out, err, clock);
  const Status done = cmd == "unpark" ? outbox->unpark(id) : outbox->retry_now(id);
  if (!done) {
    err << "lanegate queue: " << done.error().to_string() << "\n";
    return 1;
  }
  out << (cmd == "unpark" ? "item " + std::to_string(id) + " unparked: it will be sent again\n"
                          : "item " + std::to_string(id) + " will be sent at the next drain\n");
  return 0;
}

}  // namespace lanegate::queue
