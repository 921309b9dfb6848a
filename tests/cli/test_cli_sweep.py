"""``pgdat sweep`` refuses a bad grid, seed list or worker count with one clear error, before writing anything."""

from __future__ import annotations

import pytest

from pgdat.cli.main import main


@pytest.mark.parametrize(("args", "message"), [
    (["--grid", "attack.epz=0.1,0.2"], "unknown config key 'attack.epz'; valid keys in attack:"),
    (["--grid", "attack.eps=0.1,,0.2"], "--grid 'attack.eps=0.1,,0.2': every value must be non-empty"),
    (["--grid", "attack.eps="], "--grid 'attack.eps=': every value must be non-empty"),
    (["--grid", "attack.eps"], "must look like section.key=value1,value2, e.g. --grid attack.eps=4/255,8/255"),
    (["--grid", "attack.eps=0.1", "--grid", "attack.eps=0.2"], "--grid key 'attack.eps' is given twice"),
    (["--grid", "attack.eps=0.1,0.1"], "repeats a value"),
    (["--grid", "train.seed=1,2"], "seeds are set by --seeds"),
    (["--grid", "attack.eps=0.1,0.10"], "grid points eps0.1 and eps0.10 give the same config"),
    (["--grid", "train.epochs=two,3"], "sweep run train.epochs=two, seed offset 0: train.epochs must be an integer"),
    (["--seeds", "a,b"], "--seeds must be a count (e.g. --seeds 3) or a comma list"),
    (["--seeds", "0"], "--seeds must be a whole number of seeds from 1 to 100 (got 0)"),
    (["--seeds", "1,-1"], "--seeds must be a count"),
    (["--workers", "0"], "--workers must be >= 1 (got 0)"),
])
def test_bad_sweep_arguments_fail_clearly_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "sw"
    assert main(["sweep", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pgdat sweep: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()
