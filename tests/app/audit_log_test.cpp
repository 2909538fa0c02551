// The audit chain detects an edited byte, a deleted line, reordered lines and a cut tail.
#include "app/audit_log.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace hearth::app {
namespace {
namespace fs = std::filesystem;

struct AuditChain : ::testing::Test {
  std::string dir, path;
  AuditLog::Key key{};
  AuditAnchor head;
  void SetUp() override {
    char tmpl[] = "/tmp/hearth-audit-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    path = dir + "/audit.log";
    for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<unsigned char>(i * 7 + 1);
    AuditLog log(path, key);
    for (int i = 0; i < 5; ++i) {
      auto a = log.append("conversation_stored", {{"id", i}});
      ASSERT_TRUE(a) << a.error();
      head = *a;
    }
  }
  void TearDown() override { fs::remove_all(dir); }
  std::vector<std::string> lines() {
    std::ifstream f(path);
    std::vector<std::string> out;
    for (std::string l; std::getline(f, l);) out.push_back(l);
    return out;
  }
  void write(const std::vector<std::string>& ls) {
    std::ofstream f(path, std::ios::trunc);
    for (const auto& l : ls) f << l << "\n";
  }
  AuditVerifyResult verify(bool with_anchor = true) {
    auto r =
        AuditLog(path, key).verify(with_anchor ? std::optional<AuditAnchor>(head) : std::nullopt);
    EXPECT_TRUE(r) << r.error();
    return r ? *r : AuditVerifyResult{};
  }
};

TEST_F(AuditChain, IntactLogVerifies) {
  auto r = verify();
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.entries, 5);
  EXPECT_EQ(head.seq, 5);
}

TEST_F(AuditChain, FlippedByteFails) {
  auto ls = lines();
  for (size_t line = 0; line < ls.size(); ++line) {
    for (size_t at : {size_t{1}, ls[line].size() / 2, ls[line].size() - 3}) {
      auto copy = ls;
      copy[line][at] ^= 0x01;
      write(copy);
      EXPECT_FALSE(verify().ok) << "line " << line << " byte " << at;
    }
  }
}

TEST_F(AuditChain, DeletedLineFails) {
  auto ls = lines();
  for (size_t i = 0; i < ls.size(); ++i) {
    auto copy = ls;
    copy.erase(copy.begin() + static_cast<std::ptrdiff_t>(i));
    write(copy);
    auto r = verify();
    EXPECT_FALSE(r.ok) << "deleted line " << i;
  }
}

TEST_F(AuditChain, ReorderedLinesFail) {
  auto ls = lines();
  std::swap(ls[1], ls[2]);
  write(ls);
  auto r = verify(false);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.problem.find("line 2"), std::string::npos) << r.problem;
}

TEST_F(AuditChain, OtherKeyFails) {
  key[0] ^= 1;
  EXPECT_FALSE(verify().ok);
}

TEST_F(AuditChain, CutTailIsCaughtByTheAnchorOnly) {
  auto ls = lines();
  ls.pop_back();
  write(ls);
  EXPECT_TRUE(verify(false).ok);  // a chain alone cannot see a cut tail...
  auto r = verify(true);          // ...the anchor the vault keeps can
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.problem.find("removed"), std::string::npos) << r.problem;
}

TEST_F(AuditChain, AppendAfterIncompleteLineRefuses) {
  std::ofstream(path, std::ios::app) << "{\"seq\":6";
  AuditLog log(path, key);
  EXPECT_FALSE(log.append("x", nlohmann::json::object()));
  EXPECT_FALSE(verify(false).ok);
}

// A disk that fills in the middle of an entry (here: a file size limit a few bytes past the
// end, which cuts the write short the same way) fails the append and leaves the log as it
// was: no half line that would make every later append refuse.
TEST_F(AuditChain, FailedWriteLeavesNoHalfLine) {
  const auto size = fs::file_size(path);
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  struct rlimit small = old;
  small.rlim_cur = size + 20;
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  auto failed = AuditLog(path, key).append("conversation_stored", {{"id", 99}});
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_FALSE(failed);
  EXPECT_EQ(fs::file_size(path), size);
  auto next = AuditLog(path, key).append("conversation_stored", {{"id", 5}});
  ASSERT_TRUE(next) << next.error();
  head = *next;
  EXPECT_TRUE(verify().ok);
}

}  // namespace
}  // namespace hearth::app
