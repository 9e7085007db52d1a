// The shipped example configs must load without a single error: operators copy them.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "config/config.h"

namespace lanegate::config {
namespace {

std::filesystem::path example(const std::string& name) {
  return std::filesystem::path(LANEGATE_SOURCE_DIR) / "config" / "examples" / name;
}

std::string joined(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += e.to_string() + "\n";
  }
  return out;
}

TEST(ExamplesTest, DemoLoadsWithTheDemoLayout) {
  auto loaded = load_file(example("demo.toml"));
  ASSERT_TRUE(loaded.has_value()) << joined(loaded.error());
  const Config& c = *loaded;
  EXPECT_EQ(c.gateway.id, "demo-lot-1");
  EXPECT_EQ(c.gateway.state_dir, "/tmp/lanegate-demo/state");
  EXPECT_EQ(c.provider.base_url, "https://127.0.0.1:18443");
  int entries = 0, exits = 0, tolls = 0, taxis = 0;
  for (const auto& l : c.lanes) {
    entries += l.mode == LaneMode::kParkingEntry;
    exits += l.mode == LaneMode::kParkingExit;
    tolls += l.mode == LaneMode::kTollExit;
    taxis += l.mode == LaneMode::kTaxi;
  }
  EXPECT_EQ(entries, 2);
  EXPECT_EQ(exits, 2);
  EXPECT_EQ(tolls, 1);
  EXPECT_EQ(taxis, 1);
  // TCP device servers on 127.0.0.1:15020..15029, the toll lane on the RTU line.
  for (const auto& b : c.buses) {
    if (b.transport == Transport::kTcp) {
      EXPECT_EQ(b.host, "127.0.0.1");
      EXPECT_GE(b.port, 15020);
      EXPECT_LE(b.port, 15029);
    } else {
      EXPECT_EQ(b.serial_device, "/tmp/lanegate-demo/rtu0");
    }
  }
  const LaneSection* toll = c.find_lane("toll-1");
  ASSERT_NE(toll, nullptr);
  EXPECT_EQ(c.find_bus(c.find_device(toll->camera)->bus)->transport, Transport::kRtu);
  ASSERT_EQ(c.meters.size(), 1u);
  EXPECT_EQ(c.meters[0].device, "/tmp/lanegate-demo/meter0");
}

TEST(ExamplesTest, ParkingTollAndTaxiLoad) {
  for (const char* name : {"parking.toml", "toll.toml", "taxi.toml"}) {
    auto loaded = load_file(example(name));
    EXPECT_TRUE(loaded.has_value()) << name << "\n" << (loaded ? "" : joined(loaded.error()));
  }
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// "key" when `line` is a `key = value` line, else "".
std::string key_of(const std::string& line) {
  std::size_t n = 0;
  while (n < line.size() && (std::islower(static_cast<unsigned char>(line[n])) ||
                             std::isdigit(static_cast<unsigned char>(line[n])) || line[n] == '_')) {
    ++n;
  }
  if (n == 0 || line.find('=', n) == std::string::npos ||
      line.find_first_not_of(' ', n) != line.find('=', n)) {
    return {};
  }
  return line.substr(0, n);
}

// Operators learn the format from the examples: the first use of every key in each table
// carries a comment (on the line, or above its block of keys), and every key is in
// docs/CONFIG.md.
TEST(ExamplesTest, EveryKeyIsCommentedAndDocumented) {
  std::string doc = read_text(std::filesystem::path(LANEGATE_SOURCE_DIR) / "docs" / "CONFIG.md");
  ASSERT_FALSE(doc.empty());
  for (const char* name : {"parking.toml", "toll.toml", "taxi.toml", "demo.toml"}) {
    std::istringstream in(read_text(example(name)));
    std::string line;
    std::string table;
    bool block_commented = false;  // a comment precedes the current run of key lines
    std::set<std::pair<std::string, std::string>> seen;
    int number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (line.starts_with("[")) {
        table = line.substr(0, line.find(']') + 1);
        block_commented = false;
        continue;
      }
      if (line.starts_with("#")) {
        block_commented = true;
        continue;
      }
      std::string key = key_of(line);
      if (key.empty()) {
        block_commented = block_commented && !line.empty();
        continue;
      }
      if (seen.emplace(table, key).second) {
        EXPECT_TRUE(block_commented || line.find('#') != std::string::npos)
            << name << ":" << number << ": first " << key << " in " << table << " has no comment";
        EXPECT_NE(doc.find("`" + key + "`"), std::string::npos)
            << name << ":" << number << ": " << key << " is not documented in docs/CONFIG.md";
      }
    }
  }
}

}  // namespace
}  // namespace lanegate::config
