"""What a run is: where configs live and how they compose (:mod:`.paths`), which settings make a
run's identity (:mod:`.identity`, the run key) and the names under which that identity is
recorded (:mod:`.tags`).

The bottom layer: it imports nothing of mesobench but :mod:`mesobench.errors`, and every other
subpackage may import it. It never imports MLflow, so the report side reads run identity
without a store.
"""
