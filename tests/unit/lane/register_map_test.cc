#include "lane/register_map.h"

#include <gtest/gtest.h>

namespace lanegate::lane {
namespace {

TEST(RegisterMap, DefaultsFollowTheSpec) {
  config::DeviceSection d;
  d.id = "cam1";
  auto m = camera_map(d);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->sequence, 0);
  EXPECT_EQ(m->plate_text, 6);
  EXPECT_EQ(m->record_start, 0);
  EXPECT_EQ(m->record_count, 15);
  d.kind = config::DeviceKind::kRoadsideUnit;
  auto r = roadside_map(d);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->record_start, 200);
  EXPECT_EQ(r->record_count, 22);  // 206..221: a 32-byte ETC contract id (spec)
}

TEST(RegisterMap, OverridesMoveTheRecordAndBadNamesAreNamed) {
  config::DeviceSection d;
  d.id = "cam1";
  for (auto& [name, base] : std::map<std::string, int>{{"sequence", 100},
                                                       {"colour", 101},
                                                       {"confidence", 102},
                                                       {"time", 103},
                                                       {"text_length", 105},
                                                       {"plate_text", 106},
                                                       {"vehicle_class", 114}}) {
    d.registers[name] = base;
  }
  auto m = camera_map(d);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->record_start, 100);
  EXPECT_EQ(m->record_count, 15);

  d.registers["plate"] = 3;
  auto bad = camera_map(d);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "devices.cam1.registers.plate");

  config::DeviceSection far;
  far.id = "cam2";
  far.registers["vehicle_class"] = 500;  // record would span 501 registers
  EXPECT_FALSE(camera_map(far));
}

TEST(RegisterMap, ByteAndWordOrder) {
  std::uint16_t regs[2] = {0x3412, 0x7856};
  normalize_byte_order(regs, config::ByteOrder::kLittle);
  EXPECT_EQ(regs[0], 0x1234);
  EXPECT_EQ(regs[1], 0x5678);
  EXPECT_EQ(join_u32(0x1234, 0x5678, config::ByteOrder::kBig), 0x12345678u);
  EXPECT_EQ(join_u32(0x5678, 0x1234, config::ByteOrder::kLittle), 0x12345678u);
  std::uint16_t a = 0;
  std::uint16_t b = 0;
  split_u32(0x12345678u, config::ByteOrder::kLittle, a, b);
  EXPECT_EQ(a, 0x5678);
  EXPECT_EQ(b, 0x1234);
}

}  // namespace
}  // namespace lanegate::lane
