#include "audit/audit_cli.h"

#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>

#include "core/signing.h"
#include "core/time_format.h"
#include "audit/audit.h"
#include "audit/audit_files.h"
#include "audit/audit_reconcile.h"

namespace lanegate::audit {
namespace {

namespace fs = std::filesystem;

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

constexpr std::string_view kAuditUsage =
    "usage: lanegate audit seal --date YYYY-MM-DD\n"
    "       lanegate audit export --date YYYY-MM-DD [--out DIR]\n"
    "       lanegate audit verify PACKAGE_DIR... --pubkey KEYFILE_OR_HEX\n"
    "       lanegate audit reconcile --date YYYY-MM-DD [--bill FILE] [--json]\n"
    "                                [--mchid MCHID [--sub-mchid SUB_MCHID]]  (default: [provider])\n"
    "       lanegate audit list\n";

constexpr std::string_view kKeysUsage = "usage: lanegate keys show [--pem]\n";

// Parsed "--name value" options and positional words; flags listed in `flags` take no value.
struct Args {
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> options;
  std::string error;

  std::optional<std::string> get(std::string_view name) const {
    for (const auto& [k, v] : options) {
      if (k == name) {
        return v;
      }
    }
    return std::nullopt;
  }
  bool has(std::string_view name) const { return get(name).has_value(); }
};

Args parse_args(std::span<const std::string> args, std::initializer_list<std::string_view> valued,
                std::initializer_list<std::string_view> flags) {
  Args a;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& w = args[i];
    if (!w.starts_with("--")) {
      a.positional.push_back(w);
      continue;
    }
    const std::string name = w.substr(2);
    if (std::find(flags.begin(), flags.end(), name) != flags.end()) {
      a.options.emplace_back(name, "");
    } else if (std::find(valued.begin(), valued.end(), name) != valued.end()) {
      if (i + 1 >= args.size()) {
        a.error = "option " + w + " needs a value";
        return a;
      }
      a.options.emplace_back(name, args[++i]);
    } else {
      a.error = "unknown option " + w;
      return a;
    }
  }
  return a;
}

Result<std::string> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(Errc::kIo, "cannot read " + path.string());
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes via a temporary file and rename, so a reader never sees half a report.
Status write_file_atomic(const fs::path& path, std::string_view text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) {
      return fail(Errc::kIo, "cannot write " + tmp.string());
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    return fail(Errc::kIo, "cannot rename " + tmp.string() + ": " + ec.message());
  }
  return {};
}

Result<signing::KeyPair> load_device_key(const fs::path& state_dir) {
  auto key = signing::KeyPair::load_file(state_dir / kDeviceKeyFile);
  if (!key && key.error().code == Errc::kNotFound) {
    return fail(Errc::kNotFound, "no device key at " + (state_dir / kDeviceKeyFile).string() +
                                     ": lanegated generates it on first start");
  }
  return key;
}

std::string seal_summary(const Seal& s) {
  std::string out = "date " + s.date + " revision " + std::to_string(s.revision) + ": ";
  if (s.range_count() == 0) {
    out += s.first_seq > 0
               ? "no records (the chain stands at seq " + std::to_string(s.first_seq - 1) + ")\n"
               : "no records\n";
  } else {
    out += std::to_string(s.totals.record_count) + " records, seq " + std::to_string(s.first_seq) +
           ".." + std::to_string(s.last_seq) + ", last hash " + s.last_hash + "\n";
  }
  for (const auto& [kind, t] : s.totals.by_kind) {
    std::string k = kind;
    k.resize(18, ' ');
    out += "  " + k + std::to_string(t.count) + " records, " +
           Money::from_fen(t.amount_fen).to_string() + " yuan\n";
  }
  if (!s.clock_anomalies.empty()) {
    out += "  clock anomalies: " + std::to_string(s.clock_anomalies.size()) +
           " record(s) timed outside the day, sealed with it once (first: seq " +
           std::to_string(s.clock_anomalies.front().seq) + " at " +
           format_rfc3339(s.clock_anomalies.front().time, UtcOffset{s.utc_offset_minutes}) +
           "); check the gateway's clock\n";
  }
  out += "signed by key " + signing::group_fingerprint(s.key_fingerprint) + "\n";
  return out;
}

// Seals `date` (and the days before it that need a seal first, P5), printing the earlier
// ones; returns the seal of `date`.
Result<SignedSeal> seal_printing(Database& db, const std::string& date, int offset,
                                 const signing::KeyPair& key, const Clock& clock,
                                 std::ostream& out) {
  auto seals = seal_through(db, date, UtcOffset{offset}, key, clock);
  if (!seals) {
    return std::unexpected(seals.error());
  }
  for (std::size_t i = 0; i + 1 < seals->size(); ++i) {
    out << "sealed first (an earlier day comes first in the chain): "
        << seal_summary((*seals)[i].seal);
  }
  return std::move(seals->back());
}

Result<std::string> require_date(const Args& a, int utc_offset_minutes) {
  auto date = a.get("date");
  if (!date) {
    return fail(Errc::kInvalidArgument, "--date YYYY-MM-DD is required", "date");
  }
  if (auto d = parse_local_date(*date, UtcOffset{utc_offset_minutes}); !d) {
    return fail(Errc::kInvalidArgument, d.error().message, "date");
  }
  return *date;
}

int cmd_seal(Database& db, const fs::path& state_dir, int offset, const Args& a, std::ostream& out,
             std::ostream& err, const Clock& clock) {
  auto date = require_date(a, offset);
  if (!date) {
    err << "lanegate audit seal: " << date.error().message << "\n" << kAuditUsage;
    return kUsage;
  }
  auto key = load_device_key(state_dir);
  if (!key) {
    err << "lanegate audit seal: " << key.error().message << "\n";
    return kFailed;
  }
  auto seal = seal_printing(db, *date, offset, *key, clock, out);
  if (!seal) {
    err << "lanegate audit seal: " << seal.error().to_string() << "\n";
    return kFailed;
  }
  out << "sealed " << seal_summary(seal->seal);
  return kOk;
}

int cmd_export(Database& db, const fs::path& state_dir, int offset, const Args& a,
               std::ostream& out, std::ostream& err, const Clock& clock) {
  auto date = require_date(a, offset);
  if (!date) {
    err << "lanegate audit export: " << date.error().message << "\n" << kAuditUsage;
    return kUsage;
  }
  auto key = load_device_key(state_dir);
  if (!key) {
    err << "lanegate audit export: " << key.error().message << "\n";
    return kFailed;
  }
  // Seal first: the package always carries a seal that covers the day as it stands.
  auto seal = seal_printing(db, *date, offset, *key, clock, out);
  if (!seal) {
    err << "lanegate audit export: " << seal.error().to_string() << "\n";
    return kFailed;
  }
  fs::path dir;
  if (auto o = a.get("out")) {
    dir = *o;
  } else {
    dir = packages_dir(state_dir) / (*date + "-r" + std::to_string(seal->seal.revision));
    std::error_code ec;
    fs::create_directories(packages_dir(state_dir), ec);
    if (fs::exists(dir / "seal.json", ec)) {
      out << "already exported: " << dir.string() << "\n" << seal_summary(seal->seal);
      return kOk;
    }
  }
  if (auto s = export_package(db, *seal, dir); !s) {
    err << "lanegate audit export: " << s.error().message << "\n";
    return kFailed;
  }
  out << "exported " << dir.string() << "\n" << seal_summary(seal->seal);
  if (format_local_date(clock.now(), UtcOffset{offset}) <= *date) {
    out << "note: the day is not over; a later export will carry a newer seal revision\n";
  }
  return kOk;
}

int cmd_verify(const Args& a, std::ostream& out, std::ostream& err) {
  if (a.positional.empty() || !a.has("pubkey")) {
    err << "lanegate audit verify: needs PACKAGE_DIR and --pubkey\n" << kAuditUsage;
    return kUsage;
  }
  const std::string key_arg = *a.get("pubkey");
  std::error_code ec;
  auto pub = fs::is_regular_file(key_arg, ec) ? signing::PublicKey::load_file(key_arg)
                                              : signing::PublicKey::parse(key_arg);
  if (!pub) {
    err << "lanegate audit verify: --pubkey: " << pub.error().message << "\n";
    return kUsage;
  }
  std::vector<fs::path> dirs;
  for (const std::string& p : a.positional) {
    if (!fs::is_directory(p, ec)) {
      err << "lanegate audit verify: " << p << " is not a package directory\n";
      return kFailed;
    }
    dirs.emplace_back(p);
  }
  if (dirs.size() == 1) {
    const VerifyReport report = verify_package(dirs.front(), *pub);
    (report.ok() ? out : err) << report.to_text();
    return report.ok() ? kOk : kFailed;
  }
  // Several packages: consecutive days, checked as one chain as well as one by one.
  const ChainReport report = verify_packages(dirs, *pub);
  (report.ok() ? out : err) << report.to_text();
  return report.ok() ? kOk : kFailed;
}

int cmd_reconcile(Database& db, const fs::path& state_dir, int offset, const Args& a,
                  const FetchBill& fetch_bill, const std::optional<BillOwner>& configured,
                  std::ostream& out, std::ostream& err) {
  auto date = require_date(a, offset);
  if (!date) {
    err << "lanegate audit reconcile: " << date.error().message << "\n" << kAuditUsage;
    return kUsage;
  }
  // Whose bill lines to compare: a partner bill lists every special merchant of the
  // service provider. The box's [provider] names it (`configured`); --mchid/--sub-mchid
  // name another (an auditor with a bill file). Never guessed from the bill: that could
  // compare another merchant's money.
  BillOwner owner;
  if (auto m = a.get("mchid")) {
    owner.mchid = *m;
    owner.sub_mchid = a.get("sub-mchid").value_or("");
  } else if (configured) {
    owner = *configured;
  }
  if (owner.mchid.empty()) {
    err << "lanegate audit reconcile: no merchant: configure [provider] or pass --mchid "
           "(direct: provider.mchid; partner: provider.sp_mchid with --sub-mchid "
           "provider.sub_mchid)\n"
        << kAuditUsage;
    return kUsage;
  }
  if (owner.sub_mchid == "0") {
    // "0" is the bill's mark of a direct merchant, never a special merchant's number.
    err << "lanegate audit reconcile: --sub-mchid 0 is not a special merchant; omit it for a "
           "direct merchant\n";
    return kUsage;
  }
  Result<std::string> text = fail(Errc::kInternal, "");
  if (auto file = a.get("bill")) {
    text = read_file(*file);
  } else if (fetch_bill) {
    text = fetch_bill(*date);
  } else {
    err << "lanegate audit reconcile: no provider client configured; pass --bill FILE\n";
    return kUsage;
  }
  if (!text) {
    err << "lanegate audit reconcile: cannot get the trade bill: " << text.error().to_string()
        << "\n";
    return kFailed;
  }
  auto bill = parse_trade_bill(*text);
  if (!bill) {
    err << "lanegate audit reconcile: " << bill.error().to_string() << "\n";
    return kFailed;
  }
  auto report = reconcile(db, *date, UtcOffset{offset}, *bill, owner);
  if (!report) {
    err << "lanegate audit reconcile: " << report.error().to_string() << "\n";
    return kFailed;
  }
  // Keep the evidence beside the reports: the bill as received and both renderings.
  std::error_code ec;
  fs::create_directories(reports_dir(state_dir), ec);
  const fs::path base = reports_dir(state_dir);
  for (const auto& [name, content] :
       {std::pair<std::string, std::string>{"tradebill-" + *date + ".csv", *text},
        {"reconcile-" + *date + ".txt", report->to_text()},
        {"reconcile-" + *date + ".json", report->to_json()}}) {
    if (auto s = write_file_atomic(base / name, content); !s) {
      err << "lanegate audit reconcile: " << s.error().message << "\n";
      return kFailed;
    }
  }
  out << (a.has("json") ? report->to_json() : report->to_text());
  return report->clean() ? kOk : kFailed;
}

int cmd_list(const fs::path& state_dir, std::ostream& out, std::ostream& err) {
  auto list = list_artifacts(state_dir);
  if (!list) {
    err << "lanegate audit list: " << list.error().message << "\n";
    return kFailed;
  }
  if (list->empty()) {
    out << "no packages or reports in " << state_dir.string() << "\n";
  }
  for (const AuditArtifact& a : *list) {
    out << a.kind << "  " << a.name << "  " << a.bytes << " bytes\n";
  }
  return kOk;
}

}  // namespace

int keys_command(const fs::path& state_dir, std::span<const std::string> args, std::ostream& out,
                 std::ostream& err) {
  const Args a = parse_args(args, {}, {"pem"});
  if (!a.error.empty() || a.positional.size() != 1 || a.positional[0] != "show") {
    err << (a.error.empty() ? "" : "lanegate keys: " + a.error + "\n") << kKeysUsage;
    return kUsage;
  }
  const fs::path key_path = state_dir / kDeviceKeyFile;
  std::optional<signing::PublicKey> pub;
  std::string source;
  auto key = signing::KeyPair::load_file(key_path);
  if (key) {
    pub.emplace(key->public_key());
    source = key_path.string();
  } else if (key.error().code == Errc::kNotFound || key.error().code == Errc::kPermission) {
    // A user who may not read the private key (or a key with a refused mode) can still
    // see the public half; but a refused mode is always reported.
    if (key.error().code == Errc::kPermission) {
      err << "warning: " << key.error().message << "\n";
    }
    auto p = signing::PublicKey::load_file(state_dir / kDevicePublicKeyFile);
    if (p) {
      pub.emplace(std::move(*p));
      source = (state_dir / kDevicePublicKeyFile).string();
    } else if (key.error().code == Errc::kNotFound) {
      err << "lanegate keys show: no device key at " << key_path.string()
          << ": lanegated generates it on first start\n";
      return kFailed;
    } else {
      return kFailed;
    }
  } else {
    err << "lanegate keys show: " << key.error().message << "\n";
    return kFailed;
  }
  if (a.has("pem")) {
    out << pub->pem();  // only the PEM block, so it can be piped into a file or OpenSSL
    return kOk;
  }
  out << "algorithm:   Ed25519\n";
  out << "public key:  " << pub->hex() << "\n";
  out << "base64:      " << pub->base64() << "\n";
  out << "fingerprint: SHA256 " << signing::group_fingerprint(pub->fingerprint()) << "\n";
  out << "from:        " << source << "\n";
  return kOk;
}

int audit_command(Database& db, const fs::path& state_dir, int utc_offset_minutes,
                  std::span<const std::string> args, FetchBill fetch_bill, std::ostream& out,
                  std::ostream& err) {
  return audit_command(db, state_dir, utc_offset_minutes, args, std::move(fetch_bill), out, err,
                       SystemClock::instance());
}

int audit_command(Database& db, const fs::path& state_dir, int utc_offset_minutes,
                  std::span<const std::string> args, FetchBill fetch_bill, std::ostream& out,
                  std::ostream& err, const Clock& clock, std::optional<BillOwner> owner) {
  if (args.empty()) {
    err << kAuditUsage;
    return kUsage;
  }
  const std::string& sub = args[0];
  const Args a = parse_args(args.subspan(1),
                            {"date", "out", "pubkey", "bill", "mchid", "sub-mchid"}, {"json"});
  if (!a.error.empty()) {
    err << "lanegate audit " << sub << ": " << a.error << "\n" << kAuditUsage;
    return kUsage;
  }
  if (sub != "verify" && !a.positional.empty()) {
    err << "lanegate audit " << sub << ": unexpected argument " << a.positional[0] << "\n"
        << kAuditUsage;
    return kUsage;
  }
  if (sub == "seal") {
    return cmd_seal(db, state_dir, utc_offset_minutes, a, out, err, clock);
  }
  if (sub == "export") {
    return cmd_export(db, state_dir, utc_offset_minutes, a, out, err, clock);
  }
  if (sub == "verify") {
    return cmd_verify(a, out, err);
  }
  if (sub == "reconcile") {
    return cmd_reconcile(db, state_dir, utc_offset_minutes, a, fetch_bill, owner, out, err);
  }
  if (sub == "list") {
    return cmd_list(state_dir, out, err);
  }
  err << "lanegate audit: unknown command \"" << sub << "\"\n" << kAuditUsage;
  return kUsage;
}

}  // namespace lanegate::audit
