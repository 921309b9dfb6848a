"""pgdat: correct, fast and reproducible PGD adversarial training."""

from pgdat.errors import PgdatError

__version__ = "0.1.0"


def load_model(path, device="cpu", *, which="model"):
    """Rebuild a trained model from a run directory or checkpoint file (eval mode, on ``device``)."""
    from pgdat.checkpoint import load_model as _load

    return _load(path, device, which=which)


__all__ = ["PgdatError", "__version__", "load_model"]
