// rvc_host_cli: one reference case through the C ABI (what `rvc-lab port-check` runs).
//
//   rvc_host_cli --bundle DIR --inputs DIR --out DIR [--index-rate R] [--protect P] [--sid N]
//                [--x-pad S] [--seed N]                                        (offline case)
//   rvc_host_cli --bundle DIR --inputs DIR --out DIR --stream --skip-head N --return-length N
//                [--return-length2 N] [--index-rate R] [--sid N] [--seed N]  (streaming case)
//
// Offline: reads encoder_input.npy (float32 [N], the high-passed, reflect-padded 16 kHz signal
// the content encoder reads) and, for f0 voices, f0_hz / f0_coarse [P]; writes content_features
// and blended_features [T, C] and generator_output (the x_pad seconds of padding, default 1, cut at
// each end).  Streaming: reads block_input_16k [B, N] (each block's 16 kHz ring) and, for f0
// voices, block_pitch / block_pitchf [B, P]; runs one realtime call per block (last frame
// repeated, retrieval from skip_head / 2 and skipped on a missing neighbour, no protect, noise seed
// + block) and writes block_feats [B, P, C] (the generator's phone) and block_infer_out [B, L].
// Exit 0 on success, 2 on any error (the message names it).
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "npy.hpp"
#include "rvc_host.h"

namespace {

struct Options {
  std::string bundle, inputs, out;
  bool stream = false;
  double index_rate = 0.75, protect = 0.33;
  long long sid = 0, x_pad = 1, seed = -1, skip_head = -1, return_length = -1, return_length2 = -1;
};

int die(const std::string& msg) {
  std::fprintf(stderr, "rvc_host_cli: error: %s\n", msg.c_str());
  return 2;
}

void process(rvc_host* host, const rvc_block& b, rvc_block_out& o) {
  rvc_error err{};
  if (rvc_process(host, &b, &o, &err)) throw std::runtime_error(std::string("process: ") + err.message);
}

void offline(rvc_host* host, const rvc_voice_info& voice, const Options& opt) {
  rvc::NpyArray audio = rvc::npy_read(opt.inputs + "/encoder_input.npy"), f0, coarse;
  if (!audio.is_float || audio.shape.size() != 1) throw std::runtime_error("encoder_input.npy: expected float [N]");
  rvc_block b{};
  b.audio16k = audio.f.data();
  b.n_audio = audio.size();
  if (voice.f0) {
    f0 = rvc::npy_read(opt.inputs + "/f0_hz.npy");
    coarse = rvc::npy_read(opt.inputs + "/f0_coarse.npy");
    if (!f0.is_float || coarse.is_float || f0.shape.size() != 1 || f0.shape != coarse.shape)
      throw std::runtime_error("f0_hz.npy / f0_coarse.npy: expected float [P] and int [P]");
    b.f0_hz = f0.f.data();
    b.f0_coarse = coarse.i.data();
    b.n_f0 = f0.size();
  }
  b.index_rate = opt.index_rate;
  b.retrieval_from = 0;   // offline: every frame
  b.skip_on_missing = 0;  // offline: a missing neighbour gets weight 0
  b.protect = opt.protect;
  b.sid = opt.sid;
  b.return_length = -1;   // offline: one whole-chunk call
  b.noise_seed = opt.seed;
  rvc_block_out o{};
  process(host, b, o);
  const int64_t trim = opt.x_pad * voice.sample_rate;  // upstream's t_pad_tgt
  if (opt.x_pad < 0 || 2 * trim >= o.n_out) throw std::runtime_error("--x-pad leaves no samples");
  rvc::npy_write(opt.out + "/content_features.npy", o.content, "<f4", 4, {o.frames, voice.feature_dim});
  rvc::npy_write(opt.out + "/blended_features.npy", o.blended, "<f4", 4, {o.frames, voice.feature_dim});
  rvc::npy_write(opt.out + "/generator_output.npy", o.audio + trim, "<f4", 4, {o.n_out - 2 * trim});
  std::printf("rvc_host_cli: %lld content frames, %lld output samples at %lld Hz\n", (long long)o.frames,
              (long long)(o.n_out - 2 * trim), (long long)voice.sample_rate);
}

void stream(rvc_host* host, const rvc_voice_info& voice, const Options& opt) {
  rvc::NpyArray ring = rvc::npy_read(opt.inputs + "/block_input_16k.npy"), pitch, pitchf;
  if (!ring.is_float || ring.shape.size() != 2) throw std::runtime_error("block_input_16k.npy: expected float [B, N]");
  const int64_t B = ring.shape[0], N = ring.shape[1];
  int64_t P = 0;
  if (voice.f0) {
    pitch = rvc::npy_read(opt.inputs + "/block_pitch.npy");
    pitchf = rvc::npy_read(opt.inputs + "/block_pitchf.npy");
    if (pitch.is_float || !pitchf.is_float || pitch.shape.size() != 2 || pitch.shape != pitchf.shape || pitch.shape[0] != B)
      throw std::runtime_error("block_pitch.npy / block_pitchf.npy: expected int and float [B, P]");
    P = pitch.shape[1];
  }
  std::vector<float> feats, audio;
  int64_t frames = 0, samples = 0;
  for (int64_t k = 0; k < B; ++k) {
    rvc_block b{};
    b.audio16k = &ring.f[k * N];
    b.n_audio = N;
    if (voice.f0) {
      b.f0_coarse = &pitch.i[k * P];
      b.f0_hz = &pitchf.f[k * P];
      b.n_f0 = P;
    }
    b.repeat_last = 1;
    b.index_rate = opt.index_rate;
    b.retrieval_from = opt.skip_head / 2;  // frames before it are never decoded
    b.skip_on_missing = 1;                 // upstream realtime: no blend when a neighbour is missing
    b.protect = 0.5;                       // realtime has no protect
    b.sid = opt.sid;
    b.skip_head = opt.skip_head;
    b.return_length = opt.return_length;
    b.return_length2 = opt.return_length2 < 0 ? opt.return_length : opt.return_length2;
    b.noise_seed = opt.seed < 0 ? -1 : opt.seed + k;
    rvc_block_out o{};
    process(host, b, o);
    frames = o.pitch_frames, samples = o.n_out;
    feats.insert(feats.end(), o.phone, o.phone + o.pitch_frames * voice.feature_dim);
    audio.insert(audio.end(), o.audio, o.audio + o.n_out);
  }
  rvc::npy_write(opt.out + "/block_feats.npy", feats.data(), "<f4", 4, {B, frames, voice.feature_dim});
  rvc::npy_write(opt.out + "/block_infer_out.npy", audio.data(), "<f4", 4, {B, samples});
  std::printf("rvc_host_cli: %lld blocks of %lld samples at %lld Hz\n", (long long)B, (long long)samples,
              (long long)voice.sample_rate);
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--stream") { opt.stream = true; continue; }
    if (i + 1 >= argc) return die("option " + a + " needs a value");
    const char* v = argv[++i];
    char* end = nullptr;
    if (a == "--bundle") opt.bundle = v;
    else if (a == "--inputs") opt.inputs = v;
    else if (a == "--out") opt.out = v;
    else if (a == "--index-rate") opt.index_rate = std::strtod(v, &end);
    else if (a == "--protect") opt.protect = std::strtod(v, &end);
    else if (a == "--sid") opt.sid = std::strtoll(v, &end, 10);
    else if (a == "--x-pad") opt.x_pad = std::strtoll(v, &end, 10);
    else if (a == "--seed") opt.seed = std::strtoll(v, &end, 10);
    else if (a == "--skip-head") opt.skip_head = std::strtoll(v, &end, 10);
    else if (a == "--return-length") opt.return_length = std::strtoll(v, &end, 10);
    else if (a == "--return-length2") opt.return_length2 = std::strtoll(v, &end, 10);
    else return die("unknown option " + a);
    if (end && *end) return die("option " + a + ": not a number: " + v);
  }
  if (opt.bundle.empty() || opt.inputs.empty() || opt.out.empty()) return die("--bundle, --inputs and --out are required");
  if (opt.stream && (opt.skip_head < 0 || opt.return_length < 1)) return die("--stream needs --skip-head and --return-length");

  rvc_error err{};
  rvc_host* host = rvc_create(&err);
  if (!host) return die(err.message);
  struct Destroy { rvc_host* h; ~Destroy() { rvc_destroy(h); } } destroy{host};
  if (rvc_load_bundle(host, opt.bundle.c_str(), &err)) return die(opt.bundle + ": " + err.message);
  rvc_voice_info voice{};
  rvc_voice(host, &voice, &err);
  try {
    (opt.stream ? stream : offline)(host, voice, opt);
  } catch (const std::exception& e) {
    return die(e.what());
  }
  return 0;
}
