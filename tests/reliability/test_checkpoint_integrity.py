"""Checkpoint integrity: every checkpoint carries a content hash checked on load; crafted archives (inflating
records, deep nesting) are refused from the zip directory and the pickle opcodes, before anything is allocated."""

from __future__ import annotations

import resource
import time

import pytest
import torch

from pgdat.checkpoint import build_model, load_checkpoint, load_model, model_config, save_checkpoint
from pgdat.cli.main import main
from pgdat.errors import PgdatError
from pgdat.integrity import INTEGRITY_KEY, content_digest
from tests.reliability.hostile_files import (
    memo_nested_pickle,
    nested_pickle,
    record_span,
    small_checkpoint,
    with_record_replaced,
    zeros_deflated,
)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_flipped_byte_in_tensor_data_is_a_corrupt_checkpoint(tmp_path, capsys):
    path = small_checkpoint(tmp_path / "last.pt")
    offset, length = record_span(path, "/data/")
    data = bytearray(path.read_bytes())
    data[offset + length // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(PgdatError, match=r"corrupt checkpoint .*last\.pt: its content does not match") as info:
        load_checkpoint(path)
    assert "execute code" not in str(info.value) and "\n" not in str(info.value)
    assert main(["eval", "--checkpoint", str(path), "--n", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pgdat eval: error: corrupt checkpoint") and str(path) in err and "\n" not in err


def test_flipped_byte_in_structure_is_not_called_malicious(tmp_path):
    path = small_checkpoint(tmp_path / "last.pt")
    offset, length = record_span(path, "data.pkl")
    data = bytearray(path.read_bytes())
    data[offset + length // 2] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(PgdatError, match=r"last\.pt: the file is truncated, damaged") as info:
        load_checkpoint(path)
    assert "execute code" not in str(info.value)


def test_intact_checkpoint_loads_without_its_stamp(tmp_path):
    path = small_checkpoint(tmp_path / "last.pt")
    raw = torch.load(path, weights_only=True)
    assert len(raw[INTEGRITY_KEY]["digest"]) == 64
    ckpt = load_checkpoint(path)
    assert INTEGRITY_KEY not in ckpt and set(ckpt) == {"model", "model_config"}
    assert content_digest(ckpt) == raw[INTEGRITY_KEY]["digest"]


def test_checkpoint_without_hash_still_loads_with_a_note(tmp_path):
    torch.manual_seed(0)
    cfg = model_config("small_cnn", 10, 1, [0.1307], [0.3081])
    ref = build_model(cfg).eval()
    torch.save({"model": ref.state_dict(), "model_config": cfg}, tmp_path / "old.pt")  # as pgdat wrote before
    with pytest.warns(UserWarning, match=r"old\.pt carries no content hash"):
        model = load_model(tmp_path / "old.pt")
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(model(x), ref(x))


def test_content_digest_sees_every_value():
    base = {"model": {"w": torch.arange(6.0).view(2, 3)}, "epoch": 3, "config": {"seed": 0, "tags": ["a"]}}
    same = {"model": {"w": torch.arange(6.0).view(2, 3)}, "epoch": 3, "config": {"seed": 0, "tags": ["a"]}}
    variants = [
        {**base, "model": {"w": (torch.arange(6.0) + torch.tensor([0, 0, 0, 0, 0, 1e-6])).view(2, 3)}},
        {**base, "model": {"w": torch.arange(6.0).view(3, 2)}},
        {**base, "model": {"w": torch.arange(6.0, dtype=torch.float64).view(2, 3)}},
        {**base, "epoch": 4}, {**base, "epoch": 3.0}, {**base, "config": {"seed": 0, "tags": ("a",)}},
        {**base, "config": {"seed": 0, "tags": ["b"]}}, {**base, "extra": None},
    ]
    assert content_digest(base) == content_digest(same)
    digests = {content_digest(v) for v in variants}
    assert len(digests) == len(variants) and content_digest(base) not in digests


def test_deflated_record_inflating_to_2_2_gb_is_refused_before_allocating(tmp_path):
    src = small_checkpoint(tmp_path / "ok.pt")
    size = 2200 << 20
    bomb = with_record_replaced(src, tmp_path / "bomb.pt", "/data/0", zeros_deflated(size), method=8, size=size)
    assert bomb.stat().st_size < 8 << 20  # the small_cnn weights (2.6 MB) and a 2.2 MB deflate stream
    peak, t0 = _peak_mib(), time.perf_counter()
    with pytest.raises(PgdatError, match=r"corrupt checkpoint .*bomb\.pt: record .*data/0.* is compressed"):
        load_checkpoint(bomb)
    assert time.perf_counter() - t0 < 2 and _peak_mib() - peak < 100


def test_record_declaring_more_than_the_file_holds_is_refused(tmp_path):
    src = small_checkpoint(tmp_path / "ok.pt")
    bad = with_record_replaced(src, tmp_path / "big.pt", "/data/0", b"\0" * 64, size=1 << 31)
    with pytest.raises(PgdatError, match=r"big\.pt: record .*data/0.* declares 2147483648 bytes"):
        load_checkpoint(bad)


@pytest.mark.parametrize("build,depth", [(nested_pickle, 10**7), (memo_nested_pickle, 10**5)])
def test_model_config_nested_deep_is_refused_quickly(tmp_path, build, depth):
    src = small_checkpoint(tmp_path / "ok.pt")
    deep = with_record_replaced(src, tmp_path / "deep.pt", "data.pkl", build(depth))
    peak, t0 = _peak_mib(), time.perf_counter()
    with pytest.raises(PgdatError, match=r"corrupt checkpoint .*deep\.pt: its structure (nests deeper than 64|keeps)"):
        load_checkpoint(deep)
    assert time.perf_counter() - t0 < 5 and _peak_mib() - peak < 100  # 1.7 s at load average 28


@pytest.mark.parametrize("field,value", [("num_classes", "ten"), ("in_channels", -1), ("kwargs", [1]), ("name", 3),
                                         ("mean", [0.1, 0.2]), ("num_classes", 10**12)])
def test_malformed_model_config_is_a_one_line_error_naming_file_and_field(tmp_path, capsys, field, value):
    cfg = model_config("small_cnn", 10, 1, [0.1307], [0.3081])
    state = build_model(cfg).state_dict()
    path = save_checkpoint({"model": state, "model_config": {**cfg, field: value}}, tmp_path / "best.pt")
    with pytest.raises(PgdatError, match=rf"best\.pt: model_config\.{field} must be"):
        load_model(path)
    assert main(["eval", "--checkpoint", str(path), "--n", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pgdat eval: error:") and f"model_config.{field}" in err and str(path) in err
    assert "\n" not in err


def test_weights_of_another_model_are_refused_without_building_it(tmp_path):
    cfg = model_config("small_cnn", 10, 1, [0.1307], [0.3081])
    state = build_model(cfg).state_dict()
    big = model_config("wrn34_10", 10, 1, [0.5], [0.5])  # 46M parameters: checked on the meta device
    path = save_checkpoint({"model": state, "model_config": big}, tmp_path / "mixed.pt")
    peak = _peak_mib()
    with pytest.raises(PgdatError, match=r"mixed\.pt: the 'model' weights do not fit the model its model_config"):
        load_model(path)
    assert _peak_mib() - peak < 100
