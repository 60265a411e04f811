"""A retrieval index as plain arrays, so a host can repeat faiss' IVF-Flat search without faiss.

Files (all little-endian ``.npy``):

* ``index_vectors.npy`` float32 [ntotal, D]: every vector by id (``reconstruct_n``); a search
  returns these ids.
* ``index_lists.npy`` int64 [ntotal]: the inverted list holding each id.
* ``index_list_ids.npy`` int64 [ntotal] and ``index_list_offsets.npy`` int64 [nlist + 1]: the ids
  of list ``l`` in faiss' storage order are ``list_ids[offsets[l]:offsets[l + 1]]`` (the order
  in which faiss scans them, which decides ties).
* ``index_centroids.npy`` float32 [nlist, D]: the coarse centroids.

Search as faiss does: the ``nprobe`` centroids nearest in L2 (ties: lower list number), then
exact squared L2 to every vector of those lists in storage order, the k smallest kept (ties:
the one met first).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rvc_lab.retrieval import FeatureIndex

FILES = {"vectors": "index_vectors.npy", "lists": "index_lists.npy", "list_ids": "index_list_ids.npy",
         "list_offsets": "index_list_offsets.npy", "centroids": "index_centroids.npy"}
K = 8  # neighbours RVC blends (upstream's index.search(npy, k=8))


def index_arrays(index: FeatureIndex) -> dict[str, np.ndarray]:
    """The arrays of the module docstring (IVF-Flat; a flat index has one list holding every id)."""
    n = index.ntotal
    if index.kind == "ivf_flat":
        list_ids = list(index.list_ids)
        centroids = index.centroids
    elif index.kind == "flat":
        list_ids = [np.arange(n, dtype=np.int64)]
        centroids = index.vectors.mean(axis=0, keepdims=True).astype(np.float32)
    else:
        raise ValueError(f"{index.path}: a {index.kind!r} faiss index cannot be written as arrays "
                         "(RVC's indexes are IVF-Flat)")
    lists = np.full(n, -1, dtype=np.int64)
    for number, ids in enumerate(list_ids):
        lists[ids] = number
    offsets = np.cumsum([0] + [len(ids) for ids in list_ids]).astype(np.int64)
    flat_ids = np.concatenate(list_ids).astype(np.int64) if list_ids else np.zeros(0, np.int64)
    return {"vectors": np.ascontiguousarray(index.vectors, dtype=np.float32), "lists": lists,
            "list_ids": flat_ids, "list_offsets": offsets, "centroids": np.ascontiguousarray(centroids, np.float32)}


def write_index_arrays(index: FeatureIndex, folder: Path) -> dict:
    """Write the arrays into ``folder``; returns the manifest's ``index`` entry (without the faiss file)."""
    arrays = index_arrays(index)
    for key, name in FILES.items():
        np.save(folder / name, arrays[key], allow_pickle=False)
    nprobe = index.nprobe if index.kind == "ivf_flat" else 1
    return {**FILES, "nprobe": int(nprobe), "k": K, "dim": index.dim, "ntotal": index.ntotal,
            "nlist": int(arrays["centroids"].shape[0])}
