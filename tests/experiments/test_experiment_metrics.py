"""Each experiment's metrics(): one seed's rows (in the shape its run() returns) -> the values its claims compare,
checked against values worked out by hand; and every claim's metric names are ones metrics() produces."""

from __future__ import annotations

import pytest

from pgdat.experiments import co_features, criticality, deat, induced, memorization, ntk, reat, robust_overfitting


def _claim_keys(claims) -> set[str]:
    return {k for c in claims for k in (c.left, c.right) if isinstance(k, str)}


def test_criticality_metrics_average_layers_and_pick_eps_extremes():
    rows = [{"method": m, "eps": e, "criticality": v} for m, e, vs in
            [("standard", 0.0, (10, 30)), ("pgd_at", 0.1, (40, 60)), ("pgd_at", 0.3, (70, 90)), ("trades", 0.3, (5, 5))]
            for v in vs]
    got = criticality.metrics(rows)
    assert got == {"mean_criticality[standard]": 20, "mean_criticality[trades]": 5,
                   "mean_criticality[pgd_at eps min]": 50, "mean_criticality[pgd_at eps max]": 80}
    assert _claim_keys(criticality.CLAIMS) <= set(got)


def test_co_features_metrics_average_injected_cells_per_method():
    rows = [{"method": "fgsm_at", "injection": "plain", "beta": 0.0, "pgd_acc": 0.6},
            {"method": "fgsm_at", "injection": "plain", "beta": 40.0, "pgd_acc": 0.0},
            {"method": "fgsm_at", "injection": "plain", "beta": 20.0, "pgd_acc": 0.1},
            {"method": "fgsm_at", "injection": "orthogonal", "beta": 40.0, "pgd_acc": 0.9},  # not a plain cell
            {"method": "n_fgsm", "injection": "plain", "beta": 40.0, "pgd_acc": 0.5},
            {"method": "pgd_at", "injection": "plain", "beta": 40.0, "pgd_acc": 0.7}]
    got = co_features.metrics(rows)
    assert got["pgd_acc[fgsm_at, injected]"] == pytest.approx(5.0)
    assert got["pgd_acc[fgsm_at, no injection]"] == pytest.approx(60.0)
    assert _claim_keys(co_features.CLAIMS) <= set(got)


def test_robust_overfitting_metrics_pair_te_with_its_noise_level():
    rows = [{"method": "pgd_at", "label_noise": 0.2, "gap": 0.05}, {"method": "pgd_at_te", "label_noise": 0.2,
                                                                    "gap": 0.01},
            {"method": "pgd_at", "label_noise": 0.0, "gap": 0.004}]
    got = robust_overfitting.metrics(rows)
    assert got == pytest.approx({"gap[pgd_at]": 5.0, "gap[pgd_at_te]": 1.0, "gap[pgd_at, label noise]": 5.0,
                                 "gap[pgd_at, clean labels]": 0.4})
    paper = robust_overfitting.metrics([{"method": "pgd_at", "label_noise": 0.0, "gap": 0.08},
                                        {"method": "pgd_at_te", "label_noise": 0.0, "gap": 0.01}])
    assert paper == pytest.approx({"gap[pgd_at]": 8.0, "gap[pgd_at_te]": 1.0, "gap[pgd_at, clean labels]": 8.0})


def test_reat_metrics_are_percent_per_method():
    rows = [{"method": m, "clean_acc": 0.8, "robust_acc": 0.4, "tail_clean_acc": 0.6, "tail_robust_acc": t}
            for m, t in (("pgd_at", 0.3), ("pgd_at_reweight", 0.35), ("pgd_at_bsl", 0.32), ("reat", 0.4))]
    got = reat.metrics(rows)
    assert got["tail_robust[reat]"] == pytest.approx(40.0) and got["clean[pgd_at]"] == pytest.approx(80.0)
    assert _claim_keys(reat.CLAIMS) <= set(got)


def test_deat_metrics_take_grid_extremes_then_base_and_deat():
    grid = [{"lr_over_b": lr / b, "robust_gap": g, "best_robust_test": r}
            for lr, b, g, r in ((0.01, 128, 0.3, 0.5), (0.05, 32, 0.1, 0.6), (0.01, 32, 0.2, 0.55))]
    rows = grid + [{"lr_over_b": 0.05 / 64, "robust_gap": 0.15, "best_robust_test": 0.58},
                   {"lr_over_b": 0.05 / 64, "robust_gap": 0.14, "best_robust_test": 0.61}]
    got = deat.metrics(rows)
    assert got["robust_gap[pgd_at, min lr/B]"] == pytest.approx(30.0)
    assert got["robust_gap[pgd_at, max lr/B]"] == pytest.approx(10.0)
    assert got["best_robust[deat]"] == pytest.approx(61.0) and got["best_robust[pgd_at, base]"] == pytest.approx(58.0)
    assert _claim_keys(deat.CLAIMS) <= set(got)


def test_induced_memorization_and_ntk_metrics():
    ind = induced.metrics([{"epoch": 10, "induced_test_error": 0.2, "local_dispersion": 3.0},
                           {"epoch": 5, "induced_test_error": 0.1, "local_dispersion": 1.0}])
    assert ind["ide_error[first checkpoint]"] == pytest.approx(10.0) and ind["local_dispersion[last checkpoint]"] == 3
    assert _claim_keys(induced.CLAIMS) <= set(ind)
    mem = memorization.metrics([{"method": "pgd_at", "epoch": 1, "train_clean_acc": 0.0, "train_robust_acc": 0.0},
                                {"method": "pgd_at", "epoch": "final", "train_clean_acc": 0.1, "train_robust_acc": 0.1},
                                {"method": "trades", "epoch": "final", "train_clean_acc": 0.9,
                                 "train_robust_acc": 0.5}])
    assert mem == pytest.approx({"train_clean[pgd_at]": 10.0, "train_robust[pgd_at]": 10.0,
                                 "train_clean[trades]": 90.0, "train_robust[trades]": 50.0})
    rows = [{"method": m, "epoch": e, "kernel_distance_to_prev": d} for m in ("standard", "pgd_at")
            for e, d in ((0, None), (1, 0.5), (2, 0.2), (3, 0.1))]
    k = ntk.metrics(rows)
    assert k["kernel_velocity[pgd_at, first epoch]"] == 0.5 and k["kernel_velocity[pgd_at, last epoch]"] == 0.1
    assert _claim_keys(ntk.CLAIMS) <= set(k)
