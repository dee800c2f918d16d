"""--sync-bn: BatchNorm over the global batch of all ranks, on any device.

torch.nn.SyncBatchNorm only runs on GPUs (it raises for CPU tensors), and the CPU (gloo) is where the
tests run; so the statistics are all-reduced here with the autograd-aware collective
(torch.distributed.nn.functional.all_reduce). Forward, gradients and running statistics equal those of
one BatchNorm over the concatenated batch (tests/runner/test_distributed.py). Outside a training forward
under torchrun it is plain BatchNorm.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn


class GlobalBatchNorm2d(nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce   # differentiable; only under torchrun
        dims = (0, 2, 3)
        shape = (1, -1, 1, 1)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        # Two passes (mean, then the centred squares): the variance without E[x^2] - E[x]^2 cancellation.
        sums = all_reduce(torch.cat([x.sum(dims), count]))
        n = sums[-1]
        mean = sums[:-1] / n
        centred = x - mean.view(shape)
        var = all_reduce(centred.pow(2).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def global_batch_norm(model: nn.Module) -> nn.Module:
    """`model` with every BatchNorm2d replaced by GlobalBatchNorm2d (parameters and buffers kept)."""
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            new.load_state_dict(child.state_dict())
            setattr(model, name, new)
        else:
            global_batch_norm(child)
    return model

