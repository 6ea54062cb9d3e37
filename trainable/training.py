"""Training: one step, evaluation, and exact checkpoint state (the loop lives in trainable/loop.py).

A step is the paper's (section 7): D learns on a real batch, then on a fake batch made with
random labels (two updates, as Keras' train_on_batch twice); then G learns on a fresh batch
of random z and labels. z is uniform in [-1, 1]. Its rooms: the GAN's mathematics in
trainable/gan.py, the freeze rule in freeze.py, the CUDA graph in cuda_graphs.py, PBT's changes
in hyperparameters.py, evaluation in sampling.py, the checkpoint's file in checkpoint.py.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
from pathlib import Path

import numpy as np
import torch

from trainable import gan
from trainable.checkpoint import load_trainer_state, read_checkpoint, trainer_state, write_checkpoint
from trainable.config import MUTABLE_FIELDS, TrainConfig
from trainable.cuda_graphs import GraphedStep
from trainable.data import PreparedDataset, normalize
from trainable.errors import ConfigError, UserError, first_line
from trainable.experiment import CHECKPOINT_FILE, D_LOSS, G_LOSS
from trainable.freeze import FreezeRule
from trainable.hyperparameters import read_hyperparameters, set_hyperparameters
from trainable.judge import Judge
from trainable.models import Discriminator, Generator
from trainable.sampling import FixedNoise, evaluate

# What a step measures, in the order of StepStats' first fields and of DeviceStepStats.values.
STEP_STATISTICS = (D_LOSS, G_LOSS, "d_real_accuracy", "d_fake_accuracy", "d_grad_norm", "g_grad_norm")


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


class Trainer:
    """Holds the models, optimizers, data on the device and every random state of one trial."""

    def __init__(self, config: TrainConfig, dataset: PreparedDataset, judge: Judge | None = None,
                 *, device: str | torch.device | None = None, cuda_graphs: bool | None = None) -> None:
        """``cuda_graphs`` (default: the config's) replays each step on a CUDA device as one CUDA
        graph (trainable/cuda_graphs.py)."""
        self.config, self.judge = config, judge
        self.device = torch.device(device) if device is not None else resolve_device(config.device)
        self.cuda_graphs = self.device.type == "cuda" and (config.cuda_graphs if cuda_graphs is None else bool(cuda_graphs))
        if self.device.type == "cuda":
            # Every batch has the same shape, so cuDNN's timed choice of convolution algorithms pays
            # from the first steps on (process-wide; a trial is a process of its own).
            torch.backends.cudnn.benchmark = True
        self.class_names, self.num_classes, self.size = dataset.class_names, dataset.num_classes, dataset.size
        train = dataset.select("train")
        # The whole training split lives on the device: the fused set at 28x28 is ~0.2 GB.
        images = torch.from_numpy(normalize(train.images, config.normalization)).to(self.device)
        self.images = images.contiguous(memory_format=torch.channels_last)
        self.labels = torch.from_numpy(train.labels).to(self.device)
        self.eye = torch.eye(self.num_classes, device=self.device)

        torch.manual_seed(config.seed)
        self.rng = torch.Generator(device=self.device).manual_seed(config.seed)
        # The step as a CUDA graph; it calls self._step as it is when it runs.
        self.graphed_step = GraphedStep(lambda train_d: self._step(train_d), self.device, self.rng)
        self.generator = Generator(config, self.num_classes, self.size).to(self.device, memory_format=torch.channels_last)
        self.build_discriminator(config)
        self.g_optimizer = self._adam(self.generator.parameters(), config.g_lr, (config.g_beta1, config.g_beta2))
        self.g_ema = copy.deepcopy(self.generator).requires_grad_(False) if config.g_ema > 0 else None
        self.noise = FixedNoise(config, self.num_classes)  # evaluation samples and the grid
        self.checkpoint_config: TrainConfig | None = None  # the config the last restored checkpoint trained with
        # The iteration count on the device too, for what a step computes from it (instance noise's
        # annealing, EMA's warm-up): a captured step reads it there rather than baking in a number.
        # float64: exact to 2^53, and the same arithmetic as the Python floats it replaces.
        self._device_iteration = torch.zeros((), dtype=torch.float64, device=self.device)
        self.iteration = 0
        self.freeze = FreezeRule(config.freeze_window)
        use_bf16 = config.precision == "bf16" or (config.precision == "auto" and (
            torch.cuda.is_bf16_supported() if self.device.type == "cuda" else native_bf16_cpu()))
        self.precision = "bf16" if use_bf16 else "fp32"

    def _adam(self, parameters, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        # capturable: the step count stays on the device, as a CUDA graph needs.
        return torch.optim.Adam(parameters, lr=lr, betas=betas, eps=1e-7, fused=self.device.type in ("cpu", "cuda"),
                                capturable=self.cuda_graphs)

    def build_discriminator(self, config: TrainConfig) -> None:
        self.discriminator = Discriminator(config, self.num_classes, self.size).to(self.device,
                                                                                 memory_format=torch.channels_last)
        self.d_optimizer = self._adam(self.discriminator.parameters(), config.d_lr, (config.d_beta1, config.d_beta2))
        self.graphed_step.drop()

    @property
    def iteration(self) -> int:
        return self._iteration

    @iteration.setter
    def iteration(self, value: int) -> None:
        self._iteration = value
        self._device_iteration.fill_(value)

    @property
    def sampling_generator(self) -> Generator:
        """The G that evaluation, grids and exported samples use: the average when there is one."""
        return self.g_ema if self.g_ema is not None else self.generator

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == "bf16" else contextlib.nullcontext()

    def step(self) -> StepStats:
        """One iteration; returns plain numbers and does no I/O. Reading the numbers is a host sync
        on a GPU: the training loop calls ``advance`` and reads them only now and then."""
        return self.advance().to_host()

    def advance(self) -> DeviceStepStats:
        """One iteration, leaving its statistics on the device; does no I/O and, on a GPU, waits
        for nothing unless the freeze rule on D's accuracy is on (it decides each step on the host)."""
        train_d = not self.freeze.update(self.config, self.iteration)
        values = self.graphed_step(train_d) if self.cuda_graphs else self._step(train_d)
        self._iteration += 1  # the device's count moved on in the step
        self.freeze.push(values[2:4])
        if self.config.freeze_accuracy is not None:
            # The next step's freeze decision needs this accuracy on the host: a sync per step, which
            # keeps the rule exact (deciding on a lagged window would change V2's training).
            self.freeze.read()
        return DeviceStepStats(values, frozen=not train_d)

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
                real_correct, fake_correct, joint_loss = gan.d_accuracy(self.discriminator, real, real_labels, fake,
                                                                        labels, config, self._autocast)
            if not train_d:
                d_losses.append(joint_loss)
                break
            real_loss, real_norm = gan.d_update(self.discriminator, self.d_optimizer, real, real_labels, True, config,
                                                self._autocast)
            fake_loss, fake_norm = gan.d_update(self.discriminator, self.d_optimizer, fake, labels, False, config,
                                                self._autocast)
            d_losses.append((real_loss + fake_loss) / 2)
            d_norms.append((real_norm + fake_norm) / 2)

        # G step: gradients flow through D to G, but D's own weight gradients are not needed.
        z, labels = self._noise(batch)
        self.discriminator.requires_grad_(False)
        try:
            with self._autocast():
                g_loss = gan.g_loss(self.discriminator(self._d_input(self.generator(z, labels)), labels).float(), config)
            self.g_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            g_norm = gan.grad_norm(list(self.generator.parameters()))
            self.g_optimizer.step()
        finally:  # an error on the way must leave D trainable
            self.discriminator.requires_grad_(True)
        self._device_iteration += 1
        if self.g_ema is not None:
            gan.update_ema(self.g_ema, self.generator, config.g_ema, self._device_iteration)

        d_norm = torch.stack(d_norms).mean() if d_norms else torch.zeros((), device=self.device)
        return torch.stack([torch.stack(d_losses).mean(), g_loss.detach(), real_correct, fake_correct, d_norm, g_norm])

    def _noise(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.rand(count, self.config.latent_size, generator=self.rng, device=self.device) * 2 - 1
        labels = torch.randint(self.num_classes, (count,), generator=self.rng, device=self.device)
        return z, self.eye[labels]

    def _d_input(self, images: torch.Tensor) -> torch.Tensor:
        return gan.d_input(images, self.config, self.rng, self._device_iteration)

    def evaluate(self) -> tuple[dict, np.ndarray]:
        """Quality metrics from the judge (when there is one) and the sample grid (classes, columns, S, S)."""
        return evaluate(self.sampling_generator, self.noise, self.config, self.judge, size=self.size,
                        autocast=self._autocast)

    def apply_config(self, config: TrainConfig) -> dict[str, tuple]:
        """Train on with ``config`` from the next step (PBT's explore, a replayed schedule): only
        fields of MUTABLE_FIELDS may differ. Returns the changes, {field: (old, new)}."""
        changes = config.changes_from(self.config)
        fixed = config.fixed_changes_from(self.config)
        if fixed:
            raise ConfigError(f"{fixed[0]}: cannot change in the middle of a training (mutable fields: "
                              f"{', '.join(MUTABLE_FIELDS)})")
        if changes:
            self.config = config
            self.apply_hyperparameters()
        return changes

    def apply_hyperparameters(self) -> None:
        set_hyperparameters(self.config, self.g_optimizer, self.d_optimizer, self.discriminator,
                            capturable=self.cuda_graphs)
        self.graphed_step.drop()  # a graph bakes in the rates: captured again

    def hyperparameters(self) -> dict:
        """The mutable fields as the trainer really uses them (each report's HYPER)."""
        return read_hyperparameters(self.config, self.g_optimizer, self.d_optimizer, self.discriminator)

    def state_dict(self) -> dict:
        return trainer_state(self)

    def load_state_dict(self, state: dict) -> None:
        load_trainer_state(self, state)

    def save(self, directory: str | Path) -> Path:
        """Write the checkpoint atomically into ``directory``, verified on reading (trainable/checkpoint.py)."""
        return write_checkpoint(self.state_dict(), directory)

    def restore(self, directory: str | Path) -> None:
        """Load a checkpoint, verified: a damaged one raises UserError naming what is wrong."""
        state = read_checkpoint(directory, self.device)
        try:
            self.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise UserError(f"{Path(directory) / CHECKPOINT_FILE}: unreadable checkpoint (does not fit this "
                            f"trial's model: {first_line(exc)})") from None
