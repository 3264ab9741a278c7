"""The generated task and CC18 experiment configs: complete, loadable, usable as ``task=<name>``."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mesobench.data import load_fold
from mesobench.data.truth import GENERATORS

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
TASK_DIR = CONF / "task"
OPENML_KEYS = {"source", "name", "task_id", "dataset_id", "target", "type", "n_classes", "n_folds"}
SYNTHETIC_KEYS = {"source", "name", "generator", "type", "n_train", "n_val", "n_test", "noise"}
SYNTHETIC_KEYS |= {"n_folds", "base_seed"}
CSV_KEYS = {"source", "name", "path", "target", "type", "n_folds", "cv_seed", "categorical"}
OPENML_CONFIGS = sorted(
    p for p in TASK_DIR.glob("*.yaml") if OmegaConf.load(p).get("source") == "openml"
)
SYNTHETIC_CONFIGS = sorted((TASK_DIR / "synthetic").glob("*.yaml"))


def _script():
    spec = importlib.util.spec_from_file_location(
        "make_task_configs", REPO / "scripts" / "make_task_configs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _option(path: Path) -> str:
    return path.relative_to(TASK_DIR).with_suffix("").as_posix()


def test_there_are_72_cc18_task_configs():
    assert len(OPENML_CONFIGS) == 72


def test_every_synthetic_generator_has_a_task_config():
    names = {p.stem for p in SYNTHETIC_CONFIGS}
    nimo = {"toy", "r1", "r2", "r3", "linear", "c1", "c2", "c3"}
    lfr = {"lfr_example", "lfr_smooth3", "lfr_sine3", "lfr_tanh4", "lfr_quad3"}
    assert names == nimo | lfr == set(GENERATORS)


@pytest.mark.parametrize("path", OPENML_CONFIGS, ids=lambda p: p.stem)
def test_openml_config_has_the_required_keys_and_its_file_name(path):
    cfg = OmegaConf.load(path)
    assert set(cfg) >= OPENML_KEYS
    assert cfg.name == path.stem and isinstance(cfg.task_id, int)
    assert cfg.type in ("binary", "multiclass")
    assert (cfg.type == "binary") == (cfg.n_classes == 2)


@pytest.mark.parametrize("path", SYNTHETIC_CONFIGS, ids=lambda p: p.stem)
def test_synthetic_config_has_the_required_keys(path):
    cfg = OmegaConf.load(path)
    assert set(cfg) >= SYNTHETIC_KEYS
    assert cfg.name == f"synthetic/{path.stem}" and cfg.generator == path.stem


def test_nimo_and_lfr_sizes_follow_their_papers():
    sizes = {
        p.stem: (c.n_train, c.n_val, c.n_test)
        for p in SYNTHETIC_CONFIGS
        for c in [OmegaConf.load(p)]
    }
    assert sizes.pop("lfr_example") == (2000, 0, 500)
    lfr_checks = {name for name in sizes if name.startswith("lfr_")}  # the four LFR checks
    assert {sizes.pop(name) for name in lfr_checks} == {(1000, 0, 500)}
    assert set(sizes.values()) == {(200, 100, 100)}  # the NIMO paper's tasks


def test_csv_config_requires_path_and_target():
    cfg = OmegaConf.load(TASK_DIR / "csv.yaml")
    assert set(cfg) >= CSV_KEYS
    assert OmegaConf.is_missing(cfg, "path") and OmegaConf.is_missing(cfg, "target")


@pytest.mark.parametrize("path", sorted(TASK_DIR.rglob("*.yaml")), ids=_option)
def test_every_task_name_parses_as_a_hydra_override(path):
    option = _option(path)
    override = OverridesParser.create().parse_override(f"task={option}")
    assert override.value() == option


@pytest.mark.parametrize("option", ["credit-g", "numerai28.6", "synthetic/toy", "csv"])
def test_task_configs_compose_under_the_task_package(option):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(overrides=[f"+task={option}"])
    assert set(cfg) == {"task"}
    assert cfg.task.name == ("csv" if option == "csv" else option)


@pytest.mark.parametrize("path", SYNTHETIC_CONFIGS, ids=lambda p: p.stem)
def test_synthetic_configs_load_a_fold_of_the_configured_sizes(path):
    cfg = OmegaConf.load(path)
    fold = load_fold(cfg, 0)
    assert (len(fold.y_train), len(fold.y_test)) == (cfg.n_train, cfg.n_test)
    assert (0 if fold.y_val is None else len(fold.y_val)) == cfg.n_val
    assert fold.task.name == cfg.name


@pytest.mark.parametrize("suite,n_tasks", [("cc18", 72), ("cc18_offline", 12)])
def test_suite_sweeps_tasks_that_have_configs(suite, n_tasks):
    cfg = OmegaConf.load(CONF / "suite" / f"{suite}.yaml")
    assert cfg.suite_name == suite and cfg.folds == 10
    parsed = OverridesParser.create().parse_override(f"task={cfg.hydra.sweeper.params.task}")
    tasks = list(parsed.sweep_iterator())
    assert len(tasks) == n_tasks
    assert all((TASK_DIR / f"{t}.yaml").is_file() for t in tasks)
    assert cfg.hydra.sweeper.params.fold == "range(0,10)"  # ${folds} resolves


def test_offline_suite_is_the_cached_tasks():
    cfg = OmegaConf.load(CONF / "suite" / "cc18_offline.yaml")
    assert set(cfg.hydra.sweeper.params.task.split(",")) == {
        "kr-vs-kp", "letter", "balance-scale", "breast-w",
        "optdigits", "credit-g", "diabetes", "spambase",
        "mfeat-factors", "mfeat-fourier", "mfeat-morphological", "tic-tac-toe",
    }  # fmt: skip


def test_generated_configs_are_up_to_date(tmp_path):
    script = _script()
    if not script.DEFAULT_CSV.is_file():
        pytest.skip(f"task list {script.DEFAULT_CSV} not found")
    assert script.main(["--conf", str(tmp_path)]) == 0
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.yaml"))
    for rel in generated:
        assert (tmp_path / rel).read_text() == (CONF / rel).read_text(), rel


def test_every_name_in_the_task_list_becomes_a_config():
    script = _script()
    if not script.DEFAULT_CSV.is_file():
        pytest.skip(f"task list {script.DEFAULT_CSV} not found")
    with script.DEFAULT_CSV.open(newline="") as fh:
        names = {row["name"] for row in csv.DictReader(fh)}
    assert names == {p.stem for p in OPENML_CONFIGS}
