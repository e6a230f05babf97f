"""Listeners of the run's events: the run-folder log, the progress bar, and whatever a caller adds (a Ray Tune
reporter, a dashboard). The loop calls them; it never writes a log line or draws a bar itself. Only the main
process gets listeners that write."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..run import RunFolder

if TYPE_CHECKING:
    from ..data import Splits
    from ..recipe import Recipe


class Listener:
    """Does nothing on every event; subclasses override the events they care about."""

    def on_data(self, recipe: "Recipe", splits: "Splits") -> None:
        """The data was read, checked and split (before the model loads)."""

    def on_train_begin(self, total_steps: int, step: int) -> None:
        """Training starts (or resumes) at optimizer step `step` of `total_steps`."""

    def on_step(self, record: dict) -> None:
        """An optimizer step: {"step", "epoch", "loss", "lr"} and "terms" when several loss terms are summed."""

    def on_evaluation(self, record: dict, metric: str) -> None:
        """A validation evaluation: {"step", "epoch", "seconds", "eval": {"loss", "accuracy", "macro_f1"}}."""

    def on_train_end(self) -> None:
        """Training ended (finished, stopped early, or failed)."""


class RunLog(Listener):
    """Appends every step and evaluation record to the run folder's train_log.jsonl."""

    def __init__(self, run: RunFolder):
        self.run = run

    def on_step(self, record: dict) -> None:
        self.run.append_log(record)

    def on_evaluation(self, record: dict, metric: str) -> None:
        self.run.append_log(record)


class ProgressBar(Listener):
    """A tqdm bar of optimizer steps, with the last loss and validation score."""

    def __init__(self):
        self.bar = None

    def on_train_begin(self, total_steps: int, step: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total_steps, initial=step, desc="training", unit="step", dynamic_ncols=True)

    def on_step(self, record: dict) -> None:
        self.bar.update(1)
        self.bar.set_postfix_str(f"loss {record['loss']:.4f}", refresh=False)

    def on_evaluation(self, record: dict, metric: str) -> None:
        self.bar.set_postfix_str(f"val {metric} {record['eval'][metric]:.4f}")

    def on_train_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


def notify(listeners, event: str, *args) -> None:
    """Call `event` on every listener."""
    for listener in listeners:
        getattr(listener, event)(*args)
