"""Training: one step, evaluation, and exact checkpoint state (the loop lives in trainable/loop.py).

A step is the paper's (section 7): D learns on a real batch, then on a fake batch made with
random labels (two updates, as Keras' train_on_batch twice); then G learns on a fresh batch
of random z and labels. z is uniform in [-1, 1].
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import functools
import hashlib
import io
import math
import pickle
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np
import torch
from torch.nn import functional as F

from trainable._io import atomic_path, write_text_atomic
from trainable.augment import diff_augment
from trainable.config import MUTABLE_FIELDS, TrainConfig
from trainable.data import PreparedDataset, denormalize, normalize
from trainable.errors import ConfigError, UserError
from trainable.judge import Judge
from trainable.models import Discriminator, Generator, LeakyReLUDropout
from trainable.progress import Progress

CHECKPOINT_FILE = "trainer.pt"
DIGEST_FILE = "trainer.pt.sha256"
T = TypeVar("T")
R = TypeVar("R")


# What a step measures, in the order of StepStats' first fields and of DeviceStepStats.values.
STEP_STATISTICS = ("d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy", "d_grad_norm", "g_grad_norm")
GRAPH_WARMUP = 2  # eager steps of each kind (D trained or frozen) before one is captured as a CUDA graph


@dataclasses.dataclass(frozen=True)
class StepStats:
    d_loss: float  # mean of the real and fake updates (nan-free unless nonfinite)
    g_loss: float
    d_real_accuracy: float
    d_fake_accuracy: float
    d_grad_norm: float
    g_grad_norm: float
    frozen: bool
    nonfinite: bool


@dataclasses.dataclass(frozen=True)
class DeviceStepStats:
    """A step's statistics still on the device: reading them is a host sync, which on a GPU stops
    the CPU from queueing the next step's kernels while the GPU works, so the loop reads them only
    now and then (trainable/loop.py)."""

    values: torch.Tensor  # float32, STEP_STATISTICS in order
    frozen: bool

    def to_host(self) -> StepStats:
        values = self.values.tolist()
        return StepStats(*values, frozen=self.frozen, nonfinite=not all(math.isfinite(value) for value in values))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda requested but no CUDA GPU is available")
    return torch.device(name)


@functools.cache
def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _grad_norm(parameters: list[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad for p in parameters if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if grads else torch.zeros(())


class Trainer:
    """Holds the models, optimizers, data on the device and every random state of one trial."""

    def __init__(self, config: TrainConfig, dataset: PreparedDataset, judge: Judge | None = None,
                 *, device: str | torch.device | None = None, cuda_graphs: bool | None = None) -> None:
        """``cuda_graphs`` (default: the config's) replays each step on a CUDA device as one CUDA
        graph. A step of the paper's small nets is some 300 kernel launches of a few microseconds of
        GPU work each, so eager PyTorch is bound by launching them (V0 on an H200: 86 it/s eager,
        383 replayed in fp32 and 463 in bf16; with deterministic cuDNN the same numbers bit for bit;
        benchmarks/train_speed.py, tests/trainable/test_cuda_graphs.py)."""
        self.config = config
        self.device = torch.device(device) if device is not None else resolve_device(config.device)
        self.cuda_graphs = self.device.type == "cuda" and (config.cuda_graphs if cuda_graphs is None else bool(cuda_graphs))
        if self.device.type == "cuda":
            # Every batch has the same shape, so cuDNN's timed choice of convolution algorithms pays
            # from the first steps on (process-wide; a trial is a process of its own).
            torch.backends.cudnn.benchmark = True
        self._graphs: dict[bool, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}  # train_d -> (graph, its output)
        self._eager_steps: collections.Counter[bool] = collections.Counter()  # per train_d, since the graphs were last dropped
        self._side_stream: torch.cuda.Stream | None = None
        self.judge = judge
        self.class_names = dataset.class_names
        self.num_classes = dataset.num_classes
        self.size = dataset.size
        train = dataset.select("train")
        # The whole training split lives on the device: the fused set at 28x28 is ~0.2 GB.
        self.images = torch.from_numpy(normalize(train.images, config.normalization)).to(self.device)
        self.images = self.images.contiguous(memory_format=torch.channels_last)
        self.labels = torch.from_numpy(train.labels).to(self.device)
        self.eye = torch.eye(self.num_classes, device=self.device)

        torch.manual_seed(config.seed)
        self.generator = Generator(config, self.num_classes, self.size).to(self.device, memory_format=torch.channels_last)
        self._build_discriminator(config)
        self.g_optimizer = self._adam(self.generator.parameters(), config.g_lr, (config.g_beta1, config.g_beta2))
        self.g_parameters = list(self.generator.parameters())
        self.rng = torch.Generator(device=self.device).manual_seed(config.seed)
        self.g_ema: Generator | None = None
        if config.g_ema > 0:
            self.g_ema = copy.deepcopy(self.generator).requires_grad_(False)
            self.ema_parameters = list(self.g_ema.parameters())

        # Fixed noise per run: evaluation samples and the grid (rows = classes, columns = z).
        fixed = torch.Generator().manual_seed(config.seed + 1)
        per_class = config.eval_samples_per_class
        self.eval_labels = torch.arange(self.num_classes).repeat_interleave(per_class)
        self.eval_z = torch.rand(len(self.eval_labels), config.latent_size, generator=fixed) * 2 - 1
        grid_z = torch.rand(config.grid_columns, config.latent_size, generator=fixed) * 2 - 1
        self.grid_z = grid_z.repeat(self.num_classes, 1)
        self.grid_labels = torch.arange(self.num_classes).repeat_interleave(config.grid_columns)

        self.checkpoint_config: TrainConfig | None = None  # the config the last restored checkpoint trained with
        # The iteration count on the device too, for what a step computes from it (instance noise's
        # annealing, EMA's warm-up): a captured step reads it there rather than baking in a number.
        # float64: exact to 2^53, and the same arithmetic as the Python floats it replaces.
        self._device_iteration = torch.zeros((), dtype=torch.float64, device=self.device)
        self.iteration = 0
        self.accuracy_window: collections.deque[float] = collections.deque(maxlen=config.freeze_window)
        # Steps' (real, fake) accuracies not yet read back into accuracy_window: only the freeze
        # rule on accuracy needs them at once; otherwise they wait for the next checkpoint.
        self._pending_accuracy: collections.deque[torch.Tensor] = collections.deque(maxlen=config.freeze_window)
        self.frozen = False
        self.events: list[dict] = []  # freeze / unfreeze, since the last report
        use_bf16 = config.precision == "bf16" or (config.precision == "auto" and (
            torch.cuda.is_bf16_supported() if self.device.type == "cuda" else native_bf16_cpu()))
        self.precision = "bf16" if use_bf16 else "fp32"

    def _adam(self, parameters, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        # capturable: the step count stays on the device, as a CUDA graph needs.
        return torch.optim.Adam(parameters, lr=lr, betas=betas, eps=1e-7, fused=self.device.type in ("cpu", "cuda"),
                                capturable=self.cuda_graphs)

    def _build_discriminator(self, config: TrainConfig) -> None:
        self.discriminator = Discriminator(config, self.num_classes, self.size).to(self.device,
                                                                                 memory_format=torch.channels_last)
        self.d_optimizer = self._adam(self.discriminator.parameters(), config.d_lr, (config.d_beta1, config.d_beta2))
        self.d_parameters = list(self.discriminator.parameters())
        self._drop_graphs()

    @property
    def iteration(self) -> int:
        return self._iteration

    @iteration.setter
    def iteration(self, value: int) -> None:
        self._iteration = value
        self._device_iteration.fill_(value)

    @property
    def dropout_layers(self) -> bool:
        """Whether D has nn.Dropout layers (built with d_dropout > 0): its module layout, and so its
        checkpoint's keys, differ from a D built without."""
        return any(isinstance(module, torch.nn.Dropout) for module in self.discriminator.modules())

    @property
    def sampling_generator(self) -> Generator:
        """The G that evaluation, grids and exported samples use: the average when there is one."""
        return self.g_ema if self.g_ema is not None else self.generator

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _noise(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.rand(count, self.config.latent_size, generator=self.rng, device=self.device) * 2 - 1
        labels = torch.randint(self.num_classes, (count,), generator=self.rng, device=self.device)
        return z, self.eye[labels]

    def _d_loss(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        """D's loss on one batch, all real or all fake, for the configured loss."""
        target = 1.0 - self.config.label_smoothing if real else 0.0  # one-sided: fakes stay at 0
        if self.config.loss == "hinge":
            return F.relu(1 - logits).mean() if real else F.relu(1 + logits).mean()
        if self.config.loss == "least-squares":
            return (logits - target).square().mean()
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    def _g_loss(self, logits: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "hinge":
            return -logits.mean()
        if self.config.loss == "least-squares":
            return (logits - 1).square().mean()
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))  # non-saturating

    def _d_input(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees of a batch: DiffAugment, then annealed instance noise (both off by default)."""
        images = diff_augment(images, self.config.diffaugment, self.rng)
        if self.config.instance_noise > 0:
            # Sonderby et al. 2017: noise makes the real and fake distributions overlap, so D's
            # gradients stay informative; annealed linearly to 0 by the last iteration. The std is
            # in units of the [0,1] range.
            width = 1.0 if self.config.normalization == "[0,1]" else 2.0
            std = self.config.instance_noise * width * (1 - self._device_iteration / self.config.iterations).clamp(min=0)
            noise = torch.randn(images.shape, generator=self.rng, device=self.device, dtype=images.dtype)
            # In float32 and then rounded, as a Python float std was: a CUDA tensor std would be
            # rounded to bf16 first.
            images = images + (noise.float() * std).to(images.dtype)
        return images

    def _d_update(self, images: torch.Tensor, labels: torch.Tensor, real: bool):
        r1 = real and self.config.r1_gamma > 0
        if r1:
            images = images.detach().requires_grad_(True)
        with self._autocast():
            logits = self.discriminator(images, labels).float()
            loss = self._d_loss(logits, real)
        if r1:
            # R1 (Mescheder et al. 2018): penalise D's gradient on real images, so D cannot sharpen
            # its boundary without bound around the data: gamma / 2 * E ||grad D(x)||^2.
            gradient, = torch.autograd.grad(logits.sum(), images, create_graph=True)
            loss = loss + self.config.r1_gamma / 2 * gradient.float().square().flatten(1).sum(1).mean()
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = _grad_norm(self.d_parameters)
        self.d_optimizer.step()
        return loss.detach(), norm

    @torch.no_grad()
    def _d_accuracy(self, real: torch.Tensor, real_labels: torch.Tensor, fake: torch.Tensor,
                    fake_labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """D's accuracy on real and on fake, from one forward pass of the same D state over both
        batches together: its batch norm then normalises real and fake by the same statistics.
        Two separate batches (the paper's two updates) are each normalised by their own, which
        leaves the two accuracies within 0.005 of each other whatever D has learned. Also returns
        D's loss on the same logits, for the report while D is frozen."""
        with self._autocast():
            logits = self.discriminator(torch.cat([real, fake]), torch.cat([real_labels, fake_labels])).float()
        real_logits, fake_logits = logits.split([len(real), len(fake)])
        loss = (self._d_loss(real_logits, True) + self._d_loss(fake_logits, False)) / 2
        # D calls a sample real past the midpoint of its two targets: logit 0 for cross-entropy
        # (p = 0.5) and hinge (+1 / -1); 0.5 for least squares, whose targets are 1 and 0.
        boundary = 0.5 if self.config.loss == "least-squares" else 0.0
        return (real_logits > boundary).float().mean(), (fake_logits < boundary).float().mean(), loss

    def _read_accuracy(self) -> None:
        """Move the pending accuracies into accuracy_window: one host sync for all of them."""
        if self._pending_accuracy:
            pairs = torch.stack(list(self._pending_accuracy)).tolist()
            self._pending_accuracy.clear()
            self.accuracy_window.extend((real + fake) / 2 for real, fake in pairs)

    def _update_freeze(self) -> bool:
        config = self.config
        reasons = []
        if config.freeze_after is not None and self.iteration >= config.freeze_after:
            reasons.append(f"iteration >= {config.freeze_after}")
        if config.freeze_accuracy is not None:
            self._read_accuracy()  # left pending while the rule was off (PBT may switch it on)
        window_full = len(self.accuracy_window) == self.accuracy_window.maxlen
        if config.freeze_accuracy is not None and window_full:
            accuracy = sum(self.accuracy_window) / len(self.accuracy_window)
            if accuracy > config.freeze_accuracy:
                reasons.append(f"D accuracy {accuracy:.3f} > {config.freeze_accuracy} over {len(self.accuracy_window)} iterations")
        frozen = bool(reasons)
        if frozen != self.frozen:
            self.events.append({"iteration": self.iteration, "event": "freeze" if frozen else "unfreeze",
                                "reason": "; ".join(reasons) if reasons else "D accuracy back under the threshold"})
            self.frozen = frozen
        return frozen

    def step(self) -> StepStats:
        """One iteration; returns plain numbers and does no I/O. Reading the numbers is a host sync
        on a GPU: the training loop calls ``advance`` and reads them only now and then."""
        return self.advance().to_host()

    def advance(self) -> DeviceStepStats:
        """One iteration, leaving its statistics on the device; does no I/O and, on a GPU, waits
        for nothing unless the freeze rule on D's accuracy is on (it decides each step on the host)."""
        train_d = not self._update_freeze()
        values = self._graphed_step(train_d) if self.cuda_graphs else self._step(train_d)
        self._iteration += 1  # the device's count moved on in the step
        self._pending_accuracy.append(values[2:4])
        if self.config.freeze_accuracy is not None:
            # The next step's freeze decision needs this accuracy on the host: a sync per step, which
            # keeps the rule exact (deciding on a lagged window would change V2's training).
            self._read_accuracy()
        return DeviceStepStats(values, frozen=not train_d)

    def _graphed_step(self, train_d: bool) -> torch.Tensor:
        """The step as a CUDA graph, one per value of train_d, captured after GRAPH_WARMUP eager
        steps (lazy initialisation, cuDNN's algorithm choice) and dropped whenever the models, the
        optimisers or the config change (a restore, PBT's explore): a graph bakes in numbers such
        as the learning rates and the addresses of the optimiser's state."""
        entry = self._graphs.get(train_d)
        if entry is None:
            if self._eager_steps[train_d] < GRAPH_WARMUP:
                self._eager_steps[train_d] += 1
                return self._on_side_stream(train_d)
            try:
                entry = self._graphs[train_d] = self._capture(train_d)
            except Exception as exc:  # noqa: BLE001 - whatever breaks a capture
                # Not trained on eagerly: a failed capture leaves the random generators marked as
                # capturing (torch 2.11: "Offset increment outside graph capture"), so the process
                # cannot draw on the device again. Every configuration tried captures (issue 12).
                raise UserError(f"this configuration's step could not be captured as a CUDA graph ({_first_line(exc)}); "
                                "train it with cuda_graphs=false") from None
        graph, values = entry
        graph.replay()
        return values.clone()  # the graph's output is overwritten by the next replay

    def _on_side_stream(self, train_d: bool) -> torch.Tensor:
        # PyTorch's advice for warming up before a capture: off the default stream.
        if self._side_stream is None:
            self._side_stream = torch.cuda.Stream(self.device)
        current = torch.cuda.current_stream(self.device)
        self._side_stream.wait_stream(current)
        with torch.cuda.stream(self._side_stream):
            values = self._step(train_d)
        current.wait_stream(self._side_stream)
        return values

    def _capture(self, train_d: bool) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(self.rng)  # its draws move on with each replay
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            values = self._step(train_d)
        return graph, values

    def _drop_graphs(self) -> None:
        self._graphs.clear()
        self._eager_steps.clear()

    def _step(self, train_d: bool) -> torch.Tensor:
        """The device's work of one iteration, with no host sync: [STEP_STATISTICS]."""
        config, batch = self.config, self.config.batch_size
        d_losses, d_norms = [], []
        for d_step in range(config.d_steps):
            index = torch.randint(len(self.images), (batch,), generator=self.rng, device=self.device)
            real, real_labels = self.images[index], self.eye[self.labels[index]]
            z, labels = self._noise(batch)
            with torch.no_grad(), self._autocast():
                fake = self.generator(z, labels)
            real, fake = self._d_input(real), self._d_input(fake)
            if d_step == 0:
                real_correct, fake_correct, joint_loss = self._d_accuracy(real, real_labels, fake, labels)
            if not train_d:
                d_losses.append(joint_loss)
                break
            real_loss, real_norm = self._d_update(real, real_labels, real=True)
            fake_loss, fake_norm = self._d_update(fake, labels, real=False)
            d_losses.append((real_loss + fake_loss) / 2)
            d_norms.append((real_norm + fake_norm) / 2)

        # G step: gradients flow through D to G, but D's own weight gradients are not needed.
        z, labels = self._noise(batch)
        for parameter in self.d_parameters:
            parameter.requires_grad_(False)
        try:
            with self._autocast():
                g_loss = self._g_loss(self.discriminator(self._d_input(self.generator(z, labels)), labels).float())
            self.g_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            g_norm = _grad_norm(self.g_parameters)
            self.g_optimizer.step()
        finally:  # an error on the way must leave D trainable
            for parameter in self.d_parameters:
                parameter.requires_grad_(True)
        self._device_iteration += 1
        if self.g_ema is not None:
            self._update_ema()

        d_norm = torch.stack(d_norms).mean() if d_norms else torch.zeros((), device=self.device)
        return torch.stack([torch.stack(d_losses).mean(), g_loss.detach(), real_correct, fake_correct, d_norm, g_norm])

    @torch.no_grad()
    def _update_ema(self) -> None:
        # EMA of G's weights (Yazici et al. 2019). The decay warms up as (1 + t) / (10 + t), as in
        # TensorFlow's ExponentialMovingAverage with num_updates: an average over the untrained
        # first iterations would lag for thousands of steps and look mode-collapsed (issue 9's
        # probe: lowest diversity ratio 0.16-0.29 in the first 1500 iterations without it).
        step = self._device_iteration
        weight = (1 - ((1 + step) / (10 + step)).clamp(max=self.config.g_ema)).float()
        # A weight tensor per parameter: the one-Scalar form would read a tensor weight on the host.
        torch._foreach_lerp_(self.ema_parameters, self.g_parameters, [weight] * len(self.ema_parameters))
        for ema_buffer, buffer in zip(self.g_ema.buffers(), self.generator.buffers()):
            ema_buffer.copy_(buffer)

    def _generate(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Generated images in [0,1] on the CPU; the averaged G when there is one."""
        images = sample(self.sampling_generator, z, self.eye.cpu()[labels], autocast=self._autocast)
        return images if self.config.normalization == "[0,1]" else (images + 1) / 2

    def evaluate(self) -> tuple[dict, np.ndarray]:
        """Quality metrics from the judge (when there is one) and the sample grid (classes, columns, S, S)."""
        grid = denormalize(self._generate(self.grid_z, self.grid_labels).numpy(), "[0,1]")
        grid = grid.reshape(self.num_classes, self.config.grid_columns, self.size, self.size)
        if self.judge is None:
            return {}, grid
        samples = self._generate(self.eval_z, self.eval_labels)
        scores = self.judge.score(samples, self.eval_labels.numpy())
        scores["judge_accuracy"] = self.judge.heldout_accuracy
        return scores, grid

    def apply_config(self, config: TrainConfig) -> dict[str, tuple]:
        """Train on with ``config`` from the next step (PBT's explore, a replayed schedule): only
        fields of MUTABLE_FIELDS may differ. Returns the changes, {field: (old, new)}."""
        changes = config.changes_from(self.config)
        fixed = sorted(set(changes) - set(MUTABLE_FIELDS))
        if fixed:
            raise ConfigError(f"{fixed[0]}: cannot change in the middle of a training (mutable fields: "
                              f"{', '.join(MUTABLE_FIELDS)})")
        if changes:  # (it drops the CUDA graphs, to be captured again)
            self.config = config
            self._apply_hyperparameters()
        return changes

    def _apply_hyperparameters(self) -> None:
        """Put the config's learning rates, Adam betas and dropout rate into the optimisers and D:
        a restored optimiser state otherwise brings back the rates it was saved with. The other
        mutable fields are read from the config at each step."""
        config = self.config
        for optimizer, lr, betas in ((self.g_optimizer, config.g_lr, (config.g_beta1, config.g_beta2)),
                                     (self.d_optimizer, config.d_lr, (config.d_beta1, config.d_beta2))):
            for group in optimizer.param_groups:
                group["lr"], group["betas"] = lr, betas
                # A loaded state brings its writer's flags: a graphed GPU trial's checkpoint says
                # capturable, which a CPU trainer cannot step with, and an eager one's cannot be captured.
                group["capturable"] = self.cuda_graphs
        self._drop_graphs()
        for module in self.discriminator.modules():
            if isinstance(module, (torch.nn.Dropout, LeakyReLUDropout)):
                module.p = config.d_dropout
        # With a D built with dropout layers, the activations before them stay plain.
        if self.dropout_layers:
            for module in self.discriminator.modules():
                if isinstance(module, LeakyReLUDropout):
                    module.p = 0.0

    def hyperparameters(self) -> dict:
        """The mutable fields as the trainer really uses them: rates and betas read back from the
        optimisers, the dropout rate from D, the rest from the config (each report's HYPER)."""
        values = {name: getattr(self.config, name) for name in MUTABLE_FIELDS}
        for prefix, optimizer in (("g", self.g_optimizer), ("d", self.d_optimizer)):
            group = optimizer.param_groups[0]
            values[f"{prefix}_lr"] = float(group["lr"])
            values[f"{prefix}_beta1"], values[f"{prefix}_beta2"] = (float(beta) for beta in group["betas"])
        rates = [module.p for module in self.discriminator.modules()
                 if isinstance(module, (torch.nn.Dropout, LeakyReLUDropout))]
        values["d_dropout"] = float(max(rates, default=0.0))
        return values

    def take_events(self) -> list[dict]:
        events, self.events = self.events, []
        return events

    def state_dict(self) -> dict:
        self._read_accuracy()
        return {
            "iteration": self.iteration,
            "config": self.config.to_dict(),
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "generator_ema": self.g_ema.state_dict() if self.g_ema is not None else None,
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "dropout_layers": self.dropout_layers,
            "rng": self.rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if self.device.type == "cuda" else None,
            "accuracy_window": list(self.accuracy_window),
            "frozen": self.frozen,
            "events": list(self.events),
        }

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("dropout_layers")
        if saved is None and isinstance(state.get("config"), dict):  # a checkpoint from before the key
            saved = state["config"].get("d_dropout", 0) > 0
        if saved is not None and saved != self.dropout_layers:
            # PBT moved d_dropout from or to 0: D keeps the layout its weights were saved in, with the new rate.
            self._build_discriminator(self.config.replace(d_dropout=0.5 if saved else 0.0))
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        if self.g_ema is not None:
            # A checkpoint from before g_ema was switched on starts the average at G.
            self.g_ema.load_state_dict(state.get("generator_ema") or state["generator"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        # This trainer's config wins: under PBT a trial restores with new rates (its explore step).
        self._apply_hyperparameters()
        # Generator states are CPU byte tensors, whatever device the checkpoint was loaded onto.
        self.rng.set_state(state["rng"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu())
        self.iteration = int(state["iteration"])
        self._pending_accuracy.clear()
        self.accuracy_window.clear()
        self.accuracy_window.extend(state["accuracy_window"])
        self.frozen = bool(state["frozen"])
        self.events = list(state["events"])
        try:
            self.checkpoint_config = TrainConfig.from_dict(state["config"])
        except (ConfigError, KeyError, TypeError):  # a checkpoint of an older config: no changes to tell
            self.checkpoint_config = None

    def save(self, directory: str | Path) -> Path:
        """Write the checkpoint atomically into ``directory`` (created if needed), with its SHA-256
        beside it: torch loads a file with flipped bytes without a word, the digest does not."""
        path = Path(directory) / CHECKPOINT_FILE
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        with atomic_path(path) as tmp:
            tmp.write_bytes(buffer.getvalue())
        write_text_atomic(path.with_name(DIGEST_FILE), hashlib.sha256(buffer.getvalue()).hexdigest() + "\n")
        return path

    def restore(self, directory: str | Path) -> None:
        """Load a checkpoint, verified: a damaged one raises UserError naming what is wrong."""
        path = Path(directory) / CHECKPOINT_FILE
        state = read_checkpoint(directory, self.device)
        try:
            self.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise UserError(f"{path}: unreadable checkpoint (does not fit this trial's model: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    """An exception's message for a one-line error: its first line, at most 200 characters, or its
    type where it has no message."""
    message = str(exc).strip()
    return message.splitlines()[0][:200] if message else type(exc).__name__


def read_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> dict:
    """A checkpoint's state (``Trainer.state_dict``), verified against the SHA-256 beside it, or a
    one-line refusal naming the file and what is wrong."""
    path = Path(directory) / CHECKPOINT_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no checkpoint there") from None
    try:
        with warnings.catch_warnings():  # garbage bytes make torch warn about odd pickle protocols
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        named = next((line.split("GLOBAL", 1)[1].split(" was not")[0].strip()
                      for line in str(exc).splitlines() if "Unsupported global: GLOBAL" in line), None)
        reason = (f"damaged, or not tensors only: it names the Python object {named!r}, not loaded as that "
                  "could run code" if named else "not a checkpoint file")
        raise UserError(f"{path}: unreadable checkpoint ({reason})") from None
    except Exception:  # noqa: BLE001 - damaged bytes fail the unpickler in any way (KeyError, IndexError, ...)
        raise UserError(f"{path}: unreadable checkpoint (truncated or not a checkpoint file)") from None
    digest = path.with_name(DIGEST_FILE)
    if digest.is_file() and digest.read_text().strip() != hashlib.sha256(data).hexdigest():
        raise UserError(f"{path}: unreadable checkpoint (its bytes do not match its SHA-256: damaged)")
    if not isinstance(state, dict):
        raise UserError(f"{path}: unreadable checkpoint (not a checkpoint file)")
    return state


@torch.no_grad()
def sample(generator: Generator, z: torch.Tensor, labels_one_hot: torch.Tensor, *,
           autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
           batch: int = 500, progress: Progress | None = None) -> torch.Tensor:
    """G's images for ``z`` and labels, in G's output range, as float32 on the CPU.

    G runs in inference mode (running batch-norm statistics), so an image depends on its own z
    and label only, not on the batch it was made in (up to float rounding)."""
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    try:
        chunks = []
        for start in range(0, len(z), batch):
            with autocast():
                out = generator(z[start:start + batch].to(device), labels_one_hot[start:start + batch].to(device))
            chunks.append(out.float().cpu())
            if progress is not None:
                progress.update(start + len(chunks[-1]))
    finally:
        generator.train(was_training)
    return torch.cat(chunks)


def restore_newest_readable(trainer: Trainer, candidates: Sequence[T], restore: Callable[[T], R], *,
                            name: Callable[[T], str], where: str) -> R:
    """Restore from the newest candidate checkpoint that loads, falling back to older ones and
    saying so on stderr; a UserError only when none loads. ``restore`` loads one candidate into
    ``trainer`` (and reads what else the caller keeps beside it)."""
    failures = []
    for candidate in candidates:
        try:
            restored = restore(candidate)
        except UserError as exc:
            failures.append(str(exc))
            continue
        for failure in failures:
            print(f"note: {failure}; resuming from the previous readable one, {name(candidate)} "
                  f"(iteration {trainer.iteration})", file=sys.stderr)
        return restored
    if not failures:
        raise UserError(f"{where}: no checkpoint to resume from")
    more = f"; {len(failures) - 1} older ones unreadable too" if len(failures) > 1 else ""
    raise UserError(f"{where}: no readable checkpoint to resume from ({failures[0]}{more})")
