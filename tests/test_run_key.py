"""The run key: the whole resolved config is a run's identity, bookkeeping excepted.

The completeness test walks every leaf of composed configs and changes it: a key outside
``identity.BOOKKEEPING_KEYS`` must change the run key, a bookkeeping key must not. A knob added to
``conf/`` is therefore hashed without anyone remembering to; one added to the bookkeeping list by
mistake (or a list entry that names no key any more) fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from conftest import runner
from mesobench.config import identity, tags
from mesobench.config.paths import conf_dir, register_resolvers
from mesobench.report.runs_table import RunFilter
from mesobench.store import runs as stored

register_resolvers()

# Every section switched on, so that no knob hides behind an inactive section.
ALL_ON = ("hpo.n_trials=2", "gamma_search.enabled=true", "data.openml_cache_dir=/cache")


def _plain(*overrides: str) -> dict[str, Any]:
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _with(tree: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    copy = OmegaConf.to_container(OmegaConf.create(tree))
    node = copy
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return copy


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value * 2 + 1
    if isinstance(value, list):
        return [*value, "another"]
    if value is None:
        return "set"
    return f"{value}-changed"


def _is_bookkeeping(dotted: str) -> bool:
    return any(dotted == b or dotted.startswith(f"{b}.") for b in identity.BOOKKEEPING_KEYS)


@pytest.mark.parametrize(
    "overrides",
    [
        ("model=lfr_imn_fast", "task=diabetes"),
        ("model=nimo", "task=synthetic/r1", "device=cuda"),
        ("model=xgboost", "+experiment=quick"),
    ],
    ids=["lfr_imn_fast", "nimo-synthetic-cuda", "xgboost-experiment"],
)
def test_every_config_key_is_hashed_unless_it_is_bookkeeping(overrides):
    plain = _plain(*overrides, *ALL_ON)
    key = identity.run_key(plain)
    forgotten, hashed_bookkeeping = [], []
    for dotted, value in _leaves(plain).items():
        changed = identity.run_key(_with(plain, dotted, _changed(value))) != key
        if _is_bookkeeping(dotted) and changed:
            hashed_bookkeeping.append(dotted)
        elif not _is_bookkeeping(dotted) and not changed:
            forgotten.append(dotted)
    assert not forgotten, f"keys that change results but not the run key: {forgotten}"
    assert not hashed_bookkeeping, f"bookkeeping keys that change the run key: {hashed_bookkeeping}"


def test_every_bookkeeping_entry_names_a_key_of_the_config():
    leaves = [
        *_leaves(_plain("+experiment=quick", *ALL_ON)),  # an experiment adds `aggregate`
        *_leaves(_plain("model=nimo")),  # a model with `limits`
    ]
    stale = [b for b in identity.BOOKKEEPING_KEYS if not any(_is_match(b, k) for k in leaves)]
    assert not stale, f"BOOKKEEPING_KEYS entries that no config key matches: {stale}"


def _is_match(entry: str, dotted: str) -> bool:
    return dotted == entry or dotted.startswith(f"{entry}.")


def test_a_new_knob_enters_the_key_without_being_listed():
    plain = _plain()
    key = identity.run_key(plain)
    assert identity.run_key(_with(plain, "fidelity.a_new_knob", 1)) != key
    assert identity.run_key(_with(plain, "a_new_section", {"x": 1})) != key


def test_inactive_sections_do_not_enter_the_key():
    plain = _plain("model=imn")
    key = identity.run_key(plain)
    # the search space of a search that does not run (n_trials = 0)
    assert identity.run_key(_with(plain, "hpo.space.params.lr.high", 0.5)) == key
    assert identity.run_key(_with(plain, "gamma_search.alpha", 0.9)) == key
    off = _with(plain, "fidelity.enabled", False)
    assert identity.run_key(off) != key
    assert identity.run_key(_with(off, "fidelity.sigma", 0.5)) == identity.run_key(off)


def test_config_hash_is_the_key_without_task_fold_and_seed():
    base = _plain("model=imn_fast")
    assert identity.config_hash(_plain("model=imn_fast", "task=diabetes", "fold=3", "seed=2")) == (
        identity.config_hash(base)
    )
    assert identity.config_hash(_plain("model=imn_fast", "fidelity.sigma=0.5")) != (
        identity.config_hash(base)
    )


def test_a_changed_fidelity_setting_is_a_new_run_and_an_identical_rerun_is_skipped(tmp_path, store):
    args = ("model=logreg", "task=synthetic/c1", "fold=0")
    for overrides in [args, (*args, "fidelity.sigma=0.5"), (*args, "fidelity.sigma=0.5")]:
        proc = runner(*overrides, store=store, tmp_path=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already FINISHED" in proc.stdout + proc.stderr
    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
    assert sorted(r.data.params["fidelity.sigma"] for r in runs) == ["0.1", "0.5"]
    assert len({r.data.tags[tags.RUN_KEY_TAG] for r in runs}) == 2
    assert {r.data.tags[tags.RUN_KEY_VERSION_TAG] for r in runs} == {identity.RUN_KEY_VERSION}
    # the report tells the two configurations apart instead of counting fold 0 twice
    labelled = stored.load_runs(store, "mesobench")
    assert sorted(labelled["model"]) == ["logreg[sigma=0.1]", "logreg[sigma=0.5]"]


def test_hpo_settings_apply_only_to_the_models_listed():
    """hpo.models: one sweep tunes some of its models; the others' keys ignore the search."""
    tuned = _plain("model=mlp", "hpo.n_trials=3", "hpo.models=[mlp,nimo]")
    untuned = _plain("model=lasso", "hpo.n_trials=3", "hpo.models=[mlp,nimo]")
    assert identity.hpo_settings(tuned)["n_trials"] == 3
    assert identity.hpo_settings(untuned) == {"n_trials": 0}
    assert identity.run_key(untuned) == identity.run_key(_plain("model=lasso"))
    assert identity.run_key(tuned) != identity.run_key(_plain("model=mlp"))


def test_a_setting_interpolated_from_the_task_does_not_split_a_configuration():
    """The oracle reads its task's generator; across tasks it is still one configuration."""
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        r1 = compose("config", overrides=["model=oracle", "task=synthetic/r1"])
        c1 = compose("config", overrides=["model=oracle", "task=synthetic/c1"])
    assert r1.model.params.generator == "r1" and c1.model.params.generator == "c1"
    assert identity.config_hash(identity.without_task(r1)) == identity.config_hash(
        identity.without_task(c1)
    )
    plain = OmegaConf.to_container(r1, resolve=True)
    assert identity.run_key(plain) != identity.run_key(OmegaConf.to_container(c1, resolve=True))


def test_the_run_key_version_moves_with_the_configs_keys():
    """A knob added to conf/config.yaml changes every key: bump the version with it, so that the
    runs made before it are left out of reports rather than shown as a second configuration."""
    got = identity.schema_fingerprint(_plain(*ALL_ON))
    assert got == identity.SCHEMA_FINGERPRINT, (
        f"the runner config's keys changed: bump identity.RUN_KEY_VERSION (now "
        f"{identity.RUN_KEY_VERSION}) and set identity.SCHEMA_FINGERPRINT = {got!r}"
    )
    plain = _plain(*ALL_ON)
    assert identity.schema_fingerprint(_with(plain, "fidelity.new_knob", 1)) != got
    assert identity.schema_fingerprint(_with(plain, "model.params.lr", 0.5)) == got


def test_a_run_reused_by_another_experiment_counts_in_both(tmp_path, store):
    """Experiments share identical runs (same key): the second skips the run and joins it, so
    its report (filters.suite) sees it instead of missing a fold."""
    args = ("model=logreg", "task=synthetic/c1", "fold=0")
    for suite in ("first", "second"):
        proc = runner(*args, f"suite_name={suite}", store=store, tmp_path=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already FINISHED" in proc.stdout + proc.stderr
    for suite in ("first", "second"):
        runs = stored.load_runs(store, "mesobench", RunFilter(suite=suite))
        assert len(runs) == 1 and runs["suites"].tolist() == [",first,second,"]
    assert stored.load_runs(store, "mesobench", RunFilter(suite="third")).empty
