"""Under 2-process gloo DDP, every rank's ``compute()`` equals single-process and sklearn values.

Each rank sees a different, unequal shard (so the all-gather must handle ragged sizes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from dermkit.metrics import Metric, balanced_accuracy, macro_auroc

WORKER = r"""
import json, sys
import numpy as np
import torch.distributed as dist
from dermkit.metrics import Metric, balanced_accuracy, macro_auroc, macro_average_precision

dist.init_process_group("gloo")
rank = dist.get_rank()
data = np.load(sys.argv[1])
probs, labels = data["probs"], data["labels"]
shard = slice(0, 70) if rank == 0 else slice(70, None)  # ragged: 70 and 131 rows
metrics = {"auroc": Metric(macro_auroc), "ap": Metric(macro_average_precision),
           "bacc": Metric(balanced_accuracy)}
for start in range(shard.start, shard.stop or len(labels), 25):
    stop = min(start + 25, shard.stop or len(labels))
    for metric in metrics.values():
        metric.update(probs[start:stop], labels[start:stop])
values = {name: metric.compute() for name, metric in metrics.items()}
with open(f"{sys.argv[2]}/rank{rank}.json", "w") as handle:
    json.dump(values, handle)
dist.barrier()  # gloo aborts a rank whose peer leaves mid-collective
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_process_gloo_matches_single_process(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 201)
    probs = rng.dirichlet(np.ones(4), 201) + 0.3 * np.eye(4)[labels]
    probs /= probs.sum(axis=1, keepdims=True)
    np.savez(tmp_path / "data.npz", probs=probs, labels=labels)
    (tmp_path / "worker.py").write_text(WORKER)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(tmp_path / "worker.py"),
        str(tmp_path / "data.npz"),
        str(tmp_path),
    ]
    # own session, so a hang is cleaned up with all of torchrun's workers
    launcher = subprocess.Popen(
        command,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = launcher.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        raise
    assert launcher.returncode == 0, output[-3000:]

    single = Metric(macro_auroc)
    single.update(probs, labels)
    expected = {
        "auroc": skm.roc_auc_score(labels, probs, multi_class="ovr"),
        "ap": skm.average_precision_score(np.eye(4)[labels], probs, average="macro"),
        "bacc": skm.balanced_accuracy_score(labels, probs.argmax(axis=1)),
    }
    assert single.compute() == pytest.approx(expected["auroc"])
    assert balanced_accuracy(probs, labels) == pytest.approx(expected["bacc"])
    for rank in (0, 1):
        values = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert values == pytest.approx(expected)
