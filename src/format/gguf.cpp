#include "format/gguf.h"

#include <cstring>
#include <limits>
#include <unordered_set>

namespace hearth::format {
namespace {

constexpr uint64_t kMaxDims = 4;

const char* type_label(GgufType t) {
  switch (t) {
    case GgufType::UINT8: return "uint8";
    case GgufType::INT8: return "int8";
    case GgufType::UINT16: return "uint16";
    case GgufType::INT16: return "int16";
    case GgufType::UINT32: return "uint32";
    case GgufType::INT32: return "int32";
    case GgufType::FLOAT32: return "float32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::UINT64: return "uint64";
    case GgufType::INT64: return "int64";
    case GgufType::FLOAT64: return "float64";
  }
  return "?";
}


// A bounds-checked little-endian cursor over the file. Every read names its field so a
// failure message says what was being read and where.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size, const std::string& name)
      : data_(data), size_(size), name_(name) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const uint8_t* here() const { return data_ + pos_; }

  Status need(uint64_t n, std::string_view what) const {
    if (n > remaining())
      return make_error("{}: {} at offset {:#x} needs {} bytes but only {} remain; the file is truncated or corrupt",
                        name_, what, pos_, n, remaining());
    return Status::ok();
  }

  template <typename T>
  Status read(T* out, std::string_view what) {
    if (Status s = need(sizeof(T), what); !s) return s;
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::ok();
  }

  Status read_string(std::string_view* out, std::string_view what) {
    uint64_t start = pos_, len = 0;
    if (Status s = read(&len, what); !s) return s;
    if (len > remaining()) {
      pos_ = start;
      return make_error("{}: {} at offset {:#x} claims length {} but only {} bytes remain",
                        name_, what, start, len, remaining() - 8);
    }
    *out = std::string_view(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return Status::ok();
  }

  void skip(uint64_t n) { pos_ += n; }

 private:
  const uint8_t* data_;
  uint64_t size_;
  const std::string& name_;
  uint64_t pos_ = 0;
};

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

uint64_t gguf_scalar_size(uint32_t t) {
  switch (static_cast<GgufType>(t)) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    default: return 0;
  }
}

Expected<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  auto map = platform::MappedFile::open(path);
  if (!map) return Error{map.error()};
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->name_ = path;
  f->map_ = std::move(*map);
  f->data_ = f->map_.data();
  f->size_ = f->map_.size();
  if (Status s = f->parse(); !s) return Error{s.error()};
  return f;
}

Expected<std::unique_ptr<GgufFile>> GgufFile::from_memory(const uint8_t* data, size_t size,
                                                          std::string name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->name_ = std::move(name);
  f->data_ = data;
  f->size_ = size;
  if (Status s = f->parse(); !s) return Error{s.error()};
  return f;
}

Status GgufFile::parse() {
  Cursor c(data_, size_, name_);
  char magic[4];
  if (size_ < 4 || std::memcmp(data_, "GGUF", 4) != 0)
    return make_error("{}: not a GGUF file (the first 4 bytes are not 'GGUF')", name_);
  if (Status s = c.read(&magic, "magic"); !s) return s;
  if (Status s = c.read(&version_, "version"); !s) return s;
  if (version_ != 2 && version_ != 3)
    return make_error("{}: GGUF version {} is not supported (Hearth reads versions 2 and 3)", name_, version_);

  uint64_t n_tensors = 0, n_kv = 0;
  if (Status s = c.read(&n_tensors, "tensor count"); !s) return s;
  if (Status s = c.read(&n_kv, "metadata count"); !s) return s;
  // Each key/value needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info
  // at least 8 + 4 + 8 + 4 + 8. Counts beyond that cannot be honest: reject before
  // reserving anything.
  if (n_kv > c.remaining() / 13)
    return make_error("{}: metadata count {} at offset 0x10 is larger than the file can hold", name_, n_kv);
  if (n_tensors > c.remaining() / 32)
    return make_error("{}: tensor count {} at offset 0x8 is larger than the file can hold", name_, n_tensors);

  kvs_.reserve(n_kv);
  std::unordered_set<std::string_view> keys;
  for (uint64_t k = 0; k < n_kv; ++k) {
    GgufKv kv;
    const uint64_t key_pos = c.pos();
    if (Status s = c.read_string(&kv.key, "metadata key"); !s) return s;
    if (!keys.insert(kv.key).second)
      return make_error("{}: metadata key '{}' at offset {:#x} appears twice", name_, kv.key, key_pos);
    uint32_t type = 0;
    const uint64_t type_pos = c.pos();
    if (Status s = c.read(&type, "metadata value type"); !s) return s;
    if (type > static_cast<uint32_t>(GgufType::FLOAT64))
      return make_error("{}: metadata '{}' at offset {:#x} has unknown value type {}", name_, kv.key, type_pos, type);
    kv.type = static_cast<GgufType>(type);
    const uint64_t val_pos = c.pos();
    if (kv.type == GgufType::STRING) {
      if (Status s = c.read_string(&kv.str, "string value"); !s) return s;
    } else if (kv.type == GgufType::ARRAY) {
      uint32_t et = 0;
      if (Status s = c.read(&et, "array element type"); !s) return s;
      if (Status s = c.read(&kv.array_count, "array length"); !s) return s;
      if (et == static_cast<uint32_t>(GgufType::ARRAY))
        return make_error("{}: metadata '{}' at offset {:#x} is an array of arrays, which Hearth does not read",
                          name_, kv.key, val_pos);
      if (et > static_cast<uint32_t>(GgufType::FLOAT64))
        return make_error("{}: metadata '{}' at offset {:#x} has unknown array element type {}", name_, kv.key, val_pos, et);
      kv.array_type = static_cast<GgufType>(et);
      if (kv.array_type == GgufType::STRING) {
        if (kv.array_count > c.remaining() / 8)
          return make_error("{}: metadata '{}' at offset {:#x}: array of {} strings cannot fit in the {} bytes left",
                            name_, kv.key, val_pos, kv.array_count, c.remaining());
        kv.strings.resize(kv.array_count);
        for (uint64_t i = 0; i < kv.array_count; ++i)
          if (Status s = c.read_string(&kv.strings[i], "array string element"); !s)
            return make_error("{} (element {} of '{}')", s.error(), i, kv.key);
      } else {
        const uint64_t es = gguf_scalar_size(et);
        if (kv.array_count > c.remaining() / es)
          return make_error("{}: metadata '{}' at offset {:#x}: array of {} {} values runs past the end of the file",
                            name_, kv.key, val_pos, kv.array_count, type_label(kv.array_type));
        kv.array_data = c.here();
        c.skip(kv.array_count * es);
      }
    } else {
      const uint64_t es = gguf_scalar_size(type);
      if (Status s = c.need(es, "metadata value"); !s) return s;
      const uint8_t* p = c.here();
      switch (kv.type) {
        case GgufType::UINT8: kv.u = p[0]; kv.i = kv.u; kv.f = kv.u; break;
        case GgufType::INT8: kv.i = static_cast<int8_t>(p[0]); kv.f = kv.i; break;
        case GgufType::BOOL:
          if (p[0] > 1)
            return make_error("{}: metadata '{}' at offset {:#x}: bool value {} is neither 0 nor 1", name_, kv.key, val_pos, p[0]);
          kv.u = p[0]; kv.i = p[0]; break;
        case GgufType::UINT16: kv.u = load<uint16_t>(p); kv.i = kv.u; kv.f = kv.u; break;
        case GgufType::INT16: kv.i = load<int16_t>(p); kv.f = kv.i; break;
        case GgufType::UINT32: kv.u = load<uint32_t>(p); kv.i = kv.u; kv.f = kv.u; break;
        case GgufType::INT32: kv.i = load<int32_t>(p); kv.f = kv.i; break;
        case GgufType::FLOAT32: kv.f = load<float>(p); break;
        case GgufType::UINT64: kv.u = load<uint64_t>(p); kv.i = static_cast<int64_t>(kv.u); kv.f = static_cast<double>(kv.u); break;
        case GgufType::INT64: kv.i = load<int64_t>(p); kv.f = static_cast<double>(kv.i); break;
        case GgufType::FLOAT64: kv.f = load<double>(p); break;
        default: break;
      }
      if (kv.i >= 0 && kv.type != GgufType::UINT64 && kv.type != GgufType::FLOAT32 && kv.type != GgufType::FLOAT64)
        kv.u = static_cast<uint64_t>(kv.i);
      c.skip(es);
    }
    kvs_.push_back(std::move(kv));
  }

  if (const GgufKv* a = find("general.alignment")) {
    if (a->type != GgufType::UINT32 || a->u == 0 || (a->u & (a->u - 1)) != 0 || a->u > 65536)
      return make_error("{}: general.alignment must be a power of two (uint32) no larger than 65536", name_);
    alignment_ = a->u;
  }

  tensors_.reserve(n_tensors);
  std::unordered_set<std::string_view> names;
  for (uint64_t t = 0; t < n_tensors; ++t) {
    GgufTensor ti;
    const uint64_t info_pos = c.pos();
    if (Status s = c.read_string(&ti.name, "tensor name"); !s) return s;
    if (!names.insert(ti.name).second)
      return make_error("{}: tensor '{}' at offset {:#x} is listed twice", name_, ti.name, info_pos);
    uint32_t n_dims = 0;
    if (Status s = c.read(&n_dims, "tensor dimension count"); !s) return s;
    if (n_dims == 0 || n_dims > kMaxDims)
      return make_error("{}: tensor '{}' at offset {:#x} has {} dimensions (1 to 4 allowed)", name_, ti.name, info_pos, n_dims);
    ti.n_dims = static_cast<int>(n_dims);
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = 0;
      if (Status s = c.read(&dim, "tensor dimension"); !s) return s;
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          n_el > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim)
        return make_error("{}: tensor '{}' at offset {:#x}: dimension {} = {} is zero or overflows", name_, ti.name, info_pos, d, dim);
      n_el *= dim;
      ti.ne[d] = static_cast<int64_t>(dim);
    }
    uint32_t type = 0;
    if (Status s = c.read(&type, "tensor type"); !s) return s;
    const TypeTraits* tr = type_traits(type);
    if (!tr)
      return make_error("{}: tensor '{}' has unknown type id {}; this file needs a newer reader", name_, ti.name, type);
    ti.type = static_cast<TensorType>(type);
    if (ti.ne[0] % tr->block_size != 0)
      return make_error("{}: tensor '{}' of type {} has a row of {} elements, not a multiple of its block size {}",
                        name_, ti.name, tr->name, ti.ne[0], tr->block_size);
    ti.n_bytes = n_el / static_cast<uint64_t>(tr->block_size) * static_cast<uint64_t>(tr->type_size);
    if (Status s = c.read(&ti.offset, "tensor data offset"); !s) return s;
    if (ti.offset % alignment_ != 0)
      return make_error("{}: tensor '{}' data offset {:#x} is not a multiple of the alignment {}", name_, ti.name, ti.offset, alignment_);
    tensors_.push_back(ti);
  }

  // Tensor data starts at the next multiple of the alignment.
  uint64_t data_off = c.pos();
  if (data_off % alignment_) data_off += alignment_ - data_off % alignment_;
  data_offset_ = data_off;
  if (!tensors_.empty() && data_off > size_)
    return make_error("{}: tensor data would start at offset {:#x}, past the end of the file ({} bytes); the file is truncated",
                      name_, data_off, size_);
  const uint64_t data_size = size_ >= data_off ? size_ - data_off : 0;
  for (GgufTensor& ti : tensors_) {
    if (ti.offset > data_size || ti.n_bytes > data_size - ti.offset)
      return make_error("{}: tensor '{}' at offset {:#x} ({} bytes) runs past the end of the file (size {} bytes); the file is truncated — download it again",
                        name_, ti.name, data_off + ti.offset, ti.n_bytes, size_);
    ti.offset += data_off;
    ti.data = data_ + ti.offset;
  }
  return Status::ok();
}

const GgufKv* GgufFile::find(std::string_view key) const {
  for (const GgufKv& kv : kvs_)
    if (kv.key == key) return &kv;
  return nullptr;
}

std::optional<std::string_view> GgufFile::get_string(std::string_view key) const {
  const GgufKv* kv = find(key);
  if (!kv || kv->type != GgufType::STRING) return std::nullopt;
  return kv->str;
}

std::optional<uint64_t> GgufFile::get_uint(std::string_view key) const {
  const GgufKv* kv = find(key);
  if (!kv) return std::nullopt;
  switch (kv->type) {
    case GgufType::UINT8: case GgufType::UINT16: case GgufType::UINT32: case GgufType::UINT64:
      return kv->u;
    case GgufType::INT8: case GgufType::INT16: case GgufType::INT32: case GgufType::INT64:
      if (kv->i < 0) return std::nullopt;
      return static_cast<uint64_t>(kv->i);
    default: return std::nullopt;
  }
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufKv* kv = find(key);
  if (!kv || kv->type == GgufType::STRING || kv->type == GgufType::ARRAY || kv->type == GgufType::BOOL)
    return std::nullopt;
  return kv->f;
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufKv* kv = find(key);
  if (!kv || kv->type != GgufType::BOOL) return std::nullopt;
  return kv->u != 0;
}

const std::vector<std::string_view>* GgufFile::get_string_array(std::string_view key) const {
  const GgufKv* kv = find(key);
  if (!kv || kv->type != GgufType::ARRAY || kv->array_type != GgufType::STRING) return nullptr;
  return &kv->strings;
}

std::optional<std::vector<float>> GgufFile::get_f32_array(std::string_view key) const {
  const GgufKv* kv = find(key);
  if (!kv || kv->type != GgufType::ARRAY || kv->array_type != GgufType::FLOAT32) return std::nullopt;
  std::vector<float> out(kv->array_count);
  if (!out.empty()) std::memcpy(out.data(), kv->array_data, out.size() * sizeof(float));
  return out;
}

std::optional<std::vector<int32_t>> GgufFile::get_i32_array(std::string_view key) const {
  const GgufKv* kv = find(key);
  if (!kv || kv->type != GgufType::ARRAY) return std::nullopt;
  std::vector<int32_t> out(kv->array_count);
  const uint8_t* p = kv->array_data;
  for (uint64_t i = 0; i < kv->array_count; ++i) {
    switch (kv->array_type) {
      case GgufType::INT32: out[i] = load<int32_t>(p + 4 * i); break;
      case GgufType::UINT32: out[i] = static_cast<int32_t>(load<uint32_t>(p + 4 * i)); break;
      case GgufType::INT8: out[i] = static_cast<int8_t>(p[i]); break;
      case GgufType::UINT8: out[i] = p[i]; break;
      default: return std::nullopt;
    }
  }
  return out;
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  for (const GgufTensor& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace hearth::format
