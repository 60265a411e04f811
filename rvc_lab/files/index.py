"""faiss ``.index`` files: read (validated) and write the way upstream's index training does.

Upstream's training (``train_index`` in the WebUI) stacks the voice's extracted HuBERT
features, shuffles them, and builds ``IVF{n_ivf},Flat`` with
``n_ivf = min(int(16 * sqrt(N)), N // 39)`` and ``nprobe = 1``; it writes the trained, empty
index as ``trained_IVF..._{name}_{version}.index`` and, after adding every vector in batches of
8192, the searchable one as ``added_IVF{n_ivf}_Flat_nprobe_1_{name}_{version}.index``.  Only the
``added_`` file holds vectors.  (For more than 200 000 features upstream first shrinks them to
10 000 k-means centres; :func:`build_ivf_flat_index` leaves that choice to the caller.)
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from rvc_lab.atomic import write_bytes_atomic
from rvc_lab.errors import IndexMismatchError, ModelFileError, first_line
from rvc_lab.files.safe_load import require_file
from rvc_lab.retrieval import FeatureIndex, version_of_dim

#: Name of the format in error messages.
WHAT = "faiss index"

#: Upstream adds vectors to the IVF index in batches of this many.
ADD_BATCH = 8192


def load_index(path: str | os.PathLike, expected_dim: int | None = None) -> FeatureIndex:
    """Read a faiss index and reconstruct its vectors once.

    Parameters
    ----------
    path : path-like
        A ``.index`` file written by ``faiss.write_index`` (upstream: ``added_IVF*.index``).
    expected_dim : int, optional
        Feature width of the voice model it will serve (256 for v1, 768 for v2).

    Returns
    -------
    FeatureIndex
        Vectors as float32 [ntotal, dim] plus the IVF structure for both search back ends.

    Raises
    ------
    ModelFileError
        Missing, empty, truncated or not a faiss index; an index with no vectors (with a hint
        when it is upstream's ``trained_*.index``).
    IndexMismatchError
        ``expected_dim`` given and the index holds vectors of another width, e.g.
        "index holds 256-d vectors (v1) but the voice model is v2 (768-d)".
    """
    import faiss

    path = require_file(path, WHAT)
    # Read the bytes ourselves: faiss' C++ file reader chokes on some non-ASCII paths.
    raw = np.fromfile(path, dtype=np.uint8)
    try:
        index = faiss.deserialize_index(raw)
    except Exception as exc:  # noqa: BLE001 -- faiss raises RuntimeError with C++ text
        raise ModelFileError(path, f"not a readable faiss index ({first_line(exc)})") from None

    if index.ntotal == 0:
        hint = ""
        if os.path.basename(path).startswith("trained_"):
            hint = ("; this is upstream's 'trained_*.index' (centroids only) - use the matching "
                    "'added_*.index' from the same training folder")
        raise ModelFileError(path, f"index holds no vectors{hint}")
    if expected_dim is not None and int(index.d) != int(expected_dim):
        raise IndexMismatchError(path, _mismatch_text(int(index.d), int(expected_dim)))
    try:
        return FeatureIndex.from_faiss(index, path)
    except Exception as exc:  # noqa: BLE001 -- e.g. an index type that cannot reconstruct
        raise ModelFileError(path, f"cannot read the stored vectors back ({first_line(exc)})") from None


def _mismatch_text(index_dim: int, model_dim: int) -> str:
    iv, mv = version_of_dim(index_dim), version_of_dim(model_dim)
    held = f"{index_dim}-d vectors" + (f" ({iv})" if iv else "")
    model = f"{mv} ({model_dim}-d)" if mv else f"{model_dim}-d"
    return f"index holds {held} but the voice model is {model}; use the index trained with this model"


def upstream_n_ivf(n_vectors: int) -> int:
    """Number of inverted lists upstream's training picks: ``min(int(16 sqrt N), N // 39)``, at least 1.

    (Upstream has no lower bound and fails below 39 vectors; 1 list makes a tiny index usable.)
    """
    n = int(n_vectors)
    return max(1, min(int(16 * math.sqrt(n)), n // 39))


def ivf_index_filename(n_vectors: int, name: str, version: str) -> str:
    """Upstream's file name for the searchable index of ``n_vectors`` features of voice ``name``."""
    return f"added_IVF{upstream_n_ivf(n_vectors)}_Flat_nprobe_1_{name}_{version}.index"


def build_ivf_flat_index(
    vectors: np.ndarray,
    path: str | os.PathLike,
    *,
    shuffle_seed: int | None = None,
    threads: int | None = 1,
) -> Path:
    """Train and fill an ``IVF{n_ivf},Flat`` index like upstream and write it atomically.

    Parameters
    ----------
    vectors : np.ndarray
        float32 [N, dim] features (dim 256 for v1 models, 768 for v2).
    path : path-like
        Output file (see :func:`ivf_index_filename` for upstream's name); written to a
        temporary sibling first, then moved into place.
    shuffle_seed : int, optional
        Shuffle the rows first, as upstream does (with an unseeded ``np.random.shuffle``);
        a seed makes it reproducible.  ``None`` keeps the given order.
    threads : int or None
        OpenMP threads for faiss while training (1 = reproducible k-means; ``None`` = faiss'
        current setting).  Restored afterwards.

    Returns
    -------
    Path
        ``path``.  Stored ids follow the (shuffled) row order.
    """
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"vectors must be a non-empty [N, dim] array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("vectors contain NaN/Inf")
    if shuffle_seed is not None:
        x = x[np.random.default_rng(shuffle_seed).permutation(x.shape[0])]
    n_ivf = upstream_n_ivf(x.shape[0])

    before = faiss.omp_get_max_threads()
    if threads is not None:
        faiss.omp_set_num_threads(int(threads))
    try:
        index = faiss.index_factory(x.shape[1], f"IVF{n_ivf},Flat")
        faiss.extract_index_ivf(index).nprobe = 1
        index.train(x)
        for start in range(0, x.shape[0], ADD_BATCH):
            index.add(x[start : start + ADD_BATCH])
    finally:
        faiss.omp_set_num_threads(before)

    return write_bytes_atomic(path, faiss.serialize_index(index).tobytes())
