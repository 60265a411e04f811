// .npy files (NumPy format 1.0-3.0), the exchange format of the host and its driver.
// Reading: little-endian float32/float64 (returned as float32) and int32/int64 (returned as
// int64), C order only.  The header is untrusted: dtype, order and shape are parsed strictly and
// the data size must equal the file's remaining bytes.  Writing: float32 or int64, format 1.0.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace rvc {

struct NpyArray {
  std::vector<int64_t> shape;
  bool is_float = false;
  std::vector<float> f;    // when is_float
  std::vector<int64_t> i;  // otherwise
  int64_t size() const { return is_float ? (int64_t)f.size() : (int64_t)i.size(); }
};

inline NpyArray npy_read(const std::string& path, int64_t max_elements = int64_t(1) << 31) {
  auto fail = [&](const std::string& why) { return std::runtime_error(path + ": " + why); };
  FILE* fh = std::fopen(path.c_str(), "rb");
  if (!fh) throw fail("cannot open");
  struct Closer { FILE* f; ~Closer() { std::fclose(f); } } closer{fh};
  unsigned char pre[10];
  if (std::fread(pre, 1, 8, fh) != 8 || std::memcmp(pre, "\x93NUMPY", 6) != 0) throw fail("not a .npy file");
  uint32_t hlen = 0;
  if (pre[6] == 1) {
    if (std::fread(pre + 8, 1, 2, fh) != 2) throw fail("truncated header");
    hlen = pre[8] | pre[9] << 8;
  } else if (pre[6] == 2 || pre[6] == 3) {
    unsigned char l[4];
    if (std::fread(l, 1, 4, fh) != 4) throw fail("truncated header");
    hlen = l[0] | l[1] << 8 | l[2] << 16 | uint32_t(l[3]) << 24;
  } else {
    throw fail("unknown .npy version");
  }
  if (hlen > 65536) throw fail("header too long");
  std::string h(hlen, '\0');
  if (std::fread(&h[0], 1, hlen, fh) != hlen) throw fail("truncated header");

  auto field = [&](const std::string& key) {  // the text after 'key':
    size_t p = h.find("'" + key + "':");
    if (p == std::string::npos) throw fail("header lacks " + key);
    p += key.size() + 3;
    while (p < h.size() && h[p] == ' ') ++p;
    return p;
  };
  size_t d = field("descr");
  std::string descr = h.substr(d, 5);
  int item = 0;
  NpyArray a;
  if (descr == "'<f4'") { item = 4; a.is_float = true; }
  else if (descr == "'<f8'") { item = 8; a.is_float = true; }
  else if (descr == "'<i4'") { item = 4; }
  else if (descr == "'<i8'") { item = 8; }
  else throw fail("dtype " + descr + " not supported (float32/64, int32/64 little-endian)");
  if (h.compare(field("fortran_order"), 5, "False") != 0) throw fail("Fortran order not supported");
  size_t s = field("shape");
  if (s >= h.size() || h[s] != '(') throw fail("bad shape");
  size_t e = h.find(')', s);
  if (e == std::string::npos) throw fail("bad shape");
  int64_t count = 1;
  for (size_t p = s + 1; p < e;) {
    while (p < e && (h[p] == ' ' || h[p] == ',')) ++p;
    if (p >= e) break;
    size_t q = p;
    int64_t v = 0;
    while (q < e && h[q] >= '0' && h[q] <= '9') {
      v = v * 10 + (h[q++] - '0');
      if (v > max_elements) throw fail("array too large");
    }
    if (q == p) throw fail("bad shape");
    a.shape.push_back(v);
    count *= v;
    if (count > max_elements) throw fail("array too large");
    p = q;
  }
  long here = std::ftell(fh);
  std::fseek(fh, 0, SEEK_END);
  long end = std::ftell(fh);
  std::fseek(fh, here, SEEK_SET);
  if (end - here != count * item) throw fail("data size does not match the header's shape");
  std::vector<unsigned char> raw(size_t(count) * item);
  if (count && std::fread(raw.data(), 1, raw.size(), fh) != raw.size()) throw fail("truncated data");
  // the host is little-endian (x86-64, aarch64), as the files are: plain copies
  if (a.is_float) {
    a.f.resize(count);
    if (item == 4) std::memcpy(a.f.data(), raw.data(), raw.size());
    else for (int64_t k = 0; k < count; ++k) { double v; std::memcpy(&v, &raw[8 * k], 8); a.f[k] = (float)v; }
  } else {
    a.i.resize(count);
    if (item == 8) std::memcpy(a.i.data(), raw.data(), raw.size());
    else for (int64_t k = 0; k < count; ++k) { int32_t v; std::memcpy(&v, &raw[4 * k], 4); a.i[k] = v; }
  }
  return a;
}

// Write ``n`` values of float32 ("<f4") or int64 ("<i8") with ``shape`` (C order).
inline void npy_write(const std::string& path, const void* data, const char* descr, size_t itemsize,
                      const std::vector<int64_t>& shape) {
  std::string dims;  // Python's tuple syntax: "(3,)", "(3, 4)", "()"
  size_t n = 1;
  for (size_t k = 0; k < shape.size(); ++k) {
    dims += (k ? ", " : "") + std::to_string(shape[k]);
    n *= size_t(shape[k]);
  }
  if (shape.size() == 1) dims += ",";
  std::string h = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  FILE* fh = std::fopen(path.c_str(), "wb");
  if (!fh) throw std::runtime_error(path + ": cannot write");
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(h.size() & 255),
                           (unsigned char)(h.size() >> 8)};
  bool ok = std::fwrite(pre, 1, 10, fh) == 10 && std::fwrite(h.data(), 1, h.size(), fh) == h.size() &&
            (n == 0 || std::fwrite(data, itemsize, n, fh) == n);
  ok = (std::fclose(fh) == 0) && ok;
  if (!ok) throw std::runtime_error(path + ": write failed");
}

}  // namespace rvc
