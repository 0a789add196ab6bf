"""Diff-Instruct*: the pseudo-Huber pieces by hand, the tractable loss's gradient against the divergence's own
on Gaussians (the score-gradient theorem), and on a two-mode toy that the reward tilts the one-step
generator toward its mode while, without reward, the divergence keeps both modes."""

import pytest
import torch
from diffusion_toys import two_mode_denoiser

from rewardlab.diffusion.denoiser import Denoiser, UNetSize, small_unet
from rewardlab.diffusion.diff_instruct import (
    DiffInstructConfig,
    OneStepGenerator,
    pseudo_huber,
    pseudo_huber_gradient,
    score_divergence_loss,
    train_diff_instruct,
)

pytestmark = pytest.mark.usefixtures("one_thread")

torch.set_num_threads(1)


def test_pseudo_huber_hand_computed():
    """u = (3, 4), c = 12: d = √(25 + 144) - 12 = 13 - 12 = 1; ∇d = u/13 = (3/13, 4/13). u = 0: d = 0."""
    u = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert pseudo_huber(u, 12.0).tolist() == pytest.approx([1.0, 0.0])
    assert pseudo_huber_gradient(u, 12.0).flatten().tolist() == pytest.approx([3 / 13, 4 / 13, 0.0, 0.0])


def test_score_divergence_loss_hand_computed():
    """ε̂_ref = (3, 4), ε̂_fake = 0, ε = (1, 1), c = 12: u = (3, 4), d = 1, ∇d·(ε - ε̂_fake) = (3 + 4)/13,
    so L = 1 - 7/13 = 6/13. Where the two scores agree (u = 0) the loss is 0 whatever ε is."""
    loss = score_divergence_loss(
        torch.tensor([[3.0, 4.0], [0.5, 0.5]]), torch.tensor([[0.0, 0.0], [0.5, 0.5]]), torch.ones(2, 2), 12.0
    )
    assert loss.tolist() == pytest.approx([6 / 13, 0.0])


def test_tractable_loss_has_the_gradient_of_the_divergence():
    """The theorem DI* rests on, on a case with closed-form scores. Generator x_0 = a + b·z in 1-D, target
    N(m, s²); diffused to ᾱ = ½ both stay Gaussian, so ε̂(x) = σ·(x - μ)/v is exact for each. The divergence
    D(a, b) = E d(ε̂_ref(x_t) - ε̂_gen(x_t)) differentiated with everything live must match the tractable
    loss differentiated with the generator's score frozen (its parameters detached), up to Monte-Carlo error."""
    g = torch.Generator().manual_seed(0)
    n = 400_000
    z, eps = torch.randn(n, generator=g, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64)
    alpha_bar = torch.tensor(0.5, dtype=torch.float64)
    signal, sigma = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    m, s, c = 0.3, 0.7, 0.5

    def eps_hat(x, mean0, std0):
        return sigma * (x - signal * mean0) / (alpha_bar * std0**2 + sigma**2)

    theta = torch.tensor([1.0, 1.5], dtype=torch.float64, requires_grad=True)
    x_t = signal * (theta[0] + theta[1] * z) + sigma * eps
    divergence = pseudo_huber((eps_hat(x_t, m, s) - eps_hat(x_t, theta[0], theta[1])).view(-1, 1), c).mean()
    (true_gradient,) = torch.autograd.grad(divergence, theta)

    x_t = signal * (theta[0] + theta[1] * z) + sigma * eps
    a, b = theta.detach()
    tractable = score_divergence_loss(
        eps_hat(x_t, m, s).view(-1, 1), eps_hat(x_t, a, b).view(-1, 1), eps.view(-1, 1), c
    ).mean()
    (gradient,) = torch.autograd.grad(tractable, theta)
    assert true_gradient.abs().min() > 0.1  # a real gradient to match
    assert gradient.tolist() == pytest.approx(true_gradient.tolist(), abs=5e-3)


def test_bad_settings_are_rejected():
    base = Denoiser(small_unet(4, 1, UNetSize(channels=(4, 8))), train_steps=50)
    with pytest.raises(ValueError, match="reward_weight"):
        train_diff_instruct(base, lambda x: x.mean((1, 2, 3)), DiffInstructConfig(reward_weight=-1), progress=False)
    with pytest.raises(ValueError, match="min_t_fraction"):
        train_diff_instruct(
            base,
            lambda x: x.mean((1, 2, 3)),
            DiffInstructConfig(min_t_fraction=0.9, max_t_fraction=0.5),
            progress=False,
        )
    with pytest.raises(ValueError, match="differentiable"):
        train_diff_instruct(
            base, lambda x: x.mean((1, 2, 3)).detach(), DiffInstructConfig(updates=1, batch_size=2), progress=False
        )
    with pytest.raises(ValueError, match="timestep must be in"):
        OneStepGenerator(base, timestep=50)


def test_generator_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    generator = OneStepGenerator(Denoiser(small_unet(4, 1, UNetSize(channels=(4, 8))), train_steps=50), timestep=40)
    generator.save(tmp_path / "gen")
    loaded = OneStepGenerator.load(tmp_path / "gen")
    assert loaded.timestep == 40
    a = generator.sample(3, torch.Generator().manual_seed(1))
    b = loaded.sample(3, torch.Generator().manual_seed(1))
    assert torch.allclose(a, b) and a.shape == (3, 1, 4, 4)


@pytest.fixture(scope="module")
def toy_base() -> Denoiser:
    return two_mode_denoiser()


def bright_fraction(generator: OneStepGenerator) -> float:
    images = generator.sample(256, torch.Generator().manual_seed(5))
    return float((images.flatten(1).mean(1) > 0).float().mean())


def brightness(images: torch.Tensor) -> torch.Tensor:
    return images.flatten(1).mean(1)


def run(base: Denoiser, reward_weight: float) -> OneStepGenerator:
    config = DiffInstructConfig(
        updates=40, batch_size=32, reward_weight=reward_weight, generator_learning_rate=1e-3, fake_learning_rate=1e-3
    )
    generator, history = train_diff_instruct(base, brightness, config, progress=False)
    assert len(history) == 40 and all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    return generator


def test_reward_tilts_the_one_step_generator_to_the_bright_mode(toy_base):
    before = bright_fraction(OneStepGenerator(toy_base))
    assert 0.3 < before < 0.7  # the base read as a one-step sampler already gives both modes
    assert bright_fraction(run(toy_base, 1.0)) > 0.85


def test_without_reward_the_divergence_keeps_both_modes(toy_base):
    assert 0.2 < bright_fraction(run(toy_base, 0.0)) < 0.8
