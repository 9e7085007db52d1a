#pragma once
// `lanegate check-config FILE`: validates a config file the way the daemon would load it,
// without touching devices, keys or the network, so an operator can check a file before
// installing it (or before SIGHUP).
//
// Thread-safety: any thread; writes only to the given streams.

#include <filesystem>
#include <ostream>

namespace lanegate::config {

// Loads `file` with load_file().
// On errors: writes every error to `err`, one per line as "FILE:LINE:COL: KEY: RULE",
// ordered by line, and returns 1.
// On success: writes a short summary to `out` (gateway id and site, lanes per mode,
// devices per kind, buses per transport, meters, readers, tariffs, API tokens), and with
// invoicing enabled one line per invoice rule the lanes issue with ("invoice line parking:
// 9% flag - (06 lease)") followed by "warning: ..." lines for rules that load but may be refused
// (a 1 % rate, whose reduction ends on a fixed date; specific business 06 without a
// certificate), and returns 0. Warnings do not change the exit code.
int check_config_command(const std::filesystem::path& file, std::ostream& out, std::ostream& err);

}  // namespace lanegate::config
