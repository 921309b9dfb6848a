"""Models pgdat did not train: FILE.py:FUNCTION plus .pt/.safetensors weights, evaluated through pgdat eval."""

import json
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from pgdat.cli.main import main
from pgdat.errors import PgdatError
from pgdat.models.external import build_external, file_sha256, load_external_model, load_weights

# a third party's model file: plain PyTorch, no pgdat import, normalisation left to the caller
THIRD_PARTY = textwrap.dedent('''
    import torch
    from torch import nn


    class TinyMLP(nn.Module):
        def __init__(self, hidden=32):
            super().__init__()
            self.fc1 = nn.Linear(28 * 28, hidden)
            self.fc2 = nn.Linear(hidden, 10)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x.flatten(1))))


    def build():
        return TinyMLP()


    def not_a_model():
        return 42
''')
MEAN, STD = 0.1307, 0.3081


@pytest.fixture(scope="module")
def mnist_test():
    from pgdat.data import load_dataset
    from pgdat.data.bundle import as_unit_float

    bundle = load_dataset("mnist5k")
    return (as_unit_float(bundle.train.x[:500]), bundle.train.y[:500], as_unit_float(bundle.test.x[:200]),
            bundle.test.y[:200])


@pytest.fixture(scope="module")
def third_party(tmp_path_factory, mnist_test):
    """The model file, its trained net (trained here on normalised mnist5k, as its authors would) and weights."""
    folder = tmp_path_factory.mktemp("third_party")
    (folder / "tiny_mlp.py").write_text(THIRD_PARTY)
    net = build_external(f"{folder / 'tiny_mlp.py'}:build")
    x, y, _, _ = mnist_test
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(net((x - MEAN) / STD), y).backward()
        opt.step()
    net.eval()
    save_file(net.state_dict(), str(folder / "tiny_mlp.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}, "epoch": 3},
               folder / "tiny_mlp_dp.pt")
    return folder, net


def _logits(net, x):
    with torch.no_grad():
        return net((x - MEAN) / STD)


@pytest.mark.parametrize("weights", ["tiny_mlp.safetensors", "tiny_mlp_dp.pt"])
def test_loaded_model_gives_the_authors_logits(third_party, mnist_test, weights):
    folder, net = third_party
    x = mnist_test[2]
    model, info = load_external_model(f"{folder / 'tiny_mlp.py'}:build", folder / weights, in_channels=1,
                                      mean=[MEAN], std=[STD])
    with torch.no_grad():
        assert torch.allclose(model(x), _logits(net, x), atol=1e-6)
    assert not model.training
    assert info["architecture"] == "TinyMLP" and info["weights_sha256"] == file_sha256(folder / weights)


def test_without_mean_std_the_model_sees_raw_pixels(third_party, mnist_test):
    folder, net = third_party
    x = mnist_test[2]
    model, info = load_external_model(f"{folder / 'tiny_mlp.py'}:build", folder / "tiny_mlp.safetensors",
                                      in_channels=1)
    with torch.no_grad():
        assert torch.allclose(model(x), net(x), atol=1e-6)
    assert info["mean"] is None and info["std"] is None


def test_pickled_module_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "whole_module.pt"
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), path)  # a pickled nn.Module: loading it runs code
    before = path.read_bytes()
    with pytest.raises(PgdatError, match=r"--weights .*whole_module.pt: refused.*state_dict\(\)"):
        load_weights(path)
    assert path.read_bytes() == before


def test_weights_of_another_architecture_name_the_mismatch(third_party, tmp_path):
    folder, _ = third_party
    save_file({"fc1.weight": torch.zeros(16, 784), "fc1.bias": torch.zeros(16)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(PgdatError, match=r"missing fc2.bias, fc2.weight; shape differs: fc1"):
        load_external_model(f"{folder / 'tiny_mlp.py'}:build", tmp_path / "other.safetensors", in_channels=1)


@pytest.mark.parametrize("spec, msg", [
    ("tiny_mlp.py", "must be FILE.py:FUNCTION"),
    ("tiny_mlp.txt:build", "is not a Python file"),
    ("missing.py:build", "does not exist"),
    ("tiny_mlp.py:nope", "has no function 'nope'; its functions: build, not_a_model"),
    ("tiny_mlp.py:not_a_model", "returned a int, expected a torch.nn.Module"),
])
def test_bad_model_file_is_one_clear_error(third_party, spec, msg):
    folder, _ = third_party
    with pytest.raises(PgdatError, match=msg) as err:
        build_external(str(folder / spec))
    assert "--model-file" in str(err.value)


def test_unknown_weights_format_is_refused(third_party, tmp_path):
    (tmp_path / "w.bin").write_bytes(b"\0" * 8)
    with pytest.raises(PgdatError, match=r"unknown weights format '.bin'.*\.safetensors"):
        load_weights(tmp_path / "w.bin")
    (tmp_path / "w.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(PgdatError, match="not a readable safetensors file"):
        load_weights(tmp_path / "w.safetensors")


def test_pgdat_eval_of_a_third_party_model_writes_a_claim(third_party, mnist_test, tmp_path, capsys):
    folder, net = third_party
    out, claim = tmp_path / "eval.json", tmp_path / "claim.json"
    code = main(["eval", "--model-file", f"{folder / 'tiny_mlp.py'}:build", "--weights",
                 str(folder / "tiny_mlp.safetensors"), "--mean", str(MEAN), "--std", str(STD), "--data", "mnist5k",
                 "--n", "200", "--attacks", "clean,pgd-5", "--eps", "0.1", "--json", str(out), "--claim", str(claim)])
    assert code == 0
    res, entry = json.loads(out.read_text()), json.loads(claim.read_text())
    x, y = mnist_test[2], mnist_test[3]
    clean = _logits(net, x).argmax(1).eq(y).double().mean().item()  # computed without pgdat
    assert clean > 0.6  # the trained model, not a fresh one
    assert res["accuracy"]["clean"] == pytest.approx(clean, abs=1e-12)
    assert res["accuracy"]["pgd-5"] < res["accuracy"]["clean"]
    assert entry["clean_acc"] == f"{100 * clean:.2f}"
    assert entry["robust_acc"] == f"{100 * res['accuracy']['pgd-5']:.2f}"
    assert entry["autoattack_acc"] is None and entry["architecture"] == "TinyMLP"
    assert entry["model"]["weights_sha256"] == file_sha256(folder / "tiny_mlp.safetensors")
    assert entry["n_test_points"] == 200 and entry["additional_data"] is None
    assert "NOT an AutoAttack number" in capsys.readouterr().out


@pytest.mark.parametrize("extra, msg", [
    (["--mean", "0.1"], "give both --mean and --std"),
    (["--mean", "0.1,0.2", "--std", "1,1"], "--mean has 2 value(s) but --data mnist5k has 1-channel images"),
    (["--mean", "0.1", "--std", "0"], "--std must be > 0"),
])
def test_bad_normalisation_options_are_refused(third_party, capsys, extra, msg):
    folder, _ = third_party
    assert main(["eval", "--model-file", f"{folder / 'tiny_mlp.py'}:build", "--n", "8"] + extra) == 2
    assert msg in capsys.readouterr().err


def test_weights_without_model_file_are_refused(third_party, capsys):
    folder, _ = third_party
    assert main(["eval", "--model", "small_cnn", "--weights", str(folder / "tiny_mlp.safetensors")]) == 2
    assert "--weights applies to --model-file only" in capsys.readouterr().err


def test_wrong_number_of_classes_is_caught_before_attacking(tmp_path, capsys):
    (tmp_path / "wide.py").write_text("from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Flatten(), "
                                      "nn.Linear(784, 1000))\n")
    assert main(["eval", "--model-file", f"{tmp_path / 'wide.py'}:build", "--n", "8"]) == 2
    assert "returned (2, 1000) for 2 images, but --data mnist5k needs logits of shape (2, 10)" in (
        capsys.readouterr().err)
