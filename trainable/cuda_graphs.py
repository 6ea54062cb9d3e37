"""A training step replayed as a CUDA graph. A step of the paper's small nets is some 300 kernel
launches of a few microseconds of GPU work each, so eager PyTorch is bound by launching them (V0 on
an H200: 86 it/s eager, 383 replayed in fp32 and 463 in bf16; with deterministic cuDNN the same
numbers bit for bit; benchmarks/train_speed.py, tests/trainable/test_cuda_graphs.py)."""

from __future__ import annotations

import collections
from typing import Callable, Sequence

import torch

from trainable.errors import UserError, first_line

GRAPH_WARMUP = 2  # eager steps of each kind (D trained or frozen) before one is captured as a CUDA graph


class GraphedStep:
    """The step as a CUDA graph, one per value of train_d, captured after GRAPH_WARMUP eager steps
    (lazy initialisation, cuDNN's algorithm choice) and dropped (``drop``) whenever the models, the
    optimisers or the config change (a restore, PBT's explore): a graph bakes in numbers such as the
    learning rates and the addresses of the optimiser's state."""

    def __init__(self, step: Callable[[bool], torch.Tensor], device: torch.device,
                 rngs: torch.Generator | Sequence[torch.Generator]) -> None:
        """``rngs``: the generators the step draws from (fused trials: one per trial)."""
        self.step, self.device = step, device
        self.rngs = [rngs] if isinstance(rngs, torch.Generator) else list(rngs)
        self.captured: dict[bool, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}  # train_d -> (graph, its output)
        self._eager_steps: collections.Counter[bool] = collections.Counter()  # per train_d, since the last drop
        self._side_stream: torch.cuda.Stream | None = None

    def drop(self) -> None:
        self.captured.clear()
        self._eager_steps.clear()

    def __call__(self, train_d: bool) -> torch.Tensor:
        entry = self.captured.get(train_d)
        if entry is None:
            if self._eager_steps[train_d] < GRAPH_WARMUP:
                self._eager_steps[train_d] += 1
                return self._on_side_stream(train_d)
            try:
                entry = self.captured[train_d] = self._capture(train_d)
            except Exception as exc:  # noqa: BLE001 - whatever breaks a capture
                # Not trained on eagerly: a failed capture leaves the random generators marked as
                # capturing (torch 2.11: "Offset increment outside graph capture"), so the process
                # cannot draw on the device again. Every configuration tried captures (issue 12).
                raise UserError(f"this configuration's step could not be captured as a CUDA graph ({first_line(exc)}); "
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
            values = self.step(train_d)
        current.wait_stream(self._side_stream)
        return values

    def _capture(self, train_d: bool) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        graph = torch.cuda.CUDAGraph()
        for rng in self.rngs:
            graph.register_generator_state(rng)  # its draws move on with each replay
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            values = self.step(train_d)
        return graph, values
