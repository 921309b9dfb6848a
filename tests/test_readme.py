"""Every ```bash/```sh/```console and ```python block of README.md runs as written, in order, in one temp dir.

A block may be preceded by a marker comment (the last ``<!-- readme-test: ... -->`` line before its fence), whose
``;``-separated parts are:

- ``skip (reason)``: the block is not run (downloads, GPUs, installs); the reason shows in pytest's skip summary;
- ``slow``: the block runs only in the slow tier (``pytest -m slow``);
- ``requires MODULE``: skipped, naming the module, when that optional package is not installed;
- ``SUB += ARGS``: ARGS are appended to every ``pgdat SUB`` command of the block (e.g. ``train += --set
  train.epochs=1``: a later ``--set`` or option wins; not to ``--resume`` lines, whose run keeps its config), so a
  block that would train for minutes runs in seconds.

Shell blocks run under ``bash -e`` with the interpreter's directory (and so its ``pgdat``) first on PATH; python
blocks with this interpreter. A block that needs an earlier block's files (``runs/default``) gets them: selecting
one block runs every earlier block of its tier first.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SHELLS = {"bash", "sh", "console", "shell"}
FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^\s*<!--\s*readme-test:(.*?)-->\s*$")
BLOCK_TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    """One fenced block: README line of its fence, language, code, and what its marker says."""

    line: int
    lang: str
    code: str
    skip: str | None = None
    slow: bool = False
    requires: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.lang}"


def parse_marker(text: str) -> dict:
    """The marker's parts as Block fields; an unknown part is an error (a typo must not silently run a long block)."""
    if text.strip().startswith("skip"):  # the whole rest is the reason (it may hold ';')
        return {"skip": text.strip()[4:].strip().removeprefix("(").removesuffix(")") or "no reason given"}
    out: dict = {"extra": {}, "requires": ()}
    for part in (p.strip() for p in text.split(";")):
        if part == "slow":
            out["slow"] = True
        elif part.startswith("requires "):
            out["requires"] += tuple(part.split()[1:])
        elif "+=" in part:
            sub, args = (s.strip() for s in part.split("+=", 1))
            out["extra"][sub] = f"{out['extra'][sub]} {args}" if sub in out["extra"] else args  # later ones win
        elif part:
            raise ValueError(f"README marker part {part!r} not understood (e.g. 'skip (needs a GPU)', 'slow', "
                             "'requires wandb', 'train += --set train.epochs=1')")
    return out


def parse_readme(text: str) -> list[Block]:
    """Every runnable fenced block of ``text`` (README.md), with the marker that precedes it."""
    blocks, lines, i, marker = [], text.splitlines(), 0, None
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:  # a marker holds for the next fence, across blank lines only
            m = MARK.match(lines[i])
            marker = m.group(1) if m else (marker if not lines[i].strip() else None)
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        lang = fence.group(1)
        if lang in SHELLS or lang == "python":
            fields = parse_marker(marker) if marker is not None else {}
            blocks.append(Block(i + 1, "python" if lang == "python" else "bash", "\n".join(lines[i + 1:end]) + "\n",
                                **fields))
        marker, i = None, end + 1
    return blocks


def _comment_start(line: str) -> int:
    """Index of a shell comment (``#`` after whitespace, outside quotes) in ``line``, else len(line)."""
    quote = None
    for k, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or line[k - 1].isspace()):
            return k
    return len(line)


def with_overrides(code: str, extra: dict[str, str]) -> str:
    """``code`` with ``extra[SUB]`` appended to each ``pgdat SUB`` command (before a comment, ``&&``, ``|``, ``;``);
    backslash-continued lines are joined first. Heredoc bodies have no ``pgdat`` commands in the README."""
    if not extra:
        return code
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        cut = _comment_start(line)
        cmd, comment = line[:cut], line[cut:]
        for sub, args in extra.items():
            m = re.search(rf"\bpgdat {re.escape(sub)}\b", cmd)
            if m and "--resume" not in cmd:  # a resumed run keeps its own config (a change would be refused)
                stop = re.search(r"&&|\|\||\||;", cmd[m.end():])
                end = m.end() + stop.start() if stop else len(cmd.rstrip())
                cmd = f"{cmd[:end].rstrip()} {args} {cmd[end:].lstrip()}".rstrip() + " "
        out.append((cmd + comment).rstrip())
    return "\n".join(out) + "\n"


BLOCKS = parse_readme(README.read_text())


def _env() -> dict[str, str]:
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_block(block: Block, cwd: Path) -> subprocess.CompletedProcess:
    """Run one block in ``cwd`` (its overrides applied); the result keeps stdout+stderr for the failure message."""
    code = with_overrides(block.code, block.extra)
    argv = [sys.executable, "-c", code] if block.lang == "python" else ["bash", "-e", "-c", code]
    return subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)


class Workspace:
    """One temp dir shared by all blocks, and which blocks ran there (README order)."""

    def __init__(self, path: Path) -> None:
        self.path, self.done = path, {}

    def ensure(self, block: Block) -> None:
        """Run ``block`` after every earlier runnable block of its tier that has not run yet; fail with its output."""
        for prior in BLOCKS[:BLOCKS.index(block) + 1]:
            if prior.id in self.done or not _runnable(prior) or (prior.slow and not block.slow):
                continue
            t0 = time.perf_counter()
            res = run_block(prior, self.path)
            self.done[prior.id] = (res.returncode, time.perf_counter() - t0)
            if res.returncode != 0:
                pytest.fail(f"README block at line {prior.line} exited {res.returncode}:\n"
                            f"{with_overrides(prior.code, prior.extra)}\n--- output ---\n{res.stdout}{res.stderr}")


def _runnable(block: Block) -> bool:
    return block.skip is None and all(importlib.util.find_spec(m) for m in block.requires)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("readme"))


def _param(block: Block):
    marks = [pytest.mark.slow] if block.slow else []
    return pytest.param(block, id=block.id, marks=marks)


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_readme_block_runs(block: Block, workspace: Workspace) -> None:
    if block.skip is not None:
        pytest.skip(f"README line {block.line}: {block.skip}")
    missing = [m for m in block.requires if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"README line {block.line}: needs the optional package(s) {', '.join(missing)}")
    workspace.ensure(block)
    assert workspace.done[block.id][0] == 0


def test_readme_has_blocks_and_few_skips() -> None:
    """The README test covers the README: most blocks run, every skip gives a reason."""
    assert len(BLOCKS) >= 8
    skipped = [b for b in BLOCKS if b.skip is not None]
    assert len(skipped) <= len(BLOCKS) // 3, [b.id for b in skipped]
    assert all(b.skip != "no reason given" for b in skipped)


def test_overrides_are_appended_to_the_command_not_its_comment() -> None:
    code = "pgdat train --out runs/x   # a comment\npgdat eval --n 1000 && pgdat report runs/x -o r.html\n"
    got = with_overrides(code, {"train": "--set train.epochs=1", "eval": "--n 50"})
    assert got.splitlines()[0] == "pgdat train --out runs/x --set train.epochs=1 # a comment"
    assert got.splitlines()[1] == "pgdat eval --n 1000 --n 50 && pgdat report runs/x -o r.html"


def test_marker_parts_are_read_and_typos_refused() -> None:
    got = parse_marker(" slow; requires wandb; train += --set a=1 ")
    assert got == {"slow": True, "requires": ("wandb",), "extra": {"train": "--set a=1"}}
    assert parse_marker(" skip (needs a GPU) ")["skip"] == "needs a GPU"
    with pytest.raises(ValueError, match="not understood"):
        parse_marker("slwo")


def test_eval_takes_n_images_for_torchrun() -> None:
    """The README's torchrun line needs ``--n-images``: torchrun's own parser stops at ``--n`` (ambiguous prefix)."""
    from pgdat.cli.main import build_parser

    args = build_parser().parse_args(["eval", "--checkpoint", "runs/default", "--n-images", "64"])
    assert args.n == 64
    assert build_parser().parse_args(["eval", "--checkpoint", "runs/default", "--n", "32"]).n == 32
