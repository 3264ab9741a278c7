"""Run one configuration, or a Hydra multirun sweep of them, and record each in MLflow.

    python -m mesobench.run model=xgboost task=credit-g fold=0 seed=0 device=cpu
    python -m mesobench.run -m suite=quick model=logreg,xgboost hydra/launcher=joblib

The entry point only: the runner's work lives in :mod:`mesobench.runner` (one job in
:mod:`mesobench.runner.execute`). The Hydra decorator stays here so that Hydra names the job
``run`` and prints ``python -m mesobench.run`` in its help.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from mesobench.config.paths import conf_dir
from mesobench.runner import execute


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    return execute.main(cfg)


if __name__ == "__main__":
    main()
