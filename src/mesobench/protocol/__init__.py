"""The evaluation protocol of one run, without any store: typed settings built once from the
config (:mod:`.settings`), the estimator a model config names (:mod:`.estimators`), shapes a
model refuses up front (:mod:`.limits`), the fold pipeline (:mod:`.pipeline`: validation split,
preprocessing, optional hyperparameter search (:mod:`.hpo`) and γ search
(:mod:`.gamma_search`), fit, metrics, explanations), resource measurement (:mod:`.resources`)
and the one-tuning-protocol rule of an experiment (:mod:`.tuning_protocol`).

May import :mod:`mesobench.config`, :mod:`mesobench.data`, :mod:`mesobench.models` and
:mod:`mesobench.metrics`; never MLflow, :mod:`mesobench.store`, :mod:`mesobench.runner` or
:mod:`mesobench.report` (``tests/test_layout.py`` enforces it).
"""
