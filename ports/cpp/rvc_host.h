/* rvc_host: the model work of one RVC block, from an rvc_lab bundle (docs/bundle.md).
 *
 * A C ABI so that any language (and a DLL for an audio plug-in) can drive it.  The host owns the
 * models and the retrieval index; the caller owns audio I/O, ring buffers, resampling, F0
 * estimation and SOLA (ports/cpp/README.md lists what a full DLL adds).
 *
 * Every call returns 0 on success or an RVC_E_* code, and fills *err (code + message) when err
 * is not NULL.  A host is not thread-safe: one block at a time per host.
 */
#ifndef RVC_HOST_H
#define RVC_HOST_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  RVC_OK = 0,
  RVC_E_ARGUMENT = 1, /* a NULL pointer, a length or setting out of range */
  RVC_E_BUNDLE = 2,   /* the bundle is not valid: format, hashes, shapes, missing files */
  RVC_E_MODEL = 3,    /* a model failed to load or run, or returned an unexpected shape */
  RVC_E_STATE = 4     /* rvc_process before a successful rvc_load_bundle */
};

typedef struct rvc_error {
  int code;
  char message[512];
} rvc_error;

typedef struct rvc_host rvc_host;

/* Voice facts of the loaded bundle (manifest.voice). */
typedef struct rvc_voice_info {
  int64_t sample_rate;       /* output rate tgt_sr, Hz */
  int64_t feature_dim;       /* 256 (v1) or 768 (v2) */
  int64_t samples_per_frame; /* upp = tgt_sr / 100 */
  int64_t speakers;
  int32_t f0;                /* 1: pitch-guided voice (pitch inputs required) */
  int32_t has_index;
} rvc_voice_info;

/* One block's inputs.  Frames: 20 ms content frames, 10 ms pitch frames.  */
typedef struct rvc_block {
  const float* audio16k;   /* [n_audio] 16 kHz, what the content encoder reads (n_audio >= 400) */
  int64_t n_audio;
  const float* f0_hz;      /* [n_f0] Hz on the 10 ms grid, 0 = unvoiced (f0 voices; else NULL) */
  const int64_t* f0_coarse;/* [n_f0] coarse pitch 1..255 (0 in realtime's empty pitch cache) (f0 voices; else NULL) */
  int64_t n_f0;            /* >= the pitch frames used, P = min(2 T, n_audio / 160) */
  int32_t repeat_last;     /* 1: append a copy of the last content frame first (realtime does; T grows by 1) */
  double index_rate;       /* 0..1; 0 or no index: no retrieval */
  int64_t retrieval_from;  /* first content frame blended (offline 0; streaming skip_head / 2) */
  int32_t skip_on_missing; /* 1: a missing neighbour skips the blend (realtime); 0: weight 0 (offline) */
  double protect;          /* < 0.5: unvoiced frames keep protect * blended + (1 - protect) * raw */
  int64_t sid;             /* speaker id */
  int64_t skip_head;       /* generator window in 10 ms frames; return_length < 0: whole utterance */
  int64_t return_length;
  int64_t return_length2;
  int64_t noise_seed;      /* < 0: zero noise; else torch::manual_seed(noise_seed), upstream's draws */
} rvc_block;

/* One block's outputs; the buffers belong to the host and stay valid until its next call. */
typedef struct rvc_block_out {
  const float* content;    /* [frames, feature_dim] content features */
  const float* blended;    /* [frames, feature_dim] after retrieval (== content without it) */
  int64_t frames;
  const float* phone;      /* [pitch_frames, feature_dim] the generator's phone input (10 ms grid) */
  int64_t pitch_frames;
  const float* audio;      /* [n_out] generator output at sample_rate */
  int64_t n_out;
} rvc_block_out;

rvc_host* rvc_create(rvc_error* err);
int rvc_load_bundle(rvc_host* host, const char* bundle_dir, rvc_error* err);
int rvc_voice(const rvc_host* host, rvc_voice_info* info, rvc_error* err);
int rvc_process(rvc_host* host, const rvc_block* in, rvc_block_out* out, rvc_error* err);
void rvc_destroy(rvc_host* host);

#ifdef __cplusplus
}
#endif
#endif
