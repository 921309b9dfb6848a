"""YAML configs are loaded with limits: no aliases (an alias bomb under method.params), bounded nesting and size,
seeds in the range every RNG takes; each refusal is one line naming the file or option."""

from __future__ import annotations

import resource
import time

import pytest

from pgdat.cli.main import main
from pgdat.config.loader import MAX_SEED, load_config
from pgdat.errors import PgdatError


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def alias_bomb(levels: int = 9) -> str:
    """Billion laughs under method.params: level k is a list of nine aliases to level k-1 (9^levels leaves)."""
    lines = ["method:", "  name: trades", "  params:", "    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"    l{k}: &l{k} [" + ", ".join([f"*l{k - 1}"] * 9) + "]" for k in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_alias_bomb_under_method_params_is_refused_at_once(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    peak, t0 = _peak_mib(), time.perf_counter()
    with pytest.raises(PgdatError, match=r"config .*bomb\.yaml: YAML alias '\*l0' at line 5: .*anchors and aliases"):
        load_config(str(path))
    assert time.perf_counter() - t0 < 1 and _peak_mib() - peak < 50
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pgdat train: error: config") and "bomb.yaml" in err and "\n" not in err


def test_alias_in_an_override_is_refused():
    with pytest.raises(PgdatError, match=r"override 'method.params=.*YAML alias"):
        load_config(None, ["method.params={a: &x [1], b: *x}"])


@pytest.mark.parametrize("depth", [33, 100_000])
def test_deep_nesting_is_refused_with_a_clear_message(tmp_path, depth):
    path = tmp_path / "deep.yaml"
    path.write_text("method:\n  params:\n    x: " + "[" * depth + "]" * depth + "\n")
    t0 = time.perf_counter()
    with pytest.raises(PgdatError, match=r"deep\.yaml: YAML nesting deeper than 32 levels at line 3"):
        load_config(str(path))
    assert time.perf_counter() - t0 < 2


def test_nesting_within_the_limit_loads(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("model:\n  kwargs: {a: " + "[" * 28 + "]" * 28 + "}\n")  # 3 mappings + 28 lists deep
    expected: list = []
    for _ in range(27):
        expected = [expected]
    assert load_config(str(path)).model.kwargs == {"a": expected}


def test_oversized_config_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("train:\n  epochs: 1\n" + "#" * (2 << 20) + "\n")
    with pytest.raises(PgdatError, match=r"huge\.yaml: it is \d+ bytes \(at most 1048576"):
        load_config(str(path))


@pytest.mark.parametrize("key", ["train.seed", "data.val_seed"])
@pytest.mark.parametrize("value", [10**23, -1, MAX_SEED + 1])
def test_out_of_range_seed_is_a_one_line_error(capsys, key, value):
    with pytest.raises(PgdatError, match=rf"{key} must be an integer in \[0, {MAX_SEED}\] \(got {value}\)"):
        load_config(None, [f"{key}={value}"])
    assert main(["train", "--set", f"{key}={value}", "--set", "train.epochs=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pgdat train: error:") and key in err and "\n" not in err
    assert getattr(load_config(None, [f"{key}={MAX_SEED}"]), key.split(".")[0]).__dict__[key.split(".")[1]] == MAX_SEED


@pytest.mark.parametrize("value", [10**23, -1])
def test_out_of_range_eval_seed_is_a_one_line_error(capsys, value):
    assert main(["eval", "--model", "small_cnn", "--seed", str(value), "--n", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"pgdat eval: error: --seed must be an integer in [0, {MAX_SEED}] (got {value}), e.g. --seed 0"
