"""Enumerate a model's conv/linear layers in forward order with a stage label, for per-layer analyses."""

from __future__ import annotations

from torch import nn

from pgdat.models.normalize import NormalizedModel

WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _block_label(rel_name: str) -> str | None:
    """``layer1.0.conv1`` -> ``layer1.0``; ``block2.layer.3.convShortcut`` -> ``block2.layer.3``; top-level -> None."""
    parts = rel_name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return None


def layer_groups(model: nn.Module) -> list[tuple[str, str]]:
    """``(qualified name, stage label)`` for every conv/linear layer of ``model``, in forward order.

    Names are relative to ``model`` (``model.get_submodule(name)`` works). Labels: ``stem`` for the first layer,
    ``head`` for the last, the block prefix up to its index (``layer1.0``, ``block1.layer.2``) for layers inside
    numbered blocks, and the layer's own name for other top-level layers. The inner net of a
    :class:`NormalizedModel` is labelled as if it stood alone. pgdat's models register modules in forward order,
    which is what ``named_modules()`` follows.
    """
    prefix = "net." if isinstance(model, NormalizedModel) else ""
    names = [name for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]
    groups = []
    for i, name in enumerate(names):
        rel = name[len(prefix):] if name.startswith(prefix) else name
        if i == 0:
            label = "stem"
        elif i == len(names) - 1:
            label = "head"
        else:
            label = _block_label(rel) or rel
        groups.append((name, label))
    return groups
