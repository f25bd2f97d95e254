"""The DDP seam (demucs ``distrib.py`` style): every function is a no-op for one process.

Launch with ``torchrun --nproc_per_node=N train.py ...``; torchrun sets RANK, WORLD_SIZE and
LOCAL_RANK. The backend is NCCL on GPUs and gloo on CPUs. torch is imported only where several
processes run: ``boundaries detect`` in one process never loads it (start-up, issue 16).
"""

import os


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def rank_device(device: str) -> str:
    """``auto``/``cuda`` -> this rank's GPU (``cuda:LOCAL_RANK``) when there are GPUs."""
    import torch

    return f"cuda:{local_rank()}" if torch.cuda.is_available() else device


def init(device) -> None:
    """Join the process group when launched by torchrun (``device``: a ``torch.device`` or
    ``"cpu"``)."""
    if world_size() == 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if getattr(device, "type", device) == "cuda" else "gloo")


def wrap(model, device):
    if world_size() == 1:
        return model
    import torch

    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model):
    return model.module if hasattr(model, "module") else model


def all_reduce_mean(values: dict) -> dict:
    """Average scalar metrics over ranks."""
    if world_size() == 1:
        return values
    import torch
    import torch.distributed as dist

    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {k: float(v) / world_size() for k, v in zip(keys, tensor.tolist())}


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank."""
    if world_size() == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if world_size() == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if world_size() > 1:
        import torch.distributed as dist

        dist.barrier()


def cleanup() -> None:
    if world_size() == 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
