"""The HTML pieces shared by the report and the A/B page."""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import soundfile as sf

from rvc_lab.html_page import table, wav_data_uri


def test_table_formats_numbers_and_escapes_text():
    html = table(pd.DataFrame({"x": [1234.5678, np.inf, np.nan], "name": ["a", "<b>", "c&d"]}))
    cells = re.findall(r"<td[^>]*>(.*?)</td>", html)
    assert cells == ["1235", "a", "∞", "&lt;b&gt;", "–", "c&amp;d"]


def test_wav_data_uri_round_trips_peak_limited_pcm16():
    sr = 16000
    x = (1.5 * np.sin(2 * np.pi * 440 * np.arange(sr * 10) / sr)).astype(np.float32)
    uri = wav_data_uri(x, sr, max_seconds=2.0)
    assert uri.startswith("data:audio/wav;base64,")
    y, got_sr = sf.read(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])), dtype="float32")
    info = sf.info(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert got_sr == sr and y.shape == (2 * sr,) and info.subtype == "PCM_16"
    assert np.abs(y).max() <= 0.99 + 1 / 32768  # limited below full scale, not clipped at 1.5
