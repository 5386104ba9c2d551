"""Ditto mode's calibrated 1/sqrt(x) and 1/x: accurate over their range, fewer rounds, the same in fixed point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from secure_infer.mpc.calibrate import calibrate, calibration_ids, measure_ranges
from secure_infer.mpc.inverse import MARGIN, TOLERANCE, plan_for_range
from secure_infer.mpc.reference import DITTO
from secure_infer.mpc.weights import random_weights, save_model_dir
from tests.test_mpc import SPEC, VOCAB

CRYPTEN_ROUNDS = 8 + 3 * 8  # CrypTen's inv_sqrt as plain mode runs it: exp (8 squarings), 8 Newton steps of 3


@pytest.mark.parametrize(("lo", "hi"), [(0.003, 0.03), (0.13, 0.46), (0.5, 170.0), (0.6, 35.0)])
def test_inverse_sqrt_plan_is_accurate_over_the_widened_range_in_far_fewer_rounds(lo: float, hi: float) -> None:
    """The ranges are MiniLM's (embeddings, attention and feed-forward LayerNorms of the distilled model)."""
    plan = plan_for_range(lo, hi, "sqrt")
    var = np.geomspace(lo / MARGIN, hi * MARGIN, 5000)
    error = np.abs(plan.evaluate(var) * np.sqrt(var) - 1.0)
    assert float(error.max()) < TOLERANCE
    assert plan.rounds <= 18 < CRYPTEN_ROUNDS  # at most 18 sequential products instead of 32


@pytest.mark.parametrize(("lo", "hi"), [(0.05, 3.3), (0.5, 26.0)])
def test_reciprocal_plan_is_accurate_in_fewer_rounds(lo: float, hi: float) -> None:
    """MiniLM's 2Quad softmax denominators (normalised by the row length), against CrypTen's 28 rounds."""
    plan = plan_for_range(lo, hi, "reciprocal")
    x = np.geomspace(lo / MARGIN, hi * MARGIN, 5000)
    assert float(np.abs(plan.evaluate(x) * x - 1.0).max()) < TOLERANCE
    assert plan.rounds <= 12  # against 28


def test_calibration_covers_every_layer_norm_and_softmax_of_the_model(tmp_path: Path) -> None:
    directory = save_model_dir(tmp_path / "tiny", SPEC, random_weights(SPEC, seed=3), VOCAB)
    ids = calibration_ids(directory, SPEC)
    assert len(ids) > 100 and max(map(len, ids)) <= SPEC.max_positions
    ln, sm = measure_ranges(random_weights(SPEC, seed=3), SPEC, ids, DITTO)
    assert len(ln) == 2 * SPEC.layers + 1 and len(sm) == SPEC.layers
    assert all(0 < lo <= hi for lo, hi in ln + sm)
    calibration = calibrate(random_weights(SPEC, seed=3), SPEC, directory, DITTO)
    assert [p.power for p in calibration.layer_norm] == ["sqrt"] * len(ln)
    assert [p.power for p in calibration.softmax] == ["reciprocal"] * len(sm)
    for (lo, hi), plan in zip(ln + sm, calibration.layer_norm + calibration.softmax, strict=True):
        x = np.geomspace(lo, hi, 200)
        assert float(np.abs(plan.evaluate(x) * x**plan.exponent - 1.0).max()) < TOLERANCE
    assert type(calibration).from_dict(calibration.as_dict()) == calibration  # what party 1 sends party 0


_FIXED_POINT = """
import json, os, sys, torch
os.environ.update(RANK="0", WORLD_SIZE="1", DISTRIBUTED_BACKEND="gloo", RENDEZVOUS="file://" + sys.argv[1])
from secure_infer.mpc.compat import import_crypten
from secure_infer.mpc.inverse import InversePlan, inverse_shared
crypten = import_crypten()
crypten.init()
crypten.cfg.encoder.precision_bits = 14  # Ditto mode's precision
answers = []
for plan_dict, values in json.loads(sys.argv[2]):
    plan = InversePlan(**plan_dict)
    x = crypten.cryptensor(torch.tensor(values).mul(plan.scale)[:, None])
    answers.append((inverse_shared(crypten, x, plan).get_plain_text()[:, 0] * plan.scale**plan.exponent).tolist())
print(json.dumps(answers))
"""


def test_shared_evaluation_matches_float64_in_fixed_point(tmp_path: Path) -> None:
    """The CrypTen code path (batched Goldschmidt products, 14-bit fixed point) computes what the plan says."""
    plans = [plan_for_range(0.5, 170.0, "sqrt"), plan_for_range(0.05, 3.3, "reciprocal")]
    cases = [(plan, np.geomspace(0.5 / MARGIN, 170.0 * MARGIN, 64)) for plan in plans[:1]]
    cases.append((plans[1], np.geomspace(0.05 / MARGIN, 3.3 * MARGIN, 64)))
    root = Path(__file__).resolve().parents[1]
    request = json.dumps([(plan.as_dict(), values.tolist()) for plan, values in cases])
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _FIXED_POINT, str(tmp_path / "rdv"), request],
        env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    answers = json.loads(proc.stdout.strip().splitlines()[-1])
    for (plan, values), got in zip(cases, answers, strict=True):
        assert np.allclose(got, plan.evaluate(values), rtol=3e-3, atol=0), plan.power
        assert np.allclose(np.array(got) * values**plan.exponent, 1.0, atol=4e-3), plan.power
