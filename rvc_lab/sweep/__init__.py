"""Parameter sweeps: a study (grid x inputs x voices x measurements) run cell by cell on Dask.

``load_study`` reads and checks a study file (:mod:`rvc_lab.sweep.study`), ``run_study`` runs its
cells on a LocalCluster, an existing cluster or serially with a per-cell cache
(:mod:`rvc_lab.sweep.runner`), ``read_results`` reads the tidy table back.  ``rvc-lab sweep``
is the command (:mod:`rvc_lab.cli.sweep`).
"""
from rvc_lab.sweep.runner import RESULT_COLUMNS, SweepResult, read_results, run_study
from rvc_lab.sweep.study import SETTING_KEYS, Study, load_study, study_from_dict

__all__ = ["RESULT_COLUMNS", "SETTING_KEYS", "Study", "SweepResult", "load_study", "read_results", "run_study",
           "study_from_dict"]
