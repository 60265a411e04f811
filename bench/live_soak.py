"""Live conversion on a JACK loop for a long time: memory, measured latency, late blocks, load (a benchmark).

Starts a private JACK server with the dummy driver (no sound card), runs
:class:`rvc_lab.live.LiveConverter` with the demo voice (random weights: the same compute as a
trained voice) with its output port connected to its input port, and measures the round trip
back to back with noise bursts (:func:`rvc_lab.live_session.soak`) until the time is up: the
converter works on the looped bursts the whole time.  Writes ``soak.csv`` (one row per
measurement window), ``trace.csv`` (one row per block), ``summary.json`` and ``soak.png``.

The two runs of issue 13, each one command (run them on a quiet machine; the CPU is printed):

    .venv/bin/python bench/live_soak.py --minutes 60     # stability: RSS, latency, late blocks over an hour
    .venv/bin/python bench/live_soak.py --minutes 10     # goal: no late block after warm-up, load p95 < 0.85

(``make live-soak`` and ``make live-bench`` run the same.)  Defaults are the issue's benchmark
configuration: bf16 (fp32 on a CPU without native bf16), fcpe, block 0.25 s, extra 0.5 s, crossfade 0.05 s, one block of queue.
``OMP_WAIT_POLICY`` is set to PASSIVE before torch loads unless ``--omp-wait-policy`` says
otherwise (as ``rvc-lab live`` does; see its docs for the measurement behind it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--out", default="bench-out/live_soak", help="output directory")
    p.add_argument("--block-time", type=float, default=0.25)
    p.add_argument("--extra-time", type=float, default=0.5)
    p.add_argument("--crossfade", type=float, default=0.05)
    p.add_argument("--f0-method", default="fcpe")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                   help="default: bf16 where the CPU has native bf16 (AVX512-BF16 or AMX), else fp32 (emulated "
                        "bf16 is several times slower than fp32 there)")
    p.add_argument("--delay-blocks", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, the core count)")
    p.add_argument("--omp-wait-policy", choices=("passive", "active", "inherit"), default="passive")
    p.add_argument("--bursts", type=int, default=8, help="bursts per measurement window")
    p.add_argument("--passthrough", action="store_true", help="identity instead of the converter")
    p.add_argument("--period", type=int, default=480, help="JACK period (frames) of the dummy server")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse(argv)
    if a.omp_wait_policy != "inherit":  # before torch loads: libgomp reads it once
        os.environ["OMP_WAIT_POLICY"] = a.omp_wait_policy.upper()

    import numpy as np
    import torch

    from rvc_lab import jack, live
    from rvc_lab.atomic import atomic_path, write_bytes_atomic, write_text_atomic
    from rvc_lab.convert.models import ConverterModels
    from rvc_lab.convert.streaming import StreamingConverter, StreamSettings
    from rvc_lab.cpu import has_native_bf16
    from rvc_lab.environment import environment_info
    from rvc_lab.files.synthetic import cached_demo_assets
    from rvc_lab.instrument import StageTimer
    from rvc_lab.live_plots import plot_soak
    from rvc_lab.live_session import StreamPorts, check_devices, soak
    from rvc_lab.plots import figure_to_png

    if a.precision is None:
        a.precision = "bf16" if has_native_bf16() else "fp32"
    if a.threads:
        torch.set_num_threads(a.threads)
    out = Path(a.out)
    env = environment_info()
    print(f"CPU: {env.get('cpu', '?')}; torch threads {torch.get_num_threads()}; OMP_WAIT_POLICY "
          f"{os.environ.get('OMP_WAIT_POLICY', '(unset)')}; load average {os.getloadavg()[0]:.1f}", flush=True)
    server = jack.start_dummy_server(period=a.period)
    try:
        live.rescan_devices(jack_server=server.name)
        dev = check_devices(sample_rate=server.rate)
        if a.passthrough:
            conv = live.PassthroughConverter(server.rate, a.block_time)
            method = "xcorr"
            settings = None
        else:
            paths = cached_demo_assets(seed=0)
            models = ConverterModels.load(paths["demo_v2_40k_f0"], hubert=paths["hubert"])
            settings = StreamSettings(block_time=a.block_time, extra_time=a.extra_time, crossfade_time=a.crossfade,
                                      f0_method=a.f0_method, precision=a.precision, threshold=-40.0)
            conv = StreamingConverter(models, settings, server.rate, timer=StageTimer(enabled=True))
            method = "onset"
        lc = live.LiveConverter(conv, dev.input, dev.output, delay_blocks=a.delay_blocks)
        ports = StreamPorts()
        lc.start()
        try:
            ports.loop()

            def progress(row):
                print(f"{row['t_s']:7.0f} s  latency {row['latency_ms']:7.1f} ms (formula {row['formula_ms']:.1f}, "
                      f"bursts {row['bursts_found']}/{row['bursts']})  late {row['late_blocks']}  "
                      f"load p50 {row['load_p50']:.2f} p95 {row['load_p95']:.2f}  anon {row['anon_mb']:.0f} MiB",
                      flush=True)

            table = soak(lc, 60.0 * a.minutes, method=method, period_s=server.period_s,
                         block_in_device_latency=True, n_bursts=a.bursts, on_row=progress)
        finally:
            lc.stop()
        trace = lc.trace()
        stats = lc.stats()
    finally:
        live.load_sounddevice()._terminate()  # PortAudio's JACK client goes before the server
        server.stop()

    with atomic_path(out / "soak.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out / "trace.csv") as tmp:
        trace.to_csv(tmp, index=False)
    converted = trace.dropna(subset=["process_ms"]) if "process_ms" in trace else trace
    block_ms = stats["block_ms"]
    summary = {
        "cpu": env.get("cpu"), "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "load_average_at_start": os.getloadavg()[0],
        "minutes": a.minutes, "config": vars(a), "callbacks": stats["callbacks"], "converted": stats["converted"],
        "late_blocks": stats["late_blocks"], "dropped_inputs": stats["dropped_inputs"],
        "skipped_inputs": stats["skipped_inputs"], "stale_outputs": stats["stale_outputs"],
        "portaudio_xruns": stats["status_flags"], "warm_up_ms": stats["warm_up_ms"],
        "load_p50": float(np.percentile(converted.process_ms / block_ms, 50)),
        "load_p95": float(np.percentile(converted.process_ms / block_ms, 95)),
        "load_max": float((converted.process_ms / block_ms).max()),
        "first_block_load": float(converted.process_ms.iloc[0] / block_ms),
        "latency_ms_median": float(table.latency_ms.median()), "latency_ms_min": float(table.latency_ms.min()),
        "latency_ms_max": float(table.latency_ms.max()), "formula_ms": float(table.formula_ms.iloc[0]),
        "windows": int(len(table)), "windows_passing_gate": int(table.gate.sum()),
        "rss_mb_first": float(table.rss_mb.iloc[0]), "rss_mb_last": float(table.rss_mb.iloc[-1]),
        "anon_mb_first": float(table.anon_mb.iloc[0]), "anon_mb_last": float(table.anon_mb.iloc[-1]),
        "anon_mb_max": float(table.anon_mb.max()),
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str))
    cfg = summary["config"]
    mode = "passthrough (identity)" if a.passthrough else f"{cfg['precision']}, {cfg['f0_method']}"
    title = (f"live soak on a JACK loop ({a.minutes:g} min): {mode}, block {cfg['block_time']} s, "
             f"extra {cfg['extra_time']} s; {summary['cpu']}")
    write_bytes_atomic(out / "soak.png", figure_to_png(plot_soak(table, title)))
    print(json.dumps({k: summary[k] for k in ("late_blocks", "load_p50", "load_p95", "first_block_load",
                                             "latency_ms_median", "latency_ms_min", "latency_ms_max", "formula_ms",
                                             "windows_passing_gate", "windows", "anon_mb_first", "anon_mb_last")},
                     indent=1))
    goal = summary["late_blocks"] == 0 and summary["load_p95"] < 0.85
    print(f"goal (no late block, load p95 < 0.85): {'met' if goal else 'NOT met'} "
          f"({summary['late_blocks']} late, p95 {summary['load_p95']:.2f}); files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
