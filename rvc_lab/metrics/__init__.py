"""Measurements for QA and research: pure functions on arrays, no file I/O.

- :mod:`~rvc_lab.metrics.align`: delay estimation (cross-correlation) and alignment.
- :mod:`~rvc_lab.metrics.spectral`: rel L2, SNR, SI-SDR, spectral convergence, log-spectral distance.
- :mod:`~rvc_lab.metrics.mcd`: mel-cepstral distortion with explicit conventions.
- :mod:`~rvc_lab.metrics.f0`: mir_eval melody metrics and pitch-error figures.
- :mod:`~rvc_lab.metrics.compare`: whole-output and per-stage comparisons for reference checks.
- :mod:`~rvc_lab.metrics.latency`: noise bursts and their detectors for loopback latency (import it
  from there: not re-exported here).
"""
from rvc_lab.metrics import align, compare, f0, mcd, spectral

# Every name in the submodules' ``__all__`` is re-exported, except MIR_EVAL_KEYS (our f0 keys ->
# mir_eval's, for tests and benches): import it from rvc_lab.metrics.f0.  The update rebinds
# ``mcd`` from the submodule to the function of that name, as ``from .mcd import mcd`` would.
_exports = {name: getattr(module, name) for module in (align, compare, f0, mcd, spectral)
            for name in module.__all__ if name != "MIR_EVAL_KEYS"}
globals().update(_exports)
__all__ = list(_exports)
del _exports
