"""PPD: user embeddings from a few pairs, a denoiser conditioned on them, fine-tuned over many users at once."""

import math

import pytest
import torch
import torch.nn.functional as F

from rewardlab.diffusion.classifier import ImageNet
from rewardlab.diffusion.denoiser import Denoiser, UNetSize, small_unet
from rewardlab.diffusion.known_rewards import ink_reward
from rewardlab.diffusion.personalized import (
    PersonalizedConfig,
    Population,
    SimulatedUser,
    conditional_unet,
    digit_set_user,
    mixture_user,
    pretrained_base,
    sample_for_user,
    train_personalized,
    user_condition,
    user_embedding,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_user_embedding_hand_computed():
    """Differences (1, 0) and (2, 0): mean m = (1.5, 0), ‖m‖ = 1.5, e = √2·m/‖m‖ = (1.41421, 0).
    One pair with difference (3, -4): ‖m‖ = 5, e = √2·(0.6, -0.8) = (0.84853, -1.13137)."""
    e = user_embedding(torch.tensor([[1.0, 0.0], [3.0, 2.0]]), torch.tensor([[0.0, 0.0], [1.0, 2.0]]))
    assert e.tolist() == pytest.approx([math.sqrt(2), 0.0], abs=1e-6)
    e = user_embedding(torch.tensor([[2.0, 1.0]]), torch.tensor([[-1.0, 5.0]]))
    assert e.tolist() == pytest.approx([0.8485281, -1.1313708], abs=1e-6)
    assert user_embedding(torch.ones(3, 4), torch.ones(3, 4)).tolist() == [0.0] * 4  # no preference shown: no user
    with pytest.raises(ValueError, match=r"\[K, D\]"):
        user_embedding(torch.ones(2, 3), torch.ones(2, 4))


def test_mixture_and_digit_set_utilities_hand_computed():
    """Mixture: 0.5·ink + 2·(-ink) = -1.5·ink; an all-white image (ink 1) scores -1.5.
    Digit set: a classifier with zero weights and biases log(0.1, 0.2, 0.3, 0.4) gives p = (0.1, 0.2, 0.3, 0.4)
    for every image, so a user liking {1, 3} has u = log(0.2 + 0.4) = -0.51083."""
    user = mixture_user("m", [ink_reward, lambda x: -ink_reward(x)], [0.5, 2.0])
    assert user.utility(torch.ones(1, 1, 4, 4)).item() == pytest.approx(-1.5)
    classifier = ImageNet(outputs=4)
    with torch.no_grad():
        classifier.head.weight.zero_()
        classifier.head.bias.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]).log())
    liking = digit_set_user("d", classifier, [3, 1])
    assert liking.utility(torch.zeros(2, 1, 8, 8)).tolist() == pytest.approx([math.log(0.6)] * 2, abs=1e-5)
    with pytest.raises(ValueError, match="liked"):
        digit_set_user("d", classifier, [4])
    with pytest.raises(ValueError, match="one weight per reward"):
        mixture_user("m", [ink_reward], [1.0, 2.0])


def two_modes(n: int, seed: int) -> torch.Tensor:
    """Half bright (+0.5), half dark (-0.5) 8×8 images, with pixel noise 0.1."""
    sign = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).view(-1, 1, 1, 1)
    return (0.5 * sign + 0.1 * torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))).clamp(-1, 1)


def quadrant_means(images: torch.Tensor) -> torch.Tensor:
    """A 4-d feature space: the mean of each 4×4 quadrant."""
    return F.avg_pool2d(images, 4).flatten(1)


def ink_lover(weight: float) -> SimulatedUser:
    """u(x) = weight·ink(x): weight > 0 likes bright images, < 0 dark ones."""
    return mixture_user(f"ink×{weight}", [ink_reward], [weight], temperature=0.05)


def test_few_shot_pairs_are_labelled_by_the_user():
    population = Population((), quadrant_means, two_modes(64, 0))
    noiseless = SimulatedUser("bright", ink_reward, temperature=0.0)
    pairs = population.few_shot_pairs(noiseless, 50, torch.Generator().manual_seed(0))
    assert (ink_reward(pairs.chosen) >= ink_reward(pairs.rejected)).all()
    assert (pairs.chosen != pairs.rejected).any(dim=(1, 2, 3)).all()  # two different pool images per pair
    bright = population.embed(ink_lover(1.0), 4, torch.Generator().manual_seed(1))
    assert bright.shape == (4,) and (bright > 0).all() and bright.norm().item() == pytest.approx(2.0)


def test_before_fine_tuning_the_denoiser_ignores_the_user():
    """The cross-attention that reads the user starts at zero and gets no gradient from the plain ("no user")
    pre-training, so every user starts from the same base model."""
    population = Population((ink_lover(1.0),), quadrant_means, two_modes(64, 0))
    base = pretrained_base(population, PersonalizedConfig(pretrain_updates=3, pretrain_batch_size=8, channels=(8, 16)))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([500, 100])
    users = torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, 2.0, 0.0, -1.0]])
    assert torch.equal(base(x, t, user_condition(users)), base(x, t, user_condition(torch.zeros(2, 4))))


def test_unseen_users_get_what_their_four_pairs_ask_for():
    """PPD's claim on a case with a known answer: training users like bright (utility 1·ink, 2·ink) or dark
    (-1·ink, -2·ink) images; after fine-tuning, samples for an unseen bright-lover (1.5·ink), embedded from 4 of
    its pairs, are brighter than those for an unseen dark-lover (-1.5·ink), from the same noise. The base it
    starts from gives both the same images, so only the learnt reading of the embedding can separate them."""
    population = Population(tuple(ink_lover(w) for w in (1.0, 2.0, -1.0, -2.0)), quadrant_means, two_modes(256, 0))
    config = PersonalizedConfig(pretrain_updates=150, pretrain_batch_size=32, pretrain_learning_rate=2e-3,
                                channels=(8, 16), on_policy=False, updates=120, beta=2.0,
                                embedding_learning_rate=0.1, sampling_steps=6)  # fmt: skip
    base = pretrained_base(population, config)
    tuned = train_personalized(base, population, config).policy
    generator = torch.Generator().manual_seed(5)
    bright_user = population.embed(ink_lover(1.5), 4, generator)
    dark_user = population.embed(ink_lover(-1.5), 4, generator)
    noise = torch.randn(128, 1, 8, 8, generator=generator)

    def bright_fraction(model: Denoiser, embedding: torch.Tensor) -> float:
        images = sample_for_user(model, embedding, 128, 6, torch.Generator().manual_seed(9), noise=noise)
        return (ink_reward(images) > 0).float().mean().item()

    before = bright_fraction(base, bright_user), bright_fraction(base, dark_user)
    after = bright_fraction(tuned, bright_user), bright_fraction(tuned, dark_user)
    assert before[0] == before[1]
    assert after[0] - after[1] > 0.3, (before, after)


def test_on_policy_fine_tuning_leaves_the_base_alone():
    """On-policy PPD samples its pairs from the policy under each user's embedding; the base it was given is
    copied, not changed, and the history records each update's loss (log 2 at the first, where policy = reference)."""
    population = Population((ink_lover(1.0), ink_lover(-1.0)), quadrant_means, two_modes(32, 0))
    config = PersonalizedConfig(pretrain_updates=2, pretrain_batch_size=8, channels=(8, 16), updates=2,
                                users_per_update=2, pairs_per_user=2, sampling_steps=2)  # fmt: skip
    base = pretrained_base(population, config)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    result = train_personalized(base, population, config)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in result.policy.state_dict().items())
    assert [h["update"] for h in result.history] == [0, 1]
    assert result.history[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)


@pytest.mark.parametrize(
    ("changes", "words"),
    [({"updates": 0}, "updates must be a positive integer"), ({"beta": 0.0}, "beta must be positive"),
     ({"eta": 2.0}, "eta must be in"), ({"embedding_pairs": 1.5}, "embedding_pairs")],
)  # fmt: skip
def test_bad_settings_and_bases_are_refused(changes: dict, words: str):
    population = Population((ink_lover(1.0),), quadrant_means, two_modes(8, 0))
    with pytest.raises(ValueError, match=words):
        train_personalized(None, population, PersonalizedConfig(**changes))
    plain = Denoiser(small_unet(8, size=UNetSize().tiny()))
    with pytest.raises(ValueError, match="UNet2DConditionModel"):
        train_personalized(plain, population, PersonalizedConfig())
    wrong_size = Denoiser(conditional_unet(8, 1, 7, (8, 16)))
    with pytest.raises(ValueError, match="cross_attention_dim"):
        train_personalized(wrong_size, population, PersonalizedConfig())
    with pytest.raises(ValueError, match="at least one training user"):
        train_personalized(None, Population((), quadrant_means, two_modes(8, 0)), PersonalizedConfig())
