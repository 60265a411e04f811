"""Feature retrieval: k-nearest training features from a faiss index, blended into the content features.

Upstream (``Pipeline.vc`` offline, ``RVC.infer`` realtime) searches the voice's index for the
k = 8 nearest stored HuBERT features of every frame, weights them by ``(1/d)^2`` with ``d`` the
squared L2 distance faiss reports, normalises the weights per frame and mixes the weighted mean
into the frame: ``index_rate * retrieved + (1 - index_rate) * feats``.

Two search back ends give the same answer:

* ``"faiss"``: the index object as stored (IVF with the stored ``nprobe``).
* ``"torch"``: a re-implementation of what faiss computes for IVF-Flat and Flat L2 indexes:
  coarse assignment to the ``nprobe`` nearest centroids, exact squared L2 to every vector of
  the probed inverted lists, top-k ascending.  Where faiss computes distances through BLAS
  (``|x|^2 + |y|^2 - 2 x.y``, clamped at 0) the torch path does too, with the same
  size threshold and the same per-thread query slicing, so near-ties resolve the same way.
  Missing neighbours (fewer than k candidates) come back as id -1 with distance
  ``FLT_MAX`` like faiss.  Distances agree with faiss' to a few float32 ulps (faiss' own
  summation order differs between its generic/AVX2/AVX-512 builds); two candidates whose
  distances tie to within that (~1e-7 relative) may come out in the other order.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from rvc_lab.errors import IndexMismatchError, SettingsError

logger = logging.getLogger(__name__)

#: What faiss reports for a missing neighbour: id -1 and the neutral value of its max-heap.
MISSING_DISTANCE = np.float32(np.finfo(np.float32).max)
BACKENDS = ("faiss", "torch")
#: The feature width of each RVC model version.
VERSION_DIMS = {"v1": 256, "v2": 768}


def version_of_dim(dim: int) -> str | None:
    """'v1' for 256-d features, 'v2' for 768-d, None otherwise."""
    for version, d in VERSION_DIMS.items():
        if d == dim:
            return version
    return None


@dataclass
class FeatureIndex:
    """A retrieval index: the stored training features and how faiss searches them.

    Attributes
    ----------
    path : str
        Where it came from (for messages).
    vectors : np.ndarray
        float32 [ntotal, dim]: every stored vector by id (upstream's ``big_npy``,
        ``index.reconstruct_n(0, ntotal)``).
    kind : str
        ``"ivf_flat"``, ``"flat"`` or ``"other"`` (faiss back end only).
    nprobe : int
        Inverted lists visited per query (as stored; 1 for upstream's indexes).
    centroids : np.ndarray or None
        float32 [nlist, dim] coarse centroids (IVF only).
    list_ids : tuple of np.ndarray
        int64 ids of each inverted list, in list order (IVF only).
    faiss_index : object or None
        The faiss index, for the ``"faiss"`` back end.
    """

    path: str
    vectors: np.ndarray = field(repr=False)
    kind: str
    nprobe: int = 1
    centroids: np.ndarray | None = field(default=None, repr=False)
    list_ids: tuple = field(default=(), repr=False)
    faiss_index: object | None = field(default=None, repr=False, compare=False)
    _torch_lists: list | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_faiss(cls, index, path: str = "<memory>") -> "FeatureIndex":
        """Wrap a faiss index: reconstruct its vectors once and read its IVF structure.

        Raises ``ValueError`` when the vectors cannot be reconstructed (the loader turns
        that into a ``ModelFileError`` naming the file).
        """
        import faiss

        owner = index  # keep the proxy that owns the C++ object; downcast ones only borrow it
        index = faiss.downcast_index(owner)
        ntotal, dim = int(index.ntotal), int(index.d)
        vectors = np.ascontiguousarray(index.reconstruct_n(0, ntotal), dtype=np.float32).reshape(ntotal, dim)
        ivf = faiss.try_extract_index_ivf(index)
        metric_l2 = int(index.metric_type) == faiss.METRIC_L2
        if isinstance(index, faiss.IndexIVFFlat) and metric_l2:
            ivf = faiss.downcast_index(ivf)
            quantizer = faiss.downcast_index(ivf.quantizer)
            centroids = np.ascontiguousarray(quantizer.reconstruct_n(0, ivf.nlist), dtype=np.float32)
            lists = ivf.invlists
            list_ids = []
            for li in range(ivf.nlist):
                n = lists.list_size(li)
                ids = faiss.rev_swig_ptr(lists.get_ids(li), n).copy() if n else np.zeros(0, np.int64)
                list_ids.append(ids.astype(np.int64))
            return cls(path, vectors, "ivf_flat", int(ivf.nprobe), centroids, tuple(list_ids), owner)
        if isinstance(index, faiss.IndexFlat) and metric_l2:
            return cls(path, vectors, "flat", 1, None, (), owner)
        return cls(path, vectors, "other", int(ivf.nprobe) if ivf is not None else 1, None, (), owner)

    # ------------------------------------------------------------------ properties
    @property
    def ntotal(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def nlist(self) -> int:
        return 0 if self.centroids is None else int(self.centroids.shape[0])

    @property
    def version(self) -> str | None:
        """The model version whose features this index holds ('v1'/'v2'), from the width."""
        return version_of_dim(self.dim)

    def summary(self) -> dict:
        """Plain facts for ``rvc-lab info`` and logs."""
        return {"path": self.path, "kind": self.kind, "ntotal": self.ntotal, "dim": self.dim,
                "version": self.version, "nlist": self.nlist, "nprobe": self.nprobe}

    # ------------------------------------------------------------------ search
    def search(self, feats, k: int = 8, backend: str = "faiss") -> tuple[np.ndarray, np.ndarray]:
        """k nearest stored vectors of every frame, squared L2, ascending.

        Parameters
        ----------
        feats : np.ndarray or torch.Tensor
            float32 [T, dim] query features.
        k : int
            Neighbours per frame (upstream: 8).
        backend : {"faiss", "torch"}
            ``"torch"`` needs an IVF-Flat or Flat L2 index.

        Returns
        -------
        dist : np.ndarray
            float32 [T, k] squared L2 distances (``MISSING_DISTANCE`` where no neighbour).
        ids : np.ndarray
            int64 [T, k] row numbers into :attr:`vectors` (-1 where no neighbour).
        """
        if backend not in BACKENDS:
            raise SettingsError(f"retrieval backend must be one of {BACKENDS}, got {backend!r}")
        if int(k) < 1:
            raise SettingsError(f"k must be >= 1, got {k}")
        q = self._queries(feats)
        if backend == "faiss":
            if self.faiss_index is None:
                raise SettingsError(f"{self.path}: no faiss index object to search; use backend='torch'")
            dist, ids = self.faiss_index.search(q, int(k))
            return dist, ids
        return self._search_torch(q, int(k))

    def _queries(self, feats) -> np.ndarray:
        if isinstance(feats, torch.Tensor):
            feats = feats.detach().cpu().numpy()
        q = np.ascontiguousarray(feats, dtype=np.float32)
        if q.ndim != 2:
            raise ValueError(f"query features must be [T, dim], got shape {q.shape}")
        if q.shape[1] != self.dim:
            raise IndexMismatchError(
                self.path, f"features are {q.shape[1]}-d ({version_of_dim(q.shape[1]) or '?'}) but the index "
                           f"holds {self.dim}-d vectors ({self.version or '?'})")
        return q

    def probe_lists(self, feats) -> np.ndarray:
        """int64 [T, nprobe]: the inverted lists faiss visits for each frame (IVF-Flat only)."""
        if self.kind != "ivf_flat":
            raise SettingsError(f"{self.path}: probe_lists needs an IVF-Flat index, this one is {self.kind}")
        q = torch.from_numpy(self._queries(feats))
        nprobe = min(self.nprobe, self.nlist)
        return _coarse_assign(q, torch.from_numpy(self.centroids), nprobe).numpy()

    def _search_torch(self, q_np: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.kind not in ("ivf_flat", "flat"):
            raise SettingsError(f"{self.path}: the torch back end handles IVF-Flat and Flat L2 indexes, "
                                f"not this one ({self.kind}); use backend='faiss'")
        q = torch.from_numpy(q_np)
        T = q.shape[0]
        if self.kind == "flat":
            dist = _l2sqr_as_faiss(q, torch.from_numpy(self.vectors), _blas_rule(T, self.dim))
            ids = torch.arange(self.ntotal, dtype=torch.int64).expand(T, -1)
            return _top_k(dist, ids, k)

        lists = self._lists_as_tensors()
        nprobe = min(self.nprobe, self.nlist)
        probes = _coarse_assign(q, torch.from_numpy(self.centroids), nprobe)  # [T, nprobe]
        width = max([v.shape[0] for _, v in lists] + [1])
        cand_d = torch.full((T, nprobe, width), float("inf"), dtype=torch.float32)
        cand_i = torch.full((T, nprobe, width), -1, dtype=torch.int64)
        for li in torch.unique(probes).tolist():
            ids_l, vecs_l = lists[li]
            if ids_l.numel() == 0:
                continue
            rows, slots = torch.nonzero(probes == li, as_tuple=True)
            # IVF-Flat scans every code of a probed list with a direct float32 sum of squared
            # differences (fvec_L2sqr), never the float32 BLAS expansion: use the exact distance.
            cand_d[rows, slots, : ids_l.numel()] = _l2sqr_direct(q[rows], vecs_l)
            cand_i[rows, slots, : ids_l.numel()] = ids_l
        return _top_k(cand_d.reshape(T, -1), cand_i.reshape(T, -1), k)

    def _lists_as_tensors(self) -> list:
        if self._torch_lists is None:
            self._torch_lists = [(torch.from_numpy(ids), torch.from_numpy(self.vectors[ids]))
                                 for ids in self.list_ids]
        return self._torch_lists


# ------------------------------------------------------------------ torch search internals
def _blas_rule(nq: int, dim: int) -> bool:
    """Whether faiss computes these query-vs-database distances through BLAS.

    faiss >= 1.8 switches to BLAS when ``nq * d >= distance_compute_blas_threshold`` (128000);
    older releases compared ``nq`` alone with a threshold of 20.  Read the live value when faiss
    is importable so the same rule applies.
    """
    threshold = 128000
    try:
        import faiss

        threshold = int(faiss.cvar.distance_compute_blas_threshold)
    except Exception:  # noqa: BLE001 -- no faiss: keep the current default
        pass
    if threshold <= 64:  # legacy meaning: number of queries
        return nq >= threshold
    return nq * dim >= threshold


def _faiss_threads() -> int:
    try:
        import faiss

        return int(faiss.omp_get_max_threads())
    except Exception:  # noqa: BLE001
        return max(1, torch.get_num_threads())


def _l2sqr_direct(q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[nq, n] squared L2, ``sum((q - x)^2)`` per pair, memory-bounded.

    faiss sums the float32 squares in SIMD lanes whose count and reduction order depend on the
    build (generic / AVX2 / AVX-512), so no fixed float32 order matches it everywhere.  We
    compute in float64 and round once: the float32-rounded exact distance, within a few float32
    ulps of faiss' on every build (only near-ties, ~1e-7 relative, can order differently).  In
    float64 the expansion ``|q|^2 + |x|^2 - 2 q.x`` loses ~1e-16 |x|^2 to cancellation, far
    below one float32 ulp of the distance, and runs as one DGEMM instead of a [nq, n, d] tensor.
    """
    q64, x64 = q.double(), x.double()
    d = (q64 * q64).sum(-1, keepdim=True) + (x64 * x64).sum(-1) - 2.0 * (q64 @ x64.T)
    return d.clamp_min_(0).float()


def _l2sqr_as_faiss(q: torch.Tensor, x: torch.Tensor, use_blas: bool) -> torch.Tensor:
    """[nq, n] squared L2 the way faiss' exhaustive search computes it."""
    if not use_blas:
        return _l2sqr_direct(q, x)
    qn = (q * q).sum(-1, keepdim=True)
    xn = (x * x).sum(-1)
    return (qn + xn - 2 * (q @ x.T)).clamp_min_(0)


def _coarse_assign(q: torch.Tensor, centroids: torch.Tensor, nprobe: int) -> torch.Tensor:
    """[T, nprobe] nearest centroids, as ``IndexIVF.search`` asks its flat quantizer.

    faiss splits the queries into one slice per OpenMP thread and runs the quantizer on each
    slice, so whether BLAS is used depends on the slice size: reproduce the split.
    """
    T = q.shape[0]
    out = torch.empty(T, nprobe, dtype=torch.int64)
    nt = max(1, min(_faiss_threads(), T))
    for s in range(nt):
        i0, i1 = T * s // nt, T * (s + 1) // nt
        if i1 <= i0:
            continue
        d = _l2sqr_as_faiss(q[i0:i1], centroids, _blas_rule(i1 - i0, q.shape[1]))
        ids = torch.arange(centroids.shape[0], dtype=torch.int64).expand(i1 - i0, -1)
        out[i0:i1] = _top_k(d, ids, nprobe, as_numpy=False)[1]
    return out


def _top_k(dist: torch.Tensor, ids: torch.Tensor, k: int, as_numpy: bool = True):
    """k smallest per row, ties by smaller id (faiss' heaps order equal keys by id)."""
    T, n = dist.shape
    # Stable sort on id, then stable sort on distance: equal distances stay in id order.
    order_id = torch.argsort(torch.where(ids < 0, torch.iinfo(torch.int64).max, ids), dim=1, stable=True)
    d1 = torch.gather(dist, 1, order_id)
    i1 = torch.gather(ids, 1, order_id)
    order = torch.argsort(d1, dim=1, stable=True)[:, :k]
    d = torch.gather(d1, 1, order)
    i = torch.gather(i1, 1, order)
    if n < k:
        d = torch.cat([d, torch.full((T, k - n), float("inf"))], 1)
        i = torch.cat([i, torch.full((T, k - n), -1, dtype=torch.int64)], 1)
    missing = torch.isinf(d) | (i < 0)
    d = d.masked_fill(missing, float(MISSING_DISTANCE))
    i = i.masked_fill(missing, -1)
    if not as_numpy:
        return d, i
    return d.numpy(), i.numpy()


# ------------------------------------------------------------------ blending
def blend_features(
    feats: torch.Tensor,
    index: FeatureIndex,
    index_rate: float,
    k: int = 8,
    backend: str = "faiss",
    on_missing: str = "skip",
) -> tuple[torch.Tensor, bool]:
    """Mix retrieved training features into content features (upstream's index step).

    Upstream, with ``score, ix = index.search(feats, k)`` (float32 numpy)::

        weight = np.square(1 / score); weight /= weight.sum(axis=1, keepdims=True)
        retrieved = np.sum(big_npy[ix] * weight[..., None], axis=1)
        feats = torch.from_numpy(retrieved) * index_rate + (1 - index_rate) * feats

    The same numpy and torch operations run here, in the same order and dtypes, so the result
    is bit-identical to upstream's for the same search result.

    Parameters
    ----------
    feats : torch.Tensor
        float32 [T, C] content features (C = index dim).
    index : FeatureIndex
    index_rate : float
        0..1 weight of the retrieved features; 0 returns ``feats`` untouched.
    k : int
        Neighbours per frame (upstream: 8).
    backend : {"faiss", "torch"}
    on_missing : {"skip", "ignore"}
        What to do when the search returns missing neighbours (id -1: a probed list holds fewer
        than k vectors).  ``"skip"`` (upstream realtime, ``if (ix >= 0).all()``): no blending
        for this call, ``applied`` is False.  ``"ignore"`` (what upstream offline computes, it
        has no check): a missing neighbour's distance is FLT_MAX, so its weight
        ``(1/FLT_MAX)^2`` underflows to 0 and it drops out; a frame with no neighbour at all
        (upstream: NaN) keeps its own features here.

    Returns
    -------
    blended : torch.Tensor
        float32 [T, C].
    applied : bool
        False when nothing was blended (rate 0, no frames, or skipped for missing neighbours).

    Notes
    -----
    A distance of exactly 0 (a frame identical to a stored vector) makes upstream's weight
    infinite and the frame NaN; here such frames take the mean of their zero-distance
    neighbours, which is the limit of upstream's formula.
    """
    if on_missing not in ("skip", "ignore"):
        raise SettingsError(f"on_missing must be 'skip' or 'ignore', got {on_missing!r}")
    if not 0 <= index_rate <= 1:
        raise SettingsError(f"index_rate must be within 0..1, got {index_rate}")
    if feats.ndim != 2:
        raise ValueError(f"features must be [T, C], got shape {tuple(feats.shape)}")
    index_rate = float(index_rate)  # a Python float, as upstream multiplies by
    if index_rate == 0 or feats.shape[0] == 0:
        return feats, False

    score, ix = index.search(feats, k=k, backend=backend)
    missing = ix < 0
    if missing.any():
        if on_missing == "skip":
            logger.info("%s: %d of %d neighbours missing (a probed list holds fewer than k=%d vectors): "
                        "retrieval skipped for this call (as upstream realtime)", index.path,
                        int(missing.sum()), missing.size, k)
            return feats, False
        logger.info("%s: %d of %d neighbours missing: they get weight 0 (as upstream offline)",
                    index.path, int(missing.sum()), missing.size)

    with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
        weight = np.square(1 / score)
        exact = score == 0
        if exact.any():  # upstream would produce inf/inf = NaN; take the limit instead
            rows = exact.any(axis=1)
            weight[rows] = exact[rows].astype(np.float32)
        empty = missing.all(axis=1)
        weight[empty] = 0
        weight /= weight.sum(axis=1, keepdims=True)
        weight[empty] = 0
    retrieved = np.sum(index.vectors[ix] * np.expand_dims(weight, axis=2), axis=1)
    blended = torch.from_numpy(retrieved) * index_rate + (1 - index_rate) * feats
    if empty.any():
        keep = torch.from_numpy(empty)
        blended[keep] = feats[keep]
    return blended, True
