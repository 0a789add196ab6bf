"""DPO-family losses against hand-computed values, the properties their papers claim, and the registry.

The shared example (two pairs, β = 0.5), used by most hand-computed tests:

    log π(y_w) = [-1, -2], log π(y_l) = [-3, -1], log π_ref(y_w) = log π_ref(y_l) = [-2, -2]
    ρ_w = [1, 0], ρ_l = [-1, 1], h = ρ_w − ρ_l = [2, -1], β·h = [1, -0.5]
    ℓ(x) = −log σ(x) = log(1 + e^−x): ℓ(1) = 0.3132617, ℓ(−1) = 1.3132617, ℓ(−0.5) = 0.9740770, ℓ(0.5) = 0.4740770
"""

from __future__ import annotations

import math

import pytest
import torch

from rewardlab.policy import dpo_token_rewards, get_policy_loss, policy_loss_names, register_policy_loss
from rewardlab.policy.losses import (
    conservative_dpo_loss,
    dpo_loss,
    flex_dpo_loss,
    hinge_loss,
    ipo_loss,
    robust_dpo_loss,
    rpo_loss,
    simpo_loss,
    tgdpo_loss,
)

torch.set_num_threads(1)


def example() -> dict[str, torch.Tensor]:
    return {
        "chosen_logps": torch.tensor([-1.0, -2.0]),
        "rejected_logps": torch.tensor([-3.0, -1.0]),
        "reference_chosen_logps": torch.tensor([-2.0, -2.0]),
        "reference_rejected_logps": torch.tensor([-2.0, -2.0]),
    }


def random_batch(n: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every batch field, random but consistent (sums equal the masked token sums)."""
    g = torch.Generator().manual_seed(seed)
    batch: dict[str, torch.Tensor] = {}
    for side, width in (("chosen", 5), ("rejected", 4)):
        lengths = torch.randint(1, width + 1, (n,), generator=g)
        mask = torch.arange(width)[None, :] < lengths[:, None]
        tokens = -torch.rand((n, width), generator=g) * 3
        reference = -torch.rand((n, width), generator=g) * 3
        batch[f"{side}_token_mask"] = mask
        batch[f"{side}_token_logps"] = tokens
        batch[f"reference_{side}_token_logps"] = reference
        batch[f"{side}_token_rewards"] = torch.randn((n, width), generator=g) * 0.5
        batch[f"{side}_logps"] = (tokens * mask).sum(-1)
        batch[f"reference_{side}_logps"] = (reference * mask).sum(-1)
        batch[f"{side}_lengths"] = lengths.float()
    for side in ("chosen", "rejected"):  # the labels and old-policy log-probs of the online rules
        batch[f"old_{side}_logps"] = batch[f"{side}_logps"] + 0.1 * torch.randn(n, generator=g)
        batch[f"{side}_scores"] = torch.randn(n, generator=g)
    batch["strengths"] = 0.5 + 0.5 * torch.rand(n, generator=g)
    batch["consistencies"] = torch.rand(n, generator=g)
    return batch


def test_dpo_hand_computed():
    """−log σ(β·h) = [ℓ(1), ℓ(−0.5)]; rewards β·ρ_w = [0.5, 0], β·ρ_l = [−0.5, 0.5]."""
    out = dpo_loss(**example(), beta=0.5)
    assert out.losses.tolist() == pytest.approx([0.3132617, 0.9740770], abs=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx([0.5, 0.0])
    assert out.rejected_rewards.tolist() == pytest.approx([-0.5, 0.5])
    assert out.metrics["margin"].tolist() == pytest.approx([1.0, -0.5])
    assert out.metrics["accuracy"].tolist() == [1.0, 0.0]


def test_conservative_dpo_hand_computed():
    """ε = 0.1: 0.9·ℓ(1) + 0.1·ℓ(−1) = 0.4132617; 0.9·ℓ(−0.5) + 0.1·ℓ(0.5) = 0.9240770."""
    out = conservative_dpo_loss(**example(), beta=0.5, label_smoothing=0.1)
    assert out.losses.tolist() == pytest.approx([0.4132617, 0.9240770], abs=1e-6)


def test_robust_dpo_hand_computed():
    """ε = 0.1: (0.9·ℓ(1) − 0.1·ℓ(−1)) / 0.8 = 0.1882617; (0.9·ℓ(−0.5) − 0.1·ℓ(0.5)) / 0.8 = 1.0365770."""
    out = robust_dpo_loss(**example(), beta=0.5, label_noise=0.1)
    assert out.losses.tolist() == pytest.approx([0.1882617, 1.0365770], abs=1e-6)


def test_ipo_hand_computed():
    """β = 0.5, so the target margin is 1/(2β) = 1: (2 − 1)² = 1, (−1 − 1)² = 4."""
    out = ipo_loss(**example(), beta=0.5)
    assert out.losses.tolist() == pytest.approx([1.0, 4.0])


def test_hinge_hand_computed():
    """max(0, 1 − β·h) = [max(0, 0), max(0, 1.5)] = [0, 1.5]."""
    out = hinge_loss(**example(), beta=0.5)
    assert out.losses.tolist() == pytest.approx([0.0, 1.5])


def test_rpo_hand_computed():
    """α = 1, |y_w| = [2, 4]: NLL = −log π(y_w)/|y_w| = [0.5, 0.5]; DPO + NLL = [0.8132617, 1.4740770]."""
    out = rpo_loss(**example(), chosen_lengths=torch.tensor([2.0, 4.0]), beta=0.5, alpha=1.0)
    assert out.losses.tolist() == pytest.approx([0.8132617, 1.4740770], abs=1e-6)
    assert out.extras["nll"].tolist() == pytest.approx([0.5, 0.5])


def test_simpo_hand_computed():
    """β = 2, γ = 1, |y_w| = [2, 4], |y_l| = [3, 2]:
    rewards 2·[−1/2, −2/4] = [−1, −1] and 2·[−3/3, −1/2] = [−2, −1];
    −log σ(−1 + 2 − 1) = ℓ(0) = log 2, −log σ(−1 + 1 − 1) = ℓ(−1) = 1.3132617."""
    ex = example()
    out = simpo_loss(
        ex["chosen_logps"],
        ex["rejected_logps"],
        chosen_lengths=torch.tensor([2.0, 4.0]),
        rejected_lengths=torch.tensor([3.0, 2.0]),
        beta=2.0,
        gamma=1.0,
    )
    assert out.losses.tolist() == pytest.approx([math.log(2), 1.3132617], abs=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx([-1.0, -1.0])
    assert out.rejected_rewards.tolist() == pytest.approx([-2.0, -1.0])


def test_flex_dpo_hand_computed():
    """β⁺ = 0.5, β⁻ = 0.25: β⁺ρ_w − β⁻ρ_l = [0.5 + 0.25, 0 − 0.25] → [ℓ(0.75), ℓ(−0.25)] = [0.3868710, 0.8259394];
    λ = 0.5 with |y_w| = [2, 4] adds 0.5·[0.5, 0.5] = 0.25 to each."""
    out = flex_dpo_loss(**example(), beta_chosen=0.5, beta_rejected=0.25)
    assert out.losses.tolist() == pytest.approx([0.3868710, 0.8259394], abs=1e-6)
    assert out.rejected_rewards.tolist() == pytest.approx([-0.25, 0.25])
    with_sft = flex_dpo_loss(
        **example(), chosen_lengths=torch.tensor([2.0, 4.0]), beta_chosen=0.5, beta_rejected=0.25, sft_weight=0.5
    )
    assert with_sft.losses.tolist() == pytest.approx([0.6368710, 1.0759394], abs=1e-6)


def tgdpo_example() -> dict[str, torch.Tensor]:
    """One pair. ρ_w,t = [−0.5 + 1, −1 + 1] = [0.5, 0]; ρ_l,t = [−2 + 1, −1 + 1.5] = [−1, 0.5] (the third
    rejected entry is padding, filled with junk that must be ignored)."""
    return {
        "chosen_token_logps": torch.tensor([[-0.5, -1.0]]),
        "reference_chosen_token_logps": torch.tensor([[-1.0, -1.0]]),
        "chosen_token_mask": torch.tensor([[True, True]]),
        "chosen_token_rewards": torch.tensor([[1.0, 2.0]]),
        "rejected_token_logps": torch.tensor([[-2.0, -1.0, 9.0]]),
        "reference_rejected_token_logps": torch.tensor([[-1.0, -1.5, -7.0]]),
        "rejected_token_mask": torch.tensor([[True, True, False]]),
        "rejected_token_rewards": torch.tensor([[0.5, -1.0, 100.0]]),
    }


def test_tgdpo_hand_computed():
    """β = 1, α = 0.5: chosen weights 1 + 0.5·[1, 2] = [1.5, 2], Σ w·ρ_w = 0.75;
    rejected weights 1 − 0.5·[0.5, −1] = [0.75, 1.5], Σ w·ρ_l = −0.75 + 0.75 = 0; loss ℓ(0.75) = 0.3868710.
    Without guidance (α = 0) it is DPO on the sums: h = 0.5 − (−0.5) = 1, ℓ(1) = 0.3132617."""
    out = tgdpo_loss(**tgdpo_example(), beta=1.0, alpha=0.5)
    assert out.losses.tolist() == pytest.approx([0.3868710], abs=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx([0.75])
    assert out.rejected_rewards.tolist() == pytest.approx([0.0])
    assert tgdpo_loss(**tgdpo_example(), beta=1.0, alpha=0.0).losses.tolist() == pytest.approx([0.3132617], abs=1e-6)


def test_tgdpo_without_guidance_is_dpo_and_guidance_is_not_trained():
    batch = random_batch()
    token_fields = {k: v for k, v in batch.items() if "token" in k}
    plain = dpo_loss(**{k: batch[k] for k in example()}, beta=0.3).losses
    assert torch.allclose(tgdpo_loss(**token_fields, beta=0.3, alpha=0.0).losses, plain, atol=1e-6)
    rewards = token_fields["chosen_token_rewards"].clone().requires_grad_(True)
    logps = token_fields["chosen_token_logps"].clone().requires_grad_(True)
    guided = {**token_fields, "chosen_token_rewards": rewards, "chosen_token_logps": logps}
    tgdpo_loss(**guided, beta=0.3, alpha=0.5).losses.sum().backward()
    assert rewards.grad is None and logps.grad is not None
    assert (logps.grad[~token_fields["chosen_token_mask"]] == 0).all(), "padding must get no gradient"


def test_dpo_token_rewards_sum_to_the_guides_implicit_reward():
    """Σ_t β·(log π_guide(y_t) − log π_ref(y_t)) = β·(log π_guide(y) − log π_ref(y)), the guide's DPO reward."""
    batch = random_batch()
    mask = batch["chosen_token_mask"]
    rewards = dpo_token_rewards(batch["chosen_token_logps"], batch["reference_chosen_token_logps"], beta=0.2)
    expected = 0.2 * (batch["chosen_logps"] - batch["reference_chosen_logps"])
    assert torch.allclose((rewards * mask).sum(-1), expected, atol=1e-6)


def test_ipo_is_minimised_at_the_target_margin():
    """IPO regresses h onto 1/(2β): with β = 0.25 the loss over h is smallest, and zero, at h = 2."""
    h = torch.linspace(-4, 8, 121)
    zeros = torch.zeros_like(h)
    out = ipo_loss(h, zeros, zeros, zeros, beta=0.25)
    assert h[out.losses.argmin()].item() == pytest.approx(2.0, abs=1e-5)
    assert out.losses.min().item() == pytest.approx(0.0, abs=1e-9)
    at_target = torch.tensor([2.0], requires_grad=True)
    ipo_loss(at_target, torch.zeros(1), torch.zeros(1), torch.zeros(1), beta=0.25).losses.sum().backward()
    assert at_target.grad.item() == pytest.approx(0.0, abs=1e-7)


def test_rpo_gradient_is_dpos_plus_the_sft_term():
    """∂/∂log π(y_w) of α·(−log π(y_w)/|y_w|) is −α/|y_w|: RPO's gradient is DPO's plus that."""
    batch = random_batch()
    fields = {k: batch[k] for k in example()}
    chosen = fields.pop("chosen_logps")
    lengths = batch["chosen_lengths"]
    grads = []
    for fn, extra in ((dpo_loss, {}), (rpo_loss, {"chosen_lengths": lengths, "alpha": 0.7})):
        x = chosen.clone().requires_grad_(True)
        fn(chosen_logps=x, **fields, beta=0.2, **extra).losses.sum().backward()
        grads.append(x.grad)
    assert torch.allclose(grads[1], grads[0] - 0.7 / lengths, atol=1e-6)


def test_simpo_ignores_the_reference():
    simpo = get_policy_loss("simpo")
    assert not simpo.needs_reference and get_policy_loss("dpo").needs_reference
    batch = random_batch()
    other = {**batch, "reference_chosen_logps": batch["reference_chosen_logps"] - 5}
    assert torch.equal(simpo(batch).losses, simpo(other).losses)
    assert not torch.allclose(get_policy_loss("dpo")(batch).losses, get_policy_loss("dpo")(other).losses)


def test_conservative_dpo_with_no_smoothing_is_dpo():
    fields = {k: random_batch()[k] for k in example()}
    dpo = dpo_loss(**fields, beta=0.3)
    cdpo = conservative_dpo_loss(**fields, beta=0.3, label_smoothing=0.0)
    assert torch.allclose(cdpo.losses, dpo.losses, atol=1e-7)


def test_flex_dpo_with_equal_temperatures_is_dpo():
    fields = {k: random_batch()[k] for k in example()}
    flex = flex_dpo_loss(**fields, beta_chosen=0.3, beta_rejected=0.3)
    assert torch.allclose(flex.losses, dpo_loss(**fields, beta=0.3).losses, atol=1e-7)


def flip(fields: dict[str, torch.Tensor], flipped: torch.Tensor) -> dict[str, torch.Tensor]:
    """Swap chosen and rejected where ``flipped``: the label a noisy annotator would have given."""
    out = dict(fields)
    for policy, ref in (("chosen_logps", "reference_chosen_logps"), ("rejected_logps", "reference_rejected_logps")):
        other_policy = policy.replace("chosen", "X").replace("rejected", "chosen").replace("X", "rejected")
        other_ref = ref.replace("chosen", "X").replace("rejected", "chosen").replace("X", "rejected")
        out[policy] = torch.where(flipped, fields[other_policy], fields[policy])
        out[ref] = torch.where(flipped, fields[other_ref], fields[ref])
    return out


def test_robust_dpo_is_unbiased_under_label_flips():
    """E over flips of robust DPO = clean DPO, exactly ((1 − ε)·L̃(h) + ε·L̃(−h) = ℓ(βh)) and by
    Monte-Carlo over 20,000 noisy copies of each pair; conservative DPO is biased."""
    eps, beta = 0.2, 0.5
    fields = {k: random_batch(n=8)[k] for k in example()}
    clean = dpo_loss(**fields, beta=beta).losses
    all_flipped = flip(fields, torch.ones(8, dtype=torch.bool))
    exact = (1 - eps) * robust_dpo_loss(**fields, beta=beta, label_noise=eps).losses + eps * robust_dpo_loss(
        **all_flipped, beta=beta, label_noise=eps
    ).losses
    assert torch.allclose(exact, clean, atol=1e-6)

    g = torch.Generator().manual_seed(0)
    copies = 20_000
    repeated = {k: v.repeat(copies) for k, v in fields.items()}
    noisy = flip(repeated, torch.rand(8 * copies, generator=g) < eps)
    robust_mean = robust_dpo_loss(**noisy, beta=beta, label_noise=eps).losses.view(copies, 8).mean(0)
    conservative_mean = conservative_dpo_loss(**noisy, beta=beta, label_smoothing=eps).losses.view(copies, 8).mean(0)
    assert torch.allclose(robust_mean, clean, atol=0.03)
    assert (conservative_mean - clean).abs().max() > 0.1


def test_hinge_is_zero_beyond_the_margin():
    """β = 0.5: the margin is h = 1/β = 2; beyond it the loss and its gradient vanish."""
    h = torch.tensor([-1.0, 0.0, 1.9, 2.0, 2.5, 10.0], requires_grad=True)
    zeros = torch.zeros(6)
    out = hinge_loss(h, zeros, zeros, zeros, beta=0.5)
    out.losses.sum().backward()
    assert out.losses.tolist() == pytest.approx([1.5, 1.0, 0.05, 0.0, 0.0, 0.0], abs=1e-6)
    assert h.grad.tolist() == pytest.approx([-0.5, -0.5, -0.5, 0.0, 0.0, 0.0])


def test_bad_options_are_refused_with_the_allowed_range():
    fields = example()
    with pytest.raises(ValueError, match="beta must be > 0"):
        dpo_loss(**fields, beta=0.0)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 0.5\)"):
        conservative_dpo_loss(**fields, label_smoothing=0.5)
    with pytest.raises(ValueError, match=r"label_noise must be in \[0, 0.5\)"):
        robust_dpo_loss(**fields, label_noise=-0.1)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        rpo_loss(**fields, chosen_lengths=torch.ones(2), alpha=-1.0)
    with pytest.raises(ValueError, match="chosen_lengths must be positive"):
        simpo_loss(fields["chosen_logps"], fields["rejected_logps"], torch.tensor([0.0, 1.0]), torch.ones(2))
    with pytest.raises(ValueError, match="needs chosen_lengths"):
        flex_dpo_loss(**fields, sft_weight=0.1)


def test_registry_names_aliases_and_capabilities():
    assert set(policy_loss_names()) >= {
        "dpo",
        "conservative_dpo",
        "robust_dpo",
        "ipo",
        "hinge",
        "rpo",
        "simpo",
        "flex_dpo",
        "tgdpo",
    }
    assert get_policy_loss("SLiC").name == "hinge" and get_policy_loss("sigmoid").name == "dpo"
    tgdpo = get_policy_loss("tgdpo")
    assert tgdpo.token_level and tgdpo.needs_token_rewards and tgdpo.needs_reference
    assert not get_policy_loss("dpo").token_level
    assert get_policy_loss("rpo").required[-1] == "chosen_lengths"
    assert get_policy_loss("ipo").options == {"beta": 0.1}
    with pytest.raises(ValueError, match=r"registered policy losses: .*dpo"):
        get_policy_loss("kto")
    with pytest.raises(ValueError, match="already registered"):
        register_policy_loss("DPO")(dpo_loss)
    with pytest.raises(ValueError, match=r"has no option 'gamma'.*needs the batch fields chosen_lengths"):
        get_policy_loss("rpo")(example(), gamma=1.0)


@pytest.mark.parametrize("name", policy_loss_names())
def test_every_loss_gives_finite_per_pair_losses_gradients_and_detached_metrics(name):
    batch = random_batch()
    policy_fields = ("chosen_logps", "rejected_logps", "chosen_token_logps", "rejected_token_logps")
    for field in policy_fields:
        batch[field] = batch[field].clone().requires_grad_(True)
    out = get_policy_loss(name)(batch)
    assert out.losses.shape == (6,) and torch.isfinite(out.losses).all()
    out.losses.sum().backward()
    assert any(batch[f].grad is not None and batch[f].grad.abs().sum() > 0 for f in policy_fields)
    for key, value in out.metrics.items():
        assert value.shape == (6,) and not value.requires_grad, key
    assert set(out.metrics["accuracy"].tolist()) <= {0.0, 1.0}


def test_dpo_gradient_pushes_chosen_up_and_rejected_down():
    """At h = 0: ∂ℓ/∂log π(y_w) = −β·σ(0) = −β/2 and ∂ℓ/∂log π(y_l) = +β/2."""
    chosen = torch.zeros(1, requires_grad=True)
    rejected = torch.zeros(1, requires_grad=True)
    dpo_loss(chosen, rejected, torch.zeros(1), torch.zeros(1), beta=0.4).losses.sum().backward()
    assert chosen.grad.item() == pytest.approx(-0.2) and rejected.grad.item() == pytest.approx(0.2)
