"""Everything MLflow: the one door to the tracking store.

Only this subpackage builds an ``MlflowClient``, pages through runs or knows the backend
(:mod:`.tracking`: claims, logging, the SQLite store's set-up; :mod:`.runs`: runs read back as
the runs table), and it owns what a run looks like in the MLflow UI (:mod:`.run_note`,
:mod:`.run_pictures`, dataset inputs in :mod:`.inputs`, the UI launcher :mod:`.ui`), the
credentials of a shared server (:mod:`.credentials`) and the store audit (:mod:`.integrity`).

May import :mod:`mesobench.config`, :mod:`mesobench.data` and :mod:`mesobench.report` (a run's
pictures are the report's plots); never :mod:`mesobench.runner` or :mod:`mesobench.planning`.
"""
