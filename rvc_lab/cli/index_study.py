"""``rvc-lab index-study``: IVF-Flat vs exact / IVF-PQ / OPQ / HNSW on a voice index's vectors (issue 12 §3)."""
from __future__ import annotations


def _run(a) -> int:
    from rvc_lab.index_study import main_index_study

    return main_index_study(a)


def add_parser(sub) -> None:
    s = sub.add_parser("index-study", help="index compression measured: size, memory, search time, recall@8 and "
                                           "blend error of IVF-PQ/OPQ/HNSW against RVC's IVF-Flat")
    s.add_argument("index", nargs="?", help="a voice's .index (its vectors are the data)")
    s.add_argument("--vectors", help="float32 [N, dim] .npy instead of the index's vectors")
    s.add_argument("--synthetic", type=int, metavar="N",
                   help="N vectors from a seeded Gaussian mixture of 300 centres (drawn from the index's vectors "
                        "when one is given)")
    s.add_argument("--dim", type=int, default=768, help="width of --synthetic without an index (default 768)")
    s.add_argument("--queries", type=int, default=1000, help="query frames (stored vectors + noise; default 1000)")
    s.add_argument("--block", type=int, default=20, help="frames per search call for the timing (default 20)")
    s.add_argument("--nprobe", type=int, default=1, help="IVF lists probed (default 1, as RVC)")
    s.add_argument("--threads", type=int, default=1, help="faiss threads (default 1)")
    s.add_argument("--no-memory", action="store_true", help="skip the per-variant RSS subprocesses")
    s.add_argument("--conversion", action="store_true",
                   help="also convert 2 s of built-in speech with the demo v2 voice per variant: output SNR / MCD "
                        "against the IVF-Flat conversion (768-d vectors only; ~1 s per variant)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("-o", "--output-dir", default="reports/index_study")
    s.set_defaults(func=_run)
