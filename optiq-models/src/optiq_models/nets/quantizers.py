"""Vector quantizers of the VQ-VAE: one codebook (:class:`Quantizer`) and a stack of them (:class:`ResidualQuantizer`).

A quantizer maps latents ``z [N, D]`` to their nearest codes. Four ways to learn the codebook (``mode``):

- ``ema_reset`` (default): codebook initialised from the encoder outputs of the first training batch, updated as an
  exponential moving average (``decay``) of the latents assigned to each code (their sums and counts); a code
  whose average count falls below ``reset_threshold`` times the average count of all codes is dead and re-seeded
  with a random latent of the batch. (T2M-GPT's threshold is an absolute count, 1.0, which with its 4096 latents
  per batch for 512 codes is 1/8 of the average; with fewer latents per batch than codes an absolute threshold
  declares most codes dead at every step and the codebook becomes the last batch's latents.)
- ``ema``: the same without the re-seeding.
- ``reset``: a codebook learnt by gradient (the codebook loss) with the dead-code re-seeding.
- ``orig``: a codebook learnt by gradient, the original VQ-VAE (codebook loss + commitment).

Gradients reach the encoder straight through (the decoder's gradient is copied onto the latents). The codebook
and its statistics are buffers (or, learnt by gradient, a parameter), so ``state_dict`` holds them and a
checkpoint that ``torch.load(weights_only=True)`` reads restores them. Under ``torch.distributed`` the statistics
are averaged over the ranks and the random choices taken from rank 0, so every rank keeps the same codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MODES = ("ema_reset", "ema", "reset", "orig")


@dataclass
class QuantizeOut:
    """What quantizing ``z [N, D]`` gives: ``z_q [N, D]`` (straight-through when ``z`` needs a gradient), ``ids
    [N, Q]``, ``commit`` (sum over codebooks of the mean squared distance latent - code: the commitment),
    ``codebook`` (the codebook loss of gradient-learnt codebooks, else 0) and ``counts [Q, K]`` (latents per code
    in this batch; a codebook dropped by quantize-dropout counts none)."""

    z_q: torch.Tensor
    ids: torch.Tensor
    commit: torch.Tensor
    codebook: torch.Tensor
    counts: torch.Tensor


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over the ranks (``t`` itself without torch.distributed)."""
    if _distributed():
        torch.distributed.all_reduce(t)
        t /= torch.distributed.get_world_size()
    return t


def _from_rank0(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's ``t`` on every rank: random choices that must agree (re-seeded codes, quantize-dropout depth)."""
    if _distributed():
        torch.distributed.broadcast(t, 0)
    return t


def batch_stats(counts: torch.Tensor) -> tuple[float, float]:
    """(perplexity, usage) of code counts ``[Q, K]``, averaged over the codebooks that saw latents: perplexity
    ``exp(entropy)`` of the code frequencies (K when all codes are used equally), usage the fraction of codes used."""
    seen = counts.sum(1) > 0
    counts = counts[seen]
    if not len(counts):
        return 0.0, 0.0
    p = counts / counts.sum(1, keepdim=True)
    entropy = -(p * torch.log(p.clamp_min(1e-10))).sum(1)
    return float(entropy.exp().mean()), float((counts > 0).float().mean())


class Quantizer(nn.Module):
    """One codebook of ``size`` codes of ``dim`` numbers, learnt as ``mode`` says (module docstring).

    Buffers: ``ema_count [K]`` (the moving average of latents per code, kept in every mode: it tells dead codes),
    ``ema_sum [K, D]`` (EMA modes), ``initialised`` (whether the first batch has seeded the codebook).
    """

    def __init__(self, size: int, dim: int, mode: str = "ema_reset", decay: float = 0.99,
                 reset_threshold: float = 0.1) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"quantizer mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.size, self.dim, self.mode = size, dim, mode
        self.decay, self.reset_threshold = decay, reset_threshold
        self.ema = mode in ("ema_reset", "ema")
        self.resets = mode in ("ema_reset", "reset")
        init = torch.zeros(size, dim)
        if self.ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("ema_count", torch.zeros(size))
        self.register_buffer("initialised", torch.tensor(False))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Index ``[N]`` of the nearest code of each latent ``z [N, D]`` (Euclidean)."""
        e = self.codebook.detach()
        dist = (z.detach().pow(2).sum(1, keepdim=True) - 2 * z.detach() @ e.t() + e.pow(2).sum(1)[None])
        return dist.argmin(1)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """The codes of ``ids [...]`` -> ``[..., D]``."""
        return nn.functional.embedding(ids, self.codebook)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z [N, D]`` -> (codes ``[N, D]`` (carrying the codebook's gradient for ``orig``/``reset``), ids ``[N]``,
        commitment, codebook loss, counts ``[K]``). In training mode the codebook learns from ``z`` after it has
        quantized it: the batch is quantized with the codebook it was given."""
        if self.training and not bool(self.initialised):
            self._initialise(z.detach())
        ids = self.nearest(z)
        q = self.lookup(ids)
        counts = torch.bincount(ids, minlength=self.size).to(z.dtype)
        commit = (z - q.detach()).pow(2).mean()
        codebook = z.new_zeros(()) if self.ema else (q - z.detach()).pow(2).mean()
        if self.training:
            self._update(z.detach(), ids, counts.clone())
        return q, ids, commit, codebook, counts

    @torch.no_grad()
    def _initialise(self, z: torch.Tensor) -> None:
        """Seed every code with a latent of the first batch (rank 0's, on every rank)."""
        codes = _from_rank0(self._random_latents(z))
        self.codebook.data.copy_(codes)
        if self.ema:
            self.ema_sum.copy_(codes)
        self.ema_count.fill_(1.0)
        self.initialised.fill_(True)

    def _random_latents(self, z: torch.Tensor) -> torch.Tensor:
        """``[K, D]`` latents drawn from ``z [N, D]`` without repetition while there are enough, then repeated
        with a little noise (so that no two codes start equal)."""
        reps = -(-self.size // z.shape[0])
        pool = z.repeat(reps, 1)
        if reps > 1:
            pool = pool + torch.randn_like(pool) * (0.01 / self.dim ** 0.5)
        return pool[torch.randperm(pool.shape[0], device=z.device)[: self.size]]

    @torch.no_grad()
    def _update(self, z: torch.Tensor, ids: torch.Tensor, counts: torch.Tensor) -> None:
        """The moving averages of this batch (averaged over the ranks), then the EMA codebook and the re-seeding
        of dead codes."""
        sums = torch.zeros_like(self.codebook).index_add_(0, ids, z) if self.ema else None
        flat = _all_mean(torch.cat([counts[:, None], sums], 1) if self.ema else counts[:, None])
        self.ema_count.mul_(self.decay).add_(flat[:, 0], alpha=1 - self.decay)
        if self.ema:
            self.ema_sum.mul_(self.decay).add_(flat[:, 1:], alpha=1 - self.decay)
            self.codebook.copy_(self.ema_sum / self.ema_count.clamp_min(1e-5)[:, None])
        if self.resets:
            dead = self.dead()
            if bool(dead.any()):
                self.reseed(dead, z)

    def dead(self) -> torch.Tensor:
        """Mask ``[K]`` of the dead codes: moving-average count below ``reset_threshold`` x the average count."""
        return self.ema_count < self.reset_threshold * self.ema_count.mean()

    @torch.no_grad()
    def reseed(self, dead: torch.Tensor, z: torch.Tensor) -> None:
        """Move the codes of mask ``dead [K]`` onto random latents of ``z [N, D]`` with the average count (so a
        re-seeded code has some batches to be chosen before it counts as dead again)."""
        fresh = _from_rank0(self._random_latents(z))
        count = self.ema_count.mean()
        self.codebook.data[dead] = fresh[dead]
        if self.ema:
            self.ema_sum[dead] = fresh[dead] * count
        self.ema_count[dead] = count


class ResidualQuantizer(nn.Module):
    """``num`` codebooks in a stack (residual quantisation, as in MoMask): codebook i quantizes what codebooks
    0..i-1 left of the latent, and the codes are summed. ``num = 1`` is a plain VQ.

    Quantize-dropout: in training, with probability ``dropout``, only the first q codebooks quantize the batch, q
    drawn uniformly from 1..num (the same q for the whole batch and every rank), so that the first codebooks alone
    already reconstruct and the later ones refine.
    """

    def __init__(self, num: int, size: int, dim: int, mode: str = "ema_reset", decay: float = 0.99,
                 reset_threshold: float = 0.1, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Quantizer(size, dim, mode, decay, reset_threshold) for _ in range(num))
        self.num, self.size, self.dropout = num, size, dropout
        self.last_depth = num

    def depth(self, device: torch.device) -> int:
        """Codebooks to use for this batch: all of them, or fewer under quantize-dropout (training only)."""
        if not self.training or self.num == 1 or self.dropout <= 0:
            return self.num
        draw = torch.stack([(torch.rand(()) < self.dropout).float(), torch.randint(1, self.num + 1, ()).float()])
        draw = draw.to(device)  # nccl broadcasts device tensors
        drop, q = _from_rank0(draw).tolist()
        return int(q) if drop else self.num

    def forward(self, z: torch.Tensor) -> QuantizeOut:
        """Quantize ``z [N, D]`` (see :class:`QuantizeOut`)."""
        depth = self.last_depth = self.depth(z.device)
        residual, total = z, torch.zeros_like(z)
        ids, commit, codebook = [], z.new_zeros(()), z.new_zeros(())
        counts = z.new_zeros(self.num, self.size)
        for i, layer in enumerate(self.layers[:depth]):
            q, idx, c, cb, n = layer(residual)
            residual = residual - q.detach()
            total = total + q
            ids.append(idx)
            commit, codebook, counts[i] = commit + c, codebook + cb, n
        # Straight through: the decoder's gradient goes to z unchanged (and, for a gradient-learnt codebook, the
        # codebook loss alone moves the codes). Exact codes when no gradient is wanted, so decode(encode(x))
        # equals forward(x) to the last bit.
        z_q = z + (total - z).detach() if z.requires_grad else total
        return QuantizeOut(z_q, torch.stack(ids, 1), commit, codebook, counts)

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Ids ``[N, num]`` of latents ``z [N, D]`` (no learning, every codebook)."""
        residual, ids = z, []
        for layer in self.layers:
            idx = layer.nearest(residual)
            residual = residual - layer.lookup(idx)
            ids.append(idx)
        return torch.stack(ids, 1)

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Ids ``[..., Q']`` of the first Q' <= num codebooks -> the summed codes ``[..., D]``."""
        total = self.layers[0].lookup(ids[..., 0])
        for i in range(1, ids.shape[-1]):
            total = total + self.layers[i].lookup(ids[..., i])
        return total

    def code_counts(self) -> torch.Tensor:
        """``[num, K]``: the moving average of latents per code, per codebook."""
        return torch.stack([layer.ema_count for layer in self.layers])
