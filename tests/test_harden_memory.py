"""Class 5 of issue 13: small inputs cannot make a command allocate what the machine lacks.

Sizes are read from headers before anything is inflated or allocated: each `.npz` member's npy
header against its declared uncompressed size (a 1 KB file claiming 16 TB is damaged), their
total against the memory available (a zip bomb is refused), a weights file's shapes against the
model, and a model's weights against the memory available ("the weights need X GiB; this machine
has Y GiB"). Peak RSS is measured in the subprocess.
"""

import numpy as np
import pytest
from harden import (
    assert_refused,
    layerctl,
    layerctl_peak_rss,
    snapshot,
    tiny_project,
    write_zip_bomb,
)

from layerctl.memory import available_bytes

BASELINE_MIB = 300  # python + numpy + layerctl start-up is well below; a bomb inflates 400 MiB
REAL_MIB = 400


def rows_beyond_memory(row_bytes: int) -> int:
    return 2 * available_bytes() // row_bytes + 1


@pytest.fixture
def project(tmp_path):
    tiny_project(tmp_path)
    done = layerctl("train", "tiny.yaml", "--out", "run", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path


def test_zip_bomb_as_data_is_refused_before_inflating(project):
    rows = rows_beyond_memory(16)
    write_zip_bomb(project / "bomb.npz", {"x": (rows, 4), "y": (rows,)}, real_mib=REAL_MIB)
    assert (project / "bomb.npz").stat().st_size < 2_000_000
    result, peak = layerctl_peak_rss("train", "tiny.yaml", "--data", "bomb.npz", "--out", "b",
                                     "-q", cwd=project)
    assert_refused(result, "bomb.npz", "GiB; this machine has", "available")
    assert peak < BASELINE_MIB, f"peak RSS {peak:.0f} MiB"


def test_zip_bomb_as_predict_input_is_refused(project):
    rows = rows_beyond_memory(16)
    write_zip_bomb(project / "bomb.npz", {"x": (rows, 4)}, real_mib=REAL_MIB)
    result, peak = layerctl_peak_rss("predict", "tiny.yaml", "bomb.npz", "--weights",
                                     "run/weights.npz", cwd=project)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "GiB" in result.stderr
    assert peak < BASELINE_MIB, f"peak RSS {peak:.0f} MiB"


def test_zip_bomb_as_weights_is_refused_by_its_shapes(project):
    write_zip_bomb(project / "bomb.npz", {"dense/kernel": (4, rows_beyond_memory(16))},
                   real_mib=REAL_MIB)
    result, peak = layerctl_peak_rss("predict", "tiny.yaml", "data.npz", "--weights",
                                     "bomb.npz", cwd=project)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "weight 'dense/kernel' has shape (4, " in result.stderr
    assert peak < BASELINE_MIB, f"peak RSS {peak:.0f} MiB"


def test_zip_bomb_as_checkpoint_is_refused(project):
    checkpoint = project / "run" / "checkpoint.npz"
    with np.load(checkpoint) as archive:
        honest = {key: archive[key] for key in archive.files if key != "weights/dense/kernel"}
    write_zip_bomb(checkpoint, {"weights/dense/kernel": (rows_beyond_memory(4),)},
                   real_mib=REAL_MIB, honest=honest)
    before = snapshot(project)
    result, peak = layerctl_peak_rss("train", "tiny.yaml", "--out", "run", "--resume",
                                     "--epochs", "5", "-q", cwd=project)
    assert_refused(result, "checkpoint.npz", "GiB; this machine has")
    assert peak < BASELINE_MIB, f"peak RSS {peak:.0f} MiB"
    after = snapshot(project)
    for name in ("run/weights.npz", "run/checkpoint.npz", "run/history.csv"):
        assert after[name] == before[name]


@pytest.mark.parametrize("role", ["data", "weights"])
def test_1kb_npz_claiming_16_tb_is_damaged(project, role):
    write_zip_bomb(project / "liar.npz", {"x" if role == "data" else "dense/kernel":
                                          (4 * 10**12,)}, declared=1024)
    assert (project / "liar.npz").stat().st_size < 1024
    if role == "data":
        args = ["train", "tiny.yaml", "--data", "liar.npz", "--out", "b", "-q"]
    else:
        args = ["predict", "tiny.yaml", "data.npz", "--weights", "liar.npz"]
    result, peak = layerctl_peak_rss(*args, cwd=project)
    assert_refused(result, "liar.npz", "claims shape (4000000000000,) (14901.2 GiB) but holds "
                   "1,024 bytes: the file is damaged")
    assert peak < BASELINE_MIB


@pytest.mark.parametrize("command", ["train", "predict", "evaluate"])
def test_model_too_big_for_memory_says_so_before_allocating(project, command):
    spec = project / "tiny.yaml"
    spec.write_text(spec.read_text().replace("input_shape: [4]", "input_shape: [1000]")
                    .replace("units: 5", "units: 1000000000"))
    np.savez(project / "wide.npz", x=np.zeros((2, 1000), np.float32), y=np.zeros(2, np.int64))
    args = {"train": ["--data", "wide.npz", "--out", "big", "-q"],
            "predict": ["wide.npz", "--weights", "run/weights.npz"],
            "evaluate": ["--weights", "run/weights.npz", "--data", "wide.npz"]}[command]
    result, peak = layerctl_peak_rss(command, spec, *args, cwd=project)
    line = assert_refused(result, "the model's 1,004,000,000,003 weights (and their gradients) "
                          "need 7480.4 GiB; this machine has")
    assert line.endswith("GiB available [LC403]")
    assert peak < BASELINE_MIB
