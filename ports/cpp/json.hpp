// A minimal JSON reader for the bundle manifest (untrusted: depth and size bounded, every
// malformed input is an exception, never undefined behaviour).  Reads the whole RFC 8259 grammar;
// \u escapes outside ASCII become '?' (the manifest's keys and file names are ASCII).
#pragma once
#include <cmath>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace rvc {

struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Json> arr;
  std::map<std::string, Json> obj;

  bool has(const std::string& k) const { return kind == Object && obj.count(k) && obj.at(k).kind != Null; }
  // Member access that names the key when it is missing or of the wrong kind.
  const Json& at(const std::string& k) const {
    if (kind != Object || !obj.count(k)) throw std::runtime_error("manifest: missing key '" + k + "'");
    return obj.at(k);
  }
  const std::string& s() const { if (kind != String) throw std::runtime_error("manifest: expected a string"); return str; }
  double n() const { if (kind != Number) throw std::runtime_error("manifest: expected a number"); return num; }
  bool truth() const { if (kind != Bool) throw std::runtime_error("manifest: expected true/false"); return b; }
  // An integer that fits the range [lo, hi] (sizes and counts from the manifest).
  long long integer(long long lo, long long hi) const {
    double v = n();
    if (v != (double)(long long)v || v < (double)lo || v > (double)hi)
      throw std::runtime_error("manifest: integer out of range");
    return (long long)v;
  }

  static Json parse(const std::string& text) {
    size_t i = 0;
    Json v = value(text, i, 0);
    skip(text, i);
    if (i != text.size()) throw std::runtime_error("manifest: trailing characters");
    return v;
  }

 private:
  static void skip(const std::string& t, size_t& i) {
    while (i < t.size() && (t[i] == ' ' || t[i] == '\n' || t[i] == '\r' || t[i] == '\t')) ++i;
  }
  static char peek(const std::string& t, size_t& i) {
    skip(t, i);
    if (i >= t.size()) throw std::runtime_error("manifest: unexpected end");
    return t[i];
  }
  static void expect(const std::string& t, size_t& i, const char* word) {
    for (const char* p = word; *p; ++p, ++i)
      if (i >= t.size() || t[i] != *p) throw std::runtime_error("manifest: bad literal");
  }
  static std::string string_(const std::string& t, size_t& i) {
    ++i;  // opening quote
    std::string out;
    while (true) {
      if (i >= t.size()) throw std::runtime_error("manifest: unterminated string");
      char c = t[i++];
      if (c == '"') return out;
      if ((unsigned char)c < 0x20) throw std::runtime_error("manifest: control character in string");
      if (c != '\\') { out += c; continue; }
      if (i >= t.size()) throw std::runtime_error("manifest: bad escape");
      char e = t[i++];
      switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (i + 4 > t.size()) throw std::runtime_error("manifest: bad \\u escape");
          unsigned code = std::stoul(t.substr(i, 4), nullptr, 16);
          i += 4;
          out += code < 0x80 ? char(code) : '?';
          break;
        }
        default: throw std::runtime_error("manifest: bad escape");
      }
    }
  }
  static Json value(const std::string& t, size_t& i, int depth) {
    if (depth > 32) throw std::runtime_error("manifest: nested too deeply");
    Json v;
    char c = peek(t, i);
    if (c == '{') {
      v.kind = Object;
      ++i;
      if (peek(t, i) == '}') { ++i; return v; }
      while (true) {
        if (peek(t, i) != '"') throw std::runtime_error("manifest: expected a key");
        std::string k = string_(t, i);
        if (peek(t, i) != ':') throw std::runtime_error("manifest: expected ':'");
        ++i;
        v.obj[k] = value(t, i, depth + 1);
        char d = peek(t, i);
        ++i;
        if (d == '}') return v;
        if (d != ',') throw std::runtime_error("manifest: expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.kind = Array;
      ++i;
      if (peek(t, i) == ']') { ++i; return v; }
      while (true) {
        v.arr.push_back(value(t, i, depth + 1));
        char d = peek(t, i);
        ++i;
        if (d == ']') return v;
        if (d != ',') throw std::runtime_error("manifest: expected ',' or ']'");
      }
    }
    if (c == '"') { v.kind = String; v.str = string_(t, i); return v; }
    if (c == 't') { expect(t, i, "true"); v.kind = Bool; v.b = true; return v; }
    if (c == 'f') { expect(t, i, "false"); v.kind = Bool; return v; }
    if (c == 'n') { expect(t, i, "null"); return v; }
    // Python's json module writes these for non-finite floats (self-check figures)
    if (c == 'N') { expect(t, i, "NaN"); v.kind = Number; v.num = NAN; return v; }
    if (c == 'I') { expect(t, i, "Infinity"); v.kind = Number; v.num = INFINITY; return v; }
    if (c == '-' && i + 1 < t.size() && t[i + 1] == 'I') { expect(t, i, "-Infinity"); v.kind = Number; v.num = -INFINITY; return v; }
    size_t end = i;
    while (end < t.size() && std::string("+-0123456789.eE").find(t[end]) != std::string::npos) ++end;
    if (end == i) throw std::runtime_error("manifest: unexpected character");
    size_t used = 0;
    v.kind = Number;
    v.num = std::stod(t.substr(i, end - i), &used);
    if (used != end - i) throw std::runtime_error("manifest: bad number");
    i = end;
    return v;
  }
};

}  // namespace rvc
