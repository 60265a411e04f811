"""``rvc-lab export``: a voice's models as TorchScript/ONNX files in a bundle (see docs/bundle.md)."""
from __future__ import annotations

import argparse
import json
import logging

from rvc_lab.cli.options import check_paths_exist
from rvc_lab.export.formats import FORMATS

log = logging.getLogger("rvc_lab")


def cmd_export(a: argparse.Namespace) -> int:
    from rvc_lab.export.bundle import check_export_args, export_bundle

    check_export_args(a.output, a.formats, a.precision)
    check_paths_exist(a, ("model", "hubert", "rmvpe", "index"))
    manifest = export_bundle(a.output, model=a.model, hubert=a.hubert, rmvpe=a.rmvpe, index=a.index,
                             formats=a.formats, precision=a.precision)
    checks = ", ".join(f"{stage} {fmt} {err:.2g}" for stage, by_fmt in manifest["self_check"].items()
                       for fmt, err in by_fmt.items())
    log.info("self-check against eager rvc_lab (relative L2): %s", checks)
    if a.json:
        print(json.dumps(manifest, indent=2))
    return 0


def add_parser(sub) -> None:
    s = sub.add_parser("export", help="export a voice's models (TorchScript, ONNX) into a bundle for other runtimes")
    s.add_argument("-o", "--output", required=True, help="bundle folder to write (replaced whole if it is a bundle)")
    s.add_argument("--model", required=True, help="voice .pth")
    s.add_argument("--hubert", required=True, help="hubert_base.pt or a Hugging Face HuBERT directory")
    s.add_argument("--rmvpe", help="rmvpe.pt: exported too (audio -> salience, mel inside the graph)")
    s.add_argument("--index", help="added_*.index: written as arrays a host can search without faiss")
    s.add_argument("--formats", default=",".join(FORMATS), help="comma list of torchscript,onnx (default both)")
    s.add_argument("--precision", default="fp32",
                   help="fp32 (self-checked, gated) or fp16/bf16 (measured against fp32, figures in the manifest)")
    s.add_argument("--json", action="store_true", help="print the manifest")
    s.set_defaults(func=cmd_export)
