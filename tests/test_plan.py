"""The one plan of the report and the notebooks: its sweep grids are valid studies, as YAML too."""
import pytest
import yaml

from rvc_lab.plan import Plan, grid_yaml
from rvc_lab.sweep.report import small_study


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("grid_name", ["sweep_grid", "f0_sweep_grid"])
def test_grid_yaml_parses_back_to_the_grid(quick, grid_name):
    grid = getattr(Plan.for_run(quick), grid_name)
    # yaml.safe_load is the notebooks' parser of the text box: it must read the same settings back
    assert yaml.safe_load(grid_yaml(grid)) == {name: list(values) for name, values in grid}


@pytest.mark.parametrize("quick", [False, True])
def test_plan_grids_are_valid_studies(quick):
    plan = Plan.for_run(quick)
    # the study schema rejects unknown settings, methods and tones (no model is loaded here)
    small_study(None, dict(plan.f0_sweep_grid), measure=("f0",), tones=plan.sweep_tones, seconds=plan.sweep_seconds)
    with pytest.raises(Exception, match="no_such_setting"):
        small_study(None, {"no_such_setting": [1]}, measure=("f0",), tones=plan.sweep_tones)


def test_quick_plan_is_smaller_than_the_default():
    full, quick = Plan.for_run(False), Plan.for_run(True)
    assert quick.quick and not full.quick
    for name in ("input_seconds", "latency_seconds", "bench_seconds", "sweep_seconds"):
        assert getattr(quick, name) < getattr(full, name), name
    assert set(quick.bench_methods) <= set(full.bench_methods)
    assert quick.f0_method in full.f0_choices and full.f0_method in full.f0_choices
