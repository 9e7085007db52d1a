// The regulator sandbox's own refusals: a malformed frame is answered with result 2 naming
// its serial, counted, and not recorded as an upload.
#include "sim/regulator_sandbox.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "gateway/regulator.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// Sends `wire` and returns the first frame the sandbox answers with.
Result<Jt905Frame> exchange(int port, const std::vector<std::uint8_t>& wire) {
  asio::io_context io;
  tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  // A sandbox that never answers fails the test rather than hanging it.
  const timeval tv{10, 0};
  setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  asio::write(s, asio::buffer(wire));
  Jt905StreamSplitter splitter;
  std::array<std::uint8_t, 256> buf{};
  for (;;) {
    if (auto f = splitter.next()) return decode_jt905_frame(*f);
    boost::system::error_code ec;
    const std::size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec) return fail(Errc::kUnavailable, ec.message());
    splitter.feed(std::span<const std::uint8_t>(buf.data(), n));
  }
}

TEST(RegulatorSandbox, AnswersAFrameWithABadChecksumWithMessageError) {
  auto sandbox = sim::RegulatorSandbox::start({});
  ASSERT_TRUE(sandbox) << sandbox.error().to_string();
  std::vector<std::uint8_t> wire = encode_jt905_frame(
      {kMsgOperationUpload, "013912345678", 0x0102, std::vector<std::uint8_t>(131, 0)});
  wire[wire.size() - 2] ^= 0x01;  // the checksum: not 7D/7E for this frame, so sent as is
  auto reply = exchange((*sandbox)->port(), wire);
  ASSERT_TRUE(reply) << reply.error().to_string();
  EXPECT_EQ(reply->msg_id, kMsgGeneralReply);
  auto body = decode_general_reply(reply->body);
  ASSERT_TRUE(body);
  EXPECT_EQ(body->reply_serial, 0x0102);
  EXPECT_EQ(body->reply_msg_id, kMsgOperationUpload);
  EXPECT_EQ(body->result, kReplyMessageError);
  EXPECT_EQ((*sandbox)->malformed(), 1);
  EXPECT_TRUE((*sandbox)->uploads().empty());
}

TEST(RegulatorSandbox, AnswersAnUploadTooShortForAMeterRecordWithMessageError) {
  auto sandbox = sim::RegulatorSandbox::start({});
  ASSERT_TRUE(sandbox) << sandbox.error().to_string();
  // 65 bytes of 0x0B05 fields and no meter record.
  auto reply =
      exchange((*sandbox)->port(), encode_jt905_frame({kMsgOperationUpload, "013912345678", 9,
                                                       std::vector<std::uint8_t>(65, 0)}));
  ASSERT_TRUE(reply) << reply.error().to_string();
  auto body = decode_general_reply(reply->body);
  ASSERT_TRUE(body);
  EXPECT_EQ(body->reply_serial, 9);
  EXPECT_EQ(body->result, kReplyMessageError);
  EXPECT_EQ((*sandbox)->malformed(), 1);
}

}  // namespace
}  // namespace lanegate::gateway
