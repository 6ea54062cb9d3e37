"""The mutable fields (trainable.config.MUTABLE_FIELDS) in a running trainer: put into its
optimisers and D when PBT explores or a schedule is replayed, and read back as it really uses them
(each report's HYPER). The other mutable fields are read from the config at each step."""

from __future__ import annotations

import torch

from trainable.config import MUTABLE_FIELDS, TrainConfig
from trainable.models import LeakyReLUDropout

DROPOUTS = (torch.nn.Dropout, LeakyReLUDropout)


def has_dropout_layers(discriminator: torch.nn.Module) -> bool:
    """Whether D has nn.Dropout layers (built with d_dropout > 0): its module layout, and so its
    checkpoint's keys, differ from a D built without."""
    return any(isinstance(module, torch.nn.Dropout) for module in discriminator.modules())


def set_hyperparameters(config: TrainConfig, g_optimizer: torch.optim.Optimizer, d_optimizer: torch.optim.Optimizer,
                        discriminator: torch.nn.Module, *, capturable: bool) -> None:
    """The config's learning rates, Adam betas and dropout rate into the optimisers and D: a
    restored optimiser state otherwise brings back the rates it was saved with."""
    for optimizer, lr, betas in ((g_optimizer, config.g_lr, (config.g_beta1, config.g_beta2)),
                                 (d_optimizer, config.d_lr, (config.d_beta1, config.d_beta2))):
        for group in optimizer.param_groups:
            group["lr"], group["betas"] = lr, betas
            # A loaded state brings its writer's flags: a graphed GPU trial's checkpoint says
            # capturable, which a CPU trainer cannot step with, and an eager one's cannot be captured.
            group["capturable"] = capturable
    for module in discriminator.modules():
        if isinstance(module, DROPOUTS):
            module.p = config.d_dropout
    # With a D built with dropout layers, the activations before them stay plain.
    if has_dropout_layers(discriminator):
        for module in discriminator.modules():
            if isinstance(module, LeakyReLUDropout):
                module.p = 0.0


def read_hyperparameters(config: TrainConfig, g_optimizer: torch.optim.Optimizer, d_optimizer: torch.optim.Optimizer,
                         discriminator: torch.nn.Module) -> dict:
    """The mutable fields as the trainer really uses them: rates and betas read back from the
    optimisers, the dropout rate from D, the rest from the config."""
    values = {name: getattr(config, name) for name in MUTABLE_FIELDS}
    for prefix, optimizer in (("g", g_optimizer), ("d", d_optimizer)):
        group = optimizer.param_groups[0]
        values[f"{prefix}_lr"] = float(group["lr"])
        values[f"{prefix}_beta1"], values[f"{prefix}_beta2"] = (float(beta) for beta in group["betas"])
    rates = [module.p for module in discriminator.modules() if isinstance(module, DROPOUTS)]
    values["d_dropout"] = float(max(rates, default=0.0))
    return values
