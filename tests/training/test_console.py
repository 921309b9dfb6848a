"""Console output for terminals and log files: one line per epoch with eps, lr, elapsed time and ETA; progress bars
only on a terminal."""

from __future__ import annotations

import re

from pgdat.config import load_config
from pgdat.training import Trainer
from pgdat.training.callbacks import _clock


def test_redirected_output_has_one_plain_line_per_epoch_with_eps_and_eta(tmp_path, tiny_overrides, capsys):
    # progress on, but pytest's captured streams are not a terminal: no bar, no carriage returns
    over = tiny_overrides + ["train.progress=true", "attack.eps_warmup_epochs=2", "attack.eps=0.3"]
    Trainer(load_config("default", over), tmp_path).fit()
    out, err = capsys.readouterr()
    assert "\r" not in out + err and "batch/s" not in err
    lines = [ln for ln in out.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 3
    eps = [float(re.search(r"\| eps ([\d.]+)", ln)[1]) for ln in lines]
    assert eps == [0.15, 0.3, 0.3]  # end of epoch 1: half way through the 2-epoch warm-up
    assert "(warm-up)" in lines[0] and "(warm-up)" not in lines[1]
    assert all(re.search(r"\| lr [\d.e-]+ \|", ln) for ln in lines)
    assert all(re.search(r"elapsed \d+s, ETA \d+s$", ln) for ln in lines)
    assert lines[-1].endswith("ETA 0s")


def test_clock_format():
    assert (_clock(0.4), _clock(59.6), _clock(61), _clock(3723)) == ("0s", "1m00s", "1m01s", "1h02m03s")
