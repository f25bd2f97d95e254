"""The optimisation loop shared by the track-change detector's small networks (the embedding and
the sequence stage): AdamW with a one-cycle schedule, a running loss logged every few steps."""

import numpy as np
import torch


def train_steps(model, step_loss, *, steps: int, lr: float, pct_start: float, label: str,
                metric: str, log_every: int, log=print):
    """``steps`` optimiser steps on ``step_loss()`` (the loss tensor of a fresh batch); logs
    ``"{label} step i/steps: {metric} {mean loss}"``. Returns the model in eval mode."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=pct_start)
    model.train()
    running = []
    for step in range(1, steps + 1):
        loss = step_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if step % log_every == 0 or step == steps:
            log(f"{label} step {step}/{steps}: {metric} {np.mean(running):.4f}")
            running = []
    return model.eval()
