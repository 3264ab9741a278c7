"""Read runs back from MLflow and write the report to ``results/<report>/``.

    python -m mesobench.aggregate                                   # every run of the experiment
    python -m mesobench.aggregate filters.suite=quick report=quick  # → results/quick/
    python -m mesobench.aggregate filters.sweep_id=A compare.sweep_id=B report=A_vs_B

This module is the only part of the reporting that talks to MLflow: it turns the selected runs
into a tidy table (one row per run: tags, status, metrics), fetches the explanation artifacts of
a few runs, and hands both to :func:`mesobench.report.document.write_report`, which writes the
markdown, CSV and LaTeX tables and the PNG plots. The report's files are then logged as the
artifacts of a *summary run* (tag ``mesobench.summary=true``) in the same experiment, so the
MLflow UI holds every report next to the runs it summarises; summary runs are never read back
as benchmark runs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import to_absolute_path
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from mesobench.errors import ConfigError, MesobenchError
from mesobench.identity import INACTIVE_SECTIONS, RUN_KEY_VERSION
from mesobench.metrics import registry
from mesobench.paths import compose_config, conf_dir, register_resolvers
from mesobench.report import document, latest_per_key, plots
from mesobench.report.comparisons import Claim, ComparisonSettings
from mesobench.report.parity import ParityReference, read_reference
from mesobench.report.published import Target, read_published
from mesobench.report.runs import PROVENANCE_COLUMNS, RUN_TAGS, SUITES_COLUMN, key_rules
from mesobench.report.stats import Bootstrap
from mesobench.tags import (
    GIT_COMMIT_TAG,
    GIT_DIRTY_TAG,
    RUN_KEY_TAG,
    RUN_KEY_VERSION_TAG,
    suites_of,
    suites_value,
)
from mesobench.tracking import Tracker, client_for, flatten, retrying

log = logging.getLogger("mesobench.aggregate")

register_resolvers()
# MLflow draws a progress bar per downloaded artifact; a report fetches a handful: no bars.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

#: Tag marking a run that holds a report (not a benchmark run).
SUMMARY_TAG = "mesobench.summary"


WEIGHTS_ARTIFACT = "explanations/local_weights_sample.csv"
#: Run column with the params that identify a configuration, and the param prefixes kept in it.
CONFIG_COLUMN = "configuration"
CONFIG_PREFIXES = (
    "model.params.",
    "preprocessing.",
    "device.",
    "validation.",
    "fidelity.",
    "explanations.",
    "hpo.",
    "gamma_search.",
)
DESCRIPTION_ARTIFACT = "model/description.json"


def _quote(value: str) -> str:
    return "'" + str(value).replace("'", "\\'") + "'"


@dataclass(frozen=True)
class RunFilter:
    """Which runs a report reads (``filters.*``), applied alike to a store and a runs table."""

    sweep_id: str | None = None
    suite: str | None = None  # an experiment: the runs it made or reused
    models: list[str] | None = None
    tasks: list[str] | None = None
    tags: dict[str, Any] = field(default_factory=dict)  # {tag: value or [values]}


def load_runs(uri: str, experiment: str, where: RunFilter | None = None) -> pd.DataFrame:
    """All benchmark runs of ``experiment`` that ``where`` selects, one row each, metrics as
    columns.

    ``where.tags``: ``{tag: value}`` or ``{tag: [values]}``; a run matches when its tag equals
    (one of) the value(s). Summary runs (tag ``mesobench.summary``) and runs not made by mesobench (no
    ``model`` tag) are left out.
    """
    client = client_for(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise MesobenchError(
            f"no experiment '{experiment}' in the MLflow store {uri}: nothing has been run there "
            "yet. Run a sweep first (make benchmark) or point tracking.uri at the right store."
        )
    where = where or RunFilter()
    tags, suite = where.tags, where.suite
    clauses = [f"tags.sweep_id = {_quote(where.sweep_id)}"] if where.sweep_id else []
    for key, value in tags.items():
        if isinstance(value, str | int | float):
            clauses.append(f"tags.`{key}` = {_quote(str(value))}")
    rows = [
        _run_row(run)
        for run in _search_all(client, exp.experiment_id, " and ".join(clauses))
        if not run.data.tags.get(SUMMARY_TAG)
        and _tags_match(run.data.tags, tags)
        and (not suite or suite in suites_of(run.data.tags))  # made by it, or reused by it
    ]
    runs = pd.DataFrame(
        rows,
        columns=[
            "run_id",
            "status",
            "start_time",
            "run_key",
            *PROVENANCE_COLUMNS,
            *RUN_TAGS,
            SUITES_COLUMN,
        ],
    )
    if rows:
        runs = pd.DataFrame(rows)
    if where.models:
        runs = runs[runs["model"].isin(list(where.models))]
    if where.tasks:
        runs = runs[runs["task"].isin(list(where.tasks))]
    runs = runs[runs["model"].notna()]  # runs not made by mesobench
    for column in ("fold", "seed"):
        runs[column] = pd.to_numeric(runs[column], errors="coerce")
    return label_models(runs)


def _search_all(client: MlflowClient, experiment_id: str, filter_string: str) -> Iterator[Any]:
    """Every run of the experiment matching ``filter_string``, page after page."""
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=5000, page_token=token
        )
        yield from page
        token = page.token
        if not token:
            return


def _run_row(run: Any) -> dict[str, Any]:
    """One row of the runs table: identity, provenance, tags, configuration and metrics."""
    run_tags = run.data.tags
    return {
        "run_id": run.info.run_id,
        "status": run.info.status,
        "start_time": run.info.start_time,
        "run_key": run_tags.get(RUN_KEY_TAG, run.info.run_id),
        "key_version": run_tags.get(RUN_KEY_VERSION_TAG),
        "git_commit": run_tags.get(GIT_COMMIT_TAG, run_tags.get("git_commit")),
        "git_dirty": run_tags.get(GIT_DIRTY_TAG),
        **{t: run_tags.get(t) for t in RUN_TAGS},
        SUITES_COLUMN: suites_value(suites_of(run_tags)),
        CONFIG_COLUMN: _configuration(run.data.params),
        **run.data.metrics,
    }


def read_runs_table(path: Path, where: RunFilter | None = None) -> pd.DataFrame:
    """The runs of a committed runs table (a report's ``runs.csv`` or ``.parquet``), filtered as
    :func:`load_runs` filters a store, so a report regenerates with no MLflow store at all.

    Filters match the table's columns (``model_name``: the model before configurations were
    named apart; ``tags``: any column). A missing file or column fails with what was expected.
    """
    if not path.is_file():
        raise MesobenchError(f"runs table {path} does not exist (runs=<a report's runs.csv>)")
    text_columns = {
        c: str
        for c in (
            "run_id",
            "status",
            "run_key",
            CONFIG_COLUMN,
            SUITES_COLUMN,
            *PROVENANCE_COLUMNS,
            *RUN_TAGS,
        )
        if c not in ("fold", "seed")
    }  # as MLflow returns tags: strings ("false" stays "false", a hash stays a hash)
    if path.suffix == ".parquet":
        runs = pd.read_parquet(path)
    else:
        runs = pd.read_csv(path, dtype=text_columns, keep_default_na=True)
    required = {"run_id", "status", "run_key", "model", "task", "fold", "seed"}
    if not required <= set(runs.columns):
        raise MesobenchError(
            f"{path} is not a runs table: it lacks the columns {sorted(required - set(runs))}"
        )
    # the model before configurations were named apart (tables written before the column
    # existed: the label's base name, imn[optimizer=adamw] -> imn, xgboost@1a2b3c -> xgboost)
    base = runs["model"].astype(str).str.replace(r"[\[@].*$", "", regex=True)
    names = runs["model_name"].fillna(base) if "model_name" in runs else base
    keep = pd.Series(True, index=runs.index)
    where = where or RunFilter()
    if where.sweep_id:
        keep &= runs["sweep_id"].astype(str).eq(str(where.sweep_id))
    if where.suite:
        member = runs["suite"].astype(str).eq(str(where.suite))
        if SUITES_COLUMN in runs:  # tables written before experiments could share runs lack it
            member |= runs[SUITES_COLUMN].fillna("").str.contains(f",{where.suite},", regex=False)
        keep &= member
    if where.models:
        keep &= names.isin(list(where.models))
    if where.tasks:
        keep &= runs["task"].isin(list(where.tasks))
    for key, value in where.tags.items():
        if key not in runs:
            raise MesobenchError(f"filters.tags: {path} has no column {key!r}")
        keep &= runs[key].astype(str).isin(_allowed_values(value))
    runs = runs[keep].copy()
    for column in ("fold", "seed"):
        runs[column] = pd.to_numeric(runs[column], errors="coerce")
    return runs.reset_index(drop=True)


def _allowed_values(value: Any) -> list[str]:
    """A tag filter's value(s) as the strings a tag or a runs-table column holds."""
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def _tags_match(run_tags: dict[str, str], wanted: dict[str, Any]) -> bool:
    return all(run_tags.get(key) in _allowed_values(value) for key, value in wanted.items())


#: Params the runner logs about a run's *outcome* under a config prefix (what the fidelity metrics
#: scored, what a search chose): not settings, so never part of a configuration's name.
OUTCOME_PARAM_PREFIXES = (
    "fidelity.n_points",
    "fidelity.attribution",
    "fidelity.n_features",  # and n_features_perturbed: the raw feature space's width
    "fidelity.n_categorical",
    "hpo.best.",
    "hpo.trials_run",
    "gamma_search.chosen_",
)


def _configuration(params: dict[str, str]) -> str:
    """The run params that make up its configuration (model, preprocessing, device), as JSON."""
    chosen = {
        k: v
        for k, v in params.items()
        if k.startswith(CONFIG_PREFIXES) and not k.startswith(OUTCOME_PARAM_PREFIXES)
    }
    return json.dumps(chosen, sort_keys=True)


def label_models(runs: pd.DataFrame) -> pd.DataFrame:
    """Tell apart configurations of one model by what differs: ``imn[optimizer=adamw]``.

    When a model was run with several configurations (``config_hash``), each is named by its
    settings that differ from ``conf/model/<model>.yaml`` (so the config file's settings keep
    the plain name), and for settings not in that file from the most common value among them
    (a setting whose values tie is shown on every configuration); where that
    does not give distinct names (no recorded params), the hash tells them apart instead:
    ``xgboost@1a2b3c``.
    """
    if runs.empty:
        return runs
    runs = runs.copy()
    if "model_name" not in runs or runs["model_name"].isna().all():
        runs["model_name"] = runs["model"]
    labels = {}
    # configurations are told apart within one run-key rule: runs of an older rule (left out of
    # reports by default) lack the newer knobs and would otherwise name every current run
    for (model, _), group in runs.assign(_rule=key_rules(runs)).groupby(["model", "_rule"]):
        configs = group.drop_duplicates("config_hash").set_index("config_hash")
        if len(configs) > 1:
            labels.update(_variant_labels(model, configs))
    runs["model"] = [
        labels.get((m, h), m) for m, h in zip(runs["model"], runs["config_hash"], strict=True)
    ]
    return runs


def _strict_mode(values: list[Any]) -> Any:
    """The most frequent value, or a sentinel when several tie (then every config shows it)."""
    counts = pd.Series([json.dumps(v) for v in values]).value_counts()
    if len(counts) > 1 and counts.iloc[0] == counts.iloc[1]:
        return object()
    return json.loads(counts.index[0])


def _config_defaults(model: str) -> dict[str, str]:
    """``conf/model/<model>.yaml``'s params (with those it inherits) as the runner logs them
    (``model.params.k``: str).

    Variants are named by what differs from these, so ``lfr_imn`` in a report is the
    configuration of ``conf/model/lfr_imn.yaml`` whenever it ran. Empty for a model without a
    config file (renamed, or a store made elsewhere): then the commonest values are the base.
    """
    if not (conf_dir() / "model" / f"{model}.yaml").is_file():
        return {}
    params = compose_config(f"model={model}")["model"].get("params") or {}
    return {k: "None" if v is None else str(v) for k, v in flatten(params, "model.params.").items()}


def _active_settings(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without the settings of sections that were switched off
    (:data:`~mesobench.identity.INACTIVE_SECTIONS`, as the run key ignores them): the search
    space of a search that did not run cannot tell two configurations apart."""
    dropped = tuple(
        f"{section}."
        for section, (switch, value) in INACTIVE_SECTIONS.items()
        if str(params.get(f"{section}.{switch}")) == str(value)
    )
    switches = {f"{section}.{switch}" for section, (switch, _) in INACTIVE_SECTIONS.items()}
    return {
        k: v
        for k, v in params.items()
        if (k in switches or not k.startswith(dropped))
        and not k.startswith(OUTCOME_PARAM_PREFIXES)  # a runs table made before a prefix was known
    }


def _variant_labels(model: str, configs: pd.DataFrame) -> dict[tuple[str, str], str]:
    """``{(model, config_hash): label}`` for the configurations (one row per hash) of a model."""
    raw = configs[CONFIG_COLUMN] if CONFIG_COLUMN in configs else pd.Series(index=configs.index)
    parsed = {
        h: _active_settings(json.loads(c) if isinstance(c, str) and c else {})
        for h, c in raw.items()
    }
    keys = sorted(set().union(*parsed.values()))
    modal = {k: _strict_mode([p.get(k) for p in parsed.values()]) for k in keys}
    modal.update({k: v for k, v in _config_defaults(model).items() if k in modal})
    labels = {}
    for h, p in parsed.items():
        diff = [f"{k.split('.')[-1]}={p.get(k)}" for k in keys if p.get(k) != modal[k]]
        labels[(model, h)] = f"{model}[{','.join(diff)}]" if diff else model
    if not keys or len(set(labels.values())) < len(labels):
        return {(model, h): f"{model}@{str(h)[:6]}" for h in configs.index}
    return labels


def load_explanations(
    uri: str,
    runs: pd.DataFrame,
    families: list[str],
    *,
    task: str | None = None,
    row: int | None = None,
    klass: str | None = None,
) -> document.ExplanationInput:
    """Download the local-weights samples (and descriptions) of one run per model family."""
    run_ids, source, absent = document.choose_explanation_runs(runs, families, task=task)
    client = client_for(uri)
    samples: dict[str, plots.ExplanationSample] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model, run_id in run_ids.items():
            try:
                weights = pd.read_csv(
                    client.download_artifacts(run_id, WEIGHTS_ARTIFACT, f"{tmp}/{run_id}")
                )
            except Exception as exc:  # artifact store unreachable or the run predates it
                log.warning("no %s for %s (run %s): %s", WEIGHTS_ARTIFACT, model, run_id, exc)
                absent.append(model)
                continue
            description = None
            try:
                path = client.download_artifacts(run_id, DESCRIPTION_ARTIFACT, f"{tmp}/{run_id}")
                description = json.loads(Path(path).read_text())
            except Exception:  # a model without describe(): no description, nothing to draw
                pass
            samples[model] = plots.ExplanationSample(weights, description)
    return document.ExplanationInput(samples, source, absent, row=row, klass=klass)


def log_summary_run(
    uri: str,
    experiment: str,
    artifact_location: str | None,
    out_dir: Path,
    *,
    report: str,
    command: str,
    selection: str,
) -> str:
    """Log the report folder as the artifacts of a new summary run; return its id.

    Tagged ``mesobench.summary=true`` (and the report name and command) so that
    :func:`load_runs` never mistakes it for a benchmark run. Average ranks are logged as
    ``rank/<model>`` metrics for a quick look in the MLflow UI.
    """
    tracker = Tracker(uri, experiment, artifact_location)
    client = tracker.client
    tags = {
        SUMMARY_TAG: "true",
        "mesobench.report": report,
        "mesobench.report_command": command[:5000],
        "mesobench.report_selection": selection[:5000],
    }
    run = retrying(
        client.create_run,
        tracker.experiment_id,
        run_name=f"report {report}",
        tags={k: str(v) for k, v in tags.items()},
    )
    run_id = run.info.run_id
    ranks_file = out_dir / "average_rank.csv"
    if ranks_file.exists():
        ranks = pd.read_csv(ranks_file)
        tracker.log_metrics(
            run_id,
            {
                f"rank/{_metric_name(m)}": float(r)
                for m, r in zip(ranks["model"], ranks["average_rank"], strict=True)
            },
        )
    retrying(client.log_artifacts, run_id, str(out_dir))
    tracker.end(run_id, "FINISHED")
    return run_id


def _metric_name(model: str) -> str:
    """A model label as MLflow allows in a metric name (``imn[lr=0.1]`` → ``imn_lr_0.1_``)."""
    return re.sub(r"[^\w\-. :/]", "_", str(model))


def _as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in OmegaConf.to_container(value)]


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return dict(OmegaConf.to_container(value)) if not isinstance(value, dict) else dict(value)


def _key_version(value: Any) -> str | None:
    """``filters.key_version``: ``latest`` (the newest rule among the runs), ``current`` (the
    runner's rule), ``any`` (None) or a version."""
    if value in (None, "any"):
        return None
    return RUN_KEY_VERSION if value == "current" else str(value)


def settings_from(cfg: DictConfig) -> document.ReportSettings:
    """The report settings of ``cfg``; an unknown metric fails here, before any run is read."""
    models = _as_list(cfg.filters.models)
    settings = document.ReportSettings(
        metric=cfg.metric,
        higher_is_better=cfg.higher_is_better,
        missing=cfg.missing,
        reference=cfg.reference,
        tie_tolerance=None if cfg.tie_tolerance is None else float(cfg.tie_tolerance),
        alpha=float(cfg.alpha),
        infidelity=cfg.infidelity,
        models=models,
        explain_top_k=int(cfg.explain.top_k),
        key_version=_key_version(cfg.filters.key_version),
        bootstrap=Bootstrap(
            n_resamples=int(cfg.bootstrap.n_resamples),
            confidence=float(cfg.bootstrap.confidence),
            seed=int(cfg.bootstrap.seed),
        ),
        comparisons=comparison_settings(cfg),
        claims=tuple(Claim.from_config(c) for c in _as_plain(cfg.claims) or []),
        cv_folds=int(cfg.cv_folds),
        protocol=tuning_protocol(cfg),
    )
    settings.direction()  # refuses a metric the registry does not know (without an override)
    for metric in set(settings.comparisons.metrics) - {settings.metric}:
        registry.higher_is_better(metric)  # an unknown compared metric fails before any run is read
    for claim in settings.claims:
        registry.higher_is_better(claim.metric)
        settings.comparisons.require_rope(claim.metric, f"a claim ({claim.a} vs {claim.b}) tests")
    return settings


def comparison_settings(cfg: DictConfig) -> ComparisonSettings:
    """``comparisons.*``: the paired comparisons' pairs, metrics (the headline metric when the
    list is empty), ROPEs and decision rule."""
    block = cfg.comparisons
    pairs = []
    for pair in _as_plain(block.pairs) or []:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ConfigError(f"comparisons.pairs: each pair is [model_a, model_b], got {pair!r}")
        pairs.append((str(pair[0]), str(pair[1])))
    metrics = tuple(_as_list(block.metrics) or [cfg.metric])
    return ComparisonSettings(
        pairs=tuple(pairs),
        scope=str(block.scope),
        metrics=metrics,
        rope={str(k): float(v) for k, v in _as_dict(block.rope).items()},
        posterior=float(block.posterior),
        confidence=float(block.confidence),
        nsamples=int(block.nsamples),
        seed=int(block.seed),
    )


def tuning_protocol(cfg: DictConfig) -> document.TuningProtocol | None:
    """The experiment's ``protocol`` (runner config, composed by ``+experiment=``) for the
    report's header, with the hpo budget every tuned model got; None for an ad-hoc selection."""
    block = cfg.get("protocol")
    if block is None or block.get("name") is None:
        return None
    hpo = cfg.get("hpo") or {}
    budget = f"hpo.sampler={hpo.get('sampler', 'tpe')}, hpo.n_trials={hpo.get('n_trials', 0)}"
    return document.TuningProtocol(
        name=str(block.name),
        budget=budget,
        exempt={str(k): str(v) for k, v in _as_dict(block.get("exempt")).items()},
    )


def parity_from(cfg: DictConfig) -> ParityReference | None:
    """The ``parity:`` block as reference figures to compare with, or None when unset.

    A relative ``parity.reference`` is taken from the directory the command was started in.
    """
    block = cfg.parity
    if not block.reference:
        return None
    path = Path(to_absolute_path(str(block.reference)))
    return ParityReference(
        figures=read_reference(path, cfg.metric),
        source=str(block.reference),
        label=str(block.label),
        models=_as_list(block.models),
        mean_tolerance=float(block.mean_tolerance),
        fold_tolerance=float(block.fold_tolerance),
    )


def published_from(cfg: DictConfig) -> document.Published | None:
    """``published`` (papers' figures, each ``{file, models}``), ``targets`` and ``ceiling`` as
    the report's published section, or None when none is set. Relative files are taken from the
    directory the command was started in; a bad file or target fails before runs are read."""
    entries = _as_plain(cfg.published) or []
    targets = _as_plain(cfg.targets) or []
    if not entries and not targets:
        return None
    tables = []
    for entry in entries:
        if not isinstance(entry, dict) or "file" not in entry:
            raise ConfigError(f"published: each entry needs a file (and models), got {entry!r}")
        path = Path(to_absolute_path(str(entry["file"])))
        tables.extend(read_published(path, entry.get("models")))
    return document.Published(
        tables=tables,
        targets=[Target.from_config(dict(t)) for t in targets],
        ceiling=cfg.ceiling,
    )


def _as_plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def with_experiment(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``cfg`` with the report settings of an experiment (``+experiment=X``) applied.

    An experiment file (``conf/experiment/X.yaml``) configures the runner at its top level and
    its report in an ``aggregate:`` block. Here that block goes over ``aggregate.yaml``'s
    defaults, and then the command line's own overrides go over it again, so that
    ``+experiment=quick metric=accuracy`` means what it says.
    """
    block = cfg.get("aggregate")
    if block is None:
        return cfg
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg.comparisons.rope, False)  # an experiment adds its metrics' ROPEs
    merged = OmegaConf.merge(cfg, block)
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if override.is_delete() or key.split(".")[0] in ("experiment", "aggregate", "hydra"):
            continue
        value = override.value()
        if isinstance(OmegaConf.select(cfg, key), DictConfig) and isinstance(value, str):
            continue  # a config group choice (tracking=server): Hydra applied it
        OmegaConf.update(merged, key, value, merge=False, force_add=True)
    return merged


def selection_text(cfg: DictConfig) -> str:
    """The filters in force, for the report's first line."""
    parts = []
    for key in ("sweep_id", "suite", "models", "tasks"):
        value = cfg.filters.get(key)
        if value is not None:
            shown = ",".join(_as_list(value) or [])
            parts.append(f"{key}={shown}")
    for key, value in _as_dict(cfg.filters.get("tags")).items():
        parts.append(f"tag {key}={value}")
    return "; ".join(parts)


def aggregate(cfg: DictConfig) -> str:
    """Read the runs the config selects, write the report, log it as a summary run."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    cfg = with_experiment(cfg, overrides)
    filters = cfg.filters
    settings = settings_from(cfg)
    parity = parity_from(cfg)  # a bad path fails before anything is read
    published = published_from(cfg)
    where = RunFilter(
        sweep_id=filters.sweep_id,
        suite=filters.suite,
        models=settings.models,
        tasks=_as_list(filters.tasks),
        tags=_as_dict(filters.tags),
    )
    table_path = Path(to_absolute_path(str(cfg.runs))) if cfg.runs else None
    runs = _read(cfg, table_path, where)
    comparison = None
    if cfg.compare.sweep_id:
        other = _read(
            cfg,
            table_path,
            replace(where, sweep_id=cfg.compare.sweep_id, suite=cfg.compare.suite or where.suite),
        )
        labels = (
            str(where.sweep_id or "selection"),
            str(cfg.compare.label or cfg.compare.sweep_id),
        )
        comparison = document.Comparison(other, labels)
    command = " ".join(["python -m mesobench.aggregate", *map(shlex.quote, overrides)])
    selection = selection_text(cfg)
    out_dir = Path(cfg.out_dir)
    page = document.write_report(
        runs,
        out_dir,
        f"mesobench report: {cfg.report}",
        command,
        settings,
        source="its runs table" if table_path is not None else "the MLflow store",
        explanations=_explanations(cfg, runs, table_path),
        comparison=comparison,
        selection=selection,
        parity=parity,
        published=published,
    )
    log.info("wrote %s", out_dir)
    if cfg.summary_run and table_path is None:
        run_id = log_summary_run(
            cfg.tracking.uri,
            cfg.tracking.experiment,
            cfg.tracking.get("artifact_location"),
            out_dir,
            report=str(cfg.report),
            command=command,
            selection=selection,
        )
        log.info("logged the report as summary run %s", run_id)
        parents = attach_to_sweep_parents(cfg, runs, out_dir)
        if parents:
            log.info("attached the report to the parent runs of its sweeps: %s", parents)
    return page


MAX_PARENTS = 20
"""A report over more sweeps than this is attached to none of their parents (it would copy the
report that often); its summary run still holds it."""


def attach_to_sweep_parents(cfg: DictConfig, runs: pd.DataFrame, out_dir: Path) -> list[str]:
    """Log the report's files under ``report/`` in the parent run of every sweep whose runs it
    shows (:mod:`mesobench.sweep_parent`), so a sweep's parent holds its report."""
    from mesobench import sweep_parent

    sweeps = sorted({str(s) for s in runs.get("sweep_id", pd.Series(dtype=str)).dropna()})
    if not sweeps or len(sweeps) > MAX_PARENTS:
        return []
    tracker = Tracker.from_config(cfg.tracking)
    parents = [p for p in (sweep_parent.find(tracker, s) for s in sweeps) if p is not None]
    for parent in parents:
        retrying(tracker.client.log_artifacts, parent, str(out_dir), "report")
    return parents


def _read(cfg: DictConfig, table_path: Path | None, where: RunFilter) -> pd.DataFrame:
    """The selected runs, from the runs table when one is given, else from the store."""
    if table_path is not None:
        return read_runs_table(table_path, where)
    return load_runs(cfg.tracking.uri, cfg.tracking.experiment, where)


def _explanations(
    cfg: DictConfig, runs: pd.DataFrame, table_path: Path | None
) -> document.ExplanationInput | document.KeptExplanation | None:
    """The runs' logged explanation samples for the picture (``explain.*``); a runs table has
    none (they are artifacts in the store): regenerating a report from its runs table keeps
    the picture it has."""
    explain = cfg.explain
    if table_path is not None:
        kept = document.kept_explanation(Path(cfg.out_dir)) if explain.enabled else None
        log.info(
            "runs from %s: no MLflow store is read (%s)",
            table_path,
            "the explanation picture is kept" if kept else "no explanation picture",
        )
        return kept
    if not explain.enabled or runs.empty:
        return None
    return load_explanations(
        cfg.tracking.uri,
        latest_per_key(runs),
        _as_list(explain.families) or list(document.EXPLAIN_FAMILIES),
        task=explain.task,
        row=explain.row,
        klass=None if explain["class"] is None else str(explain["class"]),
    )


def write_report(
    runs: pd.DataFrame,
    out_dir: Path,
    metric: str,
    title: str,
    command: str = "python -m mesobench.aggregate",
) -> str:
    """Kept for callers of the v0 aggregator: the report without explanations or comparison."""
    return document.write_report(
        runs, out_dir, title, command, document.ReportSettings(metric=metric)
    )


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="aggregate")
def main(cfg: DictConfig) -> None:
    try:
        print(aggregate(cfg))
    except MesobenchError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
