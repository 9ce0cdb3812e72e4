"""The FLOP floor a step or an epoch is held against: its training FLOPs at the machine's fp32 GEMM rate."""

from __future__ import annotations

import torch

from bionic.bench.timers import median_s

GEMM_N = 2048  # the square matrices of the GEMM rate


def training_flops(net, batch_size: int, device) -> int:
    """FLOPs of one forward and backward pass at this batch size (torch's FlopCounterMode), the
    masked matrices counted as the dense products they are computed as."""
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch_size, 1, 48, 48, device=device)
    y = torch.zeros(batch_size, dtype=torch.long, device=device)
    net.train()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(net(x), y).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def gemm_flops_per_s(device, n: int = GEMM_N) -> float:
    """fp32 matrix-multiply throughput with this process's threads: the FLOP floor's rate."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n**3 / median_s(lambda: torch.mm(a, b), 5, device)
