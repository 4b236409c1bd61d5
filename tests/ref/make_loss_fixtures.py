#!/usr/bin/env python3
"""Preference-loss fixtures: the equations of research/methods.md written directly in torch, with
gradients by autograd, on random log-probs. Writes tests/fixtures/losses.safetensors."""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(3)
n = 7
out = {}


def rnd(*shape):
    return (torch.randn(*shape, dtype=torch.float64) * 3 - 20).requires_grad_(True)


# DPO (sigmoid, beta 0.1), with label smoothing 0.2, and IPO
pc, pr, rc, rr = rnd(n), rnd(n), rnd(n), rnd(n)
for name, eps, ipo in (("dpo", 0.0, False), ("cdpo", 0.2, False), ("ipo", 0.0, True)):
    beta = 0.1
    h = (pc - rc) - (pr - rr)
    if ipo:
        loss = ((h - 1 / (2 * beta)) ** 2).mean()
    else:
        loss = (-(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)).mean()
    gc, gr = torch.autograd.grad(loss, [pc, pr])
    out[f"{name}.loss"] = loss.detach().reshape(1)
    out[f"{name}.dpc"], out[f"{name}.dpr"] = gc, gr
out["pc"], out["pr"], out["rc"], out["rr"] = pc.detach(), pr.detach(), rc.detach(), rr.detach()

# S-VCO: columns (w|Iw), (w|Il), (w|none), (l|Iw), (l|Il), (l|none); VCO = first two terms
pol, ref = rnd(n, 6), rnd(n, 6)
for name, betas in (("svco", (0.1, 0.1, 0.1, 0.1)), ("vco", (0.1, 0.1, 0.0, 0.0)), ("svco_mixed", (0.3, 0.05, 0.2, 0.1))):
    r = pol - ref
    terms = [(-F.logsigmoid(betas[0] * (r[:, 0] - r[:, 2]))), (-F.logsigmoid(betas[1] * (r[:, 2] - r[:, 1]))),
             (-F.logsigmoid(betas[2] * (r[:, 4] - r[:, 5]))), (-F.logsigmoid(betas[3] * (r[:, 5] - r[:, 3])))]
    total = sum(t for t, b in zip(terms, betas) if b > 0).mean()
    (g,) = torch.autograd.grad(total, [pol])
    out[f"{name}.loss"] = total.detach().reshape(1)
    out[f"{name}.dpol"] = g
out["svco.pol"], out["svco.ref"] = pol.detach(), ref.detach()

# mDPO: columns (w|m), (l|m), (w|m')
mp, mr = rnd(n, 3), rnd(n, 3)
beta = 0.1
r = mp - mr
loss = (-F.logsigmoid(beta * (r[:, 0] - r[:, 1])) - F.logsigmoid(beta * (r[:, 0] - r[:, 2])) - F.logsigmoid(beta * r[:, 0])).mean()
(g,) = torch.autograd.grad(loss, [mp])
out["mdpo.loss"], out["mdpo.dpol"] = loss.detach().reshape(1), g
out["mdpo.pol"], out["mdpo.ref"] = mp.detach(), mr.detach()

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "losses.safetensors")
save_file({k: v.contiguous() for k, v in out.items()}, path)
print("wrote", path)
