"""``rvc-lab check`` (re-run reference cases) and ``rvc-lab reference make|compare|upstream``."""
from __future__ import annotations

import argparse

from rvc_lab.reference import (
    main_check,
    main_reference_compare,
    main_reference_make,
    main_reference_upstream,
)


def add_make_options(p: argparse.ArgumentParser) -> None:
    """Options of ``rvc-lab reference make``: the input, the voice (demo seed or files), the settings."""
    p.add_argument("outdir", help="case directory to write (replaced atomically)")
    p.add_argument("--input", required=True, help="input wav (any rate; copied into the case)")
    p.add_argument("--kind", choices=("offline", "stream"), default="offline", help="which driver runs it")
    p.add_argument("--demo-seed", type=int, help="use rvc_lab's demo assets of this seed")
    p.add_argument("--demo-voice", default="demo_v2_40k_f0", help="demo voice name (with --demo-seed)")
    p.add_argument("--model", help="voice .pth (without --demo-seed)")
    p.add_argument("--index", help="voice .index; 'none' with --demo-seed: no retrieval")
    p.add_argument("--hubert", help="hubert_base.pt or a Hugging Face directory (without --demo-seed)")
    p.add_argument("--rmvpe", help="rmvpe.pt (for f0_method rmvpe)")
    p.add_argument("--params", default="{}",
                   help="JSON object of OfflineSettings / StreamSettings fields, e.g. '{\"f0_method\": \"pm\"}'")
    p.add_argument("--description", default="", help="free text stored in case.json")


def add_compare_options(p: argparse.ArgumentParser) -> None:
    """Options of ``rvc-lab reference compare``."""
    p.add_argument("case_dir", help="a reference case directory")
    p.add_argument("wav", help="the output made elsewhere (aligned by delay before measuring)")
    p.add_argument("--stages", help="npz of stage vectors under the case's names (names the first divergent stage)")


def add_parser(sub) -> None:
    s = sub.add_parser("check", help="re-run reference cases and compare (exit 0 only when all pass)")
    s.add_argument("cases_dir", nargs="?", default="reference_cases")
    s.set_defaults(func=main_check)

    s = sub.add_parser("reference", help="make reference cases / compare external outputs")
    actions = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    make = actions.add_parser("make", help="run rvc_lab on an input and store it as a reference case")
    add_make_options(make)
    make.set_defaults(func=main_reference_make)
    compare = actions.add_parser("compare", help="compare an external output (and stage vectors) with a case")
    add_compare_options(compare)
    compare.set_defaults(func=main_reference_compare)
    upstream = actions.add_parser("upstream", help="turn upstream RVC's golden conversions (../shared/parity) "
                                                   "into reference cases")
    upstream.add_argument("outdir", help="folder to write the cases into (one upstream_<golden> per case)")
    upstream.add_argument("--parity-dir", help="the goldens (default: $RVC_LAB_PARITY_DIR or ../shared/parity)")
    upstream.set_defaults(func=main_reference_upstream)
