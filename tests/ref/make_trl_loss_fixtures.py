"""TRL's DPO loss family on random log-probs: tests/fixtures/trl_losses.json, which tests/test_losses.c (losses_trl_family_matches_trl)
matches with train/losses.c's dpo_loss to 1e-6.

The loss is TRL's own code, run verbatim: trl.DPOTrainer._compute_loss (where TRL 1.x computes every
loss_type; older TRL had a separate dpo_loss method) on a stand-in trainer and model. The model's output is
a leaf tensor of per-token log-probs (zero outside the completion, as TRL's fused head gives them), the
reference log-probs come in precomputed (precompute_ref_log_probs), and the gradient of TRL's loss with
respect to each row's tokens is the gradient with respect to the row's summed log-prob, which is what the C
side computes. Everything in float64.

    pip install trl            # CPU wheels are enough (torch CPU)
    python3 tests/ref/make_trl_loss_fixtures.py
"""
import json
import os
from collections import defaultdict
from types import SimpleNamespace

import torch
import trl
from trl import DPOTrainer

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "trl_losses.json")

# (loss types, weights, beta, label smoothing): every type alone, and weighted sums (MPO's is the first)
CASES = [
    (["sigmoid"], None, 0.1, 0.0),
    (["sigmoid"], None, 0.7, 0.0),
    (["hinge"], None, 0.5, 0.0),
    (["ipo"], None, 0.1, 0.0),
    (["ipo"], None, 1.5, 0.0),
    (["robust"], None, 0.1, 0.1),
    (["robust"], None, 0.5, 0.3),
    (["sigmoid_norm"], None, 2.0, 0.0),
    (["bco_pair"], None, 0.1, 0.0),
    (["sft"], None, 0.1, 0.0),
    (["sigmoid", "bco_pair", "sft"], [0.8, 0.2, 1.0], 0.1, 0.0),
    (["ipo", "hinge", "sigmoid_norm"], [0.5, 2.0, 0.25], 0.3, 0.0),
]


def stand_in(loss_types, loss_weights, beta, label_smoothing):
    """The attributes _compute_loss reads, as DPOTrainer.__init__ sets them from a DPOConfig."""
    identity = lambda x: x  # noqa: E731 (one process: gathering changes nothing)
    return SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=SimpleNamespace(device=torch.device("cpu"), gather_for_metrics=identity, gather=identity),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        f_alpha_divergence_coef=1.0,
        loss_types=loss_types,
        loss_weights=loss_weights or [1.0] * len(loss_types),
        beta=beta,
        label_smoothing=label_smoothing,
        use_weighting=False,
        args=SimpleNamespace(discopop_tau=0.05),
        router_aux_loss_coef=0.0,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )


def main():
    torch.manual_seed(14)
    B, T = 7, 14
    # rows [chosen..., rejected...] as TRL batches them; a prompt of 2-4 tokens, a completion of 1-9, padding
    mask = torch.zeros(2 * B, T, dtype=torch.long)
    for r in range(2 * B):
        p = int(torch.randint(2, 5, ()))
        n = int(torch.randint(1, 10, ()))
        mask[r, p:p + n] = 1
    shift = mask[:, 1:].double()
    tokens = (-3 * torch.rand(2 * B, T - 1, dtype=torch.float64) - 0.01).requires_grad_(True)
    row_logps = (tokens * shift).sum(1).detach()
    ref = row_logps + 2 * torch.randn(2 * B, dtype=torch.float64)
    lengths = mask.sum(1)

    out = {
        "generator": "tests/ref/make_trl_loss_fixtures.py",
        "trl_version": trl.__version__,
        "torch_version": torch.__version__,
        "pairs": B,
        "pc": row_logps[:B].tolist(), "pr": row_logps[B:].tolist(),
        "rc": ref[:B].tolist(), "rr": ref[B:].tolist(),
        "nc": lengths[:B].tolist(), "nr": lengths[B:].tolist(),
        "cases": [],
    }
    for loss_types, weights, beta, eps in CASES:
        tokens.grad = None
        log_probs = tokens * shift  # zero outside the completion
        zeros = torch.zeros(2 * B, T - 1, dtype=torch.float64)
        outputs = SimpleNamespace(log_probs=log_probs, entropy=zeros, mean_logits=zeros,
                                  is_top1=torch.zeros(2 * B, T - 1, dtype=torch.bool))
        model = lambda **kwargs: outputs  # noqa: E731
        inputs = {
            "input_ids": torch.ones(2 * B, T, dtype=torch.long),
            "attention_mask": torch.ones(2 * B, T, dtype=torch.long),
            "completion_mask": mask,
            "ref_chosen_logps": ref[:B], "ref_rejected_logps": ref[B:],
        }
        me = stand_in(loss_types, weights, beta, eps)
        loss = DPOTrainer._compute_loss(me, model, inputs, False)
        loss.backward()
        # every completion token of a row has its row's gradient
        g = torch.zeros(2 * B, dtype=torch.float64)
        for r in range(2 * B):
            on = shift[r] > 0
            gr = tokens.grad[r][on]
            assert torch.allclose(gr, gr[0].expand_as(gr), rtol=0, atol=1e-15), (loss_types, r)
            g[r] = gr[0]
        metrics = {k: v[-1] for k, v in me._metrics["train"].items()
                   if k.startswith("rewards/") or k.startswith("logps/")}
        out["cases"].append({
            "loss_type": loss_types, "loss_weights": weights or [1.0] * len(loss_types),
            "beta": beta, "label_smoothing": eps,
            "loss": loss.item(), "dpc": g[:B].tolist(), "dpr": g[B:].tolist(), "metrics": metrics,
        })
        print(f"{'+'.join(loss_types):28s} beta {beta:<4} e {eps:<4} loss {loss.item():.6f}")
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
