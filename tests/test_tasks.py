"""Tasks and the task-kind registry: a second registration of a name is refused naming both, every run has tasks
(one named after its label column), and single_label owns the loss, decoding and verdict statistic it had."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nlptransfer.data.schema import MISSING, LabelMap
from nlptransfer.errors import RecipeError, RegistryError
from nlptransfer.tasks import ONE_HEAD, TaskKind, register_task_kind, run_tasks, task_kind, task_kinds
from nlptransfer.tasks.single_label import SingleLabel


class Imposter(TaskKind):
    name = "single_label"


def test_a_second_registration_of_a_kind_name_is_refused_naming_both():
    with pytest.raises(RegistryError) as refused:
        register_task_kind("single_label", Imposter())
    assert str(refused.value) == (
        "task kind 'single_label' is registered twice: by nlptransfer.tasks.single_label.SingleLabel and again by "
        "tests.test_tasks.Imposter; give one of them another name (or import the module registering it once)")
    assert isinstance(task_kind("single_label"), SingleLabel) and task_kinds() == ["multi_label", "single_label"]
    with pytest.raises(RecipeError, match="unknown task kind 'regression'; registered: multi_label, single_label"):
        task_kind("regression")


def test_a_one_label_run_is_one_task_named_after_its_column_and_multi_task_one_per_column():
    (one,) = run_tasks(["neg", "pos"], column="sentiment").values()
    assert (one.name, one.columns, one.kind_name, one.head, one.index) == ("sentiment", ("sentiment",), "single_label",
                                                                           ONE_HEAD, None)
    assert one.kind.output_size(one) == 2 and one.kind.encode(one, "pos") == 1
    tasks = run_tasks(None, {"tone": LabelMap(["a", "b"]), "topic": LabelMap(["x", "y", "z"])})
    assert [(t.name, t.head, t.index) for t in tasks.values()] == [("tone", "tone", 0), ("topic", "topic", 1)]
    gold, present = tasks["topic"].gold([[0, 2], [1, MISSING], [1, 0]])
    assert gold.tolist() == [2, 0] and present.tolist() == [0, 2]


def test_single_label_loss_decoding_and_verdict_statistic():
    kind = task_kind("single_label")
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    gold = torch.tensor([0, 1, 1])
    plain = torch.nn.functional.cross_entropy(logits, gold)
    assert float(kind.loss(logits, gold, masked=False)) == float(plain)
    assert float(kind.loss(logits, gold)) == pytest.approx(float(plain), abs=1e-7)
    none = kind.loss(logits, torch.full((3,), MISSING))  # no labelled row: 0, not NaN
    assert float(none) == 0.0
    probs = kind.decode(logits.numpy())
    np.testing.assert_allclose(probs, torch.softmax(logits, 1).numpy(), atol=1e-7)
    assert kind.verdict_statistic(np.array([0, 0, 1]), probs).tolist() == [True, False, False]  # a tie predicts id 0
    assert kind.loss_value(logits.numpy(), gold.numpy()) == pytest.approx(float(plain))
