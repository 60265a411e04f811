// rvc_host: bundle loading (manifest, hashes, index arrays) and one block's model work
// (content features -> IVF retrieval blend -> x2 upsample -> protect -> generator), as
// docs/bundle.md specifies and rvc_lab computes (rvc_lab/convert/offline.py, rvc_lab/retrieval.py).
#include "rvc_host.h"

#include <torch/script.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "json.hpp"
#include "npy.hpp"
#include "sha256.hpp"

namespace fs = std::filesystem;
using rvc::Json;

namespace {

constexpr const char* kFormat = "rvc_lab-bundle/1";
constexpr int64_t kFlowContext = 24;  // frames the generator's flow sees before skip_head

// Errors carry their RVC_E_* code to the C boundary.
struct Failure : std::runtime_error {
  int code;
  Failure(int c, const std::string& m) : std::runtime_error(m), code(c) {}
};
[[noreturn]] void fail(int code, const std::string& msg) { throw Failure(code, msg); }

// The retrieval index as plain arrays (rvc_lab/export/index.py).
struct Index {
  int64_t ntotal = 0, dim = 0, nlist = 0, nprobe = 1, k = 8;
  std::vector<float> vectors;    // [ntotal, dim]
  std::vector<float> centroids;  // [nlist, dim]
  std::vector<int64_t> list_ids, offsets;
};

}  // namespace

struct rvc_host {
  bool loaded = false;
  rvc_voice_info voice{};
  int64_t inter_channels = 192;
  std::vector<std::string> gen_inputs;  // the generator's input names in call order
  torch::jit::Module encoder, generator;
  bool has_index = false;
  Index index;
  std::vector<float> content, blended, phone, audio;  // outputs of the last rvc_process
};

namespace {

int report(rvc_error* err, int code, const std::string& msg) {
  if (err) {
    err->code = code;
    std::snprintf(err->message, sizeof err->message, "%s", msg.c_str());
  }
  return code;
}

// Runs ``body`` and turns every exception into an error code + message (nothing crosses the C ABI).
template <class F>
int guarded(rvc_error* err, F&& body) {
  try {
    body();
    return report(err, RVC_OK, "");
  } catch (const Failure& e) {
    return report(err, e.code, e.what());
  } catch (const c10::Error& e) {
    return report(err, RVC_E_MODEL, std::string("libtorch: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return report(err, RVC_E_BUNDLE, e.what());
  }
}

// A file name from the manifest: plain (no directory part), so it cannot point outside the bundle.
const std::string& check_plain(const std::string& n) {
  if (n.empty() || n == "." || n == ".." || n.find('/') != std::string::npos || n.find('\\') != std::string::npos)
    fail(RVC_E_BUNDLE, "manifest: file name '" + n + "' is not a plain name");
  return n;
}
std::string plain_name(const Json& v) { return check_plain(v.s()); }

// Format known; every file listed with its sha256, none unlisted (docs/bundle.md §1).
Json verified_manifest(const fs::path& dir) {
  fs::path mpath = dir / "manifest.json";
  if (!fs::is_regular_file(mpath)) fail(RVC_E_BUNDLE, dir.string() + ": not an rvc_lab bundle (no manifest.json)");
  if (fs::file_size(mpath) > (4 << 20)) fail(RVC_E_BUNDLE, "manifest.json: larger than 4 MiB");
  std::ifstream in(mpath, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  Json m;
  try {
    m = Json::parse(text.str());
  } catch (const std::exception& e) {
    fail(RVC_E_BUNDLE, std::string("manifest.json: unreadable (") + e.what() + ")");
  }
  if (m.kind != Json::Object || !m.has("format") || m.at("format").kind != Json::String || m.at("format").str != kFormat)
    fail(RVC_E_BUNDLE, std::string("manifest.json: format is not ") + kFormat);
  const Json& hashes = m.at("sha256");
  if (hashes.kind != Json::Object) fail(RVC_E_BUNDLE, "manifest.json: sha256 is not an object");
  std::set<std::string> present;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != "manifest.json") present.insert(e.path().filename().string());
  for (const auto& [name, digest] : hashes.obj) {
    check_plain(name);
    if (!present.count(name)) fail(RVC_E_BUNDLE, name + ": listed in the manifest but missing");
    std::string actual = rvc::file_sha256((dir / name).string());
    if (actual != digest.s()) fail(RVC_E_BUNDLE, name + ": sha256 does not match the manifest");
  }
  for (const auto& name : present)
    if (!hashes.obj.count(name)) fail(RVC_E_BUNDLE, name + ": not listed in the manifest (added after export?)");
  return m;
}

rvc::NpyArray read_array(const fs::path& dir, const Json& entry, const char* key, bool want_float,
                         std::vector<int64_t> shape) {
  std::string name = plain_name(entry.at(key));
  rvc::NpyArray a = rvc::npy_read((dir / name).string());
  if (a.is_float != want_float || a.shape != shape)
    fail(RVC_E_BUNDLE, name + ": dtype or shape differs from the manifest's index entry");
  return a;
}

void load_index(rvc_host& h, const fs::path& dir, const Json& e) {
  Index& ix = h.index;
  ix.ntotal = e.at("ntotal").integer(1, int64_t(1) << 26);
  ix.dim = e.at("dim").integer(1, 4096);
  ix.nlist = e.at("nlist").integer(1, int64_t(1) << 20);
  ix.nprobe = e.at("nprobe").integer(1, ix.nlist);
  ix.k = e.at("k").integer(1, 64);
  if (ix.dim != h.voice.feature_dim) fail(RVC_E_BUNDLE, "index: its dimension differs from the voice's features");
  ix.vectors = read_array(dir, e, "vectors", true, {ix.ntotal, ix.dim}).f;
  ix.centroids = read_array(dir, e, "centroids", true, {ix.nlist, ix.dim}).f;
  ix.list_ids = read_array(dir, e, "list_ids", false, {ix.ntotal}).i;
  ix.offsets = read_array(dir, e, "list_offsets", false, {ix.nlist + 1}).i;
  read_array(dir, e, "lists", false, {ix.ntotal});  // listed and well-formed; the search needs no id -> list map
  // the search indexes with these: every offset and id must be in range
  if (ix.offsets.front() != 0 || ix.offsets.back() != ix.ntotal) fail(RVC_E_BUNDLE, "index: list offsets do not span the ids");
  for (int64_t l = 0; l < ix.nlist; ++l)
    if (ix.offsets[l + 1] < ix.offsets[l]) fail(RVC_E_BUNDLE, "index: list offsets decrease");
  for (int64_t id : ix.list_ids)
    if (id < 0 || id >= ix.ntotal) fail(RVC_E_BUNDLE, "index: a list id is out of range");
  h.has_index = true;
}

double sqdist(const float* a, const float* b, int64_t d) {
  double s = 0;  // in float64, rounded once by the caller: within float32 ulps of faiss on every build
  for (int64_t c = 0; c < d; ++c) {
    double t = double(a[c]) - double(b[c]);
    s += t * t;
  }
  return s;
}

// k nearest stored vectors of one frame as faiss' IVF-Flat does (docs/bundle.md §7): the nprobe
// nearest centroids (ties: lower list), then exact squared L2 over those lists in storage order,
// the k smallest kept (ties: the one met first).  Missing neighbours: id -1, distance FLT_MAX.
void search(const Index& ix, const float* q, float* dist, int64_t* ids) {
  std::vector<std::pair<double, int64_t>> cd(ix.nlist);
  for (int64_t l = 0; l < ix.nlist; ++l) cd[l] = {sqdist(q, &ix.centroids[l * ix.dim], ix.dim), l};
  std::partial_sort(cd.begin(), cd.begin() + ix.nprobe, cd.end());  // pairs: ties by list number
  std::vector<std::pair<float, int64_t>> cand;  // (distance, order met)
  std::vector<int64_t> met;
  for (int64_t p = 0; p < ix.nprobe; ++p) {
    int64_t l = cd[p].second;
    for (int64_t j = ix.offsets[l]; j < ix.offsets[l + 1]; ++j) {
      int64_t id = ix.list_ids[j];
      cand.push_back({float(sqdist(q, &ix.vectors[id * ix.dim], ix.dim)), int64_t(met.size())});
      met.push_back(id);
    }
  }
  int64_t n = std::min<int64_t>(ix.k, cand.size());
  std::partial_sort(cand.begin(), cand.begin() + n, cand.end());
  for (int64_t j = 0; j < ix.k; ++j) {
    dist[j] = j < n ? cand[j].first : FLT_MAX;
    ids[j] = j < n ? met[cand[j].second] : -1;
  }
}

// Retrieval blend of frames [from, T) in place (rvc_lab.retrieval.blend_features, float32 as numpy):
// w = (1/d)^2 normalised per frame, retrieved = sum w * vector, out = rate * retrieved + (1 - rate) * feats.
void blend(const Index& ix, std::vector<float>& f, int64_t frames, int64_t from, double rate, bool skip_on_missing) {
  const int64_t C = ix.dim, K = ix.k, n = frames - from;
  if (n <= 0) return;
  std::vector<float> dist(n * K);
  std::vector<int64_t> ids(n * K);
  for (int64_t t = 0; t < n; ++t) search(ix, &f[(from + t) * C], &dist[t * K], &ids[t * K]);
  if (skip_on_missing && std::find(ids.begin(), ids.end(), -1) != ids.end()) return;  // upstream realtime
  const float a = float(rate), b = float(1.0 - rate);  // torch rounds the Python scalars to float32
  std::vector<float> w(K), retrieved(C);
  for (int64_t t = 0; t < n; ++t) {
    const float* d = &dist[t * K];
    const int64_t* id = &ids[t * K];
    bool exact = false, any = false;
    for (int64_t j = 0; j < K; ++j) { exact |= d[j] == 0.0f; any |= id[j] >= 0; }
    if (!any) continue;  // no neighbour at all: the frame keeps its own features
    float sum = 0;
    for (int64_t j = 0; j < K; ++j) {
      // a zero distance would give inf/inf: take the limit, the mean of the zero-distance neighbours
      float inv = 1.0f / d[j];
      w[j] = exact ? float(d[j] == 0.0f) : inv * inv;  // FLT_MAX (missing) underflows to 0
      if (id[j] < 0) w[j] = 0;
      sum += w[j];
    }
    std::fill(retrieved.begin(), retrieved.end(), 0.0f);
    for (int64_t j = 0; j < K; ++j) {
      if (id[j] < 0) continue;
      const float wj = w[j] / sum;
      const float* v = &ix.vectors[id[j] * C];
      for (int64_t c = 0; c < C; ++c) retrieved[c] += v[c] * wj;
    }
    float* x = &f[(from + t) * C];
    for (int64_t c = 0; c < C; ++c) x[c] = retrieved[c] * a + b * x[c];
  }
}

void load_bundle(rvc_host& h, const fs::path& dir) {
  Json m = verified_manifest(dir);
  const Json& v = m.at("voice");
  std::string version = v.at("version").s();
  h.voice.sample_rate = v.at("sample_rate").integer(8000, 192000);
  h.voice.feature_dim = v.at("feature_dim").integer(1, 4096);
  h.voice.samples_per_frame = v.at("samples_per_frame").integer(1, 1920);
  h.voice.speakers = v.at("speakers").integer(1, 1 << 20);
  h.voice.f0 = v.at("f0").truth();
  h.inter_channels = v.at("inter_channels").integer(1, 4096);
  if (!((version == "v1" && h.voice.feature_dim == 256) || (version == "v2" && h.voice.feature_dim == 768)))
    fail(RVC_E_BUNDLE, "manifest: voice version and feature_dim disagree");
  if (h.voice.samples_per_frame * 100 != h.voice.sample_rate) fail(RVC_E_BUNDLE, "manifest: samples_per_frame is not sample_rate / 100");

  const Json& models = m.at("models");
  h.gen_inputs.clear();
  for (const Json& in : models.at("generator").at("inputs").arr) h.gen_inputs.push_back(in.at("name").s());
  std::vector<std::string> want = {"phone", "phone_lengths", "sid", "skip_head", "return_length", "return_length2", "noise_prior"};
  if (h.voice.f0) want = {"phone", "phone_lengths", "pitch", "pitchf", "sid", "skip_head", "return_length",
                          "return_length2", "noise_prior", "noise_source"};
  if (h.gen_inputs != want) fail(RVC_E_BUNDLE, "manifest: the generator's inputs are not the streaming interface of docs/bundle.md §4");
  for (const char* stage : {"content_encoder", "generator"}) {
    const Json& files = models.at(stage).at("files");
    if (!files.has("torchscript")) fail(RVC_E_BUNDLE, std::string("bundle has no TorchScript file for the ") + stage);
    std::string path = (dir / plain_name(files.at("torchscript"))).string();
    torch::jit::Module mod = torch::jit::load(path, torch::kCPU);
    mod.eval();
    (std::strcmp(stage, "generator") == 0 ? h.generator : h.encoder) = mod;
  }
  h.has_index = false;
  if (m.has("index")) load_index(h, dir, m.at("index"));
  h.voice.has_index = h.has_index;
  h.loaded = true;
}

torch::Tensor scalar(int64_t v) { return torch::tensor(v, torch::kInt64); }

void process(rvc_host& h, const rvc_block& b, rvc_block_out& out) {
  const int64_t C = h.voice.feature_dim;
  if (!b.audio16k || b.n_audio < 400 || b.n_audio > int64_t(16000) * 3600)
    fail(RVC_E_ARGUMENT, "audio16k: need 400 .. 57.6e6 samples at 16 kHz");
  if (!(b.index_rate >= 0 && b.index_rate <= 1)) fail(RVC_E_ARGUMENT, "index_rate must be within 0..1");
  if (b.sid < 0 || b.sid >= h.voice.speakers) fail(RVC_E_ARGUMENT, "sid out of range for this voice");
  c10::InferenceMode guard;

  // 1. content features [1, T, C] from the 16 kHz audio as given (no normalisation)
  std::vector<float> audio(b.audio16k, b.audio16k + b.n_audio);
  torch::Tensor feats = h.encoder.forward({torch::from_blob(audio.data(), {1, b.n_audio})}).toTensor().contiguous();
  int64_t T = (b.n_audio - 400) / 320 + 1;
  if (feats.scalar_type() != torch::kFloat32 || feats.sizes() != torch::IntArrayRef({1, T, C}))
    fail(RVC_E_MODEL, "content encoder: output is not float32 [1, T, feature_dim]");
  const float* fp = feats.data_ptr<float>();
  h.content.assign(fp, fp + T * C);
  if (b.repeat_last) {  // realtime pads the features by their last frame before retrieval
    h.content.insert(h.content.end(), fp + (T - 1) * C, fp + T * C);
    ++T;
  }
  h.blended = h.content;

  // 2. retrieval blend on the 20 ms frames
  if (h.has_index && b.index_rate > 0) {
    if (b.retrieval_from < 0) fail(RVC_E_ARGUMENT, "retrieval_from must be >= 0");
    blend(h.index, h.blended, T, b.retrieval_from, b.index_rate, b.skip_on_missing != 0);
  }

  // 3. x2 upsample to the 10 ms grid (each frame twice); P = 2T <= n_audio / 160 always
  const int64_t P = std::min(2 * T, b.n_audio / 160);
  torch::Tensor phone = torch::empty({1, P, C}, torch::kFloat32);
  float* ph = phone.data_ptr<float>();
  for (int64_t p = 0; p < P; ++p) std::memcpy(ph + p * C, &h.blended[(p / 2) * C], C * sizeof(float));

  std::vector<torch::IValue> inputs;
  torch::Tensor pitch, pitchf;
  if (h.voice.f0) {
    if (!b.f0_hz || !b.f0_coarse || b.n_f0 < P) fail(RVC_E_ARGUMENT, "f0 voice: f0_hz and f0_coarse need >= 2 T frames");
    pitch = torch::from_blob(const_cast<int64_t*>(b.f0_coarse), {1, P}, torch::kInt64).clone();
    pitchf = torch::from_blob(const_cast<float*>(b.f0_hz), {1, P}, torch::kFloat32).clone();
    // 0 occurs too: realtime's pitch caches start empty (the generator's embedding has 256 rows)
    if (pitch.min().item<int64_t>() < 0 || pitch.max().item<int64_t>() > 255) fail(RVC_E_ARGUMENT, "f0_coarse outside 0..255");
    if (!torch::isfinite(pitchf).all().item<bool>()) fail(RVC_E_ARGUMENT, "f0_hz is not finite");
    // 4. protect: unvoiced frames (f0 < 1 Hz) keep protect * blended + (1 - protect) * raw
    if (b.protect < 0.5) {
      const float* pf = pitchf.data_ptr<float>();
      const float m0 = float(b.protect), m1 = 1.0f - m0;  // the mask is float32, as in rvc_lab
      for (int64_t p = 0; p < P; ++p) {
        if (pf[p] >= 1.0f) continue;
        const float* raw = &h.content[(p / 2) * C];
        for (int64_t c = 0; c < C; ++c) ph[p * C + c] = ph[p * C + c] * m0 + raw[c] * m1;
      }
    }
  }

  // 5. generator window and noise (docs/bundle.md §4: the random numbers live in the host)
  int64_t skip = b.skip_head, ret = b.return_length, ret2 = b.return_length2;
  if (ret < 0) skip = 0, ret = P, ret2 = P;
  if (skip < 0 || ret < 1 || skip + ret > P || ret2 < 1 || ret2 > 4 * ret)
    fail(RVC_E_ARGUMENT, "generator window: need 0 <= skip_head, 1 <= return_length, skip_head + return_length <= 2 T");
  const int64_t flow = P - std::max<int64_t>(skip - kFlowContext, 0), upp = h.voice.samples_per_frame;
  torch::Tensor prior, source;
  if (b.noise_seed >= 0) {  // upstream's order: randn prior, rand(1, 1) (unused phase), randn source
    torch::manual_seed(uint64_t(b.noise_seed));
    prior = torch::randn({1, h.inter_channels, flow});
    if (h.voice.f0) {
      torch::rand({1, 1});
      source = torch::randn({1, ret * upp, 1});
    }
  } else {
    prior = torch::zeros({1, h.inter_channels, flow});
    source = torch::zeros({1, ret * upp, 1});
  }
  for (const std::string& name : h.gen_inputs) {
    if (name == "phone") inputs.push_back(phone);
    else if (name == "phone_lengths") inputs.push_back(torch::tensor({P}, torch::kInt64));
    else if (name == "pitch") inputs.push_back(pitch);
    else if (name == "pitchf") inputs.push_back(pitchf);
    else if (name == "sid") inputs.push_back(torch::tensor({b.sid}, torch::kInt64));
    else if (name == "skip_head") inputs.push_back(scalar(skip));
    else if (name == "return_length") inputs.push_back(scalar(ret));
    else if (name == "return_length2") inputs.push_back(scalar(ret2));
    else if (name == "noise_prior") inputs.push_back(prior);
    else inputs.push_back(source);  // noise_source (the names were checked at load)
  }
  h.phone.assign(ph, ph + P * C);
  torch::Tensor y = h.generator.forward(inputs).toTensor().contiguous();
  if (y.scalar_type() != torch::kFloat32 || y.sizes() != torch::IntArrayRef({1, 1, ret2 * upp}))
    fail(RVC_E_MODEL, "generator: output is not float32 [1, 1, return_length2 * samples_per_frame]");
  h.audio.assign(y.data_ptr<float>(), y.data_ptr<float>() + ret2 * upp);

  out.content = h.content.data();
  out.blended = h.blended.data();
  out.frames = T;
  out.phone = h.phone.data();
  out.pitch_frames = P;
  out.audio = h.audio.data();
  out.n_out = ret2 * upp;
}

}  // namespace

extern "C" {

rvc_host* rvc_create(rvc_error* err) {
  rvc_host* h = nullptr;
  guarded(err, [&] { h = new rvc_host(); });
  return h;
}

int rvc_load_bundle(rvc_host* host, const char* bundle_dir, rvc_error* err) {
  return guarded(err, [&] {
    if (!host || !bundle_dir) fail(RVC_E_ARGUMENT, "rvc_load_bundle: NULL argument");
    host->loaded = false;
    load_bundle(*host, fs::path(bundle_dir));
  });
}

int rvc_voice(const rvc_host* host, rvc_voice_info* info, rvc_error* err) {
  return guarded(err, [&] {
    if (!host || !info) fail(RVC_E_ARGUMENT, "rvc_voice: NULL argument");
    if (!host->loaded) fail(RVC_E_STATE, "rvc_voice: no bundle loaded");
    *info = host->voice;
  });
}

int rvc_process(rvc_host* host, const rvc_block* in, rvc_block_out* out, rvc_error* err) {
  return guarded(err, [&] {
    if (!host || !in || !out) fail(RVC_E_ARGUMENT, "rvc_process: NULL argument");
    if (!host->loaded) fail(RVC_E_STATE, "rvc_process: no bundle loaded");
    process(*host, *in, *out);
  });
}

void rvc_destroy(rvc_host* host) { delete host; }

}  // extern "C"
