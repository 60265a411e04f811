"""Where a sweep's cells run: a Dask LocalCluster, or an existing cluster checked at connection.

Workers of an existing cluster (``--scheduler tcp://HOST:PORT``) must run the same rvc_lab and
torch versions as the client and must be able to read every file the study names (voices,
inputs, datasets, the demo assets in the client's cache folder): :func:`connect` asks each worker
and refuses, naming the worker and what is wrong, before any cell is sent.
"""
from __future__ import annotations

import logging
import os

import rvc_lab
from rvc_lab.cpu import cpu_model
from rvc_lab.errors import SettingsError

log = logging.getLogger(__name__)


def worker_environment(paths: list[str]) -> dict:
    """Run on each worker: its rvc_lab and torch versions, CPU, and which of ``paths`` it cannot read."""
    import torch

    return {"rvc_lab": rvc_lab.__version__, "torch": torch.__version__, "cpu_model": cpu_model(),
            "unreadable": [p for p in paths if not os.access(p, os.R_OK)]}


def local_cluster(workers: int, threads_per_cell: int):
    """A LocalCluster of ``workers`` processes, one Dask thread each (one cell at a time), whose
    BLAS/OpenMP pools hold ``threads_per_cell`` threads, and a client of it."""
    from dask.distributed import Client, LocalCluster

    threads = str(threads_per_cell)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.WARNING,
                           env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                                "OMP_WAIT_POLICY": "PASSIVE"})
    return Client(cluster), cluster


def connect(scheduler: str, paths: list[str], timeout_s: float = 10.0):
    """A client of the cluster at ``scheduler``, after checking its workers (see module doc).

    Raises
    ------
    SettingsError
        The scheduler cannot be reached, it has no workers, or a worker runs other versions or
        cannot read a file of the study.
    """
    import torch
    from dask.distributed import Client

    try:
        client = Client(scheduler, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        raise SettingsError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except (OSError, TimeoutError):
        client.close()
        raise SettingsError(f"the Dask scheduler at {scheduler} has no workers") from None
    problems = []
    for addr, env in client.run(worker_environment, paths).items():
        if env["rvc_lab"] != rvc_lab.__version__ or env["torch"] != torch.__version__:
            problems.append(f"{addr} runs rvc_lab {env['rvc_lab']} / torch {env['torch']} "
                            f"(this client: {rvc_lab.__version__} / {torch.__version__})")
        if env["unreadable"]:
            problems.append(f"{addr} cannot read {len(env['unreadable'])} file(s) of the study, "
                            f"e.g. {env['unreadable'][0]}")
    if problems:
        client.close()
        raise SettingsError("the cluster's workers cannot run this study: " + "; ".join(problems)
                            + " (workers need the same rvc_lab environment and read access to the study's files)")
    return client
