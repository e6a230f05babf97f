"""Pinned losses: a tiny seeded model trained 10 steps with each strategy gives the losses recorded here, so a
refactor or a dependency upgrade that changes the numbers is caught (recorded at 17d04c2, before the layout change)."""
from __future__ import annotations

import json

import pytest

import nlptransfer

from .conftest import sentiment_rows, write_csv

#: step losses as train_log.jsonl holds them (6 decimals); 80 train rows, batch 8, 1 epoch = 10 steps
PINNED = {
    "head": [0.692476, 0.69157, 0.691118, 0.693598, 0.685598, 0.693425, 0.695801, 0.691011, 0.708417, 0.702764],
    "head-mean": [0.694548, 0.692389, 0.692874, 0.695506, 0.68892, 0.694681, 0.695211, 0.693643, 0.701754, 0.699098],
    "top_k": [0.693608, 0.684937, 0.687171, 0.694494, 0.667958, 0.691853, 0.710228, 0.694241, 0.744046, 0.725543],
    "full": [0.692175, 0.68207, 0.681102, 0.693469, 0.66612, 0.697556, 0.715376, 0.695409, 0.761418, 0.731415],
    "lora": [0.696211, 0.687982, 0.691602, 0.696229, 0.689916, 0.69457, 0.696169, 0.694088, 0.705111, 0.701186],
    "ia3": [0.694956, 0.692973, 0.692975, 0.694548, 0.686925, 0.694197, 0.696963, 0.691236, 0.706625, 0.701501],
}


@pytest.mark.parametrize("case", sorted(PINNED))
def test_ten_steps_of_each_strategy_give_the_pinned_losses(tiny_models, tmp_path, case):
    strategy, _, pooling = case.partition("-")
    data = write_csv(tmp_path / "data.csv", sentiment_rows(100, seed=11))
    overrides = {"model": str(tiny_models["bert"]), "output.dir": str(tmp_path), "strategy": strategy, "top_k": 1,
                 "pooling": pooling or "native", "training.epochs": 1, "training.batch_size": 8, "training.lr": 1e-3,
                 "training.progress": False, "data.max_length": 32}
    run = nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=overrides)
    log = [json.loads(line) for line in (run.path / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses == pytest.approx(PINNED[case], abs=1e-5)
