"""Training under torchrun: two gloo processes on a tiny data set, against one process with the same global batch."""

import json
import os
import subprocess
import sys

import pytest

from .conftest import write_report

TINY = ["--width", "0.25", "--reduction", "8", "--image-size", "16", "--batch-size", "32", "--epochs", "4",
        "--lr", "2.0", "--translate", "1", "--lookahead-from", "1", "--fp32"]


def run(cmd, env):
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_processes_train_like_one_with_the_same_global_batch(tiny_dataset, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    common = ["--data", str(tiny_dataset), "--name", "net", "--cache-dir", str(tmp_path / "cache"), *TINY]
    run([sys.executable, "-m", "cbam_viz.train", *common, "--out", str(tmp_path / "one"),
         "--checkpoint-dir", str(tmp_path / "ck1")], env)
    two = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cbam_viz.train",
               *common, "--out", str(tmp_path / "two"), "--checkpoint-dir", str(tmp_path / "ck2")], env)
    one_card = json.loads((tmp_path / "one" / "net.json").read_text())
    two_card = json.loads((tmp_path / "two" / "net.json").read_text())
    assert set(one_card) == set(two_card)  # the same result shape
    assert two_card["training"]["processes"] == 2 and "processes" not in one_card["training"]
    assert two_card["training"]["batch_size"] == one_card["training"]["batch_size"] == 32
    assert [h["epoch"] for h in two_card["training"]["history"]] == [1, 2, 3, 4]
    assert two.stderr.count("net: epoch 4") == 1  # logged by rank 0 only
    one_loss = [h["loss"] for h in one_card["training"]["history"]]
    two_loss = [h["loss"] for h in two_card["training"]["history"]]
    # the same batches and an averaged gradient: the losses differ only through each process's BatchNorm statistics
    assert all(abs(a - b) <= 0.05 * a for a, b in zip(one_loss, two_loss)), (one_loss, two_loss)
    write_report("distributed.txt", [f"one process, loss per epoch: {one_loss}", f"two gloo processes: {two_loss}"])
    assert list((tmp_path / "ck2").iterdir())  # rank 0's checkpoint

