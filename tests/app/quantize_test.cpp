#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "app/quantize.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "kernels/type_kernels.h"

namespace hearth::app {
namespace {

using format::TensorType;

// A two-layer llama-shaped file with F32 weights whose rows are 256 or 96 long.
std::string make_model(const std::string& dir) {
  format::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 8);
  w.add_u32("general.file_type", 0);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto add = [&](const std::string& name, std::vector<int64_t> ne) {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = nd(rng);
    w.add_tensor(name, TensorType::F32, ne, v.data(), v.size() * 4);
  };
  add("token_embd.weight", {256, 16});
  add("output_norm.weight", {256});
  for (int i = 0; i < 8; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    add(p + "attn_norm.weight", {256});
    add(p + "attn_v.weight", {256, 8});
    add(p + "ffn_down.weight", {96, 8});  // not a multiple of 256: K-quants fall back
  }
  const std::string path = dir + "/model-f32.gguf";
  EXPECT_TRUE(w.write_file(path));
  return path;
}

class Quantize : public ::testing::Test {
 protected:
  void SetUp() override {
    // One directory per test process: ctest runs this fixture's tests in parallel.
    dir_ = ::testing::TempDir() + "/hearth-quantize-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    in_ = make_model(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, in_;
};

double rel_rms_error(const format::GgufTensor& a, const format::GgufTensor& b) {
  std::vector<float> x(static_cast<size_t>(a.n_elements())), y(x.size());
  kernels::type_kernels(a.type).to_float(a.data, x.data(), a.n_elements());
  kernels::type_kernels(b.type).to_float(b.data, y.data(), b.n_elements());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += x[i] * x[i];
  }
  return std::sqrt(num / den);
}

TEST_F(Quantize, EveryTypeReadsBackCloseToTheOriginal) {
  auto orig = format::GgufFile::open(in_);
  ASSERT_TRUE(orig) << orig.error();
  for (const std::string& type : quantize_type_names()) {
    const std::string out = dir_ + "/" + type + ".gguf";
    QuantizeOptions o;
    o.type = type;
    o.n_threads = 2;
    auto rep = quantize_model(in_, out, o);
    ASSERT_TRUE(rep) << type << ": " << rep.error();
    auto q = format::GgufFile::open(out);
    ASSERT_TRUE(q) << q.error();
    EXPECT_EQ((*q)->get_string("general.architecture").value(), "llama");
    EXPECT_EQ((*q)->tensors().size(), (*orig)->tensors().size());
    for (const format::GgufTensor& t : (*orig)->tensors()) {
      const format::GgufTensor* u = (*q)->find_tensor(t.name);
      ASSERT_NE(u, nullptr) << t.name;
      if (t.n_dims == 1) {
        EXPECT_EQ(u->type, TensorType::F32) << type << " " << t.name;
        continue;
      }
      // 4-bit types on Gaussian data: about 10% relative RMS error; 8-bit and floats far less.
      EXPECT_LT(rel_rms_error(t, *u), 0.15) << type << " " << t.name << " as " << format::type_name(u->type);
    }
  }
}

TEST_F(Quantize, MixedPresetFollowsLlamaCppRules) {
  auto f = format::GgufFile::open(in_);
  ASSERT_TRUE(f);
  auto type_of = [&](const char* preset, const char* name) {
    auto t = quantize_target(preset, *(*f)->find_tensor(name), 8, false);
    EXPECT_TRUE(t);
    return *t;
  };
  EXPECT_EQ(type_of("Q4_K_M", "token_embd.weight"), TensorType::Q6_K);  // tied output head
  EXPECT_EQ(type_of("Q8_0", "token_embd.weight"), TensorType::Q8_0);
  EXPECT_EQ(type_of("Q4_0", "token_embd.weight"), TensorType::Q6_K);
  EXPECT_EQ(type_of("Q4_K_M", "blk.0.attn_v.weight"), TensorType::Q6_K);  // first eighth
  EXPECT_EQ(type_of("Q4_K_M", "blk.1.attn_v.weight"), TensorType::Q4_K);
  EXPECT_EQ(type_of("Q4_K_M", "blk.3.attn_v.weight"), TensorType::Q6_K);  // (3 - 1) % 3 == 2
  EXPECT_EQ(type_of("Q4_K_M", "blk.7.attn_v.weight"), TensorType::Q6_K);  // last eighth
  EXPECT_EQ(type_of("Q4_K_M", "blk.1.ffn_down.weight"), TensorType::Q5_0);  // 96 columns: fallback
  EXPECT_EQ(type_of("Q5_K_M", "blk.1.attn_v.weight"), TensorType::Q5_K);
  EXPECT_EQ(type_of("Q4_K", "blk.0.attn_v.weight"), TensorType::Q4_K);
  EXPECT_EQ(type_of("Q4_K_M", "blk.0.attn_norm.weight"), TensorType::F32);
}

TEST_F(Quantize, RefusesToOverwriteAndLeavesNothingHalfWritten) {
  QuantizeOptions o;
  o.type = "Q8_0";
  auto same = quantize_model(in_, in_, o);
  ASSERT_FALSE(same);
  EXPECT_NE(same.error().find("is the input file"), std::string::npos);
  const std::string out = dir_ + "/out.gguf";
  ASSERT_TRUE(quantize_model(in_, out, o));
  auto again = quantize_model(in_, out, o);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().find("--overwrite"), std::string::npos);
  o.overwrite = true;
  EXPECT_TRUE(quantize_model(in_, out, o));
  o.type = "Q9_9";
  auto bad = quantize_model(in_, dir_ + "/bad.gguf", o);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("unknown type"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/bad.gguf.partial"));
  o.type = "Q8_0";
  auto missing = quantize_model(dir_ + "/none.gguf", dir_ + "/x.gguf", o);
  EXPECT_FALSE(missing);
}

}  // namespace
}  // namespace hearth::app
