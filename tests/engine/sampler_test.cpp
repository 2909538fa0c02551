#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace hearth::engine {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

SamplerParams plain(float temp, uint64_t seed = 1) {
  SamplerParams p;
  p.temp = temp;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

// Draws n tokens from the same logits (copied each time, sample() may modify them).
std::vector<int> histogram(Sampler& s, const std::vector<float>& logits, int n) {
  std::vector<int> hist(logits.size(), 0);
  std::vector<float> work;
  for (int i = 0; i < n; ++i) {
    work = logits;
    const int32_t t = s.sample(work.data());
    EXPECT_GE(t, 0);
    EXPECT_LT(t, static_cast<int32_t>(logits.size()));
    if (t >= 0 && t < static_cast<int32_t>(logits.size())) ++hist[static_cast<size_t>(t)];
  }
  return hist;
}

std::vector<double> softmax(const std::vector<float>& logits, double temp) {
  double mx = logits[0];
  for (float l : logits) mx = std::max<double>(mx, l);
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) sum += p[i] = std::exp((logits[i] - mx) / temp);
  for (auto& x : p) x /= sum;
  return p;
}

TEST(Sampler, GreedyPicksArgmax) {
  Sampler s(plain(0.0f), 6);
  std::vector<float> logits = {0.1f, -3.0f, 2.5f, 2.4f, -10.0f, 1.0f};
  EXPECT_EQ(s.sample(logits.data()), 2);
  std::vector<float> last = {-1.0f, -2.0f, -3.0f, -4.0f, -5.0f, 7.0f};
  EXPECT_EQ(s.sample(last.data()), 5);
  std::vector<float> first = {9.0f, -2.0f, -3.0f, -4.0f, -5.0f, 7.0f};
  EXPECT_EQ(s.sample(first.data()), 0);
}

TEST(Sampler, GreedyTiesGoToLowestId) {
  Sampler s(plain(0.0f), 5);
  std::vector<float> logits = {1.0f, 3.0f, 0.0f, 3.0f, 3.0f};
  EXPECT_EQ(s.sample(logits.data()), 1);
  SamplerParams neg = plain(-1.0f);  // any temp <= 0 is greedy
  Sampler s2(neg, 5);
  std::vector<float> logits2 = {1.0f, 2.0f, 5.0f, 5.0f, 0.0f};
  EXPECT_EQ(s2.sample(logits2.data()), 2);
}

TEST(Sampler, SameSeedSameSequence) {
  const std::vector<float> logits = {1.0f, 0.5f, 0.2f, 0.0f, -0.3f, 0.9f, 0.7f, 0.1f};
  SamplerParams p = plain(1.0f, 1234);
  Sampler a(p, 8), b(p, 8);
  std::vector<int32_t> sa, sb;
  for (int i = 0; i < 500; ++i) {
    auto wa = logits, wb = logits;
    sa.push_back(a.sample(wa.data()));
    sb.push_back(b.sample(wb.data()));
  }
  EXPECT_EQ(sa, sb);
  // reset() re-seeds: the sequence starts over.
  a.reset();
  std::vector<int32_t> again;
  for (int i = 0; i < 500; ++i) {
    auto w = logits;
    again.push_back(a.sample(w.data()));
  }
  EXPECT_EQ(sa, again);
}

TEST(Sampler, DifferentSeedDiffers) {
  const std::vector<float> logits = {1.0f, 0.5f, 0.2f, 0.0f, -0.3f, 0.9f, 0.7f, 0.1f};
  Sampler a(plain(1.0f, 1), 8), b(plain(1.0f, 2), 8);
  int differ = 0;
  for (int i = 0; i < 500; ++i) {
    auto wa = logits, wb = logits;
    if (a.sample(wa.data()) != b.sample(wb.data())) ++differ;
  }
  // Independent draws over 8 fairly flat choices differ most of the time.
  EXPECT_GT(differ, 250);
}

TEST(Sampler, DrawIsPinnedAcrossLibraries) {
  // The draw uses only mt19937_64 (fully specified by the standard) and our own
  // bits-to-double mapping, so this sequence must be the same everywhere.
  const std::vector<float> logits = {0.0f, 0.0f, 0.0f, 0.0f};  // uniform over 4
  Sampler s(plain(1.0f, 42), 4);
  std::mt19937_64 ref(42);
  for (int i = 0; i < 200; ++i) {
    auto w = logits;
    const double u = static_cast<double>(ref() >> 11) * 0x1.0p-53;
    EXPECT_EQ(s.sample(w.data()), static_cast<int32_t>(u * 4.0)) << "draw " << i;
  }
}

TEST(Sampler, TopKOneEqualsGreedy) {
  SamplerParams p = plain(1.5f, 7);
  p.top_k = 1;
  Sampler s(p, 64);
  Sampler g(plain(0.0f), 64);
  std::mt19937_64 gen(99);
  for (int round = 0; round < 50; ++round) {
    std::vector<float> logits(64);
    for (auto& l : logits) l = static_cast<float>(static_cast<int>(gen() % 21) - 10) * 0.5f;
    auto w1 = logits, w2 = logits;
    EXPECT_EQ(s.sample(w1.data()), g.sample(w2.data()));
  }
}

TEST(Sampler, TopKKeepsOnlyKBest) {
  SamplerParams p = plain(1.0f, 3);
  p.top_k = 3;
  Sampler s(p, 6);
  const std::vector<float> logits = {0.0f, 1.0f, 0.9f, 0.95f, 0.5f, -1.0f};
  auto hist = histogram(s, logits, 5000);
  EXPECT_EQ(hist[0], 0);
  EXPECT_EQ(hist[4], 0);
  EXPECT_EQ(hist[5], 0);
  EXPECT_GT(hist[1], 1000);
  EXPECT_GT(hist[2], 1000);
  EXPECT_GT(hist[3], 1000);
}

TEST(Sampler, TopPKeepsSmallestSetReachingP) {
  // Probabilities (temp 1): 0.4, 0.3, 0.2, 0.1 (given as logs). top_p = 0.65 keeps
  // {0, 1} (0.4 < 0.65 <= 0.7), renormalized to 4/7 and 3/7.
  const std::vector<float> logits = {std::log(0.1f), std::log(0.4f), std::log(0.2f),
                                     std::log(0.3f)};
  SamplerParams p = plain(1.0f, 11);
  p.top_p = 0.65f;
  Sampler s(p, 4);
  const int n = 20000;
  auto hist = histogram(s, logits, n);
  EXPECT_EQ(hist[0], 0);
  EXPECT_EQ(hist[2], 0);
  // Binomial sd = sqrt(n p q) ~ 70; allow ~5 sd.
  EXPECT_NEAR(hist[1], n * 4.0 / 7.0, 350);
  EXPECT_NEAR(hist[3], n * 3.0 / 7.0, 350);
}

TEST(Sampler, TopPAppliesAfterTemperature) {
  // At temp 0.5 the probabilities of logits log(.4), log(.3), log(.2), log(.1) become
  // .16, .09, .04, .01 (/ .30): .533, .3, .133, .033. top_p = 0.8 keeps {0, 1}
  // (.533 < .8 <= .833); at temp 1 it would also have kept token 2.
  const std::vector<float> logits = {std::log(0.4f), std::log(0.3f), std::log(0.2f),
                                     std::log(0.1f)};
  SamplerParams p = plain(0.5f, 5);
  p.top_p = 0.8f;
  Sampler s(p, 4);
  const int n = 20000;
  auto hist = histogram(s, logits, n);
  EXPECT_EQ(hist[2], 0);
  EXPECT_EQ(hist[3], 0);
  EXPECT_NEAR(hist[0], n * 16.0 / 25.0, 350);
  EXPECT_NEAR(hist[1], n * 9.0 / 25.0, 350);
}

TEST(Sampler, TopPOverLargeVocabGrowsSortedPrefix) {
  // 1000 tokens: 200 "high" ones (every 5th id) at logit 0, 800 at logit -3. Each high
  // token has probability 1 / (200 + 800 e^-3) = 4.1696e-3. top_p = 0.8 needs
  // ceil(0.8 / 4.1696e-3) = 192 of them (cum 0.7964 at 191, 0.8006 at 192): more than
  // the first 64-candidate sorted chunk, and ties keep the lowest ids (0 ... 955).
  std::vector<float> logits(1000, -3.0f);
  for (int i = 0; i < 1000; i += 5) logits[static_cast<size_t>(i)] = 0.0f;
  SamplerParams p = plain(1.0f, 21);
  p.top_p = 0.8f;
  Sampler s(p, 1000);
  auto hist = histogram(s, logits, 20000);
  int low = 0, distinct_high = 0;
  for (int i = 0; i < 1000; ++i) {
    if (i % 5 == 0) {
      distinct_high += hist[static_cast<size_t>(i)] > 0;
    } else {
      low += hist[static_cast<size_t>(i)];
    }
  }
  EXPECT_EQ(low, 0);
  EXPECT_EQ(distinct_high, 192);  // each kept token expects ~104 draws
  EXPECT_GT(hist[955], 0);
  EXPECT_EQ(hist[960], 0);
}

TEST(Sampler, TopPZeroKeepsOne) {
  SamplerParams p = plain(1.0f, 8);
  p.top_p = 0.0f;
  Sampler s(p, 4);
  const std::vector<float> logits = {0.0f, 0.1f, 0.2f, 0.15f};
  auto hist = histogram(s, logits, 1000);
  EXPECT_EQ(hist[2], 1000);
}

TEST(Sampler, MinPDropsTokensBelowFractionOfMax) {
  // Probabilities .5, .25, .15, .1 ; min_p = 0.35 -> threshold .175: keeps {0, 1} at 2/3, 1/3.
  const std::vector<float> logits = {std::log(0.5f), std::log(0.25f), std::log(0.15f),
                                     std::log(0.1f)};
  SamplerParams p = plain(1.0f, 17);
  p.min_p = 0.35f;
  Sampler s(p, 4);
  const int n = 20000;
  auto hist = histogram(s, logits, n);
  EXPECT_EQ(hist[2], 0);
  EXPECT_EQ(hist[3], 0);
  EXPECT_NEAR(hist[0], n * 2.0 / 3.0, 350);
  EXPECT_NEAR(hist[1], n * 1.0 / 3.0, 350);
}

TEST(Sampler, MinPAboveOneStillKeepsTheBest) {
  SamplerParams p = plain(1.0f, 17);
  p.min_p = 2.0f;
  Sampler s(p, 3);
  auto hist = histogram(s, {0.0f, 1.0f, 0.5f}, 500);
  EXPECT_EQ(hist[1], 500);
}

TEST(Sampler, FullDistributionMatchesSoftmax) {
  const std::vector<float> logits = {1.0f, 0.0f, -1.0f, 0.5f, 2.0f};
  const double temp = 0.7;
  Sampler s(plain(static_cast<float>(temp), 31), 5);
  const int n = 20000;
  auto hist = histogram(s, logits, n);
  auto expect = softmax(logits, temp);
  for (size_t i = 0; i < logits.size(); ++i) {
    EXPECT_NEAR(hist[i], n * expect[i], 5 * std::sqrt(n * expect[i] * (1 - expect[i])) + 5)
        << "token " << i;
  }
}

TEST(Sampler, RepeatPenaltyDividesPositiveMultipliesNegative) {
  SamplerParams p = plain(0.0f);
  p.repeat_penalty = 2.0f;
  p.repeat_last_n = 8;
  Sampler s(p, 4);
  s.accept(0);
  s.accept(1);
  s.accept(1);  // repeat penalty does not depend on the count
  std::vector<float> logits = {4.0f, -3.0f, 5.0f, -1.0f};
  s.apply_penalties(logits.data());
  EXPECT_FLOAT_EQ(logits[0], 2.0f);
  EXPECT_FLOAT_EQ(logits[1], -6.0f);
  EXPECT_FLOAT_EQ(logits[2], 5.0f);
  EXPECT_FLOAT_EQ(logits[3], -1.0f);
}

TEST(Sampler, FrequencyAndPresencePenalties) {
  SamplerParams p = plain(0.0f);
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  p.repeat_last_n = 16;
  Sampler s(p, 5);
  for (int t : {2, 2, 2, 4}) s.accept(t);
  std::vector<float> logits = {1.0f, 1.0f, 1.0f, 1.0f, -1.0f};
  s.apply_penalties(logits.data());
  EXPECT_FLOAT_EQ(logits[0], 1.0f);
  EXPECT_FLOAT_EQ(logits[1], 1.0f);
  EXPECT_FLOAT_EQ(logits[2], 1.0f - 3 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(logits[3], 1.0f);
  EXPECT_FLOAT_EQ(logits[4], -1.0f - 0.5f - 0.25f);
}

TEST(Sampler, RepeatThenFrequencyOrder) {
  // llama.cpp applies the repeat penalty first, then subtracts frequency and presence.
  SamplerParams p = plain(0.0f);
  p.repeat_penalty = 2.0f;
  p.frequency_penalty = 1.0f;
  p.presence_penalty = 1.0f;
  Sampler s(p, 2);
  s.accept(0);
  s.accept(0);
  std::vector<float> logits = {6.0f, 0.0f};
  s.apply_penalties(logits.data());
  EXPECT_FLOAT_EQ(logits[0], 6.0f / 2.0f - 2.0f - 1.0f);
}

TEST(Sampler, PenaltyWindowForgetsOldTokens) {
  SamplerParams p = plain(0.0f);
  p.frequency_penalty = 1.0f;
  p.repeat_last_n = 3;
  Sampler s(p, 4);
  for (int t : {0, 0, 1, 2, 3}) s.accept(t);  // window holds {1, 2, 3}
  EXPECT_EQ(s.count_in_window(0), 0);
  EXPECT_EQ(s.count_in_window(1), 1);
  std::vector<float> logits = {1.0f, 1.0f, 1.0f, 1.0f};
  s.apply_penalties(logits.data());
  EXPECT_FLOAT_EQ(logits[0], 1.0f);
  EXPECT_FLOAT_EQ(logits[1], 0.0f);
  EXPECT_FLOAT_EQ(logits[3], 0.0f);
  s.reset();
  EXPECT_EQ(s.count_in_window(3), 0);
}

TEST(Sampler, PenaltyWindowZeroIsOffNegativeIsUnbounded) {
  SamplerParams off = plain(0.0f);
  off.frequency_penalty = 1.0f;
  off.repeat_last_n = 0;
  Sampler s0(off, 2);
  s0.accept(0);
  EXPECT_EQ(s0.count_in_window(0), 0);

  SamplerParams all = off;
  all.repeat_last_n = -1;
  Sampler s1(all, 2);
  for (int i = 0; i < 1000; ++i) s1.accept(1);
  EXPECT_EQ(s1.count_in_window(1), 1000);
}

TEST(Sampler, PenaltyChangesGreedyChoice) {
  SamplerParams p = plain(0.0f);
  p.repeat_penalty = 1.5f;
  Sampler s(p, 3);
  std::vector<float> logits = {3.0f, 2.5f, 0.0f};
  EXPECT_EQ(s.sample(logits.data()), 0);
  s.accept(0);
  logits = {3.0f, 2.5f, 0.0f};
  EXPECT_EQ(s.sample(logits.data()), 1);  // 3 / 1.5 = 2 < 2.5
}

TEST(Sampler, AcceptIgnoresOutOfRangeIds) {
  SamplerParams p = plain(0.0f);
  p.frequency_penalty = 1.0f;
  Sampler s(p, 3);
  s.accept(-1);
  s.accept(3);
  s.accept(1 << 30);
  for (int t = 0; t < 3; ++t) EXPECT_EQ(s.count_in_window(t), 0);
}

TEST(Sampler, NaNLogitsNeverChosen) {
  for (float temp : {0.0f, 1.0f}) {
    SamplerParams p = plain(temp, 3);
    p.top_k = 2;
    Sampler s(p, 4);
    for (int i = 0; i < 200; ++i) {
      std::vector<float> logits = {kNaN, 0.5f, kNaN, 0.4f};
      const int32_t t = s.sample(logits.data());
      EXPECT_TRUE(t == 1 || t == 3) << "temp " << temp << " got " << t;
    }
  }
}

TEST(Sampler, AllNaNOrNegInfGivesValidId) {
  for (float temp : {0.0f, 0.8f}) {
    SamplerParams p;  // defaults: top-k, top-p and min-p on
    p.temp = temp;
    Sampler s(p, 5);
    std::vector<float> nan(5, kNaN);
    EXPECT_EQ(s.sample(nan.data()), 0);
    std::vector<float> ninf(5, -kInf);
    EXPECT_EQ(s.sample(ninf.data()), 0);
  }
}

TEST(Sampler, PositiveInfinityWins) {
  for (float temp : {0.0f, 1.0f}) {
    SamplerParams p = plain(temp, 4);
    Sampler s(p, 4);
    for (int i = 0; i < 100; ++i) {
      std::vector<float> logits = {1.0f, kInf, kNaN, 1e30f};
      EXPECT_EQ(s.sample(logits.data()), 1);
    }
  }
}

TEST(Sampler, NaNParametersDoNotBreakSampling) {
  SamplerParams p;
  p.temp = kNaN;  // treated as greedy
  p.top_p = kNaN;
  p.min_p = kNaN;
  p.repeat_penalty = kNaN;
  p.frequency_penalty = kInf;
  Sampler s(p, 3);
  s.accept(2);
  std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  EXPECT_EQ(s.sample(logits.data()), 2);

  p.temp = 1.0f;
  Sampler s2(p, 3);
  for (int i = 0; i < 100; ++i) {
    std::vector<float> l = {0.0f, 1.0f, 2.0f};
    const int32_t t = s2.sample(l.data());
    EXPECT_GE(t, 0);
    EXPECT_LT(t, 3);
  }
}

TEST(Sampler, ExtremeTemperatures) {
  SamplerParams hot = plain(1e30f, 9);
  Sampler s(hot, 4);
  auto hist = histogram(s, {10.0f, 0.0f, -10.0f, 5.0f}, 4000);
  for (int h : hist) EXPECT_GT(h, 800);  // ~uniform

  SamplerParams cold = plain(1e-30f, 9);
  Sampler c(cold, 4);
  auto hist2 = histogram(c, {0.0f, 0.001f, -1.0f, 0.0f}, 500);
  EXPECT_EQ(hist2[1], 500);  // ~greedy
}

TEST(Sampler, DegenerateInputs) {
  Sampler empty(SamplerParams{}, 0);
  float x = 1.0f;
  EXPECT_EQ(empty.sample(&x), -1);
  Sampler s(SamplerParams{}, 3);
  EXPECT_EQ(s.sample(nullptr), -1);
  Sampler one(plain(1.0f), 1);
  float y = -5.0f;
  EXPECT_EQ(one.sample(&y), 0);
}

}  // namespace
}  // namespace hearth::engine
