"""What a person browsing the MLflow UI relies on: the experiment's kind, a run's datasets, source,
description, nesting under its sweep, training curves and picture."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from mesobench.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, Tracker


def test_a_new_experiment_is_a_model_training_experiment(store):
    tracker = Tracker(store, "mesobench")
    exp = MlflowClient(tracking_uri=store).get_experiment(tracker.experiment_id)
    assert exp.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"


def test_an_existing_experiment_gets_the_kind_but_a_kind_set_by_hand_is_kept(store):
    client = MlflowClient(tracking_uri=store)
    old = client.create_experiment("old")
    Tracker(store, "old")
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    mine = client.create_experiment("mine", tags={EXPERIMENT_KIND_TAG: "finetuning"})
    Tracker(store, "mine")
    assert client.get_experiment(mine).tags[EXPERIMENT_KIND_TAG] == "finetuning"
