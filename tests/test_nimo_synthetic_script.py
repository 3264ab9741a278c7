"""scripts/nimo_synthetic.py: the oracle ceiling and the acceptance table built on it.

The oracle predicts with the generator's true f, so its MSE is the noise floor and its
accuracy the Bayes rule's; the population Bayes accuracy bounds every classifier. These tests
pin both, and that the report marks a target above that bound as unreachable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import load_script

script = load_script("nimo_synthetic")


def test_the_oracle_scores_the_noise_floor_and_recovers_the_true_coefficients():
    row = script.evaluate("oracle", "r1", 0)
    # 100 test rows with ε ~ N(0, 0.1²): the MSE is σ² up to sampling error
    assert row["mse"] == pytest.approx(0.01, rel=0.35)
    assert row["coef_mae"] == 0.0


def test_the_oracle_on_a_classification_task_is_the_bayes_rule():
    row = script.evaluate("oracle", "c1", 0)
    assert 0.8 <= row["accuracy"] <= 0.97
    assert row["auroc"] > 0.9


def test_population_bayes_accuracy_of_c1_is_below_the_papers_nimo():
    """C1's labels are Bernoulli(σ(f)): no classifier's expected accuracy exceeds 0.895."""
    bayes = script.population_bayes_accuracy("c1", n=200_000)
    assert bayes == pytest.approx(0.895, abs=0.004)
    assert bayes < 0.92
    # C2's logit is large almost everywhere: near-deterministic labels
    assert script.population_bayes_accuracy("c2", n=50_000) > 0.98


def test_the_report_marks_a_target_above_the_bayes_accuracy_as_unreachable():
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(
        [
            {
                "model": "nimo",
                "task": "c1",
                "seed": s,
                "accuracy": 0.86 + 0.01 * rng.random(),
                "auroc": 0.93,
                "coef_mae": 0.4,
                "fit_s": 10.0,
            }
            for s in range(3)
        ]
        + [
            {
                "model": "oracle",
                "task": "c1",
                "seed": s,
                "accuracy": 0.9,
                "auroc": 0.95,
                "coef_mae": 0.0,
                "fit_s": 0.0,
            }
            for s in range(3)
        ]
        + [
            {"model": "nimo", "task": "r1", "seed": s, "mse": 0.02, "coef_mae": 0.02, "fit_s": 5.0}
            for s in range(3)
        ]
        + [
            {
                "model": "oracle",
                "task": "r1",
                "seed": s,
                "mse": 0.011,
                "coef_mae": 0.0,
                "fit_s": 0.0,
            }
            for s in range(3)
        ]
    )
    text = script.report(rows, ["nimo", "oracle"], {}, 3)
    c1 = next(line for line in text.splitlines() if line.startswith("| c1 accuracy ≥ 0.92"))
    assert "| no (unreachable: the target is above the Bayes accuracy 0.89" in c1
    assert "0.900; population 0.89" in c1
    r1 = next(line for line in text.splitlines() if line.startswith("| r1 MSE ≤ 0.024"))
    assert r1 == "| r1 MSE ≤ 0.024 | 0.020 | 0.011 | yes |"
