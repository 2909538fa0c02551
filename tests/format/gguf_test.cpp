#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "format/gguf.h"
#include "format/gguf_writer.h"

namespace hearth::format {
namespace {

std::vector<uint8_t> small_file() {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 2);
  w.add_f32("llama.rope.freq_base", 10000.0f);
  w.add_bool("tokenizer.ggml.add_bos_token", true);
  w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "<s>"});
  w.add_f32_array("tokenizer.ggml.scores", {0.5f, -1.0f, 0.0f});
  w.add_i32_array("tokenizer.ggml.token_type", {1, 1, 3});
  std::vector<float> v(64);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  w.add_tensor("a.weight", TensorType::F32, {32, 2}, v.data(), v.size() * 4);
  w.add_tensor("b.weight", TensorType::F32, {8}, v.data(), 32);
  return w.bytes();
}

Expected<std::unique_ptr<GgufFile>> parse(const std::vector<uint8_t>& b) {
  return GgufFile::from_memory(b.data(), b.size(), "test.gguf");
}

TEST(Gguf, ReadsWhatTheWriterWrote) {
  auto b = small_file();
  auto f = parse(b);
  ASSERT_TRUE(f) << f.error();
  EXPECT_EQ((*f)->version(), 3u);
  EXPECT_EQ((*f)->get_string("general.architecture").value(), "llama");
  EXPECT_EQ((*f)->get_uint("llama.block_count").value(), 2u);
  EXPECT_FLOAT_EQ(static_cast<float>((*f)->get_float("llama.rope.freq_base").value()), 10000.0f);
  EXPECT_TRUE((*f)->get_bool("tokenizer.ggml.add_bos_token").value());
  ASSERT_NE((*f)->get_string_array("tokenizer.ggml.tokens"), nullptr);
  EXPECT_EQ((*f)->get_string_array("tokenizer.ggml.tokens")->at(2), "<s>");
  EXPECT_EQ((*f)->get_f32_array("tokenizer.ggml.scores").value()[1], -1.0f);
  EXPECT_EQ((*f)->get_i32_array("tokenizer.ggml.token_type").value()[2], 3);
  EXPECT_FALSE((*f)->get_uint("general.architecture"));  // wrong type
  EXPECT_FALSE((*f)->get_string("missing"));
  const GgufTensor* t = (*f)->find_tensor("a.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne[0], 32);
  EXPECT_EQ(t->ne[1], 2);
  EXPECT_EQ(t->n_bytes, 256u);
  EXPECT_EQ(t->offset % 32, 0u);
  float x;
  std::memcpy(&x, t->data + 4 * 33, 4);
  EXPECT_EQ(x, 33.0f);
}

TEST(Gguf, EveryTruncationIsACleanError) {
  auto b = small_file();
  for (size_t n = 0; n < b.size(); ++n) {
    std::vector<uint8_t> p(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
    auto f = parse(p);
    ASSERT_FALSE(f) << "prefix of " << n << " bytes parsed";
    EXPECT_NE(f.error().find("test.gguf"), std::string::npos) << f.error();
    EXPECT_EQ(f.error().find('\n'), std::string::npos) << "one line: " << f.error();
  }
}

TEST(Gguf, EverySingleByteCorruptionIsHandled) {
  // Flipping any byte of the header/metadata must give a clean error or a valid parse,
  // never a crash (run under ASan/UBSan in CI).
  auto b = small_file();
  const size_t header = 400;
  for (size_t i = 0; i < std::min(header, b.size()); ++i) {
    for (uint8_t x : {0xffu, 0x80u, 0x01u}) {
      auto c = b;
      c[i] ^= x;
      auto f = parse(c);
      if (!f) {
        EXPECT_FALSE(f.error().empty());
      }
    }
  }
}

std::vector<uint8_t> header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
  std::vector<uint8_t> b = {'G', 'G', 'U', 'F'};
  auto put = [&](auto v) {
    auto* p = reinterpret_cast<uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(v));
  };
  put(version);
  put(n_tensors);
  put(n_kv);
  return b;
}

template <typename T>
void put(std::vector<uint8_t>& b, T v) {
  auto* p = reinterpret_cast<uint8_t*>(&v);
  b.insert(b.end(), p, p + sizeof(v));
}
void put_str(std::vector<uint8_t>& b, std::string_view s) {
  put<uint64_t>(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}

void expect_error(const std::vector<uint8_t>& b, const std::string& needle) {
  auto f = parse(b);
  ASSERT_FALSE(f) << "expected an error containing '" << needle << "'";
  EXPECT_NE(f.error().find(needle), std::string::npos) << f.error();
}

TEST(Gguf, RejectsNonGguf) { expect_error({'P', 'K', 3, 4, 0, 0, 0, 0}, "not a GGUF file"); }
TEST(Gguf, RejectsEmptyFile) { expect_error({}, "not a GGUF file"); }
TEST(Gguf, RejectsUnknownVersion) { expect_error(header(7, 0, 0), "version 7"); }
TEST(Gguf, RejectsVersion1) { expect_error(header(1, 0, 0), "version 1"); }
TEST(Gguf, RejectsHugeTensorCount) { expect_error(header(3, 1ull << 60, 0), "tensor count"); }
TEST(Gguf, RejectsHugeMetadataCount) { expect_error(header(3, 0, ~0ull), "metadata count"); }

TEST(Gguf, RejectsStringLongerThanFile) {
  auto b = header(3, 0, 1);
  put<uint64_t>(b, 1ull << 62);
  b.resize(b.size() + 32, 'x');
  expect_error(b, "metadata key");
}

TEST(Gguf, RejectsHugeArray) {
  auto b = header(3, 0, 1);
  put_str(b, "k");
  put<uint32_t>(b, 9);  // array
  put<uint32_t>(b, 6);  // of float32
  put<uint64_t>(b, 1ull << 61);
  expect_error(b, "runs past the end");
}

TEST(Gguf, RejectsHugeStringArray) {
  auto b = header(3, 0, 1);
  put_str(b, "k");
  put<uint32_t>(b, 9);
  put<uint32_t>(b, 8);
  put<uint64_t>(b, 1ull << 40);
  expect_error(b, "cannot fit");
}

TEST(Gguf, RejectsNestedArray) {
  auto b = header(3, 0, 1);
  put_str(b, "k");
  put<uint32_t>(b, 9);
  put<uint32_t>(b, 9);
  put<uint64_t>(b, 1);
  expect_error(b, "array of arrays");
}

TEST(Gguf, RejectsUnknownValueType) {
  auto b = header(3, 0, 1);
  put_str(b, "k");
  put<uint32_t>(b, 99);
  expect_error(b, "unknown value type 99");
}

TEST(Gguf, RejectsDuplicateKey) {
  auto b = header(3, 0, 2);
  for (int i = 0; i < 2; ++i) {
    put_str(b, "dup");
    put<uint32_t>(b, 4);
    put<uint32_t>(b, 1);
  }
  expect_error(b, "appears twice");
}

TEST(Gguf, RejectsBadBool) {
  auto b = header(3, 0, 1);
  put_str(b, "k");
  put<uint32_t>(b, 7);
  put<uint8_t>(b, 2);
  expect_error(b, "neither 0 nor 1");
}

TEST(Gguf, RejectsBadAlignment) {
  auto b = header(3, 0, 1);
  put_str(b, "general.alignment");
  put<uint32_t>(b, 4);
  put<uint32_t>(b, 24);
  expect_error(b, "power of two");
}

std::vector<uint8_t> one_tensor(uint32_t n_dims, std::vector<uint64_t> dims, uint32_t type, uint64_t offset,
                                size_t data_bytes) {
  auto b = header(3, 1, 0);
  put_str(b, "t");
  put<uint32_t>(b, n_dims);
  for (uint64_t d : dims) put<uint64_t>(b, d);
  put<uint32_t>(b, type);
  put<uint64_t>(b, offset);
  b.resize((b.size() + 31) / 32 * 32 + data_bytes, 0);
  return b;
}

TEST(Gguf, AcceptsTensorThatFits) { EXPECT_TRUE(parse(one_tensor(1, {8}, 0, 0, 32))); }
TEST(Gguf, RejectsTensorPastEndOfFile) { expect_error(one_tensor(1, {9}, 0, 0, 32), "runs past the end"); }
TEST(Gguf, RejectsTensorOffsetPastEnd) { expect_error(one_tensor(1, {8}, 0, 1ull << 40, 32), "runs past the end"); }
TEST(Gguf, RejectsUnalignedTensorOffset) { expect_error(one_tensor(1, {8}, 0, 4, 64), "alignment"); }
TEST(Gguf, RejectsUnknownTensorType) { expect_error(one_tensor(1, {8}, 77, 0, 32), "unknown type id 77"); }
TEST(Gguf, RejectsTooManyDims) { expect_error(one_tensor(5, {1, 1, 1, 1, 1}, 0, 0, 32), "dimensions"); }
TEST(Gguf, RejectsZeroDims) { expect_error(one_tensor(0, {}, 0, 0, 32), "dimensions"); }
TEST(Gguf, RejectsZeroDimension) { expect_error(one_tensor(2, {8, 0}, 0, 0, 32), "zero or overflows"); }
TEST(Gguf, RejectsOverflowingDims) {
  expect_error(one_tensor(3, {1ull << 32, 1ull << 32, 1ull << 32}, 0, 0, 32), "overflows");
}
TEST(Gguf, RejectsPartialBlock) { expect_error(one_tensor(1, {33}, 2, 0, 64), "block size"); }

TEST(Gguf, RejectsDuplicateTensorName) {
  auto b = header(3, 2, 0);
  for (int i = 0; i < 2; ++i) {
    put_str(b, "t");
    put<uint32_t>(b, 1);
    put<uint64_t>(b, 8);
    put<uint32_t>(b, 0);
    put<uint64_t>(b, 0);
  }
  b.resize(b.size() + 64, 0);
  expect_error(b, "listed twice");
}

TEST(Gguf, OpenReportsMissingFile) {
  auto f = GgufFile::open("/nonexistent/model.gguf");
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().find("cannot open"), std::string::npos);
}

TEST(Gguf, OpenRejectsDirectory) {
  auto f = GgufFile::open("/tmp");
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().find("not a regular file"), std::string::npos);
}

std::string model_path(const char* file) {
  const char* d = std::getenv("HEARTH_MODELS");
  std::string dir = d ? d : std::string(std::getenv("HOME") ? std::getenv("HOME") : "") + "/.local/share/hearth/models";
  return dir + "/" + file;
}

TEST(Gguf, ReadsTheDefaultModel) {
  const std::string p = model_path("SmolLM2-135M-Instruct.Q4_1.gguf");
  if (!std::filesystem::exists(p)) GTEST_SKIP() << p << " not present (run scripts/fetch_models.py)";
  auto f = GgufFile::open(p);
  ASSERT_TRUE(f) << f.error();
  EXPECT_EQ((*f)->get_string("general.architecture").value(), "llama");
  EXPECT_EQ((*f)->tensors().size(), 272u);
  EXPECT_EQ((*f)->get_string_array("tokenizer.ggml.tokens")->size(), 49152u);
  EXPECT_EQ((*f)->find_tensor("token_embd.weight")->type, TensorType::Q8_0);
}

TEST(Gguf, WriterRoundTripsThroughAFile) {
  GgufWriter w;
  w.add_string("general.architecture", "x");
  const std::string path = ::testing::TempDir() + "/roundtrip.gguf";
  ASSERT_TRUE(w.write_file(path));
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f) << f.error();
  EXPECT_EQ((*f)->get_string("general.architecture").value(), "x");
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace hearth::format
