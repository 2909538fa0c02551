#include "format/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace hearth::format {
namespace {

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

void put_str(std::vector<uint8_t>& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

}  // namespace

void GgufWriter::key(std::string_view k, GgufType t) {
  put_str(kv_, k);
  put<uint32_t>(kv_, static_cast<uint32_t>(t));
  ++n_kv_;
}

void GgufWriter::add_u32(std::string_view k, uint32_t v) { key(k, GgufType::UINT32); put(kv_, v); }
void GgufWriter::add_i32(std::string_view k, int32_t v) { key(k, GgufType::INT32); put(kv_, v); }
void GgufWriter::add_u64(std::string_view k, uint64_t v) { key(k, GgufType::UINT64); put(kv_, v); }
void GgufWriter::add_f32(std::string_view k, float v) { key(k, GgufType::FLOAT32); put(kv_, v); }
void GgufWriter::add_bool(std::string_view k, bool v) { key(k, GgufType::BOOL); put<uint8_t>(kv_, v ? 1 : 0); }
void GgufWriter::add_string(std::string_view k, std::string_view v) { key(k, GgufType::STRING); put_str(kv_, v); }

void GgufWriter::add_string_array(std::string_view k, const std::vector<std::string>& v) {
  key(k, GgufType::ARRAY);
  put<uint32_t>(kv_, static_cast<uint32_t>(GgufType::STRING));
  put<uint64_t>(kv_, v.size());
  for (const std::string& s : v) put_str(kv_, s);
}

void GgufWriter::add_f32_array(std::string_view k, const std::vector<float>& v) {
  key(k, GgufType::ARRAY);
  put<uint32_t>(kv_, static_cast<uint32_t>(GgufType::FLOAT32));
  put<uint64_t>(kv_, v.size());
  for (float f : v) put(kv_, f);
}

void GgufWriter::add_i32_array(std::string_view k, const std::vector<int32_t>& v) {
  key(k, GgufType::ARRAY);
  put<uint32_t>(kv_, static_cast<uint32_t>(GgufType::INT32));
  put<uint64_t>(kv_, v.size());
  for (int32_t i : v) put(kv_, i);
}

void GgufWriter::add_kv(const GgufKv& kv) {
  key(kv.key, kv.type);
  switch (kv.type) {
    case GgufType::STRING: put_str(kv_, kv.str); break;
    case GgufType::ARRAY: {
      put<uint32_t>(kv_, static_cast<uint32_t>(kv.array_type));
      put<uint64_t>(kv_, kv.array_count);
      if (kv.array_type == GgufType::STRING) {
        for (std::string_view s : kv.strings) put_str(kv_, s);
      } else {
        const uint64_t elem = gguf_scalar_size(static_cast<uint32_t>(kv.array_type));
        if (kv.array_count) kv_.insert(kv_.end(), kv.array_data, kv.array_data + kv.array_count * elem);
      }
      break;
    }
    case GgufType::UINT8: put<uint8_t>(kv_, static_cast<uint8_t>(kv.u)); break;
    case GgufType::INT8: put<int8_t>(kv_, static_cast<int8_t>(kv.i)); break;
    case GgufType::BOOL: put<uint8_t>(kv_, kv.u ? 1 : 0); break;
    case GgufType::UINT16: put<uint16_t>(kv_, static_cast<uint16_t>(kv.u)); break;
    case GgufType::INT16: put<int16_t>(kv_, static_cast<int16_t>(kv.i)); break;
    case GgufType::UINT32: put<uint32_t>(kv_, static_cast<uint32_t>(kv.u)); break;
    case GgufType::INT32: put<int32_t>(kv_, static_cast<int32_t>(kv.i)); break;
    case GgufType::FLOAT32: put<float>(kv_, static_cast<float>(kv.f)); break;
    case GgufType::UINT64: put<uint64_t>(kv_, kv.u); break;
    case GgufType::INT64: put<int64_t>(kv_, kv.i); break;
    case GgufType::FLOAT64: put<double>(kv_, kv.f); break;
  }
}

void GgufWriter::add_tensor(std::string_view name, TensorType type, const std::vector<int64_t>& ne,
                            const void* data, size_t n_bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  tensors_.push_back({std::string(name), type, ne, n_bytes, std::vector<uint8_t>(p, p + n_bytes)});
}

void GgufWriter::add_tensor_info(std::string_view name, TensorType type, const std::vector<int64_t>& ne,
                                 size_t n_bytes) {
  tensors_.push_back({std::string(name), type, ne, n_bytes, {}});
}

std::vector<uint8_t> GgufWriter::header_bytes() const {
  std::vector<uint8_t> out;
  out.insert(out.end(), {'G', 'G', 'U', 'F'});
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, n_kv_);
  out.insert(out.end(), kv_.begin(), kv_.end());
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_str(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put<uint64_t>(out, static_cast<uint64_t>(d));
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, offset);
    offset += t.n_bytes + padding_after(t.n_bytes);
  }
  out.resize(out.size() + padding_after(out.size()), 0);
  return out;
}

std::vector<uint8_t> GgufWriter::bytes() const {
  std::vector<uint8_t> out = header_bytes();
  for (const Tensor& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    out.resize((out.size() + kAlignment - 1) / kAlignment * kAlignment, 0);
  }
  return out;
}

Status GgufWriter::write_file(const std::string& path) const {
  const std::vector<uint8_t> data = bytes();
  const std::string tmp = path + ".partial";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error("{}: cannot create: {}", tmp, std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = ::write(fd, data.data() + done, data.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return make_error("{}: write failed: {}", tmp, std::strerror(e));
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return make_error("{}: cannot flush to disk", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return make_error("{}: cannot rename into place: {}", path, std::strerror(errno));
  }
  return Status::ok();
}

}  // namespace hearth::format
