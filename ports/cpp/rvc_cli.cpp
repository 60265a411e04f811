// rvc_host_cli: one offline reference case through the C ABI (what `rvc-lab port-check` runs).
//
//   rvc_host_cli --bundle DIR --inputs DIR --out DIR [--index-rate R] [--protect P] [--sid N]
//                [--x-pad S] [--seed N]
//
// Reads the case's stage inputs as .npy from --inputs: encoder_input (float32 [N], the
// high-passed, reflect-padded 16 kHz signal the content encoder reads), and for f0 voices f0_hz
// [P] (Hz) and f0_coarse [P].  Writes content_features and blended_features [T, C] and
// generator_output (the reflect padding of x_pad seconds, default 1, cut at each end) into --out.
// Exit 0 on success, 2 on any error (the message names it).
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "npy.hpp"
#include "rvc_host.h"

namespace {

int die(const std::string& msg) {
  std::fprintf(stderr, "rvc_host_cli: error: %s\n", msg.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string bundle, inputs, out;
  double index_rate = 0.75, protect = 0.33;
  long long sid = 0, x_pad = 1, seed = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return die("option " + a + " needs a value");
    const char* v = argv[++i];
    char* end = nullptr;
    if (a == "--bundle") bundle = v;
    else if (a == "--inputs") inputs = v;
    else if (a == "--out") out = v;
    else if (a == "--index-rate") index_rate = std::strtod(v, &end);
    else if (a == "--protect") protect = std::strtod(v, &end);
    else if (a == "--sid") sid = std::strtoll(v, &end, 10);
    else if (a == "--x-pad") x_pad = std::strtoll(v, &end, 10);
    else if (a == "--seed") seed = std::strtoll(v, &end, 10);
    else return die("unknown option " + a);
    if (end && *end) return die("option " + a + ": not a number: " + v);
  }
  if (bundle.empty() || inputs.empty() || out.empty()) return die("--bundle, --inputs and --out are required");

  rvc_error err{};
  rvc_host* host = rvc_create(&err);
  if (!host) return die(err.message);
  struct Destroy { rvc_host* h; ~Destroy() { rvc_destroy(h); } } destroy{host};
  if (rvc_load_bundle(host, bundle.c_str(), &err)) return die(bundle + ": " + err.message);
  rvc_voice_info voice{};
  rvc_voice(host, &voice, &err);
  try {
    rvc::NpyArray audio = rvc::npy_read(inputs + "/encoder_input.npy"), f0, coarse;
    if (!audio.is_float || audio.shape.size() != 1) return die("encoder_input.npy: expected float [N]");
    rvc_block b{};
    b.audio16k = audio.f.data();
    b.n_audio = audio.size();
    if (voice.f0) {
      f0 = rvc::npy_read(inputs + "/f0_hz.npy");
      coarse = rvc::npy_read(inputs + "/f0_coarse.npy");
      if (!f0.is_float || coarse.is_float || f0.shape.size() != 1 || f0.shape != coarse.shape)
        return die("f0_hz.npy / f0_coarse.npy: expected float [P] and int [P]");
      b.f0_hz = f0.f.data();
      b.f0_coarse = coarse.i.data();
      b.n_f0 = f0.size();
    }
    b.index_rate = index_rate;
    b.retrieval_from = 0;       // offline: every frame
    b.skip_on_missing = 0;      // offline: a missing neighbour gets weight 0
    b.protect = protect;
    b.sid = sid;
    b.return_length = -1;       // offline: one whole-chunk call
    b.noise_seed = seed;
    rvc_block_out o{};
    if (rvc_process(host, &b, &o, &err)) return die(std::string("process: ") + err.message);
    const int64_t trim = x_pad * voice.sample_rate;  // upstream's t_pad_tgt
    if (x_pad < 0 || 2 * trim >= o.n_out) return die("--x-pad leaves no samples");
    rvc::npy_write(out + "/content_features.npy", o.content, "<f4", 4, {o.frames, voice.feature_dim});
    rvc::npy_write(out + "/blended_features.npy", o.blended, "<f4", 4, {o.frames, voice.feature_dim});
    rvc::npy_write(out + "/generator_output.npy", o.audio + trim, "<f4", 4, {o.n_out - 2 * trim});
    std::printf("rvc_host_cli: %lld content frames, %lld output samples at %lld Hz\n", (long long)o.frames,
                (long long)(o.n_out - 2 * trim), (long long)voice.sample_rate);
  } catch (const std::exception& e) {
    return die(e.what());
  }
  return 0;
}
