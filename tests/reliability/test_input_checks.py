"""Bad attack inputs (labels out of range, wrong label dtype/shape/device, NaN images), bad eps strings, and stale
temp files of interrupted checkpoint writes: each gives a PgdatError naming the problem, or is cleaned up safely."""

from __future__ import annotations

import math
import os
import signal
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from pgdat.attacks import fgsm, pgd
from pgdat.checkpoint import TEMP_FILE, atomic_write_bytes, load_checkpoint, remove_stale_temps, save_checkpoint
from pgdat.config import load_config
from pgdat.errors import PgdatError
from pgdat.threat import ThreatModel, parse_eps
from pgdat.training import Trainer

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
torch.manual_seed(0)
MODEL = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()  # 3 classes
X = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 1, 2, 0, 1, 2])
ATTACKS = {"pgd": lambda x, y: pgd(MODEL, x, y, eps=0.1, step_size=0.05, steps=2),
           "fgsm": lambda x, y: fgsm(MODEL, x, y, eps=0.1)}

# (labels, images, the message the user sees)
BAD = {
    "label too large": (torch.tensor([0, 1, 2, 0, 1, 3]), X,
                        "labels span [0, 3] but the model has 3 outputs (classes 0..2): wrong num_classes, or a model "
                        "trained on another dataset"),
    "negative label": (torch.tensor([0, -1, 2, 0, 1, 2]), X, "labels span [-1, 2] but the model has 3 outputs"),
    "float labels": (Y.float(), X, "labels must be int64 class indices (torch.long), got dtype torch.float32; "
                                   "pass y.long()"),
    "int32 labels": (Y.int(), X, "labels must be int64 class indices (torch.long), got dtype torch.int32"),
    "one-hot labels": (nn.functional.one_hot(Y, 3), X, "expected images (B, C, H, W) and labels (B,), got "
                                                        "(6, 1, 4, 4) and (6, 3)"),
    "too few labels": (Y[:4], X, "expected images (B, C, H, W) and labels (B,), got (6, 1, 4, 4) and (4,)"),
    "labels on another device": (Y.to("meta"), X, "labels are on meta but images on cpu; move both to the same "
                                                  "device"),
    "NaN image": (Y, X.clone().index_fill_(0, torch.tensor([2]), math.nan), "images contain NaN"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_labels_and_images_are_refused_before_any_loss(attack, case):
    y, x, message = BAD[case]
    with pytest.raises(PgdatError) as info:
        ATTACKS[attack](x, y)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_model_output_that_is_not_logits_is_refused(attack):
    flat = nn.Sequential(MODEL, nn.Flatten(0))  # (B * C,) instead of (B, C)
    with pytest.raises(PgdatError, match=r"the model returned shape \(18,\) for a batch of 6; attacks need logits"):
        {"pgd": pgd, "fgsm": fgsm}[attack](flat, X, Y, eps=0.1, **({"step_size": 0.05, "steps": 2}
                                                                 if attack == "pgd" else {}))


@FAST
@given(labels=st.lists(st.integers(-4, 6), min_size=6, max_size=6), steps=st.integers(1, 3),
       targeted=st.booleans())
def test_label_range_property(labels, steps, targeted):
    """Any labels: a PgdatError exactly when one lies outside [0, 3), else a valid attack (targeted too)."""
    y = torch.tensor(labels)
    inside = all(0 <= v < 3 for v in labels)
    try:
        x_adv = pgd(MODEL, X, y, eps=0.1, step_size=0.05, steps=steps, targeted=targeted)
    except PgdatError as e:
        assert not inside and f"labels span [{min(labels)}, {max(labels)}] but the model has 3 outputs" in str(e)
        return
    assert inside and float((x_adv - X).abs().max()) <= 0.1 + 1e-6


def test_the_label_check_costs_nothing_in_training_attacks():
    """check=False (training's craft, the evaluation cascade) skips it: no host sync in the hot loop."""
    x_adv = pgd(MODEL, X, Y, eps=0.1, step_size=0.05, steps=2, check=False)
    assert x_adv.shape == X.shape


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "1e999", "-0.1", "-8/255", "1e999/1e999", "8/-255"])
def test_parse_eps_refuses_non_finite_and_negative_values_naming_them(text):
    with pytest.raises(PgdatError) as info:
        parse_eps(text)
    assert str(info.value) == f"eps must be a finite number >= 0, got '{text}'; write it like 8/255 or 0.031"
    with pytest.raises(PgdatError, match=f"--step-size must be a finite number >= 0, got '{text}'"):
        parse_eps(text, "--step-size")


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0])
def test_parse_eps_refuses_bad_numbers_too(value):
    with pytest.raises(PgdatError, match=f"eps must be a finite number >= 0, got '{value}'"):
        parse_eps(value)


def test_parse_eps_accepts_fractions_decimals_and_zero():
    assert parse_eps("8/255") == pytest.approx(8 / 255) and parse_eps(" 0.031 ") == 0.031
    assert parse_eps("-0") == 0.0 and math.copysign(1.0, parse_eps("-0")) == 1.0 and parse_eps(2) == 2.0


@FAST
@given(text=st.one_of(st.text(max_size=12), st.from_regex(r"-?(\d{0,3}(\.\d{0,3})?|nan|inf|1e999)(/-?\d{0,4})?",
                                                             fullmatch=True)))
def test_parse_eps_gives_a_usable_radius_or_an_error_naming_the_value(text):
    try:
        value = parse_eps(text)
    except PgdatError as e:
        assert f"'{text}'" in str(e)
        return
    assert isinstance(value, float) and math.isfinite(value) and value >= 0  # "nan", "-1", "1e999" are refused
    assert ThreatModel("l2", value).eps == value  # and the number is a radius the threat model takes


# ------------------------------------------------------------------------------------- stale temp files
def _interrupted_write(path: Path) -> Path:
    """Start an atomic write of ``path`` in a child process and SIGKILL it mid-write; returns the temp file left."""
    pid = os.fork()
    if pid == 0:  # child: write the first bytes, then wait to be killed
        def hang(f) -> None:  # noqa: ANN001
            f.write(b"partial")
            f.flush()
            os.kill(os.getpid(), signal.SIGSTOP)

        try:
            atomic_write_bytes(path, hang)
        finally:
            os._exit(1)
    os.waitpid(pid, os.WUNTRACED)  # stopped inside the write
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    (temp,) = [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]
    return temp


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_run_start_removes_only_pgdat_temp_files(tmp_path, tiny_overrides):
    run = tmp_path / "run"
    cfg = load_config("default", tiny_overrides + ["train.epochs=1", "data.n_train=128"])
    Trainer(cfg, run, callbacks=[]).start()  # writes init.pt
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, run / "last.pt")
    temps = [_interrupted_write(run / "last.pt"), _interrupted_write(run / "snapshots" / "epoch_1.pt")]
    assert all(TEMP_FILE.match(t.name) for t in temps)
    others = ["notes.tmp", ".last.pt.tmp", ".last.pt.abcdefgh.tmp", ".last.pt.pgdat-abc.tmp",
              "last.pt.pgdat-abcdefgh.tmp", ".hidden", "epoch_1.pt.tmp"]
    for name in others:
        (run / name).write_text("not pgdat's")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / ".last.pt.pgdat-abcdefgh.tmp").write_text("outside the run")
    (run / "linked").symlink_to(tmp_path / "elsewhere")  # never followed
    before = (run / "last.pt").read_bytes()
    restarted = Trainer(cfg, run, callbacks=[]).start()  # a run (re)starting in the directory; resuming does the same
    # only the run's own temp files in its own directory: a subfolder's may be another live run's write
    assert restarted.removed_temps == [temps[0]]
    assert not temps[0].exists() and temps[1].exists()
    assert all((run / name).read_text() == "not pgdat's" for name in others)
    assert (tmp_path / "elsewhere" / ".last.pt.pgdat-abcdefgh.tmp").exists()
    assert (run / "last.pt").read_bytes() == before and load_checkpoint(run / "last.pt")["epoch"] == 1


@FAST
@given(names=st.lists(st.one_of(st.text(st.characters(codec="ascii", exclude_characters="/\\\x00"), min_size=1,
                                        max_size=20),
                                 st.from_regex(r"\.[a-z_.]{1,8}\.(pgdat-)?[a-z0-9_]{6,9}\.tmp", fullmatch=True)),
                       max_size=8, unique=True))
def test_only_names_of_pgdat_temp_files_are_removed(names):
    names = [n for n in names if n not in (".", "..")]
    with tempfile.TemporaryDirectory() as d:
        for n in names:
            (Path(d) / n).write_bytes(b"x")
        removed = {p.name for p in remove_stale_temps(d)}
        assert removed == {n for n in names if TEMP_FILE.match(n)}
        assert {p.name for p in Path(d).iterdir()} == set(names) - removed
        for n in removed:
            assert n.startswith(".") and ".pgdat-" in n and n.endswith(".tmp")


def test_atomic_writes_use_the_temp_pattern_the_cleanup_looks_for(tmp_path, monkeypatch):
    seen = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(Path(a).name), real(a, b)))
    save_checkpoint({"w": torch.ones(2)}, tmp_path / "best.pt")
    assert len(seen) == 1 and TEMP_FILE.match(seen[0]) and TEMP_FILE.match(seen[0])["target"] == "best.pt"
