// Peak single-precision FMA throughput of this CPU, from a kernel whose FLOP count is exact.
//
// Each thread runs ACC independent accumulator chains of fused multiply-adds on full vector
// registers (AVX-512 when compiled for it, else AVX2): 2 FLOP per lane per FMA, no memory
// traffic.  Enough independent chains hide the FMA latency (4 cycles, 2 pipes: 8 in flight), so
// the figure is the core's issue rate times its clock under load: the ceiling any GEMM or
// convolution kernel can reach.  Prints GFLOP/s for 1..N threads (std::thread, one per core).
//
//   g++ -O3 -march=native -pthread fma_peak.cpp -o fma_peak && ./fma_peak [threads] [seconds]
// (-O3: at -O2 g++ keeps the accumulators in memory and the figure is a quarter of the peak)
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#if defined(__AVX512F__)
using vec = __m512;
static const int LANES = 16;
static inline vec vset(float x) { return _mm512_set1_ps(x); }
static inline vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
static inline float vsum(vec a) { return _mm512_reduce_add_ps(a); }
static const char* ISA = "AVX-512";
#else
using vec = __m256;
static const int LANES = 8;
static inline vec vset(float x) { return _mm256_set1_ps(x); }
static inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
static inline float vsum(vec a) {
  alignas(32) float t[8];
  _mm256_store_ps(t, a);
  float s = 0;
  for (float v : t) s += v;
  return s;
}
static const char* ISA = "AVX2";
#endif

static const int ACC = 12;          // independent chains: > latency x pipes on every x86 core we know
static const long INNER = 1 << 16;  // FMAs per chain between clock reads

// Runs until `seconds` have passed; returns FMAs issued per chain and writes a checksum so the
// compiler cannot drop the loop.
static long run(double seconds, float* sink) {
  vec acc[ACC];
  for (int i = 0; i < ACC; ++i) acc[i] = vset(1.0f + i * 1e-3f);
  const vec a = vset(0.999999f), b = vset(1e-7f);
  long n = 0;
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds) {
    for (long k = 0; k < INNER; ++k)
#pragma GCC unroll 16
      for (int i = 0; i < ACC; ++i) acc[i] = vfma(acc[i], a, b);
    n += INNER;
  }
  float s = 0;
  for (int i = 0; i < ACC; ++i) s += vsum(acc[i]);
  *sink = s;
  return n;
}

int main(int argc, char** argv) {
  int max_threads = argc > 1 ? std::atoi(argv[1]) : (int)std::thread::hardware_concurrency();
  double seconds = argc > 2 ? std::atof(argv[2]) : 1.0;
  std::printf("isa %s lanes %d\n", ISA, LANES);
  for (int t = 1; t <= max_threads; ++t) {
    std::vector<long> counts(t);
    std::vector<float> sinks(t);
    std::vector<std::thread> pool;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < t; ++i) pool.emplace_back([&, i] { counts[i] = run(seconds, &sinks[i]); });
    for (auto& th : pool) th.join();
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double flops = 0;
    for (long c : counts) flops += 2.0 * LANES * ACC * (double)c;
    std::printf("threads %d gflops %.2f (checksum %.3g)\n", t, flops / wall / 1e9, (double)sinks[0]);
  }
  return 0;
}
