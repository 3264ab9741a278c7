"""The runner: one job per configuration (:mod:`.execute`, :mod:`.job` in a time-limited child
process), and the Hydra callbacks of a sweep (:mod:`.sweep_parent`, :mod:`.progress`, the SLURM
preflight :mod:`.slurm` and :mod:`.slurm_states`).

The top layer: it may import every other subpackage, and nothing but the entry point
:mod:`mesobench.run` imports it (``tests/test_layout.py`` enforces it).
"""
