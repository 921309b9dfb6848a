"""Running a planned sweep (:mod:`pgdat.experiments.sweep`): lock its directory, skip finished runs, train or
resume the others one after another in this process or in ``workers`` ``pgdat train`` child processes, then write
the summary over seeds (:mod:`pgdat.experiments.sweep_summary`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pgdat.errors import PgdatError
from pgdat.experiments.sweep import PlannedRun, SweepPlan, check_sweep_dir, run_state, write_plan
from pgdat.experiments.sweep_summary import write_sweep_summary
from pgdat.rundir import RunLock

Say = Callable[[str], None]


@dataclass
class SweepResult:
    """What a sweep did, by run folder (relative to its directory)."""

    skipped: list[str] = field(default_factory=list)
    trained: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # folder -> why


def _train_here(run: PlannedRun, run_dir: Path) -> None:
    """Train or resume ``run`` in this process, holding its run directory's lock (as ``pgdat train`` does)."""
    from pgdat.training import Trainer, write_config

    with RunLock(run_dir).acquire(create=True) as lock:
        state = run_state(run, run_dir)  # again, under the lock
        if state == "finished":
            return
        trainer = Trainer(run.config, run_dir, resume=state == "resume", lock=lock)
        write_config(trainer.cfg, run_dir / "config.yaml")
        trainer.fit()


def _sequential(plan: SweepPlan, todo: list[PlannedRun], result: SweepResult, say: Say) -> None:
    for i, run in enumerate(todo, 1):
        say(f"[{i}/{len(todo)}] {run.rel_dir}: training (train.seed={run.config.train.seed})")
        try:
            _train_here(run, plan.out / run.rel_dir)
        except Exception as e:  # noqa: BLE001 - one failed run must not lose the others; reported at the end
            if not isinstance(e, PgdatError):
                traceback.print_exc()
            result.failed[run.rel_dir] = str(e)
            say(f"[{i}/{len(todo)}] {run.rel_dir}: failed: {e}")
            continue
        result.trained.append(run.rel_dir)


def child_command(plan: SweepPlan, run: PlannedRun, resume: bool) -> list[str]:
    """The ``pgdat train`` command line of ``run``: a resume uses the run's saved config (checked equal to the
    planned one), a fresh start the sweep's recipe and the run's overrides."""
    run_dir = str(plan.out / run.rel_dir)
    if resume:
        return [sys.executable, "-m", "pgdat", "train", "--resume", run_dir]
    sets = [a for o in run.overrides for a in ("--set", o)]
    return [sys.executable, "-m", "pgdat", "train", "--config", plan.recipe or "default", *sets, "--out", run_dir]


def gpu_slots(workers: int, device: str) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` for each worker slot: GPU ``slot % count`` when several GPUs are visible and the
    config lets the run choose (``train.device`` auto or cuda); else None (the config stays as planned either
    way, so a run can be resumed on any GPU)."""
    if device not in ("auto", "cuda"):
        return [None] * workers
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n < 2:
        return [None] * workers
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",")] if visible else [str(i) for i in range(n)]
    return [ids[i % n] for i in range(workers)]


def _launch(plan: SweepPlan, run: PlannedRun, gpu: str | None) -> subprocess.Popen:
    state = run_state(run, plan.out / run.rel_dir)
    log = plan.out / "logs" / f"{run.rel_dir.replace('/', '_')}.log"
    log.parent.mkdir(exist_ok=True)
    env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {}))
    with log.open("ab") as f:
        return subprocess.Popen(child_command(plan, run, state == "resume"), stdout=f, stderr=subprocess.STDOUT,
                                env=env)


def _stop_children(children: dict[int, tuple[subprocess.Popen, PlannedRun]]) -> None:
    """Ctrl-C: ask each child to stop (it checkpoints nothing more, last.pt stays whole), kill it after 30 s."""
    for proc, _ in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 30
    for proc, _ in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


def _parallel(plan: SweepPlan, todo: list[PlannedRun], workers: int, result: SweepResult, say: Say) -> None:
    """At most ``workers`` ``pgdat train`` children at once, each with its log in ``DIR/logs/``."""
    slots = gpu_slots(workers, todo[0].config.train.device if todo else "cpu")
    queue, children = list(todo), {}  # slot -> (process, run)
    try:
        while queue or children:
            for slot in [s for s in range(workers) if s not in children][:len(queue)]:
                run = queue.pop(0)
                say(f"{run.rel_dir}: training in a child process (train.seed={run.config.train.seed}"
                    f"{', GPU ' + slots[slot] if slots[slot] is not None else ''}; log in {plan.out / 'logs'})")
                children[slot] = (_launch(plan, run, slots[slot]), run)
            time.sleep(0.2)
            for slot, (proc, run) in list(children.items()):
                if proc.poll() is None:
                    continue
                del children[slot]
                if proc.returncode == 0:
                    result.trained.append(run.rel_dir)
                else:
                    result.failed[run.rel_dir] = f"pgdat train exited with {proc.returncode}, see its log"
                say(f"{run.rel_dir}: {'done' if proc.returncode == 0 else result.failed[run.rel_dir]}")
    except BaseException:
        _stop_children(children)
        raise


def run_sweep(plan: SweepPlan, *, workers: int = 1, replan: bool = False, say: Say = print) -> SweepResult:
    """Run ``plan`` (see the module docstring); ``DIR/summary.json`` and ``summary.md`` are written at the end
    from every finished run. Finished runs are skipped; a PgdatError before anything trains when a run
    directory holds another config or the directory another sweep."""
    if workers < 1:
        raise PgdatError(f"--workers must be >= 1 (got {workers}), e.g. --workers 2")
    try:
        lock = RunLock(plan.out).acquire(create=True)
    except PgdatError as e:  # another sweep (or a training) holds DIR
        raise PgdatError(f"cannot run the sweep in {plan.out}: {e}") from None
    with lock:
        replace = check_sweep_dir(plan, replan)
        states = {r.rel_dir: run_state(r, plan.out / r.rel_dir) for r in plan.runs}  # refuses before any change
        write_plan(plan, replace)
        result = SweepResult(skipped=[d for d, s in states.items() if s == "finished"])
        todo = [r for r in plan.runs if states[r.rel_dir] != "finished"]
        say(f"sweep {plan.out}: {len(plan.runs)} runs, {len(result.skipped)} finished already, {len(todo)} to "
            f"train ({'sequentially' if workers == 1 else f'{workers} at a time'})")
        if workers == 1:
            _sequential(plan, todo, result, say)
        else:
            _parallel(plan, todo, workers, result, say)
        write_sweep_summary(plan)
    return result
