"""A trainer's checkpoint: its whole state (``trainer_state``, put back by ``load_trainer_state``),
written atomically with its SHA-256 beside it, read back verified, and the newest readable one of
several found (the loop and the Tune adapter resume from it)."""

from __future__ import annotations

import hashlib
import io
import pickle
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import torch

from trainable._io import atomic_path, write_text_atomic
from trainable.config import TrainConfig
from trainable.errors import ConfigError, UserError
from trainable.experiment import CHECKPOINT_FILE, DIGEST_FILE
from trainable.hyperparameters import has_dropout_layers

T = TypeVar("T")
R = TypeVar("R")


def trainer_state(trainer) -> dict:
    """Everything a trainer needs to go on exactly where it was: weights, optimisers, random states,
    the freeze rule's window, and the config it trained with."""
    return {
        "iteration": trainer.iteration, "config": trainer.config.to_dict(),
        "generator": trainer.generator.state_dict(), "discriminator": trainer.discriminator.state_dict(),
        "generator_ema": trainer.g_ema.state_dict() if trainer.g_ema is not None else None,
        "g_optimizer": trainer.g_optimizer.state_dict(), "d_optimizer": trainer.d_optimizer.state_dict(),
        "dropout_layers": has_dropout_layers(trainer.discriminator),
        "rng": trainer.rng.get_state(), "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state() if trainer.device.type == "cuda" else None,
        **trainer.freeze.state_dict(),
    }


def load_trainer_state(trainer, state: dict) -> None:
    """Put ``state`` (``trainer_state``) into ``trainer``; the trainer's config wins where they differ."""
    saved = state.get("dropout_layers")
    if saved is None and isinstance(state.get("config"), dict):  # a checkpoint from before the key
        saved = state["config"].get("d_dropout", 0) > 0
    if saved is not None and saved != has_dropout_layers(trainer.discriminator):
        # PBT moved d_dropout from or to 0: D keeps the layout its weights were saved in, with the new rate.
        trainer.build_discriminator(trainer.config.replace(d_dropout=0.5 if saved else 0.0))
    trainer.generator.load_state_dict(state["generator"])
    trainer.discriminator.load_state_dict(state["discriminator"])
    if trainer.g_ema is not None:
        # A checkpoint from before g_ema was switched on starts the average at G.
        trainer.g_ema.load_state_dict(state.get("generator_ema") or state["generator"])
    trainer.g_optimizer.load_state_dict(state["g_optimizer"])
    trainer.d_optimizer.load_state_dict(state["d_optimizer"])
    # This trainer's config wins: under PBT a trial restores with new rates (its explore step).
    trainer.apply_hyperparameters()
    # Generator states are CPU byte tensors, whatever device the checkpoint was loaded onto.
    trainer.rng.set_state(state["rng"].cpu())
    torch.set_rng_state(state["torch_rng"].cpu())
    if state.get("cuda_rng") is not None and trainer.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"].cpu())
    trainer.iteration = int(state["iteration"])
    trainer.freeze.load_state_dict(state)
    try:
        trainer.checkpoint_config = TrainConfig.from_dict(state["config"])
    except (ConfigError, KeyError, TypeError):  # a checkpoint of an older config: no changes to tell
        trainer.checkpoint_config = None


def checkpoint_bytes(state: dict) -> bytes:
    """``state`` (``trainer_state``) as the bytes of a checkpoint file."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def write_checkpoint(state: dict | bytes, directory: str | Path) -> Path:
    """Write ``state`` (or its ``checkpoint_bytes``) atomically into ``directory`` (created if
    needed), with its SHA-256 beside it: torch loads a file with flipped bytes without a word, the
    digest does not."""
    path = Path(directory) / CHECKPOINT_FILE
    data = state if isinstance(state, bytes) else checkpoint_bytes(state)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    write_text_atomic(path.with_name(DIGEST_FILE), hashlib.sha256(data).hexdigest() + "\n")
    return path


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


def restore_newest_readable(trainer, candidates: Sequence[T], restore: Callable[[T], R], *,
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
