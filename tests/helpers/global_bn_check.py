"""Run under torchrun with 2 CPU processes (gloo): GlobalBatchNorm2d on each rank's half of a batch
equals one BatchNorm2d over the whole batch in output, input and parameter gradients and running
statistics. Exits 0 when equal (tests/runner/test_distributed.py)."""
import torch
import torch.distributed as dist
import torch.nn as nn

from models.syncbn import GlobalBatchNorm2d

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
x = torch.randn(8, 3, 5, 5, dtype=torch.float64) * 3 + 1
w = torch.randn(8, 3, 5, 5, dtype=torch.float64)          # a fixed upstream gradient
ref = nn.BatchNorm2d(3).double()
nn.init.uniform_(ref.weight)
nn.init.uniform_(ref.bias)
ours = GlobalBatchNorm2d(3).double()
ours.load_state_dict(ref.state_dict())
xr = x.clone().requires_grad_()
(ref(xr) * w).sum().backward()
part = torch.tensor_split(torch.arange(8), world)[rank]
xo = x[part].clone().requires_grad_()
out = ours(xo)
(out * w[part]).sum().backward()
for p in ours.parameters():                                 # as DDP would: gradients summed over ranks
    dist.all_reduce(p.grad)
expected = nn.functional.batch_norm(x, None, None, ref.weight, ref.bias, True, 0.1, ref.eps)[part]
assert torch.allclose(out, expected, atol=1e-12), "forward"
assert torch.allclose(xo.grad, xr.grad[part], atol=1e-12), "input gradient"
assert torch.allclose(ours.weight.grad, ref.weight.grad, atol=1e-12), "weight gradient"
assert torch.allclose(ours.bias.grad, ref.bias.grad, atol=1e-12), "bias gradient"
assert torch.allclose(ours.running_mean, ref.running_mean, atol=1e-12), "running mean"
assert torch.allclose(ours.running_var, ref.running_var, atol=1e-12), "running variance"
assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 1
print("equal", rank, flush=True)    # every check above passed on this rank
dist.destroy_process_group()
