"""Training speed: iterations/s of the trainer against a straightforward reference loop.

The reference is the same architecture trained the way the paper describes it, written the
plain way: sigmoid outputs with BCELoss, the fake batch generated with autograd on and then
detached, D's weight gradients computed in the G step too, default Adam, NCHW tensors, cuDNN's
default algorithm choice, its G loss read each step (a host sync on a GPU, as a plain loop logging
it does). Ours is timed as the training loop runs it (``Trainer.advance``: statistics left on the
device; on CUDA each step replayed as a CUDA graph, and timed eager too). Both run in this
process, interleaved, so the ratio holds on a busy machine. Also prints the cost of one
evaluation (judge metrics + grid) as a share of training time at the default interval, and on
CUDA the host syncs per iteration of the training loop (torch's sync debug mode): about
1 / NONFINITE_CHECK_EVERY, plus one per step with the freeze rule on D's accuracy (V2). For V0
it prints the FLOPs of one iteration (torch's FlopCounterMode) and the fraction of the GPU's dense
bf16 peak its best rate reaches.

    python benchmarks/train_speed.py            # CPU, and CUDA when available
    python benchmarks/train_speed.py --quick    # fewer iterations
    python benchmarks/train_speed.py --device cuda  # the GPU only (benchmarks/gpu_check.sh)
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from torch.nn import functional as F

from trainable.config import TrainConfig, preset
from trainable.data import builtin_dataset, normalize
from trainable.judge import load_or_train_judge
from trainable.loop import train
from trainable.models import Discriminator, Generator
from trainable.training import Trainer

SMALL = dict(g_filters=(32, 16, 8), d_filters=(8, 16, 32), latent_size=32)
# The environment of a process that trains as a 1-CPU Ray trial does (Ray sets OMP_NUM_THREADS=1
# for it): one BLAS thread for torch and numpy (study_overhead.py's and gpu_sharing.py's processes).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class ReferenceLoop:
    def __init__(self, config: TrainConfig, dataset, device: torch.device) -> None:
        torch.manual_seed(config.seed)
        self.config, self.device = config, device
        train = dataset.select("train")
        self.images = torch.from_numpy(normalize(train.images, config.normalization)).to(device)
        self.labels = torch.from_numpy(train.labels).to(device)
        self.eye = torch.eye(dataset.num_classes, device=device)
        self.generator = Generator(config, dataset.num_classes).to(device)
        self.discriminator = Discriminator(config, dataset.num_classes).to(device)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), config.g_lr, (config.g_beta1, config.g_beta2))
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), config.d_lr, (config.d_beta1, config.d_beta2))
        self.num_classes = dataset.num_classes

    def step(self) -> float:
        n, c = self.config.batch_size, self.config
        index = torch.randint(len(self.images), (n,), device=self.device)
        real, real_labels = self.images[index], self.eye[self.labels[index]]
        self.d_optimizer.zero_grad()
        d_real = F.binary_cross_entropy(torch.sigmoid(self.discriminator(real, real_labels)), torch.ones(n, device=self.device))
        d_real.backward()
        self.d_optimizer.step()
        z = torch.rand(n, c.latent_size, device=self.device) * 2 - 1
        fake_labels = self.eye[torch.randint(self.num_classes, (n,), device=self.device)]
        fake = self.generator(z, fake_labels)
        self.d_optimizer.zero_grad()
        d_fake = F.binary_cross_entropy(torch.sigmoid(self.discriminator(fake.detach(), fake_labels)), torch.zeros(n, device=self.device))
        d_fake.backward()
        self.d_optimizer.step()
        z = torch.rand(n, c.latent_size, device=self.device) * 2 - 1
        labels = self.eye[torch.randint(self.num_classes, (n,), device=self.device)]
        self.g_optimizer.zero_grad()
        g_loss = F.binary_cross_entropy(torch.sigmoid(self.discriminator(self.generator(z, labels), labels)), torch.ones(n, device=self.device))
        g_loss.backward()
        self.g_optimizer.step()
        return float(g_loss.detach())  # a host sync each step, as a loop that logs its loss makes


def rate(step, iterations: int, device: torch.device) -> float:
    for _ in range(max(2, iterations // 10)):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return iterations / (time.perf_counter() - start)


# Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) of the GPUs a study may meet, by name.
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "L4": 121.0, "A10G": 70.0}


def flops_per_iteration(config: TrainConfig, dataset, device: torch.device) -> float:
    """The floating-point operations of one training iteration of the trainer's own step, counted by
    torch's FlopCounterMode on an eager step (matrix products and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    trainer = Trainer(config, dataset, device=device, cuda_graphs=False)
    trainer.advance()
    with FlopCounterMode(display=False) as counter:
        trainer.advance()
    return float(counter.get_total_flops())


def peak_fraction(label: str, config: TrainConfig, dataset, device: torch.device, rate_it_s: float,
                  peak_tflops: float | None) -> None:
    flops = flops_per_iteration(config, dataset, device)
    achieved = flops * rate_it_s / 1e12
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_tflops or next((value for key, value in BF16_PEAK_TFLOPS.items() if key in name), None)
    share = f", {100 * achieved / peak:.1f} % of the {peak:g} TFLOP/s dense bf16 peak of {name}" if peak else ""
    print(f"{device.type} {label}: {flops / 1e9:.1f} GFLOP per iteration; at {rate_it_s:.1f} it/s "
          f"{achieved:.2f} TFLOP/s{share}", flush=True)


def compare(label: str, config: TrainConfig, dataset, device: torch.device, iterations: int,
            rounds: int) -> dict[object, float]:
    """Prints, and returns, the best iterations/s of each variant: "reference", (precision, graphs)."""
    reference = ReferenceLoop(config, dataset, device)
    # On CUDA ours replays each step as a CUDA graph; its eager steps are timed too.
    variants = [(precision, graphs) for graphs in ((True, False) if device.type == "cuda" else (None,))
                for precision in ("fp32", "bf16")]
    ours = {(precision, graphs): Trainer(config.replace(precision=precision), dataset, device=device, cuda_graphs=graphs)
            for precision, graphs in variants}
    results: dict[object, list[float]] = {"reference": [], **{variant: [] for variant in variants}}
    for _ in range(rounds):  # interleaved, so drift on a shared machine hits both alike
        torch.backends.cudnn.benchmark = False  # PyTorch's default, as a plain loop has it; ours turns it on
        results["reference"].append(rate(reference.step, iterations, device))
        torch.backends.cudnn.benchmark = device.type == "cuda"
        for variant, trainer in ours.items():
            results[variant].append(rate(trainer.advance, iterations, device))
    best = {name: max(values) for name, values in results.items()}
    parts = [f"{'ours' if graphs is not False else 'ours eager'} {precision} {best[precision, graphs]:.2f} it/s "
             f"({best[precision, graphs] / best['reference']:.2f}x)" for precision, graphs in variants]
    print(f"{device.type} {label}: reference {best['reference']:.2f} it/s | " + " | ".join(parts), flush=True)
    return best


def evaluation_share(dataset, device: torch.device, iterations: int) -> None:
    judge, _ = load_or_train_judge(dataset, device=device, progress=True)
    for label, config in (("small", TrainConfig.from_dict(SMALL)), ("V0", preset("V0"))):
        trainer = Trainer(config, dataset, judge, device=device)
        per_step = 1 / rate(trainer.advance, iterations if label == "small" else max(3, iterations // 40), device)
        trainer.evaluate()
        start = time.perf_counter()
        trainer.evaluate()
        evaluate_s = time.perf_counter() - start
        share = evaluate_s / (evaluate_s + config.eval_every * per_step)
        print(f"{device.type} {label}: one evaluation {evaluate_s:.2f} s "
              f"({config.eval_samples_per_class * dataset.num_classes} samples + grid) vs "
              f"{config.eval_every} iterations {config.eval_every * per_step:.1f} s: {100 * share:.1f} % of time", flush=True)


def host_syncs_per_iteration(config: TrainConfig, dataset, device: torch.device, iterations: int) -> float | None:
    """Host syncs per iteration of the training loop, counted by torch's sync debug mode up to
    the final report; None where the warnings do not reach Python."""
    trainer = Trainer(config.replace(iterations=iterations, eval_every=10**6), dataset, device=device)
    counted: list[int] = []
    evaluate = trainer.evaluate

    def evaluate_uncounted():
        counted.append(len(caught))
        return evaluate()

    trainer.evaluate = evaluate_uncounted
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            torch.zeros(1, device=device).item()  # one known sync: the count must see it
            if not [warning for warning in caught if _is_sync(warning)]:
                return None
            caught.clear()
            train(trainer, lambda row, grid, trainer: None)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return len([warning for warning in caught[:counted[0]] if _is_sync(warning)]) / iterations


def _is_sync(warning: warnings.WarningMessage) -> bool:
    return "synchroniz" in str(warning.message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all",
                        help="where to measure (default: the CPU, and CUDA when available)")
    parser.add_argument("--peak-tflops", type=float,
                        help="the device's peak TFLOP/s for the fraction of peak (default: known GPUs' bf16 peak)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU here")
    dataset = builtin_dataset()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    devices = [device for device in devices if args.device in ("all", device.type)]
    for device in devices:
        fast = device.type == "cuda"
        compare("small", TrainConfig.from_dict(SMALL), dataset, device,
                iterations=(500 if fast else 60) // (2 if args.quick else 1), rounds=3)
        v0 = compare("V0", preset("V0"), dataset, device,
                     iterations=(300 if fast else 4) // (2 if args.quick else 1), rounds=2 if args.quick else 3)
        best = max((value, variant) for variant, value in v0.items() if variant != "reference")
        peak_fraction(f"V0 ({best[1][0]}{', graphed' if best[1][1] else ''})", preset("V0").replace(precision=best[1][0]),
                      dataset, device, best[0], args.peak_tflops)
        evaluation_share(dataset, device, iterations=200 if fast else 60)
        if fast:
            small = TrainConfig.from_dict(SMALL)
            counts = {label: host_syncs_per_iteration(config, dataset, device, iterations=200)
                      for label, config in (("small", small), ("small + freeze_accuracy", small.replace(freeze_accuracy=0.95)))}
            print("cuda host syncs per iteration of the training loop: " + ", ".join(
                f"{label} {'n/a (sync warnings not seen)' if count is None else f'{count:.3f}'}"
                for label, count in counts.items()), flush=True)


if __name__ == "__main__":
    main()
