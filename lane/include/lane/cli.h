#pragma once
// Operator commands of the `lanegate` CLI that belong to the lane drivers. Each returns
// the process exit code: 0 success, 1 the operation failed (bad frame, device did not
// answer), 2 usage error. Output is JSON on `out`; diagnostics on `err`.
// Called from the CLI's main thread; no other thread involved.

#include <iosfwd>
#include <span>
#include <string>

#include "config/config.h"

namespace lanegate::lane {

// `lanegate meter decode HEX...`: decodes a captured JT/T 905 frame (hex digits; spaces,
// colons and a 0x prefix are ignored; several arguments are concatenated).
// One valid frame -> its JSON object (trip records fully decoded; exit 1 with
// "trip_error" when a trip record's fields do not decode). Several frames or
// garbage -> {"frames":[...],"faults":[{"fault":"bad_xor","bytes":1},...]}; exit 1 when
// any fault was found or no frame at all.
int meter_decode_command(std::span<const std::string> args, std::ostream& out, std::ostream& err);

// `lanegate modbus read DEVICE_ID [--holding|--input|--coils|--discrete] ADDRESS COUNT`:
// one read from a configured device over its bus (opens its own connection: do not use
// on an RTU bus while lanegated polls it). Default table: holding registers.
// Prints {"device","bus","unit_id","table","address","values":[...]}.
int modbus_read_command(const config::Config& cfg, std::span<const std::string> args,
                        std::ostream& out, std::ostream& err);

}  // namespace lanegate::lane
