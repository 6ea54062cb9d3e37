"""Trials stepped together as one batched model (horizontally fused training, HFTA: Wang et al.,
MLSys 2021). K trials of one architecture are K copies of the same layers with different weights;
``torch.func.vmap`` runs them as one model whose convolutions are grouped (K groups), whose linear
layers are batched matrix products and whose batch norms normalise K sets of channels at once. A
small net fills a GPU no better than its launches allow (issue 23: one V0 trial already takes all
the GPU gives at these kernel sizes; the demo's widths far less), so K fused trials cost about the
launches of one.

Each trial keeps what makes it itself: its own random generator (its batches, z and labels are the
draws it would make alone, in the same order), its own learning rates, betas and Adam state, its own
statistics. ``FusedTrainers`` takes K ``Trainer``s as they are, trains them together, and
``sync`` writes each one's weights, batch-norm statistics, Adam state and iteration count back into
its own ``Trainer``: between syncs only the fused state is current; after one, each trainer
evaluates, checkpoints and reports as if it had trained alone (within float tolerance: a grouped
convolution sums in another order; tests/trainable/test_fused.py).

What may differ between fused trials: the seed and the optimiser (``FREE_FIELDS``). What fusing
does not cover yet, and refuses by name: dropout, spectral norm, R1, DiffAugment, instance noise,
G's average, the freeze rule (each draws or decides per trial in ways vmap does not batch as
they are written), and PBT's changes in the middle of a fused run.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import threading
import types
from typing import Callable, Sequence

import torch
from torch.nn import functional as F
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from trainable import gan
from trainable.config import TrainConfig
from trainable.cuda_graphs import GraphedStep
from trainable.errors import ConfigError
from trainable.experiment import COMPLETED, INTERRUPTED, STOP_REASON
from trainable.loop import NONFINITE_CHECK_EVERY, Reporter, _CtrlC, _Reports, _Window
from trainable.training import DeviceStepStats, Trainer

# The fields in which fused trials may differ: each trial's own draws and optimiser.
FREE_FIELDS = ("seed", "g_lr", "d_lr", "g_beta1", "g_beta2", "d_beta1", "d_beta2")
# The fields the step does not read (the loop's evaluation, reports and verdicts): free as well.
LOOP_FIELDS = ("iterations", "eval_every", "eval_samples_per_class", "grid_columns", "collapse_patience",
               "collapse_grace", "mode_collapse_diversity", "mode_collapse_coverage", "loss_collapse_d_loss",
               "loss_collapse_accuracy", "loss_collapse_divergence", "freeze_window")
# The step's features that fusing does not batch, with the value each must have: (field, off value).
UNFUSED = (("d_dropout", 0.0), ("d_norm", "batch"), ("g_spectral_norm", False), ("r1_gamma", 0.0),
           ("diffaugment", "off"), ("instance_noise", 0.0), ("g_ema", 0.0), ("freeze_after", None),
           ("freeze_accuracy", None))
_D_NORMS_FUSED = ("batch", "none")


def fusion_refusal(configs: Sequence[TrainConfig]) -> str | None:
    """Why these trials cannot be fused (one line), or None when they can."""
    if not configs:
        return "no trials to fuse"
    for config in configs:
        for name, off in UNFUSED:
            value = getattr(config, name)
            if name == "d_norm" and value in _D_NORMS_FUSED:
                continue
            if value != off:
                return f"{name} = {value!r}: fused trials do not support it yet (only {off!r})"
    first = configs[0]
    for config in configs[1:]:
        differs = sorted(set(config.changes_from(first)) - set(FREE_FIELDS) - set(LOOP_FIELDS))
        if differs:
            return (f"{differs[0]} differs ({getattr(first, differs[0])!r} and {getattr(config, differs[0])!r}): "
                    f"fused trials share everything but {', '.join(FREE_FIELDS)}")
    return None


def _batch_norm(self: torch.nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """A training-mode batch norm written in plain tensor operations, for the fused templates:
    vmap's own rule for batch norm does not take a bf16 input with float statistics (autocast's
    mixed precision), which the native kernel does. Statistics in float32, the output in the
    input's dtype, the running statistics moved on as the native kernel moves them."""
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    values = x.float()
    mean, var = values.mean(dims), values.var(dims, unbiased=False)
    output = (values - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
    if self.affine:
        output = output * self.weight.view(shape) + self.bias.view(shape)
    if self.track_running_stats:
        with torch.no_grad():
            count = values.numel() // values.shape[1]
            self.running_mean.mul_(1 - self.momentum).add_(mean.detach() * self.momentum)
            self.running_var.mul_(1 - self.momentum).add_(var.detach() * (self.momentum * count / (count - 1)))
            self.num_batches_tracked.add_(1)
    return output.to(x.dtype)


def _cast(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(dtype)


def _linear(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return F.linear(_cast(x, self.fused_dtype), _cast(self.weight, self.fused_dtype), _cast(self.bias, self.fused_dtype))


def _conv(self: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return self._conv_forward(_cast(x, self.fused_dtype), _cast(self.weight, self.fused_dtype),
                              _cast(self.bias, self.fused_dtype))


def _conv_transpose(self: torch.nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    return F.conv_transpose2d(_cast(x, self.fused_dtype), _cast(self.weight, self.fused_dtype),
                              _cast(self.bias, self.fused_dtype), self.stride, self.padding, self.output_padding,
                              self.groups, self.dilation)


_FORWARDS = ((torch.nn.modules.batchnorm._BatchNorm, _batch_norm), (torch.nn.Linear, _linear),
             (torch.nn.Conv2d, _conv), (torch.nn.ConvTranspose2d, _conv_transpose))


def _template(module: torch.nn.Module, dtype: torch.dtype | None) -> torch.nn.Module:
    """A copy of a trial's module whose code vmap runs with each trial's weights in turn. In bf16
    (``dtype``) its convolutions and linear layers compute in bf16 as autocast would have them
    (inside vmap, autocast leaves a batched transposed convolution's weight in float32), and its
    batch norms as ``_batch_norm``; in float32 (None) it is the trial's module as it is."""
    template = copy.deepcopy(module)
    if dtype is None:  # vmap's own rules serve, batch norm's included
        return template
    for layer in template.modules():
        for kind, forward in _FORWARDS:
            if isinstance(layer, kind):
                layer.forward = types.MethodType(forward, layer)
                layer.fused_dtype = dtype
    return template


def _per_trial(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, device=like.device)


@dataclasses.dataclass
class _Adam:
    """Adam over K trials' stacked parameters, each trial with its own rate and betas: torch's Adam
    (eps 1e-7, as the trainer's) computed for all K at once."""

    lr: torch.Tensor  # [K]
    beta1: torch.Tensor
    beta2: torch.Tensor
    step: torch.Tensor  # [K], float32 as torch's fused Adam keeps it
    exp_avg: dict[str, torch.Tensor]
    exp_avg_sq: dict[str, torch.Tensor]
    eps: float = 1e-7

    @torch.no_grad()
    def update(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor]) -> None:
        self.step += 1
        correction1 = 1 - self.beta1 ** self.step
        correction2_sqrt = (1 - self.beta2 ** self.step).sqrt()
        for name, param in params.items():
            shape = (-1,) + (1,) * (param.dim() - 1)
            grad = grads[name]
            self.exp_avg[name].lerp_(grad, (1 - self.beta1).view(shape))
            self.exp_avg_sq[name].mul_(self.beta2.view(shape)).add_(grad * grad * (1 - self.beta2).view(shape))
            denom = (self.exp_avg_sq[name].sqrt() / correction2_sqrt.view(shape)).add_(self.eps)
            param.sub_(self.exp_avg[name] / denom * (self.lr / correction1).view(shape))


def _adam_of(optimizers: Sequence[torch.optim.Adam], modules: Sequence[torch.nn.Module],
             params: dict[str, torch.Tensor]) -> _Adam:
    """The trials' Adam states stacked (zeros where a trial has not stepped yet)."""
    groups = [optimizer.param_groups[0] for optimizer in optimizers]
    first = next(iter(params.values()))
    exp_avg, exp_avg_sq, steps = {}, {}, []
    for index, (optimizer, module) in enumerate(zip(optimizers, modules)):
        states = [optimizer.state.get(param, {}) for param in module.parameters()]
        steps.append(float(states[0]["step"]) if states and "step" in states[0] else 0.0)
        for (name, param), state in zip(module.named_parameters(), states):
            exp_avg.setdefault(name, torch.zeros_like(params[name]))[index] = state.get("exp_avg", 0)
            exp_avg_sq.setdefault(name, torch.zeros_like(params[name]))[index] = state.get("exp_avg_sq", 0)
    return _Adam(_per_trial([group["lr"] for group in groups], first),
                 _per_trial([group["betas"][0] for group in groups], first),
                 _per_trial([group["betas"][1] for group in groups], first),
                 _per_trial(steps, first), exp_avg, exp_avg_sq)


def _write_adam(adam: _Adam, optimizers: Sequence[torch.optim.Adam], modules: Sequence[torch.nn.Module]) -> None:
    """Each trial's Adam state into its own optimiser: into the tensors it has (a CUDA graph the
    trainer captured alone holds their addresses), new ones where it has none yet."""
    for index, (optimizer, module) in enumerate(zip(optimizers, modules)):
        for name, param in module.named_parameters():
            state = optimizer.state[param]
            for key, value in (("step", adam.step[index]), ("exp_avg", adam.exp_avg[name][index]),
                               ("exp_avg_sq", adam.exp_avg_sq[name][index])):
                if key in state and state[key].shape == value.shape:
                    state[key].copy_(value)
                else:
                    state[key] = value.detach().clone()


def _grad_norms(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each trial's gradient norm over all its parameters: [K]."""
    return torch.linalg.vector_norm(torch.stack([grad.flatten(1).norm(dim=1) for grad in grads.values()]), dim=0)


class FusedTrainers:
    """K trainers of one architecture stepped as one batched model; ``sync`` hands each its state back."""

    def __init__(self, trainers: Sequence[Trainer]) -> None:
        refusal = fusion_refusal([trainer.config for trainer in trainers])
        if refusal:
            raise ConfigError(f"cannot fuse these trials: {refusal}")
        devices = {trainer.device for trainer in trainers}
        if len(devices) > 1:
            raise ConfigError(f"cannot fuse these trials: they live on different devices ({sorted(map(str, devices))})")
        self.trainers = list(trainers)
        first = self.trainers[0]
        self.config, self.device, self.images, self.labels, self.eye = (first.config, first.device, first.images,
                                                                        first.labels, first.eye)
        generators = [trainer.generator for trainer in self.trainers]
        discriminators = [trainer.discriminator for trainer in self.trainers]
        self.g_params, self.g_buffers = stack_module_state(generators)
        self.d_params, self.d_buffers = stack_module_state(discriminators)
        self.g_adam = _adam_of([trainer.g_optimizer for trainer in self.trainers], generators, self.g_params)
        self.d_adam = _adam_of([trainer.d_optimizer for trainer in self.trainers], discriminators, self.d_params)
        # bf16 as the trainer's autocast computes it (trainable/training.py), written out per layer.
        dtype = torch.bfloat16 if first.precision == "bf16" else None
        self._generator, self._discriminator = _template(first.generator, dtype), _template(first.discriminator, dtype)
        self._vmap_g = vmap(self._g_forward, randomness="error")
        self._vmap_d = vmap(self._d_forward, randomness="error")
        self._d_grad = vmap(grad_and_value(self._d_loss), in_dims=(0, 0, 0, None), randomness="error")
        self._g_grad = vmap(grad_and_value(self._g_loss), randomness="error")
        # On a CUDA device the fused step is replayed as one CUDA graph, as a trial's own step is.
        self.cuda_graphs = first.cuda_graphs
        self.graphed_step = GraphedStep(lambda train_d: self._step(), self.device,
                                        [trainer.rng for trainer in self.trainers])

    # The per-trial functions vmap batches: one trial's weights and tensors in, its numbers out.
    def _g_forward(self, params, buffers, z, labels):
        return functional_call(self._generator, (params, buffers), (z, labels))

    def _d_forward(self, params, images, labels):
        # D keeps no buffers: its batch norm never tracks statistics (trainable/models.py).
        return functional_call(self._discriminator, params, (images, labels))

    def _d_loss(self, params, images, labels, real: bool):
        return gan.d_loss(self._d_forward(params, images, labels).float(), real, self.config)

    def _g_loss(self, params, buffers, d_params, z, labels):
        logits = self._d_forward(d_params, self._g_forward(params, buffers, z, labels), labels).float()
        return gan.g_loss(logits, self.config)

    def _draw(self, draw) -> tuple[torch.Tensor, ...]:
        """Each trial's own draws, in its own order, stacked: [K, ...] per returned tensor."""
        return tuple(torch.stack(parts) for parts in zip(*(draw(trainer) for trainer in self.trainers)))

    def advance(self) -> list[DeviceStepStats]:
        """One iteration of every trial, its statistics left on the device (as ``Trainer.advance``)."""
        values = self.graphed_step(True) if self.cuda_graphs else self._step()
        for index, trainer in enumerate(self.trainers):
            trainer._iteration += 1
            trainer.freeze.push(values[index, 2:4])  # D's accuracies, as Trainer.advance keeps them
        return [DeviceStepStats(row, frozen=False) for row in values.unbind(0)]

    def _step(self) -> torch.Tensor:
        config, batch = self.config, self.config.batch_size
        d_losses, d_norms = [], []
        for d_step in range(config.d_steps):
            index, z, labels = self._draw(lambda trainer: (
                torch.randint(len(self.images), (batch,), generator=trainer.rng, device=self.device),
                *trainer._noise(batch)))
            real, real_labels = self.images[index], self.eye[self.labels[index]]
            with torch.no_grad():
                fake = self._vmap_g(self.g_params, self.g_buffers, z, labels)
            if d_step == 0:
                with torch.no_grad():
                    logits = self._vmap_d(self.d_params, torch.cat([real, fake], 1),
                                          torch.cat([real_labels, labels], 1)).float()
                real_logits, fake_logits = logits.split([batch, batch], dim=1)
                boundary = gan.accuracy_boundary(config)
                real_correct = (real_logits > boundary).float().mean(1)
                fake_correct = (fake_logits < boundary).float().mean(1)
            real_grads, real_loss = self._d_grad(self.d_params, real, real_labels, True)
            self.d_adam.update(self.d_params, real_grads)
            fake_grads, fake_loss = self._d_grad(self.d_params, fake, labels, False)
            self.d_adam.update(self.d_params, fake_grads)
            d_losses.append((real_loss + fake_loss) / 2)
            d_norms.append((_grad_norms(real_grads) + _grad_norms(fake_grads)) / 2)
        z, labels = self._draw(lambda trainer: trainer._noise(batch))
        g_grads, g_loss = self._g_grad(self.g_params, self.g_buffers, self.d_params, z, labels)
        self.g_adam.update(self.g_params, g_grads)
        return torch.stack([torch.stack(d_losses).mean(0), g_loss.detach(), real_correct, fake_correct,
                            torch.stack(d_norms).mean(0), _grad_norms(g_grads)], dim=1)

    @torch.no_grad()
    def sync(self) -> None:
        """Write each trial's weights, G's batch-norm statistics, Adam state and iteration count back
        into its own trainer (copies: a trial's checkpoint holds its own tensors only)."""
        for index, trainer in enumerate(self.trainers):
            for module, params, buffers in ((trainer.generator, self.g_params, self.g_buffers),
                                            (trainer.discriminator, self.d_params, self.d_buffers)):
                for name, tensor in module.named_parameters():
                    tensor.copy_(params[name][index])
                for name, tensor in module.named_buffers():
                    tensor.copy_(buffers[name][index])
            trainer.iteration = trainer._iteration  # the device's count as well
        _write_adam(self.g_adam, [trainer.g_optimizer for trainer in self.trainers],
                    [trainer.generator for trainer in self.trainers])
        _write_adam(self.d_adam, [trainer.d_optimizer for trainer in self.trainers],
                    [trainer.discriminator for trainer in self.trainers])


def fusion_key(config: TrainConfig) -> tuple | None:
    """Trials with equal keys can be fused; None: this trial cannot be fused with any."""
    if fusion_refusal([config]) is not None:
        return None
    skip = set(FREE_FIELDS) | set(LOOP_FIELDS)
    return tuple((name, getattr(config, name)) for name in config.__dataclass_fields__ if name not in skip)


class _Alone:
    """A trial that trains by itself (any config), with the interface of FusedTrainers."""

    def __init__(self, slot: "Slot") -> None:
        self.slot = slot

    def advance(self) -> list[DeviceStepStats]:
        with self.slot.own_rng():
            return [self.slot.trainer.advance()]

    def sync(self) -> None:
        pass


# Held while a thread uses or sets torch's process-wide random generators for one trial: a trainer
# being built (its weights are drawn from them after a seed) and a slot's own draws (``own_rng``).
GLOBAL_RNG_LOCK = threading.RLock()


def global_rng_state(device: torch.device) -> tuple:
    """torch's process-wide generator states (CPU, and the device's on CUDA): dropout draws from them."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def set_global_rng_state(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


@dataclasses.dataclass
class Slot:
    """One trial in a fused loop: its trainer, its reports (as loop.train keeps them) and the step
    statistics since its last report."""

    trainer: Trainer
    reports: _Reports
    window: _Window
    # The trial's own state of torch's process-wide generators, when it shares its process with other
    # trials (trainable/fusion_server.py); None: the process's are its own.
    global_rng: tuple | None = None

    @contextlib.contextmanager
    def own_rng(self):
        """torch's process-wide generators as this trial alone would find them (a trial trained
        alone draws dropout from them, its evaluation and CAS may)."""
        if self.global_rng is None:
            yield
            return
        with GLOBAL_RNG_LOCK:
            saved = global_rng_state(self.trainer.device)
            set_global_rng_state(self.global_rng, self.trainer.device)
            try:
                yield
            finally:
                self.global_rng = global_rng_state(self.trainer.device)
                set_global_rng_state(saved, self.trainer.device)

    @classmethod
    def of(cls, trainer: Trainer, reporter: Reporter, history: list[dict] | None = None, *,
           stop_on_collapse: bool = True, on_complete: Callable[[Trainer], dict] | None = None) -> "Slot":
        return cls(trainer, _Reports(trainer, reporter, history, stop_on_collapse, on_complete), _Window(trainer.device))

    def due(self) -> bool:
        """Whether this trial reports now, as loop.train decides it."""
        trainer, config = self.trainer, self.trainer.config
        return (trainer.iteration % config.eval_every == 0 or trainer.iteration >= config.iterations
                or (trainer.iteration % NONFINITE_CHECK_EVERY == 0 and self.window.nonfinite()))

    def report(self, stop_reason: str | None = None) -> dict:
        finished = self.trainer.iteration >= self.trainer.config.iterations
        with self.own_rng():
            row = self.reports.make(self.window, stop_reason or (COMPLETED if finished else None))
        self.window = _Window(self.trainer.device)
        return row


def until_reports(slots: Sequence[Slot], stop: Callable[[], bool] = lambda: False) -> list[tuple[Slot, dict]]:
    """Step the slots' trials together (fused; one slot alone) until at least one has a report due,
    and make those reports (each trainer synced first). [] when ``stop`` said so before any was due."""
    stepper = FusedTrainers([slot.trainer for slot in slots]) if len(slots) > 1 else _Alone(slots[0])
    due: list[Slot] = []
    try:
        while not due and not stop():
            for slot, stats in zip(slots, stepper.advance()):
                slot.window.add(stats)
                if slot.due():
                    due.append(slot)
    except KeyboardInterrupt:  # a second Ctrl-C: the trainers take what was trained (as loop.train)
        stepper.sync()
        raise
    stepper.sync()  # every trainer's own state is current again (not after an error: a step half done)
    return [(slot, slot.report()) for slot in due]


def train_fused(trainers: Sequence[Trainer], reporters: Sequence[Reporter], *,
                histories: Sequence[list[dict] | None] | None = None, stop_on_collapse: bool = True,
                on_complete: Callable[[Trainer], dict] | None = None) -> list[str]:
    """``loop.train`` for K trials at once: each trial is stepped in the fused model and reported,
    judged and stopped as it would be alone (its own evaluation points, verdicts, stop reason and
    reporter). A trial that stops leaves the group, which the others go on in. Returns each trial's
    stop reason, in the trainers' order."""
    histories = list(histories or [None] * len(trainers))
    if len(reporters) != len(trainers) or len(histories) != len(trainers):
        raise ValueError("one reporter and one history per trainer")
    slots = [Slot.of(trainer, reporter, history, stop_on_collapse=stop_on_collapse, on_complete=on_complete)
             for trainer, reporter, history in zip(trainers, reporters, histories)]
    reasons = {id(slot): COMPLETED for slot in slots}
    live = [slot for slot in slots if slot.trainer.iteration < slot.trainer.config.iterations]
    ctrl_c = _CtrlC()
    try:
        with ctrl_c.deferred():
            while live and not ctrl_c.requested:
                for slot, row in until_reports(live, lambda: ctrl_c.requested):
                    if row[STOP_REASON]:
                        reasons[id(slot)] = row[STOP_REASON]
                        live.remove(slot)
    except KeyboardInterrupt:
        pass
    for slot in live:  # Ctrl-C: one last report (and checkpoint) of each unfinished trial, to resume from
        if slot.window.count:
            slot.report(INTERRUPTED)
        reasons[id(slot)] = INTERRUPTED
    return [reasons[id(slot)] for slot in slots]
