"""Estimators of the benchmark, all with the scikit-learn API (the runner builds and fits them:
docs/running.md).

Baselines (:mod:`.baselines`), the TabResNet network (:mod:`.tabresnet`), IMN (:mod:`.imn`),
LFR-IMN (:mod:`.lfr_imn`), NIMO (:mod:`.nimo`), the NIMO paper's Lasso and MLP
(:mod:`.sparse_mlp`) and the synthetic tasks' oracle (:mod:`.oracle`). The torch building blocks
shared with the IMN family live in :mod:`.trunk` (TabResNet and MLP trunks) and :mod:`.training`
(mini-batch trainer). Deliberately failing estimators for tests are in :mod:`mesobench.models.debug`.
"""

from mesobench.models.baselines import (
    CatBoostClassifier,
    CatBoostRegressor,
    LogisticRegressionClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
    XGBoostClassifier,
    XGBoostRegressor,
)
from mesobench.models.device import resolve_device
from mesobench.models.explanation import Explanation
from mesobench.models.imn import IMNClassifier, IMNRegressor
from mesobench.models.lfr_imn import LFRIMNClassifier, LFRIMNRegressor
from mesobench.models.nimo import NIMOClassifier, NIMORegressor
from mesobench.models.oracle import OracleClassifier, OracleRegressor
from mesobench.models.sparse_mlp import LassoClassifier, LassoRegressor, MLPClassifier, MLPRegressor
from mesobench.models.tabresnet import TabResNetClassifier, TabResNetRegressor

__all__ = [
    "Explanation",
    "CatBoostClassifier",
    "CatBoostRegressor",
    "IMNClassifier",
    "IMNRegressor",
    "LFRIMNClassifier",
    "LFRIMNRegressor",
    "LassoClassifier",
    "LassoRegressor",
    "LogisticRegressionClassifier",
    "MLPClassifier",
    "MLPRegressor",
    "NIMOClassifier",
    "NIMORegressor",
    "OracleClassifier",
    "OracleRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "TabResNetClassifier",
    "TabResNetRegressor",
    "XGBoostClassifier",
    "XGBoostRegressor",
    "resolve_device",
]
