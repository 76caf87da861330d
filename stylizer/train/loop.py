"""What the trainers share: the step loop (:class:`Loop`), run configuration, checkpoints and resume.

Kept apart from any one trainer so that each trainer imports the loop and no trainer imports another
(``train.decoder`` and the old fast-net trainer used to import each other).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import StylizerError
from ..progress_bar import TrainingBar

log = logging.getLogger(__name__)


@dataclass
class DecoderConfig:
    content_dir: Path
    style_dir: Path
    output: Path
    steps: int = 160_000
    size: int = 512  # content short side before cropping
    crop: int = 256
    batch: int = 8
    lr: float = 1e-4
    lr_decay: float = 5e-5
    style_weight: float = 10.0
    content_weight: float = 1.0
    device: str = "auto"
    workers: int = 2
    log_every: int = 100
    checkpoint: Path | None = None  # default: OUTPUT.ckpt
    checkpoint_every: int = 1000
    resume: Path | None = None
    max_minutes: float | None = None
    seed: int | None = 0
    mixed_precision: bool = True
    log_file: Path | None = None  # JSON lines: the loss curve
    init: Path | None = None  # fine-tune: start from this decoder file (a fresh run; --resume wins)
    #: styles from :class:`~stylizer.train.pool.StylePool` (paintings, textures, photos, extra pictures; the
    #: validation styles and photos held out) instead of the augmented paintings of ``style_dir`` alone
    style_pool: bool = False
    extra_styles: Path | None = None  # more style pictures for the pool (scripts/pypi_styles)
    style_layers: tuple[str, ...] | None = None  # of the style loss (None: the paper's, adain.LOSS_LAYERS)
    #: correlated AdaIN's weight in the targets (:func:`stylizer.features.adain`; 0: plain AdaIN), so the decoder
    #: learns to draw the features it is given at run time
    correlation: float = 0.0


def start_or_resume(cfg, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                    key: str = "decoder") -> tuple[Path, int]:
    """(checkpoint path, first step): ``cfg.checkpoint`` or OUTPUT.ckpt, and the step ``cfg.resume`` reached
    (the checkpoint keeps the net's weights under ``key``)."""
    checkpoint = cfg.checkpoint or cfg.output.with_suffix(cfg.output.suffix + ".ckpt")
    step = 0
    if cfg.resume is not None:
        step = load_checkpoint(cfg.resume, model, optimizer, device, key)
        log.info("resumed from %s at step %d", cfg.resume, step)
    return checkpoint, step


def lr_at(cfg: DecoderConfig, step: int) -> float:
    return cfg.lr / (1.0 + cfg.lr_decay * step)


def write_state(path: Path, state: dict) -> None:
    """``torch.save`` atomically (tmp + rename): a run killed mid-write keeps its previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def config_dict(cfg) -> dict:
    """A run configuration (dataclass) as plain values for a checkpoint: paths become strings."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    key: str = "decoder", cfg: DecoderConfig | None = None) -> None:
    """Write the net (under ``key``), optimizer and step, plus ``cfg`` when given; :func:`start_or_resume`
    reads it back."""
    state = {key: model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
    if cfg is not None:
        state["config"] = config_dict(cfg)
    write_state(path, state)


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     device: torch.device, key: str = "decoder") -> int:
    if not Path(path).is_file():
        raise StylizerError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(state[key])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, KeyError, OSError, ValueError) as exc:
        raise StylizerError(f"checkpoint {path} is unusable ({exc})") from exc
    return int(state["step"])


class Loop:
    """The step loop every trainer runs: stops at ``steps`` or after ``max_minutes``, averages and logs the
    losses every ``log_every`` steps, and every ``checkpoint_minutes`` (or ``checkpoint_every`` steps, and at the
    end) calls ``checkpoint`` and then ``validate``. Time-based checkpoints keep a CPU run and a GPU run equally
    safe to kill.

    ``step_fn(step)`` runs one optimisation step and returns its losses (detached tensors or floats);
    ``checkpoint(step)`` saves everything needed to resume; ``validate(step)`` returns figures to log.
    """

    def __init__(self, tag: str, *, steps: int, max_minutes: float | None = None, log_every: int = 50,
                 checkpoint_minutes: float = 5.0, checkpoint_every: int = 0, log_file: Path | None = None) -> None:
        self.tag, self.steps, self.log_every = tag, steps, log_every
        self.max_seconds = max_minutes * 60 if max_minutes else math.inf
        self.checkpoint_seconds = checkpoint_minutes * 60
        self.checkpoint_every = checkpoint_every  # also every N steps (0: by time only)
        self.log_file = log_file
        #: every logged window: {"step": N, loss name: mean, ...}
        self.history: list[dict[str, float]] = []

    def _log(self, record: dict) -> None:
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def run(self, step_fn, start_step: int, checkpoint, validate=None) -> int:
        """Run from ``start_step``; returns the last step reached (checkpointed and validated)."""
        start = time.perf_counter()

        def save_and_validate(step: int) -> None:
            checkpoint(step)
            figures = validate(step) if validate is not None else {}
            if figures:
                log.info("%s step %d validation %s", self.tag, step, json.dumps(figures))
            self._log({"step": step, "validation": figures, "seconds": round(time.perf_counter() - start, 1)})

        bar = TrainingBar(self.tag, self.steps, start_step)  # on a terminal only
        try:
            step = self._steps(step_fn, start_step, save_and_validate, bar)
        finally:
            bar.close()
        save_and_validate(step)
        return step

    def _steps(self, step_fn, start_step: int, save_and_validate, bar: TrainingBar) -> int:  # type: ignore[no-untyped-def]
        start = last_save = time.perf_counter()
        window: dict[str, list[torch.Tensor]] = {}
        step = start_step
        while step < self.steps:
            losses = step_fn(step)
            step += 1
            bar.update(step)
            for k, v in losses.items():  # kept as tensors: no GPU sync per step, one per report
                window.setdefault(k, []).append(torch.as_tensor(v, dtype=torch.float32))
            now = time.perf_counter()
            out_of_time = now - start > self.max_seconds
            # the first step, every log_every-th, and the last window of the run (however short)
            if step % self.log_every == 0 or step in (start_step + 1, self.steps) or out_of_time:
                means = {k: float(torch.stack(v).mean()) for k, v in window.items()}
                window.clear()
                if not all(math.isfinite(v) for v in means.values()):
                    raise StylizerError(f"{self.tag}: training diverged before step {step} ({means})")
                rate = (step - start_step) / (now - start)
                shown = " ".join(f"{k}={v:.4f}" for k, v in means.items())
                log.info("%s step %d/%d %s %.2f it/s", self.tag, step, self.steps, shown, rate)
                bar.update(step, shown)
                self._log({"step": step, "losses": {k: round(v, 5) for k, v in means.items()}})
                self.history.append({"step": step, **means})
            if out_of_time:
                log.info("%s: time limit reached at step %d", self.tag, step)
                break
            by_steps = bool(self.checkpoint_every) and step % self.checkpoint_every == 0
            if by_steps or now - last_save > self.checkpoint_seconds:
                save_and_validate(step)
                last_save = time.perf_counter()
        return step
