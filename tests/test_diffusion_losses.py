"""Pairwise preference losses for diffusion models (Diffusion-DPO, D3PO, SmPO, InPO): the maths against
hand-computed values, each method's collect + loss on a tiny denoiser, and alignment of a two-mode toy."""

import math

import pytest
import torch

from rewardlab.diffusion.align import ALIGN_METHODS, AlignConfig, Feedback, align
from rewardlab.diffusion.denoiser import NO_CONDITION, Denoiser, UNetSize, denoise_loss, small_unet
from rewardlab.diffusion.losses import d3po_loss, diffusion_dpo_loss, inpo_loss, smpo_loss
from rewardlab.diffusion.sampling import sample

pytestmark = pytest.mark.usefixtures("one_thread")

METHODS = ("diffusion-dpo", "d3po", "smpo", "inpo")


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values)


def brightness(images: torch.Tensor) -> torch.Tensor:
    """Mean pixel value: +1 for an all-bright image, -1 for an all-dark one."""
    return images.flatten(1).mean(1)


# --- the losses, by hand ---------------------------------------------------------------------------------


def test_diffusion_dpo_hand_computed():
    """Pair 1: e_θ^w = 1, e_θ^l = 2, e_ref = 1.5 both, β = 1: h = -[(1 - 1.5) - (2 - 1.5)] = 1, -log σ(1) = 0.31326.
    Pair 2: e_θ^w = 0.2, e_θ^l = e_ref = 0.1, β = 2: h = -[0.1 - 0] = -0.1, -log σ(-0.2) = log(1 + e^0.2) = 0.79814."""
    assert diffusion_dpo_loss(t(1.0), t(2.0), t(1.5), t(1.5), beta=1.0).item() == pytest.approx(0.3132617, abs=1e-6)
    assert diffusion_dpo_loss(t(0.2), t(0.1), t(0.1), t(0.1), beta=2.0).item() == pytest.approx(0.7981389, abs=1e-6)


def test_diffusion_dpo_gradient_lowers_winner_error_and_raises_loser_error():
    """At h = 0, ∂L/∂e_θ^w = β·σ(0) = β/2 > 0 and ∂L/∂e_θ^l = -β/2: descent lowers the winner's error."""
    winner, loser = t(0.5).requires_grad_(), t(0.5).requires_grad_()
    diffusion_dpo_loss(winner, loser, t(0.5), t(0.5), beta=4.0).sum().backward()
    assert winner.grad.item() == pytest.approx(2.0) and loser.grad.item() == pytest.approx(-2.0)


def test_d3po_hand_computed_and_clipped():
    """log π_θ - log π_ref: winner -1 - (-2) = 1, loser -3 - (-2) = -1; β = 0.5: -log σ(0.5·2) = 0.31326.
    With ratio_clip 0.1 the log-ratios clamp to log 1.1 = 0.09531 and log 0.9 = -0.10536:
    -log σ(0.5·0.20067) = 0.64424, and no gradient reaches a clipped ratio."""
    assert d3po_loss(t(-1.0), t(-3.0), t(-2.0), t(-2.0), beta=0.5).item() == pytest.approx(0.3132617, abs=1e-6)
    w = t(-1.0).requires_grad_()
    clipped = d3po_loss(w, t(-3.0), t(-2.0), t(-2.0), beta=0.5, ratio_clip=0.1)
    assert clipped.item() == pytest.approx(0.6442374, abs=1e-6)
    clipped.sum().backward()
    assert w.grad.item() == 0.0


def test_smpo_hand_computed_and_reduces_to_diffusion_dpo_at_p_one():
    """h = 1 (as in the Diffusion-DPO case), p = 0.9, β = 1: -log σ((2·0.9 - 1)·1) = -log σ(0.8) = 0.37110.
    p = 1 gives Diffusion-DPO's -log σ(1) = 0.31326."""
    args = (t(1.0), t(2.0), t(1.5), t(1.5))
    assert smpo_loss(*args, probability=t(0.9), beta=1.0).item() == pytest.approx(0.3711007, abs=1e-6)
    assert smpo_loss(*args, probability=t(1.0), beta=1.0).item() == pytest.approx(0.3132617, abs=1e-6)


def test_smpo_tie_pushes_nowhere_and_orientation_does_not_matter():
    """The paper's claim: for two equally good images (p = ½) the loss is log 2 whatever the margin, with zero
    gradient; swapping winner and loser (p → 1 - p, h → -h) gives the same loss."""
    errors = torch.linspace(-2, 2, 9).requires_grad_()
    tie = smpo_loss(errors, torch.zeros(9), torch.zeros(9), torch.zeros(9), probability=torch.full((9,), 0.5), beta=5)
    assert tie.tolist() == pytest.approx([math.log(2)] * 9, abs=1e-6)
    tie.sum().backward()
    assert errors.grad.abs().max().item() == 0.0
    forward = smpo_loss(t(0.3), t(0.7), t(0.5), t(0.5), probability=t(0.8), beta=3.0)
    swapped = smpo_loss(t(0.7), t(0.3), t(0.5), t(0.5), probability=t(0.2), beta=3.0)
    assert forward.item() == pytest.approx(swapped.item(), abs=1e-6)
    with pytest.raises(ValueError, match="probabilities"):
        smpo_loss(t(0.3), t(0.7), t(0.5), t(0.5), probability=t(1.2), beta=3.0)


def test_inpo_hand_computed():
    """One-pixel images, ᾱ = 0.64 (√ᾱ = 0.8, √(1-ᾱ) = 0.6). Winner x_0 = 1, x_t = 1.1 → ε* = (1.1 - 0.8)/0.6 = 0.5;
    loser x_0 = -1, x_t = -1.4 → ε* = (-1.4 + 0.8)/0.6 = -1. Policy ε̂: 0.5 and 0 (errors 0 and 1); reference ε̂:
    0 and -1 (errors 0.25 and 0). h = -[(0 - 0.25) - (1 - 0)] = 1.25; β = 1: -log σ(1.25) = 0.25193."""

    def px(value: float) -> torch.Tensor:
        return torch.full((1, 1, 1, 1), value)

    loss = inpo_loss(px(0.5), px(0.0), px(0.0), px(-1.0), px(1.0), px(-1.0), px(1.1), px(-1.4), t(0.64), beta=1.0)
    assert loss.item() == pytest.approx(0.2519291, abs=1e-5)


def test_losses_reject_a_non_positive_beta():
    with pytest.raises(ValueError, match="beta"):
        diffusion_dpo_loss(t(1.0), t(1.0), t(1.0), t(1.0), beta=0.0)
    with pytest.raises(ValueError, match="ratio_clip"):
        d3po_loss(t(1.0), t(1.0), t(1.0), t(1.0), beta=1.0, ratio_clip=1.5)


# --- the methods on a tiny denoiser ----------------------------------------------------------------------


def tiny_denoiser(seed: int = 0) -> Denoiser:
    torch.manual_seed(seed)
    return Denoiser(small_unet(4, size=UNetSize(channels=(4, 8))))


FEEDBACK = Feedback(reward=brightness, temperature=0.05)


@pytest.mark.parametrize("name", METHODS)
def test_collect_and_loss_at_the_reference_give_log_two_and_finite_gradients(name: str):
    """At θ = ref every DPO-style margin is 0, so each method's loss is log 2; its gradient is finite and not zero.
    (D3PO's late steps have σ ≈ 0.006, so float32 round-off in the log-ratios, amplified by 1/σ², shows at 1e-4.)"""
    policy = tiny_denoiser()
    reference = policy.copy().eval().requires_grad_(False)
    config = AlignConfig(method=name, batch_size=4, sampling_steps=4, beta=10.0)
    method = ALIGN_METHODS.get(name)
    with torch.no_grad():
        batch = method.collect(policy, reference, FEEDBACK, config, torch.Generator().manual_seed(0))
    loss = method.loss(policy, reference, batch, config)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-3)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])
    assert torch.isfinite(grads).all() and grads.abs().max() > 0


@pytest.mark.parametrize("name", ["diffusion-dpo", "smpo", "inpo"])
def test_offline_pairs_are_drawn_from_the_pair_set(name: str):
    """With ``feedback.pairs`` the batch's images are rows of the fixed set (Diffusion-DPO's offline setting)."""
    policy = tiny_denoiser()
    chosen, rejected = torch.ones(3, 1, 4, 4), -torch.ones(3, 1, 4, 4)
    feedback = Feedback(reward=brightness, pairs=(chosen, rejected))
    config = AlignConfig(method=name, batch_size=5, sampling_steps=4)
    with torch.no_grad():
        batch = ALIGN_METHODS.get(name).collect(policy, policy.copy(), feedback, config, torch.Generator())
    assert torch.equal(batch.pairs.winners, torch.ones(5, 1, 4, 4))
    assert torch.equal(batch.pairs.losers, -torch.ones(5, 1, 4, 4))


def test_method_settings_are_checked():
    policy = tiny_denoiser()
    generator = torch.Generator()
    d3po = ALIGN_METHODS.get("d3po")
    with pytest.raises(ValueError, match=r"no option 'steps'; its options: steps_per_update, ratio_clip"):
        d3po.collect(policy, policy, FEEDBACK, AlignConfig(options={"steps": 2}), generator)
    with pytest.raises(ValueError, match="steps_per_update"):
        d3po.collect(
            policy, policy, FEEDBACK, AlignConfig(sampling_steps=4, options={"steps_per_update": 4}), generator
        )
    with pytest.raises(ValueError, match="eta must be > 0"):
        d3po.collect(policy, policy, FEEDBACK, AlignConfig(eta=0.0), generator)
    pairs = Feedback(pairs=(torch.ones(2, 1, 4, 4), -torch.ones(2, 1, 4, 4)))
    with pytest.raises(ValueError, match="d3po trains on the denoising chains"):
        d3po.collect(policy, policy, pairs, AlignConfig(), generator)
    with pytest.raises(ValueError, match="no option 'smoothing'; its options: inversion_steps"):
        ALIGN_METHODS.get("smpo").collect(policy, policy, FEEDBACK, AlignConfig(options={"smoothing": 1}), generator)
    with pytest.raises(ValueError, match="no option 'x'; its options: none"):
        ALIGN_METHODS.get("diffusion-dpo").collect(policy, policy, FEEDBACK, AlignConfig(options={"x": 1}), generator)
    wrong_shape = Feedback(pairs=(torch.ones(2, 1, 8, 8), -torch.ones(2, 1, 8, 8)))
    with pytest.raises(ValueError, match="preference pairs"):
        ALIGN_METHODS.get("diffusion-dpo").collect(policy, policy, wrong_shape, AlignConfig(), generator)


# --- the two-mode toy --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_mode_denoiser() -> Denoiser:
    """A tiny denoiser trained briefly on 4×4 images that are all +1 (bright) or all -1 (dark), half each."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = Denoiser(small_unet(4, size=UNetSize(channels=(4, 8))))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        sign = torch.where(torch.rand(32, generator=generator) < 0.5, 1.0, -1.0)
        loss = denoise_loss(model, sign.view(32, 1, 1, 1).expand(32, 1, 4, 4), NO_CONDITION, generator).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def bright_fraction(model: Denoiser) -> float:
    images = sample(model, 256, 5, 1.0, generator=torch.Generator().manual_seed(1)).images
    return (brightness(images) > 0).float().mean().item()


@pytest.mark.parametrize(("name", "beta", "learning_rate"), [("diffusion-dpo", 2000.0, 3e-3), ("d3po", 10.0, 3e-3)])
def test_alignment_moves_the_two_mode_toy_to_the_preferred_mode(two_mode_denoiser: Denoiser, name, beta, learning_rate):
    """A low-temperature annotator preferring brighter images: the bright fraction rises from about ½ to > 0.7."""
    before = bright_fraction(two_mode_denoiser)
    assert 0.3 < before < 0.7
    config = AlignConfig(
        method=name, updates=40, batch_size=8, sampling_steps=5, beta=beta, learning_rate=learning_rate
    )
    aligned = align(two_mode_denoiser.copy(), FEEDBACK, config, progress=False).policy
    after = bright_fraction(aligned)
    assert after > 0.7 and after - before > 0.2, (before, after)
