"""Retrieval index: loading, faiss vs torch vs numpy search, upstream's blend, index building.

Independent truths: faiss itself (the upstream search), a float64 numpy brute force over the
inverted lists faiss probes (a third implementation), and upstream's blend expression written
out literally on the upstream goldens' HuBERT features and the goldens' index files.
"""
from __future__ import annotations

import logging
import math

import faiss
import numpy as np
import pytest
import torch

from rvc_lab.errors import IndexMismatchError, ModelFileError, SettingsError
from rvc_lab.files.index import build_ivf_flat_index, ivf_index_filename, load_index, upstream_n_ivf
from rvc_lab.files.parity_assets import INDEX_FILES
from rvc_lab.retrieval import MISSING_DISTANCE, FeatureIndex, blend_features

from .conftest import load_case, rel_l2

# the goldens' copies of the parity voices' indices (../shared/parity/indices)
V2_INDEX = INDEX_FILES["rvcref_v2_40k_f0"]
V1_INDEX = INDEX_FILES["rvcref_v1_48k_f0"]


# ----------------------------------------------------------------------------- references
def numpy_ivf_search(index: FeatureIndex, q: np.ndarray, k: int):
    """Third implementation: float64 brute force over the lists of the nprobe nearest centroids."""
    q64 = q.astype(np.float64)
    if index.kind == "flat":
        cand = [np.arange(index.ntotal)] * len(q)
    else:
        cd = ((q64[:, None, :] - index.centroids[None].astype(np.float64)) ** 2).sum(-1)
        probes = np.argsort(cd, axis=1, kind="stable")[:, : index.nprobe]
        cand = [np.concatenate([index.list_ids[p] for p in row]) for row in probes]
    dist = np.full((len(q), k), np.inf)
    ids = np.full((len(q), k), -1, dtype=np.int64)
    for t, c in enumerate(cand):
        d = ((index.vectors[c].astype(np.float64) - q64[t]) ** 2).sum(-1)
        order = np.lexsort((c, d))[:k]
        dist[t, : len(order)] = d[order]
        ids[t, : len(order)] = c[order]
    return dist, ids


def upstream_blend(feats: np.ndarray, score: np.ndarray, ix: np.ndarray, big_npy: np.ndarray, rate: float):
    """Upstream ``Pipeline.vc`` index step, literally (numpy, then torch for the mix)."""
    weight = np.square(1 / score)
    weight /= weight.sum(axis=1, keepdims=True)
    npy = np.sum(big_npy[ix] * np.expand_dims(weight, axis=2), axis=1)
    f = torch.from_numpy(feats).unsqueeze(0)
    return (torch.from_numpy(npy).unsqueeze(0) * rate + (1 - rate) * f)[0]


def assert_same_search(a, b, index: FeatureIndex, q: np.ndarray, tol=1e-5):
    """Same neighbours and distances; a swap is allowed only between float32 near-ties.

    faiss sums squared differences in float32 SIMD lanes (order depends on its build), so two
    stored vectors whose exact distances differ by ~1e-7 relative can rank either way.
    """
    (da, ia), (db, ib) = a, b
    bad = np.argwhere(ia != ib)
    assert len(bad) <= max(2, ia.size // 500), f"{len(bad)} of {ia.size} neighbour ids differ"
    for t, j in bad:
        assert ia[t, j] >= 0 and ib[t, j] >= 0, f"row {t}: missing-neighbour pattern differs"
        exact = [((index.vectors[i].astype(np.float64) - q[t]) ** 2).sum() for i in (ia[t, j], ib[t, j])]
        # rank by rank near-equal exact distances: the lists differ only by near-tie swaps
        assert abs(exact[0] - exact[1]) <= 1e-6 * exact[1], f"row {t} rank {j}: not a near-tie {exact}"
    found = (ia >= 0) & (ib >= 0)
    np.testing.assert_array_equal(ia >= 0, ib >= 0)
    np.testing.assert_array_equal(da[~found], db[~found])  # FLT_MAX sentinels
    rel = np.abs(da[found].astype(np.float64) - db[found]) / np.maximum(np.abs(db[found]), 1e-30)
    assert rel.max(initial=0) <= tol, f"distances differ by {rel.max():.3g} relative"


def random_ivf(tmp_path, n=3000, dim=32, nlist=24, nprobe=3, seed=0, name="rand.index"):
    """An IVF-Flat index with nprobe > 1 written by faiss directly (not by our builder)."""
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    index = faiss.index_factory(dim, f"IVF{nlist},Flat")
    index.train(x)
    index.add(x)
    faiss.extract_index_ivf(index).nprobe = nprobe
    path = tmp_path / name
    faiss.write_index(index, str(path))
    return path, x


# ----------------------------------------------------------------------------- loading
@pytest.mark.parity
def test_parity_indexes_load_with_their_structure(parity_dir):
    for fname, dim, nlist in ((V2_INDEX, 768, 15), (V1_INDEX, 256, 20)):
        path = parity_dir / "indices" / fname
        ix = load_index(path, expected_dim=dim)
        ref = faiss.read_index(str(path))
        assert (ix.kind, ix.ntotal, ix.dim, ix.nlist, ix.nprobe) == ("ivf_flat", ref.ntotal, dim, nlist, 1)
        assert ix.version == ("v2" if dim == 768 else "v1")
        np.testing.assert_array_equal(ix.vectors, ref.reconstruct_n(0, ref.ntotal))
        assert ix.vectors.dtype == np.float32
        # every id sits in exactly one inverted list
        np.testing.assert_array_equal(np.sort(np.concatenate(ix.list_ids)), np.arange(ix.ntotal))


@pytest.mark.parity
def test_v1_index_with_v2_model_is_a_mismatch(parity_dir):
    with pytest.raises(IndexMismatchError) as err:
        load_index(parity_dir / "indices" / V1_INDEX, expected_dim=768)
    msg = str(err.value)
    assert "256-d vectors (v1)" in msg and "v2 (768-d)" in msg and V1_INDEX in msg
    with pytest.raises(IndexMismatchError, match=r"768-d vectors \(v2\).*v1 \(256-d\)"):
        load_index(parity_dir / "indices" / V2_INDEX, expected_dim=256)


def test_bad_index_files_raise_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_index(tmp_path / "missing.index")
    empty = tmp_path / "empty.index"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        load_index(empty)
    junk = tmp_path / "junk.index"
    junk.write_bytes(b"this is not a faiss index\n" * 10)
    with pytest.raises(ModelFileError, match="not a readable faiss index") as err:
        load_index(junk)
    assert str(junk) in str(err.value)
    with pytest.raises(ModelFileError, match="directory"):
        load_index(tmp_path)
    # a truncated real index
    path, _ = random_ivf(tmp_path, n=500, nlist=4)
    cut = tmp_path / "cut.index"
    cut.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ModelFileError):
        load_index(cut)


def test_trained_only_index_is_rejected_with_a_hint(tmp_path):
    x = np.random.default_rng(1).standard_normal((400, 16)).astype(np.float32)
    index = faiss.index_factory(16, "IVF8,Flat")
    index.train(x)  # upstream writes this stage as trained_*.index: centroids, no vectors
    path = tmp_path / "trained_IVF8_Flat_nprobe_1_voice_v2.index"
    faiss.write_index(index, str(path))
    with pytest.raises(ModelFileError, match="no vectors.*trained_.*added_"):
        load_index(path)


# ----------------------------------------------------------------------------- search
@pytest.mark.parity
def test_torch_and_numpy_search_match_faiss_on_parity_index(parity_dir):
    rng = np.random.default_rng(5)
    for fname, version in ((V2_INDEX, "v2"), (V1_INDEX, "v1")):
        ix = load_index(parity_dir / "indices" / fname)
        queries = [load_case(parity_dir, c)[1][version] for c in ("hubert_synth", "hubert_speech")]
        queries.append(rng.standard_normal((300, ix.dim)).astype(np.float32) * ix.vectors.std())
        queries.append(queries[0][:7])  # few queries: faiss takes its non-BLAS coarse path
        for q in queries:
            q = np.ascontiguousarray(q, dtype=np.float32)
            ref = ix.search(q, k=8, backend="faiss")
            assert_same_search(ix.search(torch.from_numpy(q), k=8, backend="torch"), ref, ix, q)
            assert_same_search(numpy_ivf_search(ix, q, 8), ref, ix, q)


def test_torch_search_matches_faiss_with_nprobe_above_one(tmp_path):
    path, x = random_ivf(tmp_path)
    ix = load_index(path)
    assert ix.nprobe == 3 and ix.nlist == 24
    rng = np.random.default_rng(7)
    for q in (rng.standard_normal((500, 32)).astype(np.float32), x[:5] + 0.01, rng.standard_normal((1, 32)).astype(np.float32)):
        ref = ix.search(q, k=10)
        assert_same_search(ix.search(q, k=10, backend="torch"), ref, ix, q)
        assert_same_search(numpy_ivf_search(ix, q, 10), ref, ix, q)
        # the lists torch probes are faiss' own coarse assignment
        _, coarse = faiss.extract_index_ivf(ix.faiss_index).quantizer.search(q, 3)
        np.testing.assert_array_equal(np.sort(ix.probe_lists(q), 1), np.sort(coarse, 1))


def test_torch_search_matches_faiss_on_flat_index(tmp_path):
    x = np.random.default_rng(2).standard_normal((700, 48)).astype(np.float32)
    flat = faiss.IndexFlatL2(48)
    flat.add(x)
    path = tmp_path / "flat.index"
    faiss.write_index(flat, str(path))
    ix = load_index(path)
    assert ix.kind == "flat"
    rng = np.random.default_rng(3)
    for n in (3, 4000):  # below and above faiss' BLAS threshold (nq * d >= 128000)
        q = rng.standard_normal((n, 48)).astype(np.float32)
        ref = ix.search(q, k=8)
        assert_same_search(ix.search(q, k=8, backend="torch"), ref, ix, q)
        assert_same_search(numpy_ivf_search(ix, q, 8), ref, ix, q)


def test_missing_neighbours_come_back_like_faiss(tmp_path):
    path, _ = random_ivf(tmp_path, n=400, nlist=8, nprobe=1)
    ix = load_index(path)
    k = min(len(ids) for ids in ix.list_ids) + 5  # more than the smallest list holds
    q = np.random.default_rng(9).standard_normal((200, 32)).astype(np.float32)
    ref = ix.search(q, k=k)
    assert (ref[1] < 0).any()
    assert (ref[0][ref[1] < 0] == MISSING_DISTANCE).all()
    assert_same_search(ix.search(q, k=k, backend="torch"), ref, ix, q)


def test_search_rejects_wrong_width_and_backend(tmp_path):
    ix = load_index(random_ivf(tmp_path, n=500, nlist=4)[0])
    with pytest.raises(IndexMismatchError, match="features are 256-d .*32-d"):
        ix.search(np.zeros((4, 256), np.float32))
    with pytest.raises(SettingsError, match="backend"):
        ix.search(np.zeros((4, 32), np.float32), backend="cuda")


# ----------------------------------------------------------------------------- blend
@pytest.mark.parity
def test_blend_reproduces_upstream_expression_on_goldens(parity_dir):
    """Upstream's index step on the goldens' v2 HuBERT features and the goldens' index.

    The parity offline case stores no pre/post-index features, so the truth is upstream's own
    expression (faiss search + numpy weighting + torch mix) evaluated here.
    """
    ix = load_index(parity_dir / "indices" / V2_INDEX, expected_dim=768)
    ref_index = faiss.read_index(str(parity_dir / "indices" / V2_INDEX))
    big_npy = ref_index.reconstruct_n(0, ref_index.ntotal)
    for case in ("hubert_synth", "hubert_speech"):
        feats = np.ascontiguousarray(load_case(parity_dir, case)[1]["v2"], dtype=np.float32)
        score, idx = ref_index.search(feats, k=8)
        for rate in (0.75, 0.5, 1.0):
            expected = upstream_blend(feats, score, idx, big_npy, rate)
            got, applied = blend_features(torch.from_numpy(feats), ix, rate)
            assert applied
            assert rel_l2(got.numpy(), expected.numpy()) == 0.0  # same ops, same order: bit-exact
            got_t, applied_t = blend_features(torch.from_numpy(feats), ix, rate, backend="torch")
            assert applied_t
            assert rel_l2(got_t.numpy(), expected.numpy()) <= 1e-5


def test_blend_rate_zero_and_empty_input_are_untouched(tmp_path):
    path, x = random_ivf(tmp_path, n=500, nlist=4)
    ix = load_index(path)
    feats = torch.from_numpy(x[:10].copy())
    out, applied = blend_features(feats, ix, 0.0)
    assert out is feats and not applied
    out, applied = blend_features(feats[:0], ix, 0.5)
    assert out.shape == (0, 32) and not applied
    with pytest.raises(SettingsError):
        blend_features(feats, ix, 1.5)


def test_blend_with_missing_neighbours_skip_and_ignore(tmp_path, caplog):
    path, _ = random_ivf(tmp_path, n=400, nlist=8, nprobe=1)
    ix = load_index(path)
    k = min(len(ids) for ids in ix.list_ids) + 2
    feats = np.random.default_rng(11).standard_normal((300, 32)).astype(np.float32)
    score, idx = ix.search(feats, k=k)
    assert (idx < 0).any() and not (idx < 0).all(axis=1).any()

    with caplog.at_level(logging.INFO, logger="rvc_lab.retrieval"):
        out, applied = blend_features(torch.from_numpy(feats), ix, 0.5, k=k)  # upstream realtime
    assert not applied and torch.equal(out, torch.from_numpy(feats))
    assert any("skipped" in r.message for r in caplog.records)

    # upstream offline has no check: FLT_MAX distances give weight 0, id -1 reads big_npy[-1] x 0
    expected = upstream_blend(feats, score, idx, ix.vectors, 0.5)
    out, applied = blend_features(torch.from_numpy(feats), ix, 0.5, k=k, on_missing="ignore")
    assert applied
    assert rel_l2(out.numpy(), expected.numpy()) == 0.0
    out_t, _ = blend_features(torch.from_numpy(feats), ix, 0.5, k=k, on_missing="ignore", backend="torch")
    assert rel_l2(out_t.numpy(), expected.numpy()) <= 1e-5


def test_blend_exact_match_is_finite(tmp_path):
    path, x = random_ivf(tmp_path, n=500, nlist=4)
    ix = load_index(path)
    feats = torch.from_numpy(ix.vectors[[3, 17]].copy())  # distance 0: upstream would give NaN
    out, applied = blend_features(feats, ix, 1.0)
    assert applied and torch.isfinite(out).all()
    torch.testing.assert_close(out, feats, rtol=0, atol=0)


# ----------------------------------------------------------------------------- building
def test_build_ivf_flat_index_like_upstream_training(tmp_path):
    x = np.random.default_rng(4).standard_normal((1000, 24)).astype(np.float32)
    assert upstream_n_ivf(1000) == min(int(16 * math.sqrt(1000)), 1000 // 39) == 25
    assert upstream_n_ivf(10) == 1
    name = ivf_index_filename(1000, "myvoice", "v2")
    assert name == "added_IVF25_Flat_nprobe_1_myvoice_v2.index"
    path = build_ivf_flat_index(x, tmp_path / name, shuffle_seed=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary left behind

    raw = faiss.read_index(str(path))
    ivf = faiss.extract_index_ivf(raw)
    assert isinstance(faiss.downcast_index(raw), faiss.IndexIVFFlat)
    assert (ivf.nlist, ivf.nprobe, raw.ntotal, raw.d) == (25, 1, 1000, 24)
    ix = load_index(path, expected_dim=24)
    # the stored vectors are the given ones, shuffled
    np.testing.assert_array_equal(ix.vectors, x[np.random.default_rng(3).permutation(1000)])
    # and a second build with the same seed is the same index
    again = load_index(build_ivf_flat_index(x, tmp_path / "again.index", shuffle_seed=3))
    np.testing.assert_array_equal(again.centroids, ix.centroids)
    for a, b in zip(again.list_ids, ix.list_ids):
        np.testing.assert_array_equal(a, b)
