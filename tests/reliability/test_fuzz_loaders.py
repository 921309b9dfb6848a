"""Property/fuzz test of every loader of user files: random and mutated YAML configs, run files (metrics.jsonl,
final.json, config.yaml) and checkpoints (flipped bytes, truncation, crafted records and pickles). Every outcome is a
success or a PgdatError, each case within a time bound, and the process's peak memory stays bounded.

Cases per run (fixed seed, no example database): 150 YAML texts + 100 mutated recipes + 100 generated configs +
120 mutated run files + 150 mutated checkpoints + 60 random pickles = 680.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from pgdat.checkpoint import load_model
from pgdat.config import load_config
from pgdat.config.loader import RECIPES
from pgdat.errors import PgdatError
from pgdat.report.runs import format_table, load_run, summary_row
from tests.reliability.hostile_files import record_span, small_checkpoint, with_record_replaced
from tests.report.test_report_hostile import write_run

SECONDS = 5.0  # per case, generous for a shared 2-core machine; a bomb takes minutes or never ends
PEAK_MIB = 300  # growth of the process's peak RSS over all cases; the bombs in the issue reach 800 MB-2.2 GB


def fuzz(n: int):  # noqa: ANN201
    return settings(max_examples=n, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def peak():  # noqa: ANN201
    """Fails the module if peak RSS grew by more than PEAK_MIB while its cases ran."""
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    yield
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start
    assert grown < PEAK_MIB, f"peak RSS grew by {grown:.0f} MiB"


def outcome(load, *args) -> str:  # noqa: ANN001
    """'ok' or 'error' (a PgdatError); anything else propagates and fails the test. Checks the time bound."""
    t0 = time.perf_counter()
    try:
        load(*args)
        result = "ok"
    except PgdatError as e:
        assert "\n" not in str(e), "a user-facing error is one line"
        result = "error"
    assert time.perf_counter() - t0 < SECONDS
    return result


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, byte) edits: 0 flips bits, 1 inserts, 2 deletes, 3 truncates."""
    buf = bytearray(data)
    for kind, pos, byte in edits:
        if not buf:
            break
        i = pos % len(buf)
        if kind == 0:
            buf[i] ^= byte or 1
        elif kind == 1:
            buf.insert(i, byte)
        elif kind == 2:
            del buf[i]
        else:
            del buf[i:]
    return bytes(buf)


EDITS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=6)
YAML_CHARS = st.text(alphabet="{}[]:,-&*!|>'\"#%@?\n\t abcxyz019._=~\\/$<", max_size=300)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
TREES = st.recursive(SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                     max_leaves=30)
SECTIONS = st.dictionaries(st.sampled_from(["name", "data", "model", "method", "attack", "train", "eval", "optim",
                                            "seed", "x"]), TREES, max_size=5)


@seed(19)
@fuzz(150)
@given(text=YAML_CHARS)
def test_random_yaml_text(tmp_path_factory, peak, text):
    path = tmp_path_factory.mktemp("y") / "c.yaml"
    path.write_text(text)
    outcome(load_config, str(path))


@seed(19)
@fuzz(100)
@given(recipe=st.sampled_from(sorted(RECIPES.rglob("*.yaml"))), edits=EDITS)
def test_mutated_recipes(tmp_path_factory, peak, recipe, edits):
    path = tmp_path_factory.mktemp("y") / "c.yaml"
    path.write_bytes(mutate(recipe.read_bytes(), edits))
    outcome(load_config, str(path))


@seed(19)
@fuzz(100)
@given(data=SECTIONS)
def test_generated_configs(tmp_path_factory, peak, data):
    path = tmp_path_factory.mktemp("y") / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    outcome(load_config, str(path))


def _compare(run: Path) -> None:
    format_table([summary_row(load_run(run))], "json")


@seed(19)
@fuzz(120)
@given(file=st.sampled_from(["metrics.jsonl", "final.json", "config.yaml"]), edits=EDITS,
       replace=st.one_of(st.none(), TREES))
def test_mutated_run_files(tmp_path_factory, peak, file, edits, replace):
    run = write_run(tmp_path_factory.mktemp("r"))
    path = run / file
    if replace is None:
        path.write_bytes(mutate(path.read_bytes(), edits))
    elif file == "config.yaml":
        path.write_text(yaml.safe_dump(replace))
    else:
        path.write_text(json.dumps(replace, allow_nan=True))
    outcome(_compare, run)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[bytes, tuple[int, int]]:
    path = small_checkpoint(tmp_path_factory.mktemp("c") / "ok.pt")
    return path.read_bytes(), record_span(path, "data.pkl")


@seed(19)
@fuzz(150)
@given(edits=EDITS, in_pickle=st.booleans())
def test_mutated_checkpoints(tmp_path_factory, peak, checkpoint, edits, in_pickle):
    data, (start, length) = checkpoint
    if in_pickle:  # aim the edits at the structure record, where the parser is most exposed
        edits = [(k if k != 3 else 0, start + p % length, b) for k, p, b in edits]
    path = tmp_path_factory.mktemp("c") / "last.pt"
    path.write_bytes(mutate(data, edits))
    outcome(load_model, path)


@seed(19)
@fuzz(60)
@given(pkl=st.binary(max_size=400) | st.builds(lambda b: b"\x80\x02" + b + b".", st.binary(max_size=300)))
def test_random_pickles(tmp_path_factory, peak, checkpoint, pkl):
    root = tmp_path_factory.mktemp("c")
    (root / "ok.pt").write_bytes(checkpoint[0])
    outcome(load_model, with_record_replaced(root / "ok.pt", root / "crafted.pt", "data.pkl", pkl))
