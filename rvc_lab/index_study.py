"""Index compression, measured: what IVF-PQ / OPQ / HNSW change against RVC's IVF-Flat (issue 12 §3).

RVC trains ``IVF{n},Flat`` with ``nprobe = 1`` (:func:`rvc_lab.files.index.build_ivf_flat_index`)
and blends the **reconstructed** vectors of the k = 8 neighbours (``reconstruct_n``; see
:func:`rvc_lab.retrieval.blend_features`).  With a PQ index the reconstructed vectors are the PQ
decodings, so compression makes the blended features themselves lossy, not only the choice of
neighbours.  :func:`study_index` builds, from one set of vectors:

* ``ivf_flat``: the reference, exactly as RVC trains it (the study's ``nprobe``, 1 by default);
* ``flat_exact``: ``IndexFlatL2`` (faiss) and ``flat_exact_torch`` (the torch search path);
* ``ivf_pq{m}x{nbits}``: IVF-PQ sharing the reference's coarse quantizer, at a few (m, nbits);
* ``opq{m}_ivf_pq{m}x{nbits}``: an OPQ rotation in front (the coarse centroids are rotated with it:
  the rotation is orthonormal, so the partition is the reference's);
* ``hnsw32``: HNSW over full vectors (efSearch 64) and ``hnsw32_ef256``, the same graph searched
  with efSearch 256;
* ``ivf_pq{m}x{nbits}+flat_blend``: search on the PQ index, blend the original vectors (the PQ
  file for the search plus the flat vectors kept beside it: the memory saving is only on the
  search structure).

Per variant: serialized size (``faiss.serialize_index``), resident memory (RSS after loading the
index minus before, each in its own subprocess), search ms per streaming block (``block`` frames),
recall@8 against exact search, ``nearest_found`` (frames whose exact nearest neighbour is among the
k returned), ``frames_all_missed`` (frames with none of the exact k), and the blended feature's
relative L2 (``index_rate = 1``, i.e. the retrieved part alone) against the IVF-Flat blend and
against the exact blend.

Why recall@8 does not predict the blend error
---------------------------------------------
The blend weights are ``(1/d)^2`` of *squared* distances, i.e. the fourth power of the inverse
Euclidean distance: the nearest neighbour dominates (median weight 0.61 of 8 on the 100k synthetic
set, ``attrs["rank1_weight_median"]``), and recall@8 counts every rank alike.  What moves the blend
is how far off a frame's returned neighbourhood is.  IVF-Flat at nprobe 1 misses the nearest in a
few % of frames (it lies in an adjacent list), but the query's own list is in its region, so such a
frame still blends its cluster mates (100k: 0.3 % of frames with none of the exact k, blend error
0.065 at recall 0.37).  HNSW's misses are all-or-nothing: on clustered data the greedy graph search
sometimes ends in another region and returns none of the exact k (100k, efSearch 64: recall@8 0.963
but 2.4 % of frames with no exact neighbour, blend error 0.155); those frames carry the blend error,
frames whose neighbour set is exact blend to float rounding.  Distances, ids and reconstructed
vectors of HNSW are exactly faiss' flat ones (squared L2, checked against numpy in
``tests/test_index_study.py``); a wider search shrinks the lost frames (``hnsw32_ef256``).

Training cost is cut where faiss' own practice allows, so ``--synthetic 100000`` (768-d) runs in
minutes on one core: the PQ and OPQ codebooks train on a seeded subsample of
``min(N, 64 x 2^nbits)`` rows (:data:`TRAIN_PER_CENTROID`; faiss caps k-means at 256 per
centroid), OPQ alternates :data:`OPQ_NITER` times instead of 50, HNSW builds with efConstruction 40.
Every variant still holds all N vectors; the IVF-Flat reference trains on all of them, as RVC does.

With ``conversion=(models, audio)`` (``--conversion``) each variant also drives one offline
conversion (:func:`conversion_against_reference`): output SNR / MCD against the IVF-Flat
conversion.  That costs one full conversion per variant (seconds each on CPU), so it is opt-in.

Queries are features *near* the data: stored vectors plus Gaussian noise (``noise`` x the
per-dimension std), like content features of the same voice.

How the figures move with size and structure
--------------------------------------------
The demo indices hold 600-800 vectors: the PQ codebooks (``2^nbits x d`` floats) and the coarse
centroids then outweigh the codes, so PQ files are barely smaller than flat ones and timings are
dominated by fixed costs.  At RVC's real sizes (tens of thousands to a few hundred thousand
vectors, ``--synthetic 100000``) the per-vector cost dominates: flat holds ``4 d`` bytes per
vector (3072 for v2), IVF-PQ ``m nbits / 8`` plus an 8-byte id, so the size ratio approaches
``4 d / (m nbits / 8 + 8)``.  Recall and blend error depend on structure: clustered data (a
Gaussian mixture with a few hundred centres, as real HuBERT features are) is easy for the IVF
partition and PQ's sub-codebooks; unstructured random vectors would make every approximate index
look far worse than it does on real features.  With IVF ``nprobe = 1`` the IVF-Flat reference
itself misses neighbours near list borders, more so as ``nlist`` grows with N.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rvc_lab.files.index import build_ivf_flat_index, load_index
from rvc_lab.metrics.spectral import rel_l2
from rvc_lab.retrieval import FeatureIndex, blend_features

logger = logging.getLogger(__name__)

#: Neighbours per frame (upstream).
K = 8
#: PQ / OPQ training points per codebook centroid: min(N, 64 x 2^nbits) rows (16384 for 8 bits).
#: faiss' own k-means cap is 256 per centroid; 64 keeps 100k x 768 studies to minutes on one core.
TRAIN_PER_CENTROID = 64
#: OPQ alternations (faiss' default 50).
OPQ_NITER = 4

_RSS_CODE = r"""
import sys, faiss
def rss():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    return -1
before = rss()
index = faiss.read_index(sys.argv[1])
print(rss() - before)
"""


def resident_bytes(path: str | os.PathLike) -> int:
    """RSS growth from loading the faiss index at ``path`` in a fresh Python process (faiss already imported)."""
    out = subprocess.run([sys.executable, "-c", _RSS_CODE, str(path)], capture_output=True, text=True,
                         check=True, timeout=600)
    return int(out.stdout.strip().splitlines()[-1])


def synthetic_vectors(n: int, dim: int = 768, *, centres: int = 300, seed: int = 0,
                      around: np.ndarray | None = None, spread: float = 0.3) -> np.ndarray:
    """float32 [n, dim] clustered Gaussian mixture (seeded).

    ``around`` (e.g. a voice's own vectors): centres are drawn from its rows and the spread is
    ``spread`` x its per-dimension std; otherwise centres ~ N(0, 1) and the spread is ``spread``.
    """
    rng = np.random.default_rng(seed)
    if around is not None:
        around = np.asarray(around, np.float32)
        dim = around.shape[1]
        c = around[rng.choice(around.shape[0], size=min(centres, around.shape[0]), replace=False)]
        scale = spread * around.std(axis=0)
    else:
        c = rng.standard_normal((centres, dim)).astype(np.float32)
        scale = np.full(dim, spread, np.float32)
    which = rng.integers(0, c.shape[0], size=n)
    x = c[which] + rng.standard_normal((n, dim)).astype(np.float32) * scale
    return np.ascontiguousarray(x, dtype=np.float32)


def near_queries(vectors: np.ndarray, n: int, *, noise: float = 0.25, seed: int = 1) -> np.ndarray:
    """float32 [n, dim]: random stored vectors plus ``noise`` x per-dim std of Gaussian noise."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, vectors.shape[0], size=n)
    q = vectors[rows] + rng.standard_normal((n, vectors.shape[1])).astype(np.float32) * (noise * vectors.std(axis=0))
    return np.ascontiguousarray(q, dtype=np.float32)


def default_pq_configs(dim: int) -> list[tuple[int, int]]:
    """(m, nbits) pairs: d/8 x 8 bits, d/4 x 8 bits, d/2 x 4 bits (those with m dividing d)."""
    out = []
    for m, nbits in ((dim // 8, 8), (dim // 4, 8), (dim // 2, 4)):
        if m >= 1 and dim % m == 0 and (m, nbits) not in out:
            out.append((m, nbits))
    return out


def _quantizer(centroids: np.ndarray):
    import faiss

    q = faiss.IndexFlatL2(centroids.shape[1])
    q.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return q


def training_sample(x: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """float32 [min(N, max_points), dim]: a seeded random subset of the rows of ``x`` (all of them if few)."""
    if x.shape[0] <= max_points:
        return x
    rows = np.sort(np.random.default_rng(seed).choice(x.shape[0], size=max_points, replace=False))
    return np.ascontiguousarray(x[rows])


def _ivf_pq(x: np.ndarray, centroids: np.ndarray, m: int, nbits: int, nprobe: int,
            train_per_centroid: int = TRAIN_PER_CENTROID):
    import faiss

    quantizer = _quantizer(centroids)
    index = faiss.IndexIVFPQ(quantizer, x.shape[1], centroids.shape[0], m, nbits)
    index.own_fields = True
    quantizer.this.disown()
    # the quantizer is trained: only the product quantizer learns, on a subsample (faiss' practice)
    sample = training_sample(x, train_per_centroid * 2 ** nbits)
    # faiss prints one "please provide at least ... training points" line per sub-quantizer (m of
    # them) when the sample is small; the threshold only gates that warning, not the training
    index.pq.cp.min_points_per_centroid = min(index.pq.cp.min_points_per_centroid, sample.shape[0] // 2 ** nbits)
    index.train(sample)
    index.add(x)
    index.nprobe = nprobe
    return index


def _opq_ivf_pq(x: np.ndarray, centroids: np.ndarray, m: int, nbits: int, nprobe: int,
                train_per_centroid: int = TRAIN_PER_CENTROID):
    import faiss

    opq = faiss.OPQMatrix(x.shape[1], m)
    # each OPQ iteration trains a PQ and an SVD: 50 iterations on 64k x 768 take many minutes on one
    # core; a few iterations on the same subsample as the PQ get most of the rotation's gain
    opq.niter = OPQ_NITER
    opq.train(training_sample(x, train_per_centroid * 2 ** nbits))
    xr = opq.apply(x)
    ivf = _ivf_pq(xr, opq.apply(np.ascontiguousarray(centroids, dtype=np.float32)), m, nbits, nprobe,
                  train_per_centroid)
    index = faiss.IndexPreTransform(opq, ivf)
    index.own_fields = True
    opq.this.disown()
    ivf.this.disown()
    return index


#: efSearch of the ``hnsw32`` and ``hnsw32_ef256`` variants.
HNSW_EF_SEARCH = (64, 256)


def _hnsw(x: np.ndarray, M: int = 32, ef_search: int = 64, ef_construction: int = 40):
    import faiss

    index = faiss.IndexHNSWFlat(x.shape[1], M)
    index.hnsw.efConstruction = ef_construction
    index.hnsw.efSearch = ef_search
    index.add(x)
    return index


def _recall(ids: np.ndarray, exact_ids: np.ndarray) -> float:
    hits = [len(set(a[a >= 0].tolist()) & set(b.tolist())) for a, b in zip(ids, exact_ids)]
    return float(np.mean(hits)) / exact_ids.shape[1]


def _nearest_found(ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Fraction of frames whose exact nearest neighbour (``exact_ids[:, 0]``) is among ``ids``' k."""
    return float(np.mean((ids == exact_ids[:, :1]).any(axis=1)))


def _frames_all_missed(ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Fraction of frames none of whose returned ids is among the exact k."""
    hit = (ids[:, :, None] == exact_ids[:, None, :]) & (ids[:, :, None] >= 0)
    return float(np.mean(~hit.any(axis=(1, 2))))


def _rank1_weight(dist: np.ndarray) -> np.ndarray:
    """float [T]: the blend weight ``(1/d)^2`` (normalised over the k) of each frame's nearest neighbour."""
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.square(1.0 / dist.astype(np.float64))
        return w[:, 0] / w.sum(axis=1)


def _ms_per_block(fi: FeatureIndex, q: np.ndarray, block: int, backend: str, repeats: int) -> float:
    blocks = [q[i:i + block] for i in range(0, q.shape[0] - block + 1, block)][:repeats] or [q]
    fi.search(blocks[0], k=K, backend=backend)  # warm-up
    t = []
    for b in blocks:
        t0 = time.perf_counter()
        fi.search(b, k=K, backend=backend)
        t.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(t))


def conversion_against_reference(models, audio16k: np.ndarray, indices: dict, reference: str = "ivf_flat",
                                 settings=None) -> dict[str, tuple[float, float]]:
    """Output SNR and MCD of one offline conversion per index against the ``reference`` index's conversion.

    Parameters
    ----------
    models : rvc_lab.convert.models.ConverterModels
        The voice; its index is swapped for each entry of ``indices`` (the models are not changed).
    audio16k : np.ndarray
        float32 [S] mono input at 16 kHz.
    indices : dict of str -> FeatureIndex
        Must hold ``reference``; each is searched by the chain's faiss back end.
    settings : OfflineSettings, optional
        Default: upstream's defaults with ``f0_method="pm"`` (cheap) and ``noise=False`` (the
        generator is deterministic, so any difference comes from the index).

    Returns
    -------
    dict of str -> (snr_db, mcd_db)
        :func:`rvc_lab.metrics.spectral.snr_db` (dB, +inf when identical) and
        :func:`rvc_lab.metrics.mcd.mcd` (dB, 0 when identical) of each output (int16 scaled to
        [-1, 1), voice rate) against the reference's.
    """
    from dataclasses import replace

    from rvc_lab.convert.offline import OfflineSettings, convert_offline
    from rvc_lab.metrics import mcd, snr_db

    s = settings or OfflineSettings(f0_method="pm", noise=False)

    def run(fi):
        out = convert_offline(replace(models, index=fi), audio16k, s)
        return out.audio.astype(np.float64) / 32768.0, out.sr

    expected, sr = run(indices[reference])
    out = {}
    for name, fi in indices.items():
        actual, _ = run(fi)
        out[name] = (snr_db(actual, expected), mcd(actual, expected, sr))
    return out


def study_index(
    vectors: np.ndarray,
    *,
    queries: np.ndarray | None = None,
    n_queries: int = 1000,
    noise: float = 0.25,
    pq_configs: list[tuple[int, int]] | None = None,
    nprobe: int = 1,
    block: int = 20,
    timing_blocks: int = 50,
    memory: bool = True,
    threads: int | None = 1,
    workdir: str | os.PathLike | None = None,
    seed: int = 1,
    train_per_centroid: int = TRAIN_PER_CENTROID,
    conversion: tuple | None = None,
):
    """The comparison table, one row per variant (see the module docstring).

    Parameters
    ----------
    vectors : np.ndarray
        float32 [N, dim]: a voice index's stored vectors (``reconstruct_n``) or synthetic ones.
    queries : np.ndarray, optional
        float32 [T, dim]; default :func:`near_queries` (``n_queries`` rows, ``noise``).
    pq_configs : list of (m, nbits), optional
        Default :func:`default_pq_configs`.  OPQ and "PQ search + flat blend" use the first.
    nprobe : int
        Lists probed by every IVF variant (1 as RVC; ``nlist`` makes IVF-Flat exact).
    block : int
        Frames per search call for the timing (one streaming block: 13-25 frames).
    memory : bool
        Measure resident memory (one subprocess per variant); False leaves the column NaN.
    threads : int or None
        faiss OpenMP threads for building and searching (restored afterwards).
    train_per_centroid : int
        PQ and OPQ train on a seeded subsample of ``min(N, train_per_centroid x 2^nbits)`` rows
        (every row is added).  The IVF-Flat reference trains on all rows, as RVC does.
    conversion : (ConverterModels, np.ndarray), optional
        A voice and a 16 kHz input: adds ``conversion_snr_db`` / ``conversion_mcd_db`` per variant
        (:func:`conversion_against_reference`; NaN for the torch-path row, which the chain's faiss
        search cannot drive).  The vectors' width must be the voice's feature width.

    Returns
    -------
    pandas.DataFrame
        Columns ``variant, kind, ntotal, dim, nlist, nprobe, m, nbits, file_bytes,
        bytes_per_vector, size_ratio_vs_flat, rss_bytes, search_ms_per_block, recall_at_8,
        nearest_found, frames_all_missed, blend_rel_l2_vs_ivf_flat, blend_rel_l2_vs_exact``;
        ``attrs["rank1_weight_median"]``: the median blend weight of the exact nearest neighbour.
    """
    import faiss
    import pandas as pd
    import torch

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    q = near_queries(x, n_queries, noise=noise, seed=seed) if queries is None else np.ascontiguousarray(queries, np.float32)
    pq_configs = default_pq_configs(dim) if pq_configs is None else list(pq_configs)

    before = faiss.omp_get_max_threads()
    if threads is not None:
        faiss.omp_set_num_threads(int(threads))
    # blend_features logs missing neighbours (IVF, nprobe 1) at INFO on every call: once is enough here
    retrieval_log = logging.getLogger("rvc_lab.retrieval")
    log_level = retrieval_log.level
    retrieval_log.setLevel(logging.WARNING)
    tmp = tempfile.TemporaryDirectory(prefix="index_study_", dir=workdir)
    try:
        ref_path = build_ivf_flat_index(x, Path(tmp.name) / "ivf_flat.index", threads=threads)
        ref = load_index(ref_path)
        ivf = faiss.extract_index_ivf(ref.faiss_index)
        ivf.nprobe = int(nprobe)
        ref.nprobe = int(nprobe)
        nlist = ref.nlist

        flat = faiss.IndexFlatL2(dim)
        flat.add(x)
        skipped: list[str] = []
        variants = [("ivf_flat", "IVF-Flat (as RVC)", ref, dict(nlist=nlist, nprobe=nprobe)),
                    ("flat_exact", "Flat L2 (faiss)", FeatureIndex.from_faiss(flat), {}),
                    ("flat_exact_torch", "Flat L2 (torch path)", FeatureIndex.from_faiss(flat), {"backend": "torch"})]
        for m, nbits in pq_configs:
            fi = FeatureIndex.from_faiss(_ivf_pq(x, ref.centroids, m, nbits, nprobe, train_per_centroid))
            variants.append((f"ivf_pq{m}x{nbits}", "IVF-PQ", fi, dict(nlist=nlist, nprobe=nprobe, m=m, nbits=nbits)))
        if pq_configs:
            m, nbits = pq_configs[0]
            if n >= 2 * dim:
                fi = FeatureIndex.from_faiss(_opq_ivf_pq(x, ref.centroids, m, nbits, nprobe, train_per_centroid))
                variants.append((f"opq{m}_ivf_pq{m}x{nbits}", "OPQ+IVF-PQ", fi,
                                 dict(nlist=nlist, nprobe=nprobe, m=m, nbits=nbits)))
            else:  # faiss' OPQMatrix.train aborts the process (heap corruption) with fewer vectors than dims
                skipped.append(f"opq{m}_ivf_pq{m}x{nbits}: OPQ training needs >= 2 x dim vectors "
                               f"({n} < {2 * dim})")
                logger.warning("index-study: skipped %s", skipped[-1])
            pq = next(v[2] for v in variants if v[0] == f"ivf_pq{m}x{nbits}")
            mixed = FeatureIndex("<pq search, flat blend>", x, "other", nprobe, faiss_index=pq.faiss_index)
            variants.append((f"ivf_pq{m}x{nbits}+flat_blend", "PQ search + flat-vector blend", mixed,
                             dict(nlist=nlist, nprobe=nprobe, m=m, nbits=nbits)))
        hnsw = _hnsw(x, ef_search=HNSW_EF_SEARCH[0])
        variants.append(("hnsw32", f"HNSW32,Flat (efSearch {HNSW_EF_SEARCH[0]})", FeatureIndex.from_faiss(hnsw), {}))
        wide = faiss.clone_index(hnsw)  # the same graph, searched wider
        faiss.downcast_index(wide).hnsw.efSearch = HNSW_EF_SEARCH[1]
        variants.append((f"hnsw32_ef{HNSW_EF_SEARCH[1]}", f"HNSW32,Flat (efSearch {HNSW_EF_SEARCH[1]})",
                         FeatureIndex.from_faiss(wide), {}))

        qt = torch.from_numpy(q)
        exact = variants[1][2]
        exact_d, exact_ids = exact.search(q, k=K)
        _, ref_ids = ref.search(q, k=K)
        if (ref_ids < 0).any():
            logger.info("index-study: IVF-Flat (nprobe %d) finds fewer than %d neighbours for %d of %d frames: "
                        "missing ones get weight 0 in every blend", nprobe, K, int((ref_ids < 0).any(1).sum()),
                        ref_ids.shape[0])
        exact_blend = blend_features(qt, exact, 1.0, k=K, on_missing="ignore")[0].numpy()
        ref_blend = blend_features(qt, ref, 1.0, k=K, on_missing="ignore")[0].numpy()
        flat_bytes = None
        rows = []
        for name, kind, fi, info in variants:
            backend = info.get("backend", "faiss")
            raw = faiss.serialize_index(fi.faiss_index)
            size = int(raw.size)
            if name == "flat_exact":
                flat_bytes = size
            if name.endswith("+flat_blend"):
                size += x.nbytes  # the full vectors kept beside the PQ file
            rss = float("nan")
            if memory:
                p = Path(tmp.name) / f"{len(rows)}.index"
                raw.tofile(p)
                rss = resident_bytes(p)
                if name.endswith("+flat_blend"):
                    rss += x.nbytes
            _, ids = fi.search(q, k=K, backend=backend)
            blend = blend_features(qt, fi, 1.0, k=K, backend=backend, on_missing="ignore")[0].numpy()
            rows.append(dict(
                variant=name, kind=kind, ntotal=n, dim=dim, nlist=info.get("nlist", 0),
                nprobe=info.get("nprobe", 0), m=info.get("m", 0), nbits=info.get("nbits", 0),
                file_bytes=size, bytes_per_vector=size / n, rss_bytes=rss,
                search_ms_per_block=_ms_per_block(fi, q, block, backend, timing_blocks),
                recall_at_8=_recall(ids, exact_ids),
                nearest_found=_nearest_found(ids, exact_ids),
                frames_all_missed=_frames_all_missed(ids, exact_ids),
                blend_rel_l2_vs_ivf_flat=rel_l2(blend, ref_blend),
                blend_rel_l2_vs_exact=rel_l2(blend, exact_blend)))
        df = pd.DataFrame(rows)
        if conversion is not None:
            drivable = {name: fi for name, _, fi, info in variants if info.get("backend", "faiss") == "faiss"}
            figures = conversion_against_reference(conversion[0], conversion[1], drivable)
            nan = (float("nan"), float("nan"))
            df["conversion_snr_db"] = [figures.get(v, nan)[0] for v in df["variant"]]
            df["conversion_mcd_db"] = [figures.get(v, nan)[1] for v in df["variant"]]
        df.insert(df.columns.get_loc("rss_bytes"), "size_ratio_vs_flat", flat_bytes / df["file_bytes"])
        df.attrs.update(skipped=skipped, rank1_weight_median=float(np.median(_rank1_weight(exact_d))),
                        n_queries=int(q.shape[0]), noise=noise, block=block, threads=threads, k=K,
                        train_points={nb: min(n, train_per_centroid * 2 ** nb) for _, nb in pq_configs})
        return df
    finally:
        tmp.cleanup()
        faiss.omp_set_num_threads(before)
        retrieval_log.setLevel(log_level)


def main_index_study(a) -> int:
    """``rvc-lab index-study``: write OUT/index_study.csv and print the table."""
    import pandas as pd

    base = None
    if a.vectors:
        base = np.load(a.vectors).astype(np.float32)
    elif a.index:
        base = load_index(a.index).vectors
    if a.synthetic:
        x = synthetic_vectors(int(a.synthetic), around=base, seed=a.seed,
                              **({} if base is not None else {"dim": a.dim}))
        source = f"synthetic {a.synthetic} (mixture of 300 centres" + (" drawn from the index's vectors)" if base is not None else ")")
    elif base is not None:
        x, source = base, a.vectors or a.index
    else:
        raise SystemExit("rvc-lab index-study: give INDEX, --vectors or --synthetic N")
    df = study_index(x, n_queries=a.queries, block=a.block, nprobe=a.nprobe, memory=not a.no_memory,
                     threads=a.threads, seed=a.seed, conversion=_demo_conversion() if a.conversion else None)
    out = Path(a.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "index_study.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(f"# {source}: {x.shape[0]} x {x.shape[1]}, {df.attrs['n_queries']} queries, block {a.block}")
        print(format_table(df))
    trained = ", ".join(f"{nb}-bit: {t}" for nb, t in df.attrs["train_points"].items())
    print(f"median blend weight of the exact nearest neighbour: {df.attrs['rank1_weight_median']:.2f} of {K}")
    print(f"PQ/OPQ codebooks trained on a seeded subsample of {trained} vectors (OPQ {OPQ_NITER} iterations); "
          "IVF-Flat on all; HNSW efConstruction 40")
    for note in df.attrs["skipped"]:
        print(f"skipped {note}")
    print(f"wrote {out / 'index_study.csv'}")
    return 0


def _demo_conversion(seconds: float = 2.0):
    """(demo v2 voice models, the first ``seconds`` of the built-in speech at 16 kHz) for ``--conversion``."""
    from rvc_lab.files.voices import demo_voice_files
    from rvc_lab.speech import speech_input

    return demo_voice_files(with_index=False).load(), speech_input(max_seconds=seconds, sr=16000).audio


def format_table(df) -> str:
    """A Markdown table of the main columns."""
    cols = ["variant", "file_bytes", "size_ratio_vs_flat", "rss_bytes", "search_ms_per_block", "recall_at_8",
            "nearest_found", "frames_all_missed", "blend_rel_l2_vs_ivf_flat", "blend_rel_l2_vs_exact"]
    conv = "conversion_snr_db" in df.columns
    if conv:
        cols += ["conversion_snr_db", "conversion_mcd_db"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = [r["variant"], f"{r['file_bytes'] / 1024:.0f} KiB", f"{r['size_ratio_vs_flat']:.2f}",
                 "n/a" if r["rss_bytes"] != r["rss_bytes"] else f"{r['rss_bytes'] / 1024:.0f} KiB",
                 f"{r['search_ms_per_block']:.3f}", f"{r['recall_at_8']:.3f}",
                 f"{r['nearest_found']:.3f}", f"{r['frames_all_missed']:.3f}",
                 f"{r['blend_rel_l2_vs_ivf_flat']:.4f}", f"{r['blend_rel_l2_vs_exact']:.4f}"]
        if conv:
            cells += [f"{r['conversion_snr_db']:.1f}", f"{r['conversion_mcd_db']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- report and notebooks
#: Sizes of :func:`voice_index_study`: quick (tests, the quick report) and full.
QUICK_STUDY = dict(n_queries=300, timing_blocks=10, memory=False)
FULL_STUDY = dict(n_queries=1000, timing_blocks=50, memory=True)

#: Figures of one ``rvc-lab index-study --synthetic 100000`` run around the demo v2 index (AMD EPYC,
#: 1 faiss thread; README "Index compression"), quoted by the report: they are not measured by it.
SIZE_NOTE_100K = (
    "Size dependence (one recorded run of <code>rvc-lab index-study INDEX --synthetic 100000</code>, "
    "100 000 x 768 clustered vectors, AMD EPYC, 1 faiss thread; not measured by this report): at "
    "realistic sizes the codes dominate the files, so IVF-PQ96x8 is 16x smaller than flat on disk "
    "(18.6 MB vs 300 MB), but faiss builds its precomputed residual tables on load (nlist x m x 2^nbits "
    "floats), so resident memory stays ~260 MB; IVF-Flat search costs 1.8-4.6 ms per 20-frame block "
    "(with the machine's load) against ~350 ms for exact flat search. Blend error vs IVF-Flat: IVF-PQ96x8 "
    "0.12, IVF-PQ192x8 0.07, PQ search + flat blend 0.085, exact flat 0.065. HNSW32 (efSearch 64) reaches "
    "recall@8 0.96 yet a blend error of 0.17: its misses are whole neighbourhoods (2.4 % of frames get "
    "none of the exact 8 neighbours, against 0.3 % for IVF-Flat at recall 0.37), and the (1/d)^2 weights "
    "of squared distances give the nearest neighbour most of the blend (median weight 0.61); efSearch 256 "
    "brings the lost frames to 0.2 % and the blend error vs exact to 0.047 at 3x the search time.")


def voice_index_study(index, *, quick: bool = False, models=None, seconds: float = 2.0, **kwargs):
    """:func:`study_index` on one voice index's own vectors, sized for the report and the notebooks.

    Parameters
    ----------
    index : path-like or FeatureIndex
        The voice's ``.index`` (its ``reconstruct_n`` vectors are the data).
    quick : bool
        :data:`QUICK_STUDY` (300 queries, 10 timed blocks, no RSS subprocesses, no conversion: a few
        seconds) instead of :data:`FULL_STUDY`.
    models : ConverterModels, optional
        Full mode only: also convert the first ``seconds`` of the built-in speech per variant
        (``conversion_snr_db`` / ``conversion_mcd_db`` against the IVF-Flat conversion).
    **kwargs
        Passed on to :func:`study_index` (override the sizes).

    Returns
    -------
    pandas.DataFrame
        :func:`study_index`'s table; ``attrs["study_settings"]`` says what was (not) measured.
    """
    from rvc_lab.retrieval import FeatureIndex

    fi = index if isinstance(index, FeatureIndex) else load_index(index)
    settings = dict(QUICK_STUDY if quick else FULL_STUDY)
    settings.update(kwargs)
    conversion = None
    if models is not None and not quick and "conversion" not in kwargs:
        from rvc_lab.speech import speech_input

        conversion = (models, speech_input(max_seconds=seconds, sr=16000).audio)
    settings.setdefault("conversion", conversion)
    df = study_index(fi.vectors, **settings)
    skipped = []
    if not settings["memory"]:
        skipped.append("resident memory (one subprocess per variant)")
    if settings["conversion"] is None:
        skipped.append("conversions per variant")
    df.attrs["study_settings"] = dict(source=str(fi.path), ntotal=fi.ntotal, dim=fi.dim, quick=quick,
                                      n_queries=settings["n_queries"], timing_blocks=settings["timing_blocks"],
                                      not_measured=skipped)
    return df


def index_study_for_report(models, quick: bool):
    """The report's study: :func:`voice_index_study` on ``models.index`` (None when the voice has none).

    Quick: no RSS subprocesses and no conversions (a few seconds on 600-800 vectors); full: both,
    the conversions with ``models`` itself.
    """
    if models.index is None:
        return None
    return voice_index_study(models.index, quick=quick, models=models)


def display_table(df):
    """The study's table with readable units (KiB, ratios, ms), one row per variant, for pages and notebooks."""
    import pandas as pd

    out = pd.DataFrame({
        "variant": df["variant"], "kind": df["kind"],
        "file KiB": df["file_bytes"] / 1024, "x smaller than flat": df["size_ratio_vs_flat"],
        "RSS KiB": df["rss_bytes"] / 1024, "ms / block": df["search_ms_per_block"],
        "recall@8": df["recall_at_8"], "nearest found": df["nearest_found"],
        "frames all missed": df["frames_all_missed"],
        "blend rel L2 vs IVF-Flat": df["blend_rel_l2_vs_ivf_flat"], "blend rel L2 vs exact": df["blend_rel_l2_vs_exact"],
    })
    if "conversion_snr_db" in df.columns:
        out["conversion SNR dB"] = df["conversion_snr_db"]
        out["conversion MCD dB"] = df["conversion_mcd_db"]
    return out.reset_index(drop=True)


def index_study_section(df, *, anchor: str = "index") -> list[str]:
    """HTML parts of the report's "Index compression" section for :func:`voice_index_study`'s table.

    ``df`` None (the voice has no index): a short note instead of the table.
    """
    from rvc_lab.html_page import key_values, table

    parts = [f"<h2 id='{anchor}'>Index compression</h2>"]
    if df is None:
        parts.append("<p class='note'>This voice has no index: nothing to compress.</p>")
        return parts
    s = df.attrs.get("study_settings", {})
    parts.append(
        "<p>The voice's index vectors rebuilt as RVC's IVF-Flat (nprobe 1, the reference), exact flat search "
        "(faiss and the torch path), IVF-PQ at several (m, nbits), OPQ+IVF-PQ, HNSW32 and \"PQ for the search, "
        "original vectors for the blend\" (<code>rvc-lab index-study</code>, <code>rvc_lab.index_study</code>). "
        "Queries are stored vectors plus 0.25 std of noise; the blend is the retrieved part alone (index rate 1). "
        "The chain blends the <i>reconstructed</i> vectors, so PQ makes the blend itself lossy. "
        "<i>nearest found</i>: frames whose exact nearest neighbour is among the 8 returned; <i>frames all "
        "missed</i>: frames with none of the exact 8. The (1/d)² weights of squared distances give the nearest "
        f"neighbour most of the blend (median weight here {df.attrs.get('rank1_weight_median', float('nan')):.2f}), "
        "and a frame that gets none of the exact 8 blends another region: those two columns, not recall@8, "
        "predict the blend error (HNSW can show a high recall@8 and a large blend error).</p>")
    items = [("index", Path(s.get("source", "")).name), ("vectors", f"{s.get('ntotal', '?')} x {s.get('dim', '?')}"),
             ("queries", s.get("n_queries", df.attrs.get("n_queries"))),
             ("timing", f"median of {s.get('timing_blocks', '?')} calls of {df.attrs.get('block')} frames, "
                        f"{df.attrs.get('threads')} faiss thread(s)")]
    if s.get("not_measured"):
        items.append(("not measured" + (" (quick settings)" if s.get("quick") else ""),
                      "; ".join(s["not_measured"])))
    for note in df.attrs.get("skipped", []):
        items.append(("skipped", note))
    parts.append(key_values(items))
    parts.append(table(display_table(df), digits=3))
    if s.get("ntotal", 0) and s["ntotal"] < 5000:
        parts.append(f"<p class='note'>With {s['ntotal']} vectors the PQ codebooks (2^nbits x d floats) and the "
                     "coarse centroids outweigh the codes, so PQ files are barely smaller than flat ones and "
                     "timings are dominated by fixed costs.</p>")
    parts.append(f"<p class='note'>{SIZE_NOTE_100K}</p>")
    return parts
