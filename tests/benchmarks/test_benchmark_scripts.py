"""The benchmarks/ scripts still run (``--quick``, CPU) and print the ratios their README quotes.

These check that the scripts work against the current API and that what they print is well-formed (positive,
finite times and ratios); the figures themselves are read on a quiet machine, never asserted here.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT), str(ROOT / "src")))}  # this tree's pgdat
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{script}", "--quick", "--device", "cpu", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in output:\n{text}"
    value = float(match.group(1))
    assert math.isfinite(value) and value > 0
    return value


def test_bench_attack_prints_each_contender_with_time_and_accuracy():
    out = run("bench_attack", "--no-bf16")
    for row in ("plain fp32 loop", "pgdat.attacks.pgd fp32", "pgdat.eval.evaluate pgd-10"):
        seconds = re.findall(rf"^{re.escape(row)}.*?\s([0-9.]+)\s+([0-9.]+)x\s+([0-9.]+)%$", out, re.M)
        assert seconds, f"no row {row!r}:\n{out}"
        for t, speed, acc in seconds:
            assert float(t) > 0 and float(speed) > 0 and 0 <= float(acc) <= 100


def test_bench_at_step_prints_ratios_to_the_floor_and_the_plain_loop():
    out = run("bench_at_step")
    assert 0.2 < number(r"pgdat step / floor = ([0-9.]+)", out) < 20
    number(r"plain fp32 loop / pgdat step = ([0-9.]+)x", out)


def test_bench_epoch_prints_the_overhead_share():
    out = run("bench_epoch")
    share = float(re.search(r"checkpoint/logging = ([0-9.]+)% of epoch time", out).group(1))
    assert 0 <= share <= 100
    number(r"whole run ([0-9.]+) s", out)


def test_bench_epoch_extra_mode_prints_the_mixing_share():
    out = run("bench_epoch", "--extra", "2000")
    share = float(re.search(r"data\.extra mixing = ([0-9.]+)% of epoch time", out).group(1))
    assert 0 <= share <= 100
    assert re.search(r"data\.extra: 2000 images .*, 32 extra \+ 32 real per batch", out), out


def test_bench_memory_prints_both_peaks():
    out = run("bench_memory")
    for row in ("pgdat Trainer PGD-AT step", "plain fp32 AT loop"):
        number(rf"{re.escape(row)}\s+[0-9.]+\s+([0-9.]+)", out)


def test_bench_autoattack_prints_both_contenders_with_time_and_accuracy():
    out = run("bench_autoattack")
    ref = number(r"reference pyautoattack \(plain, batch 250\):\s+([\d.]+) s", out)
    ours = number(r"pgdat cascade \(batch \d+, \w+, \w+\):\s+([\d.]+) s", out)
    speedup = number(r"speed-up ([\d.]+)x", out)  # times are printed to 0.1 s and the ratio to 0.01
    assert (ref - 0.05) / (ours + 0.05) - 0.005 <= speedup <= (ref + 0.05) / max(ours - 0.05, 1e-9) + 0.005
    # where each contender's time went: one figure per attack, summing to at most the contender's wall time
    ref_parts = re.findall(r"(\S+) ([\d.]+) s", re.search(r"reference seconds per attack: (.*)", out)[1])
    ours_parts = re.findall(r"(\S+) ([\d.]+) s", re.search(r"pgdat seconds per attack: (.*)", out)[1])
    standard = ["apgd-ce", "apgd-t", "fab-t", "square"]  # the reference stops once no point is left robust
    assert ref_parts and [k for k, _ in ref_parts] == standard[:len(ref_parts)]
    assert [k for k, _ in ours_parts] == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
    assert sum(float(v) for _, v in ref_parts) <= ref + 0.1 and sum(float(v) for _, v in ours_parts) <= ours + 0.1
    assert re.search(r"robust accuracy difference [+-][\d.]+ points", out)
