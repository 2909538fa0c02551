#include "app/quantize.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "format/gguf_writer.h"
#include "kernels/type_kernels.h"
#include "platform/thread_pool.h"

namespace hearth::app {
namespace {

using format::TensorType;

struct Preset {
  const char* name;
  TensorType base;
  int file_type;  // llama.cpp's general.file_type numbering
  bool mixed_k;   // the _M rules for attn_v / ffn_down
};

constexpr Preset kPresets[] = {
    {"F32", TensorType::F32, 0, false},    {"F16", TensorType::F16, 1, false},
    {"BF16", TensorType::BF16, 32, false}, {"Q4_0", TensorType::Q4_0, 2, false},
    {"Q4_1", TensorType::Q4_1, 3, false},  {"Q8_0", TensorType::Q8_0, 7, false},
    {"Q5_0", TensorType::Q5_0, 8, false},  {"Q5_1", TensorType::Q5_1, 9, false},
    {"Q4_K", TensorType::Q4_K, 14, false}, {"Q4_K_M", TensorType::Q4_K, 15, true},
    {"Q5_K", TensorType::Q5_K, 16, false}, {"Q5_K_M", TensorType::Q5_K, 17, true},
    {"Q6_K", TensorType::Q6_K, 18, false},
};

const Preset* find_preset(std::string_view name) {
  for (const Preset& p : kPresets)
    if (name == p.name) return &p;
  return nullptr;
}

bool is_float(TensorType t) { return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16; }

// Layer index from "blk.N.…", or -1.
int64_t layer_of(std::string_view name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  int64_t n = 0;
  size_t i = 4;
  if (i >= name.size() || name[i] < '0' || name[i] > '9') return -1;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') n = n * 10 + (name[i++] - '0');
  return n;
}

bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A type whose block fits the row, starting from the wanted one.
TensorType fit_row(TensorType t, int64_t n_cols) {
  if (n_cols % format::traits(t).block_size == 0) return t;
  switch (t) {
    case TensorType::Q4_K: t = TensorType::Q5_0; break;
    case TensorType::Q5_K: t = TensorType::Q5_1; break;
    case TensorType::Q6_K: t = TensorType::Q8_0; break;
    default: t = TensorType::F16; break;
  }
  return n_cols % format::traits(t).block_size == 0 ? t : TensorType::F16;
}

Status write_all(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return make_error("{}: write failed: {}", path, std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok();
}

}  // namespace

std::vector<std::string> quantize_type_names() {
  std::vector<std::string> out;
  for (const Preset& p : kPresets) out.emplace_back(p.name);
  return out;
}

Expected<TensorType> quantize_target(std::string_view preset_name, const format::GgufTensor& t, int64_t n_layer,
                                     bool has_output_tensor) {
  const Preset* preset = find_preset(preset_name);
  if (!preset) return make_error("unknown type '{}'", preset_name);
  if (t.n_dims < 2 || ends_with(t.name, "_norm.weight") || ends_with(t.name, ".bias") ||
      t.name == "rope_freqs.weight")
    return t.type;
  TensorType want = preset->base;
  const bool is_output = t.name == "output.weight" || (!has_output_tensor && t.name == "token_embd.weight");
  if (is_output && !is_float(want) && want != TensorType::Q8_0) want = TensorType::Q6_K;
  if (preset->mixed_k && (ends_with(t.name, ".attn_v.weight") || ends_with(t.name, ".ffn_down.weight"))) {
    const int64_t il = layer_of(t.name);
    if (il >= 0 && use_more_bits(il, n_layer)) want = TensorType::Q6_K;
  }
  return fit_row(want, t.ne[0]);
}

Expected<QuantizeReport> quantize_model(const std::string& in_path, const std::string& out_path,
                                        const QuantizeOptions& opt) {
  const Preset* preset = find_preset(opt.type);
  if (!preset) {
    std::string names;
    for (const std::string& n : quantize_type_names()) names += (names.empty() ? "" : ", ") + n;
    return make_error("unknown type '{}'; choose one of: {}", opt.type, names);
  }
  struct stat in_st {}, out_st {};
  if (::stat(in_path.c_str(), &in_st) != 0) return make_error("{}: {}", in_path, std::strerror(errno));
  if (::stat(out_path.c_str(), &out_st) == 0) {
    if (in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino)
      return make_error("{} is the input file; write the output to another path", out_path);
    if (!opt.overwrite) return make_error("{} exists; pass --overwrite to replace it", out_path);
  }
  auto in = format::GgufFile::open(in_path);
  if (!in) return Error{in.error()};
  const format::GgufFile& g = **in;
  const std::string arch(g.get_string("general.architecture").value_or(""));
  const int64_t n_layer = static_cast<int64_t>(g.get_uint(arch + ".block_count").value_or(0));
  const bool has_output = g.find_tensor("output.weight") != nullptr;

  // Plan: the type of every tensor, and a readable source for those that change.
  format::GgufWriter w;
  for (const format::GgufKv& kv : g.kvs())
    if (kv.key != "general.file_type" && kv.key != "general.alignment") w.add_kv(kv);
  w.add_u32("general.file_type", static_cast<uint32_t>(preset->file_type));
  std::vector<TensorType> types;
  QuantizeReport rep;
  for (const format::GgufTensor& t : g.tensors()) {
    auto target = quantize_target(opt.type, t, n_layer, has_output);
    if (!target) return Error{target.error()};
    if (*target != t.type && !kernels::type_kernels(t.type).to_float)
      return make_error("{}: tensor '{}' has type {}, which Hearth cannot read", in_path, t.name,
                        format::type_name(t.type));
    if (*target != t.type && !kernels::type_kernels(*target).from_float)
      return make_error("Hearth cannot write type {} (tensor '{}')", format::type_name(*target), t.name);
    types.push_back(*target);
    std::vector<int64_t> ne(t.ne.begin(), t.ne.begin() + t.n_dims);
    const uint64_t n_bytes = static_cast<uint64_t>(format::row_bytes(*target, t.ne[0]) * t.n_rows());
    w.add_tensor_info(t.name, *target, ne, n_bytes);
    rep.in_bytes += t.n_bytes;
    rep.out_bytes += n_bytes;
    (*target == t.type ? rep.n_kept : rep.n_quantized)++;
  }

  const std::string tmp = out_path + ".partial";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error("{}: cannot create: {}", tmp, std::strerror(errno));
  auto fail = [&](const std::string& msg) -> Error {
    ::close(fd);
    ::unlink(tmp.c_str());
    return Error{msg};
  };
  const std::vector<uint8_t> header = w.header_bytes();
  if (Status s = write_all(fd, header.data(), header.size(), tmp); !s) return fail(s.error());

  platform::ThreadPool pool(std::max(1, opt.n_threads));
  uint64_t done = 0;
  std::vector<uint8_t> out;
  static const uint8_t kZeros[format::GgufWriter::kAlignment] = {};
  for (size_t i = 0; i < g.tensors().size(); ++i) {
    const format::GgufTensor& t = g.tensors()[i];
    const TensorType to = types[i];
    const uint8_t* data = t.data;
    size_t n_bytes = t.n_bytes;
    if (to != t.type) {
      const int64_t n_cols = t.ne[0], n_rows = t.n_rows();
      const int64_t in_row = format::row_bytes(t.type, n_cols), out_row = format::row_bytes(to, n_cols);
      out.resize(static_cast<size_t>(out_row * n_rows));
      const kernels::TypeKernels& src = kernels::type_kernels(t.type);
      const kernels::TypeKernels& dst = kernels::type_kernels(to);
      pool.run([&](int ti, int nt) {
        std::vector<float> row(static_cast<size_t>(n_cols));
        int64_t b, e;
        platform::ThreadPool::chunk(n_rows, ti, nt, &b, &e);
        for (int64_t r = b; r < e; ++r) {
          src.to_float(t.data + r * in_row, row.data(), n_cols);
          dst.from_float(row.data(), out.data() + r * out_row, n_cols);
        }
      });
      data = out.data();
      n_bytes = out.size();
    }
    if (Status s = write_all(fd, data, n_bytes, tmp); !s) return fail(s.error());
    if (Status s = write_all(fd, kZeros, format::GgufWriter::padding_after(n_bytes), tmp); !s)
      return fail(s.error());
    done += t.n_bytes;
    if (opt.progress) opt.progress(done, rep.in_bytes);
  }
  if (::fsync(fd) != 0) return fail(fmt::format("{}: cannot flush to disk: {}", tmp, std::strerror(errno)));
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return make_error("{}: close failed", tmp);
  }
  // Check what we wrote before it takes the output's name.
  if (auto check = format::GgufFile::open(tmp); !check) {
    ::unlink(tmp.c_str());
    return make_error("internal error: the written file does not read back: {}", check.error());
  }
  if (std::rename(tmp.c_str(), out_path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return make_error("{}: cannot rename into place: {}", out_path, std::strerror(errno));
  }
  return rep;
}

}  // namespace hearth::app
