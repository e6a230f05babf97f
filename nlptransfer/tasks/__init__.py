"""Tasks: every run is a set of named tasks, each a head over label column(s) of one registered kind."""
from __future__ import annotations

from . import multi_label, single_label  # noqa: F401  (register the shipped kinds)
from .kind import (DEFAULT_KIND, ONE_HEAD, Task, TaskKind, decode, is_multitask, label_slots, register_task_kind, run_tasks,
                   task_kind, task_kinds)

__all__ = ["Task", "TaskKind", "register_task_kind", "task_kind", "task_kinds", "run_tasks", "is_multitask", "label_slots", "decode",
           "DEFAULT_KIND", "ONE_HEAD"]
