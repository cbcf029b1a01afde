"""cnnlab's SGD and Adam/AdamW take the same steps as torch.optim's."""
import pytest
import torch
from torch import nn

from cnnlab.train import optim


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


@pytest.mark.parametrize("mine, theirs", [
    (lambda p: optim.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3)),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    (lambda p: optim.Adam(p, lr=1e-2, weight_decay=1e-2), lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2)),
    (lambda p: optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2, decoupled=True),
     lambda p: torch.optim.AdamW(p, lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2)),
])
def test_steps_match_torch_optim(mine, theirs):
    a, b = _model(), _model()
    oa, ob = mine(list(a.parameters())), theirs(list(b.parameters()))
    torch.manual_seed(1)
    for step in range(6):
        x, y = torch.randn(5, 2, 6, 6), torch.randint(0, 3, (5,))
        for model, opt in ((a, oa), (b, ob)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        if step == 2:  # a state round trip in the middle changes nothing
            fresh = mine(list(a.parameters()))
            fresh.load_state_dict(oa.state_dict())
            oa = fresh
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6, rtol=1e-5)


def test_grad_scaler_drives_it():
    model = _model()
    opt = optim.SGD(list(model.parameters()), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    before = [p.detach().clone() for p in model.parameters()]
    loss = model(torch.randn(4, 2, 6, 6)).square().mean()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before))
