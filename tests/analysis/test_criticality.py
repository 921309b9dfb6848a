"""Layer criticality: definition, deep-copy restore, reset kinds, layer selection, CLI and heat map."""

from __future__ import annotations

import copy

import pytest
import torch

from pgdat.analysis import criticality as crit
from pgdat.errors import PgdatError


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_state_restored_bit_exactly_and_eval_mode(tiny_model, tiny_batch):
    before = copy.deepcopy(tiny_model.state_dict())
    tiny_model.train()
    res = crit.layer_criticality(tiny_model, tiny_batch[0], tiny_batch[1], trials=2, layers="conv+linear+bn")
    assert _state_equal(before, tiny_model.state_dict())
    assert tiny_model.training  # mode restored too
    assert [u.name for u in res.units] == ["conv", "bn", "fc"]
    assert res.cos.shape == (2, 3)


def test_reset_to_own_weights_gives_zero(tiny_model, tiny_batch):
    own = crit.clone_state(tiny_model)
    res = crit.layer_criticality(tiny_model, tiny_batch[0], reset="reinit", init_state=own, trials=1)
    assert res.criticality.abs().max() < 1e-4


def test_definition_matches_manual_computation(tiny_model, tiny_batch):
    x = tiny_batch[0]
    fresh = copy.deepcopy(tiny_model)
    torch.manual_seed(5)
    for m in fresh.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    src = crit.clone_state(fresh)
    res = crit.layer_criticality(tiny_model, x, init_fn=lambda seed: src, trials=1)
    with torch.no_grad():
        p0 = torch.softmax(tiny_model(x), 1)
        manual = copy.deepcopy(tiny_model)
        manual.fc.load_state_dict(fresh.fc.state_dict())
        p = torch.softmax(manual(x), 1)
    expected = 100 * (1 - torch.nn.functional.cosine_similarity(p0, p, dim=1).mean())
    assert float(res.criticality[1]) == pytest.approx(float(expected), abs=1e-4)
    assert 0 < float(expected) <= 100


def test_seeded_repeat_and_summary(tiny_model, tiny_batch):
    a = crit.layer_criticality(tiny_model, *tiny_batch, trials=3, seed=1).summary()
    b = crit.layer_criticality(tiny_model, *tiny_batch, trials=3, seed=1).summary()
    assert a["layers"] == b["layers"]
    assert set(a["stages"]) == {"stem", "head"}
    assert a["base_top1"] > 0.9
    assert all(0 <= r["criticality"] <= 100 for r in a["layers"])
    z = crit.layer_criticality(tiny_model, *tiny_batch, reset="zero", trials=1).summary()
    assert z["layers"][1]["top1"] < 0.5  # zeroing the head leaves constant logits


def test_block_grouping_and_errors(tiny_model, tiny_batch):
    units = crit.select_layers(tiny_model, "block")
    assert [u.modules for u in units] == [("conv",), ("fc",)]
    with pytest.raises(PgdatError, match="reset"):
        crit.layer_criticality(tiny_model, tiny_batch[0], reset="shuffle")
    with pytest.raises(PgdatError, match="init_state"):
        crit.layer_criticality(tiny_model, tiny_batch[0], reset="reinit")
    with pytest.raises(PgdatError, match="layers"):
        crit.select_layers(tiny_model, "everything")


def test_checkpoint_criticality_cli_and_heatmap(tmp_path, tiny_overrides):
    from pgdat.cli.main import main
    from pgdat.config import load_config
    from pgdat.training import Trainer
    from pgdat.training.callbacks import MetricsLogger

    cfg = load_config("default", tiny_overrides + ["train.epochs=1", "method.name=standard", "data.n_train=128"])
    Trainer(cfg, tmp_path / "run", callbacks=[MetricsLogger()]).fit()
    out = tmp_path / "crit"
    rc = main(["analyze", "criticality", f"std={tmp_path / 'run'}", "--n", "64", "--trials", "2",
               "--eps", "0.1", "--steps", "2", "--reset", "reinit", "--out", str(out)])
    assert rc == 0
    import json

    payload = json.loads((out / "criticality.json").read_text())
    s = payload["runs"]["std"]
    assert [r["layer"] for r in s["clean"]["layers"]] == ["net.conv1", "net.conv2", "net.linear1", "net.linear2"]
    assert s["adv"]["meta"]["attack"]["eps"] == pytest.approx(0.1)
    assert len(payload["indices"]) == 64
    assert (out / "heatmap_clean.png").stat().st_size > 0 and (out / "heatmap_adv.png").is_file()


def test_rerandomize_draws_are_not_the_runs_own_theta0(tmp_path, tiny_overrides):
    # re-randomization is a fresh draw, not a reset to theta_0 (notes section 2): with the default seeds (train.seed
    # 0, criticality seed 0) trial 0 drew exactly the run's init.pt, i.e. measured re-initialization
    from pgdat.checkpoint import load_checkpoint
    from pgdat.config import load_config
    from pgdat.training import Trainer

    for train_seed in (0, 1, 2):
        out = tmp_path / f"seed{train_seed}"
        trainer = Trainer(load_config("default", tiny_overrides + [f"train.seed={train_seed}"]), out,
                          callbacks=[]).start()  # start(): writes init.pt
        theta0 = load_checkpoint(out / "init.pt")["model"]
        draw = crit.constructor_init_fn(trainer.model_cfg, trainer.model)
        for t in range(3):  # the trials of seed=0
            fresh = draw(t)
            assert fresh.keys() == theta0.keys()
            assert not torch.equal(fresh["net.conv1.weight"], theta0["net.conv1.weight"]), (train_seed, t)
        assert torch.equal(draw(1)["net.conv1.weight"], draw(1)["net.conv1.weight"])  # still seeded


def test_summary_spreads_use_the_references_ddof():
    """paulgavrikov/layer_criticality code/analysis.ipynb: per-layer std over trials by pandas groupby-agg "std"
    (sample std, ddof 1); model spread over layers by numpy ``mat.std(axis=1)`` (population std, ddof 0)."""
    import statistics

    cos = torch.tensor([[0.9, 0.5, 0.1], [0.7, 0.5, 0.3], [0.8, 0.2, 0.2]], dtype=torch.float64)  # (trials, layers)
    units = [crit.LayerUnit(f"l{i}", (f"l{i}",), "stem", i) for i in range(3)]
    res = crit.CriticalityResult(units, cos, torch.full((3, 3), float("nan")), float("nan"), {})
    s = res.summary()
    for j, row in enumerate(s["layers"]):
        assert row["criticality_std"] == pytest.approx(100 * statistics.stdev(cos[:, j].tolist()), rel=1e-9)
    per_layer = [100 * (1 - statistics.fmean(cos[:, j].tolist())) for j in range(3)]
    assert s["std"] == pytest.approx(statistics.pstdev(per_layer), rel=1e-9)
    one = crit.CriticalityResult(units, cos[:1], torch.full((1, 3), float("nan")), float("nan"), {}).summary()
    assert all(row["criticality_std"] != row["criticality_std"] for row in one["layers"])  # nan, as pandas


def test_heatmap_title_and_labels_stay_inside_the_figure(tmp_path, monkeypatch):
    """A net with few layers made a narrow figure whose title was clipped."""
    import matplotlib.figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from pgdat.analysis.criticality import plot_heatmap

    figs = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figs.append(self))
    summ = {r: {"mean": 20.0 + j, "layers": [{"layer": f"layer{i}", "stage": "head", "criticality": 10.0 * i + j}
                                             for i in range(3)]} for j, r in enumerate(["std", "pgd_at_eps0.3"])}
    plot_heatmap(summ, tmp_path / "h.png", title="layer criticality: clean inputs, mnist5k, 500 images, 3 trials")
    fig = figs[0]
    canvas = FigureCanvasAgg(fig)  # plot_heatmap closed the figure after saving: draw it again off screen
    canvas.draw()
    renderer, bounds = canvas.get_renderer(), fig.bbox
    for text in [fig.axes[0].title, *fig.axes[0].get_yticklabels(), *fig.axes[0].get_xticklabels()]:
        box = text.get_window_extent(renderer)
        assert bounds.x0 - 1 <= box.x0 and box.x1 <= bounds.x1 + 1 and box.y1 <= bounds.y1 + 1, text.get_text()
