"""``load_fold`` dispatch: sources, config objects, and errors for a wrong config."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from mesobench.data import FoldData, load_fold
from mesobench.errors import ConfigError


def test_accepts_an_omegaconf_task_config():
    cfg = OmegaConf.create({"source": "synthetic", "name": "synthetic/c1", "generator": "c1"})
    fold = load_fold(cfg, 1)
    assert isinstance(fold, FoldData) and fold.task.name == "synthetic/c1" and fold.fold == 1


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(ConfigError, match="openml, synthetic, csv"):
        load_fold({"source": "kaggle", "name": "x"}, 0)


def test_openml_config_without_task_id_is_a_config_error():
    with pytest.raises(ConfigError, match="task_id"):
        load_fold({"source": "openml", "name": "credit-g"}, 0)


def test_missing_mandatory_csv_value_in_omegaconf_is_a_config_error():
    cfg = OmegaConf.create({"source": "csv", "name": "csv", "path": "???", "target": "???"})
    with pytest.raises(ConfigError, match="task.path"):
        load_fold(cfg, 0)


def test_non_integer_fold_is_a_config_error():
    with pytest.raises(ConfigError, match="fold"):
        load_fold({"source": "synthetic", "generator": "toy"}, 1.5)
