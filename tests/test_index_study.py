"""rvc-lab index-study (issue 12 §3): the variants measure what they should on small synthetic data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("faiss")

from rvc_lab.index_study import resident_bytes, study_index, synthetic_vectors  # noqa: E402

N, D = 2000, 32


@pytest.fixture(scope="module")
def vectors():
    return synthetic_vectors(N, D, centres=40, seed=0)


@pytest.fixture(scope="module")
def table(vectors):
    return study_index(vectors, n_queries=300, memory=False, timing_blocks=3).set_index("variant")


def test_exact_flat_recall_one_and_torch_path_agrees(table):
    for name in ("flat_exact", "flat_exact_torch"):
        assert table.loc[name, "recall_at_8"] == 1.0
        assert table.loc[name, "blend_rel_l2_vs_exact"] < 1e-6
    assert table.loc["ivf_flat", "blend_rel_l2_vs_ivf_flat"] == 0.0
    # the reference itself (nprobe 1) is approximate on clustered data with 51 lists
    assert table.loc["ivf_flat", "nlist"] == 51 and table.loc["ivf_flat", "nprobe"] == 1


def test_ivf_flat_probing_every_list_is_exact(vectors):
    df = study_index(vectors, n_queries=200, nprobe=51, memory=False, timing_blocks=2,
                     pq_configs=[]).set_index("variant")
    assert df.loc["ivf_flat", "recall_at_8"] == 1.0
    assert df.loc["ivf_flat", "blend_rel_l2_vs_exact"] < 1e-5


def test_pq_is_lossy_and_flat_blend_is_less_so(table):
    pq = [v for v in table.index if v.startswith("ivf_pq") and "+" not in v]
    assert len(pq) == 3
    for v in pq + ["opq4_ivf_pq4x8"]:
        assert table.loc[v, "recall_at_8"] < 1.0
        assert table.loc[v, "blend_rel_l2_vs_exact"] > 0.0
    mixed = table.loc["ivf_pq4x8+flat_blend"]
    assert mixed["recall_at_8"] == table.loc["ivf_pq4x8", "recall_at_8"]  # same search
    for col in ("blend_rel_l2_vs_ivf_flat", "blend_rel_l2_vs_exact"):
        assert mixed[col] < table.loc["ivf_pq4x8", col]
    assert table.loc["hnsw32", "recall_at_8"] > 0.9


def test_sizes_match_hand_calculation(table):
    nlist = 51
    flat = table.loc["flat_exact", "file_bytes"]
    assert abs(flat - N * D * 4) < 200  # float32 vectors + a small header
    for m, nbits in ((4, 8), (8, 8), (16, 4)):
        # codes m*nbits/8 + an 8-byte id per vector, coarse centroids, one codebook of 2^nbits x d floats
        expected = N * (m * nbits / 8 + 8) + nlist * D * 4 + (2 ** nbits) * D * 4
        got = table.loc[f"ivf_pq{m}x{nbits}", "file_bytes"]
        assert abs(got - expected) / expected < 0.03, (m, nbits, got, expected)
        assert table.loc[f"ivf_pq{m}x{nbits}", "size_ratio_vs_flat"] == pytest.approx(flat / got)
    # per-vector codes alone: d*4 bytes vs m*nbits/8 bytes
    assert (N * D * 4) / (N * 4 * 8 / 8) == 32


def test_resident_memory_in_own_process(tmp_path):
    import faiss

    x = synthetic_vectors(8000, 128, centres=10, seed=3)
    index = faiss.IndexFlatL2(128)
    index.add(x)
    p = tmp_path / "flat.index"
    faiss.write_index(index, str(p))
    rss = resident_bytes(p)
    assert 0.8 * x.nbytes < rss < 3 * x.nbytes


def test_cli_writes_csv(tmp_path, vectors):
    from rvc_lab.cli import main

    np.save(tmp_path / "v.npy", vectors[:800])
    rc = main(["index-study", "--vectors", str(tmp_path / "v.npy"), "--queries", "100", "--no-memory",
               "-o", str(tmp_path / "out")])
    assert rc == 0
    df = pd.read_csv(tmp_path / "out" / "index_study.csv")
    assert {"ivf_flat", "flat_exact", "hnsw32", "ivf_pq4x8+flat_blend"} <= set(df["variant"])
    assert np.isnan(df["rss_bytes"]).all()



@pytest.fixture(scope="module")
def conversion_figures():
    import faiss

    from rvc_lab.files.index import load_index
    from rvc_lab.files.voices import demo_voice_files
    from rvc_lab.index_study import _ivf_pq, conversion_against_reference
    from rvc_lab.retrieval import FeatureIndex
    from rvc_lab.speech import speech_input

    voice = demo_voice_files()
    ref = load_index(voice.index)  # 600 x 768, 15 lists
    # probing every list makes the IVF-Flat reference an exact search
    faiss.extract_index_ivf(ref.faiss_index).nprobe = ref.nlist
    ref.nprobe = ref.nlist
    flat = faiss.IndexFlatL2(ref.dim)
    flat.add(ref.vectors)
    pq = _ivf_pq(ref.vectors, ref.centroids, 96, 8, ref.nlist)
    indices = {"ivf_flat": ref, "flat_exact": FeatureIndex.from_faiss(flat), "ivf_pq96x8": FeatureIndex.from_faiss(pq)}
    audio = speech_input(max_seconds=0.5, prefer="synthetic-vowels", sr=16000).audio
    # each conversion costs seconds on CPU (full-size HuBERT): three indices, four conversions
    return conversion_against_reference(demo_voice_files(with_index=False).load(), audio, indices)


def test_conversion_against_ivf_flat(conversion_figures):
    f = conversion_figures
    # the reference converted again: the chain is deterministic (noise off), so identical output
    assert f["ivf_flat"] == (np.inf, 0.0)
    # exact flat search finds the same neighbours as an IVF-Flat probing every list; only the
    # distances' float rounding (BLAS vs direct sums) may differ, far below int16 resolution
    snr, mcd = f["flat_exact"]
    assert snr > 60 and mcd < 0.05
    # PQ blends decoded (lossy) vectors: the output changes, measurably but finitely
    snr, mcd = f["ivf_pq96x8"]
    assert np.isfinite(snr) and mcd > 0.0
