#pragma once
// Runs a shell command the way an operator would from a terminal and returns its exit code
// and everything it printed (stdout and stderr, as the command line merges them).

#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <utility>

namespace lanegate::testing {

inline std::pair<int, std::string> run_command(const std::string& command) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace lanegate::testing
