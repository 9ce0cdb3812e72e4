"""Building blocks of the BioNIC network: masked synapses, lateral inhibition, attention, laminar groups.

Every block is a plain nn.Module that keeps nothing of its forward passes; the plasticity callbacks
(bionic.plasticity) observe the activity they need through forward hooks of their own.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MaskedLinear(nn.Linear):
    """A dense weight matrix restricted to a fixed 0/1 synapse mask (mask[post, pre]).

    The mask is a buffer (moves with .to(), saved in checkpoints, never trained). Masked weights are
    exactly zero and stay so: zeroed at init and whenever a state dict is loaded, and their gradient
    is exactly zero (the backward multiplies the weight gradient by the mask). The forward is
    therefore a plain F.linear with the stored weight, the same numbers as `weight * mask` without
    that product each step; with a decoupled weight decay (AdamW) and masked plasticity updates the
    masked entries never move.
    """

    def __init__(self, mask: torch.Tensor, bias: bool = True):
        mask = torch.as_tensor(mask, dtype=torch.float32)
        if mask.dim() != 2:
            raise ValueError(f"mask must be 2-D [post, pre], got shape {tuple(mask.shape)}")
        n_post, n_pre = mask.shape
        super().__init__(n_pre, n_post, bias=bias)
        self.register_buffer("mask", mask.clone())
        # Default init scales by fan-in over all pre cells; with a sparse mask each unit only sees
        # its real synapses, so rescale by the true mean fan-in to keep the drive O(1).
        with torch.no_grad():
            fan_in = mask.sum(1).mean().clamp_min(1.0).item()
            self.weight.mul_(math.sqrt(n_pre / fan_in))
            self.weight.mul_(self.mask)
        # A checkpoint written when the forward multiplied by the mask may hold anything at the
        # masked entries; the forward now reads the weight as stored, so zero them on load.
        self.register_load_state_dict_post_hook(_zero_masked_after_load)

    @property
    def n_synapses(self) -> int:
        return int(self.mask.sum().item())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return masked_linear(x, self.weight, self.bias, self.mask)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, synapses={self.n_synapses}"


def _zero_masked_after_load(module: "MaskedLinear", incompatible_keys) -> None:
    with torch.no_grad():
        module.weight.mul_(module.mask)


class _MaskedLinearFunction(torch.autograd.Function):
    """y = x W^T + b whose weight gradient is masked: (g^T x) * mask.

    With W zero wherever mask is zero this is exactly the product and the gradients of
    F.linear(x, W * mask, b): the same matrix products in the same layout as autograd's, minus the
    element-wise product in the forward.
    """

    @staticmethod
    def forward(x, weight, bias, mask):
        return F.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, mask = inputs
        ctx.save_for_backward(x, weight, mask)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad):
        x, weight, mask = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        # Under autocast the forward ran in the lower precision of `grad`; so does the backward
        # (autograd casts each gradient back to its input's dtype). Without it, no-op casts.
        g2 = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[0]:
            grad_x = grad.matmul(weight.to(grad.dtype))
        if ctx.needs_input_grad[1]:
            # g^T x, the product autograd forms for F.linear's weight (bit for bit the same sums)
            grad_w = g2.t().mm(x.reshape(-1, x.shape[-1]).to(grad.dtype)) * mask
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g2.sum(0)
        return grad_x, grad_w, grad_b, None


def masked_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  mask: torch.Tensor) -> torch.Tensor:
    """F.linear(x, weight, bias) for a weight that is zero wherever `mask` is, its weight gradient masked."""
    return _MaskedLinearFunction.apply(x, weight, bias, mask)


class LateralInhibition(nn.Module):
    """Divisive normalization: each unit is divided by the pooled energy of its neighbours.

    y[c,i,j] = x[c,i,j] / (1 + alpha * mean_{c' in N(c), (i',j') in N(i,j)} x[c',i',j']^2) ** beta

    A local competition across neighbouring channels *and* positions (a 3-D version of AlexNet's
    local response normalization, after Heeger's normalization model of V1). alpha is learnable and
    kept positive through softplus; beta is fixed. It is a nonlinearity (no ReLU in front of it):
    strong neighbours suppress a unit, which a pointwise rectifier cannot do.
    """

    def __init__(self, channel_window: int = 3, spatial_window: int = 3, alpha: float = 1.0,
                 beta: float = 0.5):
        super().__init__()
        if channel_window % 2 == 0 or spatial_window % 2 == 0:
            raise ValueError("lateral inhibition windows must be odd so the pool is centred")
        self.window = (channel_window, spatial_window, spatial_window)
        self.beta = beta
        # softplus^-1(alpha), so the initial strength is exactly alpha
        self.raw_alpha = nn.Parameter(torch.tensor(math.log(math.expm1(alpha))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The box mean is separable (channels, rows, columns); shifted sums of a padded tensor avoid
        # avg_pool3d's slow CPU kernel with the same numbers as
        # avg_pool3d(x * x, window, stride=1, padding=window // 2, count_include_pad=False).
        energy = x * x
        for dim, k in zip((1, 2, 3), self.window):
            energy = _window_mean(energy, dim, k)
        return x / (1.0 + F.softplus(self.raw_alpha) * energy).pow(self.beta)

    def extra_repr(self) -> str:
        return f"window={self.window}, beta={self.beta}"


def _window_mean(x: torch.Tensor, dim: int, k: int) -> torch.Tensor:
    """Mean over a centred window of k entries along `dim`, counting only entries that exist."""
    r = k // 2
    n = x.shape[dim]
    if r == 0:
        return x
    pad = [0, 0] * (x.dim() - 1 - dim) + [r, r]  # F.pad lists the last dimension first
    padded = F.pad(x, pad)
    total = padded.narrow(dim, 0, n)
    for i in range(1, k):
        total = total + padded.narrow(dim, i, n)
    idx = torch.arange(n, device=x.device)
    count = (idx.clamp(max=n - 1 - r) + r + 1 - (idx - r).clamp(min=0)).to(x.dtype)
    shape = [1] * x.dim()
    shape[dim] = n
    return total / count.view(shape)


class ChannelSpatialAttention(nn.Module):
    """CBAM (Woo et al. 2018): channel attention from pooled descriptors, then spatial attention."""

    def __init__(self, channels: int, reduction: int = 4, kernel_size: int = 7):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.channel_mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.channel_mlp(x.mean((2, 3))) + self.channel_mlp(x.amax((2, 3)))
        x = x * torch.sigmoid(gate)[:, :, None, None]
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        # channels_last sends this 2-channel 7x7 conv to oneDNN's fast CPU path; same result.
        gate = self.spatial(pooled.contiguous(memory_format=torch.channels_last))
        return x * torch.sigmoid(gate).contiguous()


class AdaptiveAvgPool(nn.Module):
    """nn.AdaptiveAvgPool2d as two small matrix products (rows, then columns).

    Same windows and numbers as AdaptiveAvgPool2d(size); PyTorch's CPU kernel is slow when the input
    side is not a multiple of the output side (24 -> 15 here), two small matrix products are not.
    """

    def __init__(self, size: int):
        super().__init__()
        self.size = int(size)
        self._cache: dict = {}

    @staticmethod
    def weights(n_in: int, n_out: int) -> torch.Tensor:
        """[n_out, n_in]: row i averages inputs floor(i*n_in/n_out) .. ceil((i+1)*n_in/n_out) - 1."""
        w = torch.zeros(n_out, n_in)
        for i in range(n_out):
            start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
            w[i, start:end] = 1.0 / (end - start)
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        key = (h, w, x.device, x.dtype)
        if key not in self._cache:
            # built outside inference mode: a first call under torch.inference_mode (a test, a
            # predict, Lightning's validation) must not cache tensors that training cannot save
            with torch.inference_mode(False):
                self._cache[key] = (self.weights(h, self.size).to(x.device, x.dtype),
                                    self.weights(w, self.size).to(x.device, x.dtype))
        rows, cols = self._cache[key]
        return rows @ x @ cols.t()

    def extra_repr(self) -> str:
        return f"size={self.size}"


class LaminarGroup(nn.Module):
    """One laminar group of excitatory cells (e.g. A = 4P): feed-forward drive, one masked
    recurrent step among its own cells, LayerNorm, synaptic noise, rectification with a homeostatic
    excitability, and graded (divisive) inhibition.

        u = W_ff x                                   feed-forward synapses (masked, or dense for A)
        u = u + W_rec relu(u)                        intra-layer synapses, one recurrent step
        u = LayerNorm(u)
        u = u + sigma * N(0, 1)                      synaptic noise, training only
        r = relu(u + excitability)                   excitability: homeostatic per-unit bias
        r = r / (1 + k * inhibition * mean_j r_j)    graded inhibition

    Graded inhibition: the column's inhibitory cells are not modelled one by one; they are driven
    by the group's own mean activity (interneurons pool local excitation) and act on each cell in
    proportion to its normalized inhibitory input from the connectome (`inhibition`, in [0, 1]).
    Divisive (shunting) rather than subtractive, so it scales gain without silencing units.
    """

    def __init__(self, feedforward: nn.Linear, within: torch.Tensor | None, inhibition: torch.Tensor,
                 *, layer_norm: bool = True, layer_norm_bias: bool = True, graded_inhibition: bool = True,
                 inhibition_strength: float = 1.0, synaptic_noise: float = 0.0):
        super().__init__()
        n = feedforward.out_features
        if inhibition.shape != (n,):
            raise ValueError(f"inhibition must have shape ({n},), got {tuple(inhibition.shape)}")
        self.feedforward = feedforward
        self.recurrent = MaskedLinear(within, bias=False) if within is not None else None
        self.norm = nn.LayerNorm(n, bias=layer_norm_bias) if layer_norm else None
        self.graded_inhibition = graded_inhibition
        self.inhibition_strength = inhibition_strength
        self.synaptic_noise = float(synaptic_noise)
        self.register_buffer("inhibition", torch.as_tensor(inhibition, dtype=torch.float32).clone())
        # Homeostatic state: a per-unit excitability added before rectification, and the running
        # rate it steers. Buffers, like BatchNorm's running statistics, so they travel with the
        # weights in every checkpoint; bionic.plasticity.HomeostaticRegulation writes them.
        self.register_buffer("excitability", torch.zeros(n))
        self.register_buffer("rate_ema", torch.zeros(n))
        self.register_buffer("homeostasis_steps", torch.zeros((), dtype=torch.long))
        if self.recurrent is not None:
            # The recurrent step starts at half strength so the group begins near feed-forward.
            with torch.no_grad():
                self.recurrent.weight.mul_(0.5)

    @property
    def size(self) -> int:
        return self.feedforward.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.feedforward(x)
        if self.recurrent is not None:
            u = u + self.recurrent(F.relu(u))
        if self.norm is not None:
            u = self.norm(u)
        if self.training and self.synaptic_noise > 0:
            u = u + self.synaptic_noise * torch.randn_like(u)
        r = F.relu(u + self.excitability)
        if self.graded_inhibition:
            drive = r.mean(1, keepdim=True)
            r = r / (1.0 + self.inhibition_strength * self.inhibition * drive)
        return r

    def extra_repr(self) -> str:
        return (f"size={self.size}, graded_inhibition={self.graded_inhibition}, "
                f"synaptic_noise={self.synaptic_noise}")
