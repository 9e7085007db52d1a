// Settlement package verification: the algorithm of docs/AUDIT.md, section "Verifying a
// package". Nothing in the package is trusted before it is checked; the public key comes
// from the caller (the key the authority registered), never from the package.
#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <sstream>

#include "core/metrics.h"
#include "audit/audit.h"

namespace lanegate::audit {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

Result<std::string> read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(Errc::kNotFound, path.filename().string() + " is missing or unreadable");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.remove_suffix(1);
  }
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  return s;
}

std::string tally_text(const Tally& t) {
  return std::to_string(t.count) + " records, " + Money::from_fen(t.amount_fen).to_string() +
         " yuan (" + std::to_string(t.amount_fen) + " fen)";
}

template <typename Map, typename Name>
void compare_totals(const Map& sealed, const Map& computed, std::string_view group, Name&& name,
                    const std::function<void(std::string)>& report) {
  for (const auto& [key, tally] : sealed) {
    auto it = computed.find(key);
    const Tally got = it == computed.end() ? Tally{} : it->second;
    if (!(got == tally)) {
      report(std::string(group) + "[" + name(key) + "]: the seal says " + tally_text(tally) +
             ", the records sum to " + tally_text(got));
    }
  }
  for (const auto& [key, tally] : computed) {
    if (!sealed.contains(key)) {
      report(std::string(group) + "[" + name(key) + "]: absent from the seal, the records sum to " +
             tally_text(tally));
    }
  }
}

// The clock anomalies of a verified package, for people: when the record was stamped, in
// UTC as in the ledger and at the seal's offset, and on which side of the day it lies.
std::string anomalies_text(const VerifyReport& r) {
  if (r.clock_anomalies.empty() || !r.seal) {
    return {};
  }
  const UtcOffset offset{r.seal->utc_offset_minutes};
  const auto day_start = parse_local_date(r.seal->date, offset);
  std::string out = "clock anomalies: " + std::to_string(r.clock_anomalies.size()) +
                    " record(s) timed outside " + r.date +
                    " (the clock was stepped or wrong when they were written; each is sealed "
                    "once, with this day, where the chain puts it):\n";
  for (const ClockAnomaly& a : r.clock_anomalies) {
    out += "  seq " + std::to_string(a.seq) + " at " + ledger::format_time(a.time) + " (" +
           format_rfc3339(a.time, offset) + ")" +
           (day_start && a.time < *day_start ? ", before the day" : ", after the day") + "\n";
  }
  return out;
}

std::string package_name(const VerifyReport& r) {
  std::string out = r.package;
  if (r.seal) {
    out += " (" + r.seal->date + " revision " + std::to_string(r.seal->revision) + ", seq " +
           std::to_string(r.seal->first_seq) + ".." + std::to_string(r.seal->last_seq) + ")";
  }
  return out;
}

std::string anomaly_seqs(const std::vector<ClockAnomaly>& list) {
  if (list.empty()) {
    return "none";
  }
  std::string out;
  for (std::size_t i = 0; i < list.size() && i < 10; ++i) {
    out += (i == 0 ? "seq " : ", ") + std::to_string(list[i].seq);
  }
  return list.size() > 10 ? out + ", ..." : out;
}

}  // namespace

std::int64_t VerifyReport::first_bad_seq() const {
  std::int64_t first = 0;
  for (const VerifyProblem& p : problems) {
    if (p.seq > 0 && (first == 0 || p.seq < first)) {
      first = p.seq;
    }
  }
  return first;
}

std::string VerifyReport::to_text() const {
  std::string out;
  if (ok()) {
    out = "OK: settlement package for " + date + ": " + std::to_string(records_checked) +
          " records; hash chain, seal range, totals, clock anomalies, CSV and signature "
          "verified\n";
    out += anomalies_text(*this);
    return out;
  }
  out = "FAILED: settlement package" + (date.empty() ? std::string() : " for " + date) + "\n";
  const std::int64_t bad = first_bad_seq();
  if (bad > 0) {
    for (const VerifyProblem& p : problems) {
      if (p.seq == bad) {
        out += "first bad record: seq " + std::to_string(bad) +
               (p.line > 0 ? " (line " + std::to_string(p.line) + ")" : "") + ": " + p.check +
               ": " + p.message + "\n";
        break;
      }
    }
  }
  out += "problems (" + std::to_string(problems.size()) + "):\n";
  for (const VerifyProblem& p : problems) {
    out += "  " + p.check;
    if (p.seq > 0) {
      out += " seq " + std::to_string(p.seq);
    }
    if (p.line > 0) {
      out += " line " + std::to_string(p.line);
    }
    out += ": " + p.message + "\n";
  }
  out += anomalies_text(*this);
  return out;
}

VerifyReport verify_package(const fs::path& dir, const signing::PublicKey& pubkey) {
  VerifyReport report;
  report.package = dir.string();
  bool record_problem = false;
  auto problem = [&](std::string check, std::int64_t seq, std::size_t line, std::string message) {
    if (seq > 0) {
      record_problem = true;
    }
    if (report.problems.size() < VerifyReport::kMaxProblems) {
      report.problems.push_back(VerifyProblem{std::move(check), seq, line, std::move(message)});
    }
  };
  auto finish = [&]() -> VerifyReport {
    metrics::Registry::global()
        .counter("lanegate_audit_verifications_total", "Settlement packages verified",
                 {{"result", report.ok() ? "ok" : "failed"}})
        .inc();
    return report;
  };

  // 1. The seal and its signature, with the registered key.
  auto seal_json = read_all(dir / "seal.json");
  if (!seal_json) {
    problem("seal_file", 0, 0, seal_json.error().message);
    return finish();
  }
  auto sig_text = read_all(dir / "seal.sig");
  if (!sig_text) {
    problem("seal_signature", 0, 0, sig_text.error().message);
  } else {
    auto sig = crypto::base64_decode(trim(*sig_text));
    if (!sig) {
      problem("seal_signature", 0, 0, "seal.sig is not Base64: " + sig.error().message);
    } else if (!pubkey.verify(*seal_json, *sig)) {
      problem("seal_signature", 0, 0,
              "the signature over seal.json does not verify with the given public key "
              "(fingerprint " +
                  signing::group_fingerprint(pubkey.fingerprint()) +
                  "): the seal was altered or signed by another key");
    }
  }
  auto parsed = parse_seal(*seal_json);
  if (!parsed) {
    problem("seal_file", 0, 0, "seal.json: " + parsed.error().to_string());
    return finish();
  }
  report.seal = *parsed;
  const Seal& seal = *report.seal;
  report.date = seal.date;
  // parse_seal accepted the date at this offset.
  const SystemTime day_start =
      parse_local_date(seal.date, UtcOffset{seal.utc_offset_minutes}).value_or(SystemTime{});
  const SystemTime day_end = day_start + std::chrono::hours(24);
  if (seal.gateway_key != pubkey.hex()) {
    problem(
        "seal_key", 0, 0,
        "the seal names gateway key " + seal.gateway_key + ", not the given key " + pubkey.hex());
  }

  // 2. Records: format, hash, sequence, chain link, inside the sealed range.
  auto records = read_all(dir / "records.jsonl");
  if (!records) {
    problem("record_format", seal.first_seq, 0, records.error().message);
    return finish();
  }
  const std::int64_t base_seq = seal.first_seq > 0 ? seal.first_seq : 1;  // 1: empty, format 1
  std::string expected_prev = seal.first_prev_hash;
  bool prev_known = true;
  std::string last_hash;
  SealTotals totals;
  std::string expected_csv = "\xEF\xBB\xBF" + csv_header();
  std::vector<std::pair<std::size_t, std::int64_t>> csv_row_starts;  // offset -> seq
  const UtcOffset offset{seal.utc_offset_minutes};
  std::size_t line_no = 0;
  std::int64_t next_seq = base_seq;  // the seq the next line must hold
  std::string_view rest = *records;
  while (!rest.empty()) {
    const std::size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    ++line_no;
    ++report.records_checked;
    const std::int64_t exp = next_seq++;
    auto e = ledger::parse_line(line);
    if (!e) {
      problem("record_format", exp, line_no, e.error().to_string());
      prev_known = false;
      continue;
    }
    // Every parsed record counts towards the totals and the expected CSV, in file order.
    auto account = [&](const ledger::LedgerEntry& r) {
      expected_prev = r.hash;
      last_hash = r.hash;
      if (r.event.time < day_start || r.event.time >= day_end) {
        report.clock_anomalies.push_back(ClockAnomaly{r.seq, r.event.time});
      }
      if (auto s = totals.add(r); !s) {
        problem("totals", exp, line_no, s.error().message);
      }
      csv_row_starts.emplace_back(expected_csv.size(), r.seq);
      expected_csv += csv_row(r, offset);
    };
    if (e->seq != exp) {
      // Blame the earlier of the two seqs. A jump forward (records dropped) continues after
      // the seq found; a step back (swapped or duplicated record) still expects `exp` next:
      // one dropped record is one problem, not one per following line.
      problem("sequence", e->seq >= 1 ? std::min(exp, e->seq) : exp, line_no,
              "expected seq " + std::to_string(exp) + " here, found seq " + std::to_string(e->seq) +
                  " (a record was dropped, reordered or inserted)");
      next_seq = e->seq > exp ? e->seq + 1 : exp;
      account(*e);
      prev_known = false;  // the link across an out-of-place line proves nothing
      continue;
    }
    if (ledger::jsonl_line(*e) != line) {
      problem("record_format", exp, line_no, "the line is not in canonical form");
    } else if (ledger::compute_hash(*e) != e->hash) {
      problem("record_hash", exp, line_no,
              "the hash does not match the record's content (the record was altered)");
    } else if (prev_known && e->prev_hash != expected_prev) {
      problem("chain_link", exp, line_no,
              "prev_hash does not match the hash of the record before it" +
                  std::string(line_no == 1 ? " (the seal's first_prev_hash)" : ""));
    } else if (seal.range_count() == 0 || exp > seal.last_seq) {
      problem("seal_range", exp, line_no,
              "record lies beyond the seal's last_seq " + std::to_string(seal.last_seq) +
                  " (appended after sealing)");
    }
    account(*e);
    prev_known = true;
  }

  // 3. The seal's range and last hash against what the package holds.
  const std::int64_t sealed_count = seal.range_count();
  if (report.records_checked < sealed_count) {
    // Blame the first missing seq only when the lines present are intact (records cut off
    // at the end); otherwise the record problems above already name the first bad one.
    const std::int64_t first_missing = record_problem ? 0 : base_seq + report.records_checked;
    problem("seal_range", first_missing, 0,
            "the seal covers seq " + std::to_string(seal.first_seq) + ".." +
                std::to_string(seal.last_seq) + " but the package holds only " +
                std::to_string(report.records_checked) + " records");
  }
  if (seal.totals.record_count != sealed_count) {
    problem("totals", 0, 0,
            "record_count " + std::to_string(seal.totals.record_count) +
                " does not match the seal's range of " + std::to_string(sealed_count));
  }
  if (sealed_count > 0 && report.records_checked == sealed_count && !record_problem) {
    // Only meaningful when the records themselves are intact: compare the hash at last_seq.
    if (last_hash != seal.last_hash) {
      problem("seal_range", seal.last_seq, static_cast<std::size_t>(sealed_count),
              "the hash of record " + std::to_string(seal.last_seq) +
                  " differs from the seal's last_hash (the chain was rebuilt)");
    }
  }

  if (seal.format == 2 && sealed_count == 0 && seal.last_hash != seal.first_prev_hash) {
    problem("seal_range", 0, 0,
            "the seal covers no record, but its last_hash differs from its first_prev_hash "
            "(an empty day stays where the chain stands)");
  }

  // 4. Totals recomputed from the records.
  auto report_total = [&](std::string msg) { problem("totals", 0, 0, std::move(msg)); };
  compare_totals(
      seal.totals.by_kind, totals.by_kind, "by_kind", [](const std::string& k) { return k; },
      report_total);
  compare_totals(
      seal.totals.by_kind_state, totals.by_kind_state, "by_kind_state",
      [](const auto& k) { return k.first + "," + k.second; }, report_total);
  compare_totals(
      seal.totals.by_lane_kind, totals.by_lane_kind, "by_lane_kind",
      [](const auto& k) { return k.first + "," + k.second; }, report_total);

  // 4b. A format-2 seal lists exactly the records timed outside its day (P3).
  if (seal.format == 2 && report.clock_anomalies != seal.clock_anomalies) {
    // Blame the smallest seq listed on one side only.
    std::int64_t seq = 0;
    auto blame_missing = [&seq](const std::vector<ClockAnomaly>& list,
                                const std::vector<ClockAnomaly>& other) {
      for (const ClockAnomaly& a : list) {
        if (std::find(other.begin(), other.end(), a) == other.end() && (seq == 0 || a.seq < seq)) {
          seq = a.seq;
        }
      }
    };
    blame_missing(report.clock_anomalies, seal.clock_anomalies);
    blame_missing(seal.clock_anomalies, report.clock_anomalies);
    problem("clock_anomalies", seq, 0,
            "the seal lists " + std::to_string(seal.clock_anomalies.size()) +
                " record(s) timed outside the day (" + anomaly_seqs(seal.clock_anomalies) +
                "), the records show " + std::to_string(report.clock_anomalies.size()) + " (" +
                anomaly_seqs(report.clock_anomalies) + ")");
  }

  // 5. records.csv must be exactly the rendering of records.jsonl.
  auto csv = read_all(dir / "records.csv");
  if (!csv) {
    problem("csv", 0, 0, csv.error().message);
  } else if (*csv != expected_csv) {
    const auto diff = static_cast<std::size_t>(
        std::mismatch(csv->begin(), csv->end(), expected_csv.begin(), expected_csv.end()).first -
        csv->begin());
    std::int64_t seq = 0;
    if (diff >= expected_csv.size() && !csv_row_starts.empty()) {
      seq = base_seq + report.records_checked;  // a row beyond the records
    } else {
      for (const auto& [start, s] : csv_row_starts) {
        if (start <= diff) {
          seq = s;
        }
      }
    }
    problem("csv", seq, 0,
            seq > 0
                ? "records.csv differs from records.jsonl in the row of seq " + std::to_string(seq)
                : std::string("records.csv header differs from the documented header"));
  }
  return finish();
}

bool ChainReport::ok() const {
  return continuity.empty() && std::all_of(packages.begin(), packages.end(),
                                           [](const VerifyReport& r) { return r.ok(); });
}

std::int64_t ChainReport::first_bad_seq() const {
  std::int64_t first = 0;
  auto consider = [&](std::int64_t seq) {
    if (seq > 0 && (first == 0 || seq < first)) {
      first = seq;
    }
  };
  for (const VerifyReport& r : packages) {
    consider(r.first_bad_seq());
  }
  for (const VerifyProblem& p : continuity) {
    consider(p.seq);
  }
  return first;
}

std::string ChainReport::to_text() const {
  std::string out;
  const std::string n = std::to_string(packages.size());
  if (ok()) {
    std::int64_t first = 0;
    std::int64_t last = 0;
    for (const VerifyReport& r : packages) {
      if (r.seal && r.seal->range_count() > 0) {
        first = first == 0 ? r.seal->first_seq : first;
        last = r.seal->last_seq;
      }
    }
    out = "OK: " + n + " settlement packages form one chain" +
          (first > 0 ? ", seq " + std::to_string(first) + ".." + std::to_string(last) : "") +
          ": each verified; no gap, no overlap, hash links intact\n";
  } else {
    out = "FAILED: " + n + " settlement packages as one chain";
    const std::int64_t bad = first_bad_seq();
    out += bad > 0 ? "; first bad record: seq " + std::to_string(bad) + "\n" : "\n";
    for (const VerifyProblem& p : continuity) {
      out += "continuity" + (p.seq > 0 ? " seq " + std::to_string(p.seq) : std::string()) + ": " +
             p.message + "\n";
    }
  }
  for (const VerifyReport& r : packages) {
    out += "--- " + r.package + "\n" + r.to_text();
  }
  return out;
}

ChainReport verify_packages(std::span<const fs::path> dirs, const signing::PublicKey& pubkey) {
  ChainReport chain;
  for (const fs::path& dir : dirs) {
    chain.packages.push_back(verify_package(dir, pubkey));
  }
  // Date order is chain order (P2); a package whose seal did not parse has no place.
  // Stable by the order given (std::sort on (date, position): libstdc++ 12's stable_sort
  // uses get_temporary_buffer, which clang's -Werror build refuses as deprecated).
  {
    std::vector<std::size_t> order(chain.packages.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
      order[i] = i;
    }
    const auto& pk = chain.packages;
    std::sort(order.begin(), order.end(), [&pk](std::size_t x, std::size_t y) {
      const VerifyReport& a = pk[x];
      const VerifyReport& b = pk[y];
      if (a.seal && b.seal && a.seal->date != b.seal->date) {
        return a.seal->date < b.seal->date;
      }
      if (static_cast<bool>(a.seal) != static_cast<bool>(b.seal)) {
        return static_cast<bool>(a.seal);
      }
      return x < y;
    });
    std::vector<VerifyReport> sorted;
    sorted.reserve(order.size());
    for (std::size_t i : order) {
      sorted.push_back(std::move(chain.packages[i]));
    }
    chain.packages = std::move(sorted);
  }
  const VerifyReport* prev = nullptr;
  for (const VerifyReport& r : chain.packages) {
    if (!r.seal) {
      chain.continuity.push_back(
          VerifyProblem{"continuity", 0, 0,
                        r.package + " has no readable seal: its place in the chain is unknown"});
      continue;
    }
    const Seal& s = *r.seal;
    if (s.format == 1 && s.first_seq == 0) {
      continue;  // an empty format-1 day names no place in the chain
    }
    if (prev == nullptr) {
      prev = &r;
      continue;
    }
    const Seal& p = *prev->seal;
    if (p.date == s.date) {
      chain.continuity.push_back(VerifyProblem{
          "continuity", 0, 0,
          "two packages seal " + s.date + ": " + package_name(*prev) + " and " + package_name(r) +
              "; give one package per day (the newest revision is authoritative)"});
      continue;  // compare the next day with the first of the two
    }
    if (s.first_seq <= p.last_seq) {
      const std::int64_t to = std::min(p.last_seq, s.last_seq);
      chain.continuity.push_back(VerifyProblem{
          "continuity", s.first_seq, 0,
          "overlap: seq " + std::to_string(s.first_seq) +
              (to > s.first_seq ? ".." + std::to_string(to) : std::string()) +
              " sealed twice, by " + package_name(*prev) + " and by " + package_name(r)});
    } else if (s.first_seq > p.last_seq + 1) {
      chain.continuity.push_back(VerifyProblem{
          "continuity", p.last_seq + 1, 0,
          "gap: seq " + std::to_string(p.last_seq + 1) +
              (s.first_seq - 1 > p.last_seq + 1 ? ".." + std::to_string(s.first_seq - 1)
                                                : std::string()) +
              " in no package: " + package_name(*prev) + " ends before " + package_name(r) +
              " starts"});
    } else if (s.first_prev_hash != p.last_hash) {
      chain.continuity.push_back(VerifyProblem{"continuity", s.first_seq, 0,
                                               "broken link: the first_prev_hash of " +
                                                   package_name(r) + " is not the last_hash of " +
                                                   package_name(*prev)});
    }
    prev = &r;
  }
  return chain;
}

}  // namespace lanegate::audit
