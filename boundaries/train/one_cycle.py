"""The optimisation loop shared by the track-change detector's small networks (the embedding,
the sequence stage and the locators): AdamW with a one-cycle schedule, a running loss logged
every few steps, on the CPU or a GPU."""

import numpy as np
import torch


def train_steps(model, step_loss, *, steps: int, lr: float, pct_start: float, label: str,
                metric: str, log_every: int, log=print, device=torch.device("cpu"),
                amp: bool = False):
    """``steps`` optimiser steps on ``step_loss()`` (the loss tensor of a fresh batch, on
    ``device``); logs ``"{label} step i/steps: {metric} {mean loss}"``. ``model`` moves to
    ``device``, and with ``amp`` on CUDA the forward passes run under bf16 autocast. Returns
    the model in eval mode, on ``device``."""
    model.to(device)
    use_amp = amp and device.type == "cuda"
    if np.isclose(pct_start * steps, 1.0):  # OneCycleLR divides by this warm-up minus one step
        pct_start *= 1.5
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=pct_start)
    model.train()
    running = []
    for step in range(1, steps + 1):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            loss = step_loss()
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if step % log_every == 0 or step == steps:
            log(f"{label} step {step}/{steps}: {metric} {np.mean(running):.4f}")
            running = []
    return model.eval()


def numpy_state(model) -> dict:
    """A trained module's parameters and buffers as numpy arrays (copied off a GPU)."""
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
