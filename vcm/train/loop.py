"""The training loop shared by all learned codecs: rate points, resumable state, DDP.

Layout of ``output_dir``::

    config.yaml               the validated config
    <rate>.pth                final weights of a rate point (what the codec's ``checkpoint`` loads)
    <rate>/state.pth          resumable state: weights, optimisers, step, RNG states
    <rate>/log.csv            step, loss, bpp, visible MSE and PSNR, lr

Launch with ``torchrun --nproc_per_node N -m vcm.cli train CONFIG`` for data-parallel training:
each rank draws its own crops; rank 0 writes files.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from vcm.device import load_checkpoint, resolve_device
from vcm.train.base import LEARNED, LearnedCodec, RDResult, stage_loss, stages_of
from vcm.train.config import RatePoint, TrainConfig
from vcm.train.data import CropSampler


@dataclass(frozen=True)
class Dist:
    """Process-group facts; ``world == 1`` means plain single-process training."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the torchrun process group if ``WORLD_SIZE`` > 1 (NCCL on CUDA, Gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(), device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), world), device


def make_optimizers(model: nn.Module, lr: float, aux_lr: float) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam for the network, Adam for compressai's entropy-bottleneck quantiles (the aux loss)."""
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    return torch.optim.Adam(main, lr=lr), torch.optim.Adam(aux, lr=aux_lr)


def optimisation_step(learned: LearnedCodec, net: nn.Module, model: nn.Module, x: torch.Tensor,
                      grid: torch.Tensor, lmbda: float, opts: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
                      clip: float, dist_: Dist = Dist(), stage: str = "rd") -> RDResult:
    """RD step through ``net`` (``model`` or its DDP wrapper), then one aux step on ``model``."""
    opt, aux_opt = opts
    net.train()
    res = stage_loss(learned, stage, net, x, grid, lmbda)
    opt.zero_grad()
    res.loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip)
    opt.step()
    aux = model.aux_loss()  # type: ignore[operator]
    aux_opt.zero_grad()
    aux.backward()
    if dist_.world > 1:  # the quantiles are outside DDP's forward: average their gradients by hand
        import torch.distributed as dist

        for p in (p for g in aux_opt.param_groups for p in g["params"] if p.grad is not None):
            dist.all_reduce(p.grad)
            p.grad /= dist_.world
    aux_opt.step()
    return res.detach()


def _save_atomic(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class RateTrainer:
    """Trains one rate point, resuming from ``<rate>/state.pth`` when present."""

    def __init__(self, cfg: TrainConfig, rate: RatePoint, learned: LearnedCodec, device: torch.device,
                 dist_: Dist, progress: bool = True) -> None:
        self.cfg, self.rate, self.learned, self.device, self.dist = cfg, rate, learned, device, dist_
        self.out = Path(cfg.output_dir)
        self.state_path = self.out / rate.name / "state.pth"
        self.final_path = self.out / f"{rate.name}.pth"
        self.progress = progress and dist_.main
        torch.manual_seed(cfg.seed * 1000 + dist_.rank * 100 + sum(map(ord, rate.name)))
        self.model = learned.build(cfg.codec.params).to(device)
        self.opts = make_optimizers(self.model, cfg.optim.lr, cfg.optim.aux_lr)
        self.rng = np.random.default_rng([cfg.seed, dist_.rank, sum(map(ord, rate.name))])
        self.step = 0

    def _state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "opt": self.opts[0].state_dict(),
                "aux_opt": self.opts[1].state_dict(), "step": self.step,
                "np_rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state()}

    def _restore(self) -> None:
        if self.state_path.is_file():
            st = load_checkpoint(self.state_path, trusted=True)  # written by this loop
            self.model.load_state_dict(st["model"])
            self.opts[0].load_state_dict(st["opt"])
            self.opts[1].load_state_dict(st["aux_opt"])
            self.step = int(st["step"])
            self.rng.bit_generator.state = st["np_rng"]
            torch.set_rng_state(st["torch_rng"])
            if self.dist.main:
                print(f"[{self.rate.name}] resumed at step {self.step}/{self.rate.steps}")
        elif self.rate.init is not None:
            src = self.out / f"{self.rate.init}.pth"
            if not src.is_file():
                raise FileNotFoundError(f"rate point {self.rate.name!r} starts from {src}, which is not trained yet")
            sd = load_checkpoint(src)["state_dict"]
            params = dict(self.model.named_parameters())
            own = {k: v for k, v in self.model.state_dict().items() if k not in params}  # coder tables
            self.model.load_state_dict(own | {k: v.float() if v.is_floating_point() else v for k, v in sd.items()})

    def _lr(self) -> float:
        decay = self.step >= int(self.cfg.optim.decay_at * self.rate.steps)
        return self.cfg.optim.lr * (0.1 if decay else 1.0)

    def _net(self) -> nn.Module:
        if self.dist.world == 1:
            return self.model
        from torch.nn.parallel import DistributedDataParallel as DDP

        ignore = [n for n, _ in self.model.named_parameters() if n.endswith(".quantiles")]
        DDP._set_params_and_buffers_to_ignore_for_model(self.model, ignore)
        return DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                   find_unused_parameters=self.rate.stage != "rd")  # e.g. MCM's mae stage skips the LIC

    def run(self, until: int | None = None) -> Path | None:
        """Train to ``rate.steps`` and write the final weights; returns their path.

        ``until`` stops earlier, at that step, with the resumable state saved (returns None).
        """
        if self.final_path.is_file():
            if self.dist.main:
                print(f"[{self.rate.name}] already trained: {self.final_path}")
            return self.final_path
        self._restore()
        sampler = CropSampler(self.cfg.data, self.learned.unit, self.rng, getattr(self.learned, "segments", False))
        net, log = self._net(), self._log_file()
        bar = self._bar()
        stop = self.rate.steps if until is None else min(until, self.rate.steps)
        while self.step < stop:
            for g in self.opts[0].param_groups:
                g["lr"] = self._lr()
            x, grid = sampler.batch(self.device)
            res = optimisation_step(self.learned, net, self.model, x, grid, self.rate.lmbda, self.opts,
                                    self.cfg.optim.clip, self.dist, self.rate.stage)
            self.step += 1
            self._record(res, log, bar)
        for handle in (bar, log):
            if handle is not None:
                handle.close()
        if self.step < self.rate.steps:
            if self.dist.main:
                _save_atomic(self._state(), self.state_path)
                print(f"[{self.rate.name}] stopped at step {self.step}/{self.rate.steps}; run again to resume")
            return None
        return self._finish()

    def _record(self, res: RDResult, log: Any, bar: Any) -> None:
        if not math.isfinite(float(res.loss)):
            raise FloatingPointError(f"[{self.rate.name}] loss is {float(res.loss)} at step {self.step}")
        if not self.dist.main:
            return
        psnr = -10 * math.log10(max(float(res.mse_visible), 1e-10))
        if self.step % self.cfg.log_every == 0 or self.step == self.rate.steps:
            log.write(f"{self.step},{float(res.loss):.5f},{float(res.bpp):.5f},"
                      f"{float(res.mse_visible):.6f},{psnr:.3f},{self._lr():.3g}\n")
            log.flush()
        if self.step % self.cfg.checkpoint_every == 0 and self.step < self.rate.steps:
            _save_atomic(self._state(), self.state_path)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{float(res.loss):.3f}", bpp=f"{float(res.bpp):.3f}", psnr=f"{psnr:.2f}")

    def _log_file(self) -> Any:
        if not self.dist.main:
            return None
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        path = self.state_path.parent / "log.csv"
        new = not path.is_file() or self.step == 0
        f = path.open("w" if new else "a")
        if new:
            f.write("step,loss,bpp,mse_visible,psnr_visible,lr\n")
        return f

    def _bar(self) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=self.rate.steps, initial=self.step, desc=self.rate.name, dynamic_ncols=True)

    def _finish(self) -> Path:
        if self.dist.main:
            self.model.update(force=True)  # type: ignore[operator]
            info = {"lmbda": self.rate.lmbda, "steps": self.rate.steps, "train_config": self.cfg.to_dict()}
            self.learned.save(self.model.cpu(), self.final_path.with_suffix(".tmp"), self.cfg.half_weights, train=info)
            os.replace(self.final_path.with_suffix(".tmp"), self.final_path)
            self.state_path.unlink(missing_ok=True)
            print(f"[{self.rate.name}] done: {self.final_path}")
        if self.dist.world > 1:
            import torch.distributed as dist

            dist.barrier()
        return self.final_path


def train(cfg: TrainConfig, only: list[str] | None = None, progress: bool = True,
          until: int | None = None) -> dict[str, Path | None]:
    """Train the config's rate points in order (``only``: a subset by name); returns final weight paths.

    ``until``: stop each rate point at that step (state saved; None in the result), e.g. to split
    training over time-boxed sessions. Running again resumes.
    """
    unknown = sorted(set(only or []) - {r.name for r in cfg.rates})
    if unknown:
        raise ValueError(f"unknown rate point(s) {', '.join(unknown)}; config has {', '.join(r.name for r in cfg.rates)}")
    learned = LEARNED.build(cfg.codec.type, {})
    for r in cfg.rates:
        if r.stage not in stages_of(learned):
            raise ValueError(f"rate point {r.name!r}: stage {r.stage!r} is not one of {cfg.codec.type}'s "
                             f"{', '.join(stages_of(learned))}")
    dist_, device = init_distributed(resolve_device(cfg.device))
    out = Path(cfg.output_dir)
    if dist_.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    done: dict[str, Path | None] = {}
    for rate in cfg.rates:
        if only and rate.name not in only:
            continue
        done[rate.name] = path = RateTrainer(cfg, rate, learned, device, dist_, progress).run(until)
        if path is None:
            break  # later points may start from this one
    return done
