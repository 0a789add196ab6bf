"""The diffusion package's foundation: the schedule maths against hand-computed values, sampling and inversion
on a denoiser whose answer is known, saving and loading, images, the known rewards."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from rewardlab.diffusion.align import ALIGN_METHODS, AlignConfig, Feedback, align
from rewardlab.diffusion.classifier import ImageNet, train_classifier
from rewardlab.diffusion.denoiser import NO_CONDITION, Condition, Denoiser, UNetSize, small_unet
from rewardlab.diffusion.images import digits, grid, read_png, write_grid, write_png
from rewardlab.diffusion.known_rewards import class_log_prob_reward, ink_reward
from rewardlab.diffusion.sampling import invert, sample, step_log_prob
from rewardlab.diffusion.schedule import (
    GaussianStep,
    add_noise,
    ddim_step,
    gaussian_log_prob,
    noise_schedule,
    sampling_timesteps,
)
from rewardlab.registry import UnknownNameError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ddim_step_hand_computed():
    """x_t = 1, ε̂ = 0.5, ᾱ_t = 0.25, ᾱ_prev = 0.64, no clipping: x̂_0 = (1 - √0.75·0.5)/0.5 = 1.1339746.
    η = 0: μ = 0.8·1.1339746 + √0.36·0.5 = 1.2071797, σ = 0.
    η = 1: σ = √(0.36/0.75)·√(1 - 0.25/0.64) = 0.6928203·0.7806247 = 0.5408327;
           μ = 0.9071797 + √(0.36 - 0.2925)·0.5 = 0.9071797 + 0.1299038 = 1.0370835."""
    x, eps, a, a_prev = torch.ones(1, 1), torch.full((1, 1), 0.5), torch.tensor([0.25]), torch.tensor([0.64])
    deterministic = ddim_step(x, eps, a, a_prev, eta=0.0, clip=None)
    assert deterministic.mean.item() == pytest.approx(1.2071797, abs=1e-6)
    assert deterministic.std.item() == 0.0
    ancestral = ddim_step(x, eps, a, a_prev, eta=1.0, clip=None)
    assert ancestral.std.item() == pytest.approx(0.5408327, abs=1e-6)
    assert ancestral.mean.item() == pytest.approx(1.0370835, abs=1e-6)
    clipped = ddim_step(x, eps, a, a_prev, eta=0.0)  # x̂_0 clipped to 1: μ = 0.8 + 0.3
    assert clipped.mean.item() == pytest.approx(1.1, abs=1e-6)


def test_ddim_step_with_the_true_noise_lands_on_the_forward_process():
    """With ε̂ the noise that made x_t from x_0, the deterministic step gives √ᾱ_prev·x_0 + √(1-ᾱ_prev)·ε:
    the same point the forward process reaches at the earlier time with the same noise."""
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.rand(4, 1, 3, 3, generator=g) * 1.8 - 0.9, torch.randn(4, 1, 3, 3, generator=g)
    alpha_bar = noise_schedule(1000)
    a, a_prev = alpha_bar[600].expand(4), alpha_bar[300].expand(4)
    step = ddim_step(add_noise(x0, eps, a), eps, a, a_prev, eta=0.0)
    torch.testing.assert_close(step.mean, add_noise(x0, eps, a_prev))


def test_eta_one_is_the_ddpm_posterior_variance():
    """σ² at η = 1 equals β̃_t = (1-ᾱ_{t-1})/(1-ᾱ_t)·β_t between adjacent timesteps (Ho et al. 2020, eq. 7)."""
    alpha_bar = noise_schedule(1000)
    t = 500
    beta = 1 - alpha_bar[t] / alpha_bar[t - 1]
    posterior = (1 - alpha_bar[t - 1]) / (1 - alpha_bar[t]) * beta
    step = ddim_step(torch.zeros(1, 1), torch.zeros(1, 1), alpha_bar[t : t + 1], alpha_bar[t - 1 : t], eta=1.0)
    assert step.std.item() ** 2 == pytest.approx(posterior.item(), rel=1e-5)


def test_gaussian_log_prob_hand_computed():
    """Two dimensions one σ = 0.5 from the mean: 2·(-0.5 - log 0.5 - ½·log 2π) = 2·(-0.5 + 0.6931472 - 0.9189385)."""
    step = GaussianStep(torch.zeros(1, 2), torch.tensor([0.5]))
    assert gaussian_log_prob(torch.full((1, 2), 0.5), step).item() == pytest.approx(
        2 * (-0.5 + math.log(2) - 0.5 * math.log(2 * math.pi)), abs=1e-6
    )


def test_sampling_timesteps():
    assert sampling_timesteps(4, 1000) == [750, 500, 250, 0]
    with pytest.raises(ValueError, match="sampling steps"):
        sampling_timesteps(0, 1000)


class OnePointUNet(nn.Module):
    """The exact noise predictor for data that are all one image x*: ε̂(x_t, t) = (x_t - √ᾱ_t·x*)/√(1-ᾱ_t).
    A real function with a known answer, so that sampling and inversion can be checked exactly."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target
        self.alpha_bar = noise_schedule(1000)
        self.config = SimpleNamespace(out_channels=target.shape[0], sample_size=target.shape[-1])

    def forward(self, x_t, t, return_dict=False):
        a = self.alpha_bar[t].view(-1, 1, 1, 1)
        return ((x_t - a.sqrt() * self.target) / (1 - a).sqrt(),)


def test_sampling_and_inversion_of_a_known_denoiser():
    """Every chain of the one-point denoiser ends at x*, and inverting x* then sampling deterministically returns it."""
    target = torch.linspace(-0.8, 0.8, 16).view(1, 4, 4)
    denoiser = Denoiser(OnePointUNet(target))
    chain = sample(denoiser, 3, steps=10, eta=1.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(chain.images, target.expand(3, 1, 4, 4), atol=1e-4, rtol=0)
    assert len(chain.states) == 11 and len(chain.log_probs) == 10 and chain.log_probs[0].shape == (3,)
    trajectory = invert(denoiser, target.unsqueeze(0), steps=10)
    back = sample(denoiser, 1, steps=10, eta=0.0, noise=trajectory[-1]).images
    torch.testing.assert_close(back, target.unsqueeze(0), atol=1e-4, rtol=0)


def test_step_log_prob_reproduces_the_sampler():
    """The log-probability recomputed with gradients equals the one recorded while sampling."""
    torch.manual_seed(0)
    denoiser = Denoiser(small_unet(8, size=UNetSize().tiny()))
    chain = sample(denoiser, 2, steps=3, eta=1.0, generator=torch.Generator().manual_seed(1))
    for k in range(3):
        torch.testing.assert_close(step_log_prob(denoiser, chain, k, eta=1.0), chain.log_probs[k], rtol=1e-4, atol=1e-3)


def test_denoiser_saves_loads_and_copies(tmp_path):
    torch.manual_seed(0)
    unet = small_unet(8, size=UNetSize(num_classes=3).tiny())
    denoiser = Denoiser(unet, train_steps=100, beta_schedule="linear", clip=None)  # a latent model: x̂_0 unbounded
    denoiser.save(tmp_path / "model")
    loaded = Denoiser.load(tmp_path / "model")
    assert (loaded.train_steps, loaded.beta_schedule, loaded.clip, denoiser.copy().clip) == (100, "linear", None, None)
    x, t, labels = torch.randn(2, 1, 8, 8), torch.tensor([5, 50]), Condition(labels=torch.tensor([0, 2]))
    torch.testing.assert_close(loaded(x, t, labels), denoiser(x, t, labels))
    twin = denoiser.copy()
    next(twin.parameters()).data.add_(1.0)
    assert not torch.equal(next(twin.parameters()), next(denoiser.parameters()))
    with pytest.raises(FileNotFoundError, match="not a denoiser folder"):
        Denoiser.load(tmp_path)


def test_a_text_conditioned_unet_runs_through_the_same_code():
    """A UNet2DConditionModel (Stable Diffusion's kind) conditioned on embeddings samples and scores steps as the
    class-conditional one does: the alignment code does not know which it has."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=12, norm_num_groups=4, attention_head_dim=4,
    )  # fmt: skip
    denoiser = Denoiser(unet)
    condition = Condition(embeddings=torch.randn(2, 3, 12))
    chain = sample(denoiser, 2, steps=2, condition=condition, generator=torch.Generator().manual_seed(0))
    assert chain.images.shape == (2, 1, 8, 8)
    step_log_prob(denoiser, chain, 0, eta=1.0, condition=condition).sum().backward()
    assert next(denoiser.parameters()).grad is not None


def test_condition_rows_repeat_cat():
    c = Condition(labels=torch.tensor([1, 2]))
    assert c.repeat(2).labels.tolist() == [1, 1, 2, 2]
    assert c.rows(torch.tensor([1])).labels.tolist() == [2]
    assert c.cat(c).labels.tolist() == [1, 2, 1, 2]
    assert c.repeat(2).embeddings is None
    assert Condition(labels=torch.tensor([4])).for_samples(3).labels.tolist() == [4, 4, 4]
    assert c.for_samples(2) is c and NO_CONDITION.for_samples(5) is NO_CONDITION
    with pytest.raises(ValueError, match=r"condition has 2 rows; give 1 .* or 3"):
        c.for_samples(3)


def test_digits_pngs_and_grids(tmp_path):
    images, labels = digits()
    assert images.shape == (1797, 1, 8, 8) and labels.tolist()[:3] == [0, 1, 2]
    assert images.min() == -1.0 and images.max() == 1.0
    write_png(tmp_path / "a.png", images[0])
    torch.testing.assert_close(read_png(tmp_path / "a.png"), images[0], atol=1 / 127.5, rtol=0)
    assert grid(images[:10], columns=4, scale=2, pad=1).shape == (1, 3 * 17 + 1, 4 * 17 + 1)
    write_grid(tmp_path / "grid.png", images[:10])
    assert read_png(tmp_path / "grid.png").shape[0] == 1


def test_classifier_is_a_known_reward(tmp_path):
    """Trained on 80% of the digits, it reads the held-out 20% well, survives a save/load, and its log p(3|x)
    ranks real threes above other digits."""
    torch.manual_seed(0)
    images, labels = digits()
    report = train_classifier(images, labels, epochs=30)
    assert report.test_accuracy > 0.9 and report.test_size == 359
    report.model.save(tmp_path / "clf")
    loaded = ImageNet.load(tmp_path / "clf")
    reward = class_log_prob_reward(loaded, 3)
    threes, others = reward(images[labels == 3]), reward(images[labels != 3])
    assert threes.median() > others.quantile(0.9)
    with pytest.raises(ValueError, match="digit must be"):
        class_log_prob_reward(loaded, 10)
    assert ink_reward(torch.stack([torch.ones(1, 2, 2), -torch.ones(1, 2, 2)])).tolist() == [1.0, -1.0]


def test_simulated_annotator():
    """P(a ≻ b) = σ((r_a - r_b)/τ): ink 0.5 vs -0.5 at τ = 0.5 → σ(2) = 0.8807971."""
    feedback = Feedback(reward=ink_reward, temperature=0.5)
    a, b = torch.full((1, 1, 2, 2), 0.5), torch.full((1, 1, 2, 2), -0.5)
    assert feedback.preference_probability(a, b).item() == pytest.approx(0.8807971, abs=1e-6)
    sharp = Feedback(reward=ink_reward, temperature=1e-4)
    assert sharp.prefer(a.expand(50, -1, -1, -1), b.expand(50, -1, -1, -1)).all()
    with pytest.raises(ValueError, match="per-image reward"):
        Feedback().prefer(a, b)


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(UnknownNameError, match="registered alignment methods"):
        align(Denoiser(small_unet(8, size=UNetSize().tiny())), Feedback(ink_reward), AlignConfig(method="nope"))
    assert isinstance(ALIGN_METHODS.names(), list)
