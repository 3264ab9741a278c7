"""What a sweep will cost before it is paid for: the plan of a sweep (:mod:`.plan`, run as
``python -m mesobench.planning.plan``), the cost model fitted on measured shapes
(:mod:`.costs`), the shape-table builder (:mod:`.shape_table`) and the torch models' speed
grid (:mod:`.speed`).

May import :mod:`mesobench.config`, :mod:`mesobench.protocol` and :mod:`mesobench.store` (to
know which runs are already done); never :mod:`mesobench.runner`.
"""
