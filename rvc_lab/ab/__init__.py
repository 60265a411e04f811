"""A/B studies: two specs (voice, adapter, settings, backend) on the same inputs, with statistics.

- :mod:`~rvc_lab.ab.spec`: a spec string or JSON file -> validated settings (before any model loads);
- :mod:`~rvc_lab.ab.metrics`: content kept, A against B, voice similarity, DNSMOS, cost;
- :mod:`~rvc_lab.ab.stats`: per-input table -> summary with bootstrap intervals and Wilcoxon;
- :mod:`~rvc_lab.ab.run`: :func:`run_ab` (convert every input by A and B, measure, summarise);
- :mod:`~rvc_lab.ab.html`: the self-contained ``index.html``; :func:`write_ab` writes ``-o OUT``.
"""
from rvc_lab.ab.run import ABResult, run_ab, write_ab
from rvc_lab.ab.spec import ABSpec, parse_spec

__all__ = ["ABResult", "ABSpec", "parse_spec", "run_ab", "write_ab"]
