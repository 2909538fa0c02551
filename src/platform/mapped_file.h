// A read-only memory mapping of a whole file. Weights stay here; nothing copies them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "platform/status.h"

namespace hearth::platform {

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  static Expected<MappedFile> open(const std::string& path);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Maps every page of the file into the page table now (MADV_POPULATE_READ, Linux 5.14+;
  // a no-op where the kernel lacks it), reading from disk what is not cached. One call
  // instead of a page fault per 4 KiB on first use: for a 92 MB model in a VM, ~6,800
  // faults that otherwise land inside the first prompt's evaluation.
  void prefault() const;
  // Drops this process's mapping of the whole pages inside [p, p + n) (MADV_DONTNEED), which
  // stay in the page cache: a later read maps them again. For data that now lives elsewhere
  // (weights repacked at load), so it is not counted twice in the resident set. Ranges
  // outside the file's mapping are ignored.
  void release(const void* p, size_t n) const;

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Anonymous, page-aligned memory of n bytes (transparent huge pages asked for), freed by
// the destructor: the home of weights repacked at load.
class PageBuffer {
 public:
  PageBuffer() = default;
  ~PageBuffer();
  PageBuffer(PageBuffer&& other) noexcept;
  PageBuffer& operator=(PageBuffer&& other) noexcept;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;

  static Expected<PageBuffer> allocate(size_t n);
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace hearth::platform
