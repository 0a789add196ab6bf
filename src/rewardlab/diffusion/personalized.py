"""PPD, personalized preference fine-tuning (Dang et al. 2025, "Personalized Preference Fine-tuning of
Diffusion Models"): one denoiser for a population of users, conditioned on a user embedding read from a few of
that user's preference pairs, fine-tuned with Diffusion-DPO on many users at once, so that a user it never saw
is served from about four pairs.

    e_u = embed(few pairs of user u)                  (PPD: a VLM reads the pairs; here see ``user_embedding``)
    ε̂ = ε_θ(x_t, t, e_u)                              (the embedding enters through cross-attention)
    L(θ) = E_u E_(x^w, x^l ~ π_θ(·|e_u), labelled by u) L_Diffusion-DPO(θ; x^w, x^l, e_u)

Users here are simulated, with a known utility (``SimulatedUser``), so that what a personalized model gives an
unseen user can be measured against what that user wants. A utility that mixes two rewards with a weight
(``mixture_user``) gives a population whose members interpolate between them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rewardlab.diffusion.align import AlignResult, ImageReward
from rewardlab.diffusion.classifier import ImageNet
from rewardlab.diffusion.denoiser import Condition, Denoiser, denoise_loss
from rewardlab.diffusion.image_pairs import ImagePairs, preference_labels
from rewardlab.diffusion.losses import diffusion_dpo_loss, noise_error
from rewardlab.diffusion.sampling import sample
from rewardlab.diffusion.schedule import add_noise
from rewardlab.progress import progress_bar

Features = Callable[[Tensor], Tensor]
"""An embedding space for pairs: images [N, C, H, W] → features [N, D] (the digit classifier's ``features``)."""


@dataclass(frozen=True)
class SimulatedUser:
    """A user whose utility is known: prefers a over b with probability σ((u(a) - u(b)) / temperature)."""

    name: str
    utility: ImageReward
    temperature: float = 0.1

    def prefers(self, a: Tensor, b: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """True where this user prefers a[i] to b[i] (a Bradley-Terry draw on the utility)."""
        with torch.no_grad():
            return preference_labels(self.utility(a), self.utility(b), self.temperature, generator)


def mixture_user(
    name: str, rewards: Sequence[ImageReward], weights: Sequence[float], temperature: float = 0.1
) -> SimulatedUser:
    """u(x) = Σ_k w_k·r_k(x): a user between known rewards (ink vs "reads as a 3"), placed by the weights."""
    if len(rewards) != len(weights) or not rewards:
        raise ValueError(f"weights must give one weight per reward (got {len(weights)} for {len(rewards)})")

    def utility(images: Tensor) -> Tensor:
        return sum(w * r(images) for w, r in zip(weights, rewards, strict=True))  # type: ignore[return-value]

    return SimulatedUser(name, utility, temperature)


def digit_set_user(name: str, classifier: ImageNet, liked: Sequence[int], temperature: float = 0.1) -> SimulatedUser:
    """u(x) = log Σ_{d ∈ D_u} p_classifier(d | x): a user who likes the digits in ``liked``, whichever they get."""
    classes = classifier.config["outputs"]
    if not liked or any(not 0 <= d < classes for d in liked):
        raise ValueError(f"liked must be a non-empty set of digits in [0, {classes}) (got {list(liked)})")
    index = torch.tensor(sorted(set(liked)))

    @torch.no_grad()
    def utility(images: Tensor) -> Tensor:
        return torch.logsumexp(torch.log_softmax(classifier(images), 1)[:, index], 1)

    return SimulatedUser(name, utility, temperature)


def user_embedding(features_chosen: Tensor, features_rejected: Tensor) -> Tensor:
    """A user's embedding from K of their pairs, in a feature space φ ([K, D] each):

        e_u = √D · m / ‖m‖,  m = (1/K)·Σ_k (φ(x_c^k) - φ(x_r^k))

    PPD embeds the pairs with a vision-language model; this keeps its role (a vector that says which way the
    user's choices point, from few examples) with the mean preferred-minus-rejected direction in a small
    feature space (the digit classifier's penultimate features). Normalised, so that every user speaks with
    one volume and K does not set the scale, to root-mean-square 1 per entry (norm √D), the scale of the
    layer-normed token embeddings cross-attention is built for; m = 0 (no preference shown) stays 0, "no user"."""
    if features_chosen.dim() != 2 or features_chosen.shape != features_rejected.shape or not len(features_chosen):
        raise ValueError(f"features must be [K, D] for chosen and rejected, K ≥ 1 (got "
                         f"{tuple(features_chosen.shape)} and {tuple(features_rejected.shape)})")  # fmt: skip
    direction = (features_chosen - features_rejected).mean(0)
    norm = direction.norm()
    return direction * (direction.shape[0] ** 0.5 / norm) if norm > 0 else direction


@dataclass(frozen=True)
class Population:
    """The training users, the feature space their pairs are embedded in, and ``pool``: the images a user's
    few-shot pairs are drawn from (and the plain data a base model is trained on when none is given)."""

    users: tuple[SimulatedUser, ...]
    features: Features
    pool: Tensor

    def few_shot_pairs(self, user: SimulatedUser, n_pairs: int, generator: torch.Generator | None = None) -> ImagePairs:
        """``n_pairs`` pairs of distinct pool images, labelled by ``user``."""
        if n_pairs < 1 or len(self.pool) < 2:
            raise ValueError(f"need n_pairs ≥ 1 and a pool of ≥ 2 images (got {n_pairs}, {len(self.pool)})")
        i = torch.randint(len(self.pool), (n_pairs,), generator=generator)
        j = (i + torch.randint(1, len(self.pool), (n_pairs,), generator=generator)) % len(self.pool)
        a, b = self.pool[i], self.pool[j]
        mask = user.prefers(a, b, generator).view(-1, *([1] * (a.dim() - 1)))
        return ImagePairs(torch.where(mask, a, b), torch.where(mask, b, a))

    @torch.no_grad()
    def embed(self, user: SimulatedUser, n_pairs: int = 4, generator: torch.Generator | None = None) -> Tensor:
        """e_u from ``n_pairs`` fresh pairs of ``user`` (who need not be a training user): [D]."""
        pairs = self.few_shot_pairs(user, n_pairs, generator)
        return user_embedding(self.features(pairs.chosen), self.features(pairs.rejected))

    @property
    def embedding_size(self) -> int:
        with torch.no_grad():
            return int(self.features(self.pool[:1]).shape[1])


def conditional_unet(
    image_size: int, image_channels: int, embedding_size: int, channels: tuple[int, int] = (32, 64),
    layers_per_block: int = 1,
) -> nn.Module:  # fmt: skip
    """A small ``UNet2DConditionModel`` that reads one user-embedding token by cross-attention.

    The cross-attention output projections start at zero (as ControlNet starts its added layers): the model
    then ignores the embedding until fine-tuning teaches it to read one, so the plain pre-training, done with
    the zero embedding, trains an ordinary denoiser and every user starts from it."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=image_size,
        in_channels=image_channels,
        out_channels=image_channels,
        block_out_channels=channels,
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=embedding_size,
        norm_num_groups=min(8, channels[0]),
        attention_head_dim=min(8, channels[1]),
    )
    with torch.no_grad():
        for name, module in unet.named_modules():
            if name.endswith("attn2.to_out.0"):
                module.weight.zero_()
                module.bias.zero_()
    return unet


def user_condition(embeddings: Tensor) -> Condition:
    """Embeddings [B, D] as the denoiser's condition: one cross-attention token per sample ([B, 1, D])."""
    return Condition(embeddings=embeddings.unsqueeze(1))


@dataclass(frozen=True)
class PersonalizedConfig:
    """Pre-training (only when no base is given) and the PPD fine-tuning. Each update draws
    ``users_per_update`` training users; for each, a fresh embedding from ``embedding_pairs`` of their pairs
    (so training sees the spread of embeddings that a few pairs give, as an unseen user's will have) and
    ``pairs_per_user`` pairs labelled by the user: sampled under that embedding (``on_policy``) or drawn from
    the pool. β is small next to Diffusion-DPO's thousands because the errors here are means over 64 pixels,
    not sums over a latent; the cross-attention layers learn at ``embedding_learning_rate``, the rest of the
    UNet at ``learning_rate`` (the two-mode toy of the tests needs β = 2 and 0.1: with less, the cross-attention
    learnt to read the user on some seeds only, within 120 updates)."""

    embedding_pairs: int = 4
    users_per_update: int = 4
    pairs_per_user: int = 4
    updates: int = 200
    on_policy: bool = True
    sampling_steps: int = 10
    eta: float = 1.0
    beta: float = 5.0
    learning_rate: float = 3e-5
    embedding_learning_rate: float = 1e-2
    pretrain_updates: int = 1000
    pretrain_batch_size: int = 64
    pretrain_learning_rate: float = 1e-3
    channels: tuple[int, int] = (32, 64)
    train_steps: int = 1000
    seed: int = 0

    def check(self) -> None:
        for name in ("embedding_pairs", "users_per_update", "pairs_per_user", "updates", "sampling_steps",
                     "pretrain_updates", "pretrain_batch_size", "train_steps"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer (got {value!r})")
        for name in ("beta", "learning_rate", "embedding_learning_rate", "pretrain_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive (got {getattr(self, name)})")
        if not 0 <= self.eta <= 1:
            raise ValueError(f"eta must be in [0, 1] (got {self.eta})")


def pretrained_base(population: Population, config: PersonalizedConfig, progress: bool = False) -> Denoiser:
    """A new conditional denoiser (``conditional_unet``, ``config.channels``) trained on ``population.pool``
    with the "no user" embedding: the base PPD starts from, which serves every user alike."""
    config.check()
    pool = population.pool
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        unet = conditional_unet(pool.shape[-1], pool.shape[1], population.embedding_size, config.channels)
    denoiser = Denoiser(unet, config.train_steps)
    pretrain(denoiser, pool, config, torch.Generator().manual_seed(config.seed), progress)
    return denoiser


def pretrain(denoiser: Denoiser, images: Tensor, config: PersonalizedConfig, generator: torch.Generator,
             progress: bool = False) -> None:  # fmt: skip
    """DDPM's loss on the plain images with the zero ("no user") embedding. No weight decay: the
    cross-attention weights get no gradient here and must reach fine-tuning as they started."""
    size = denoiser.unet.config.cross_attention_dim
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=config.pretrain_learning_rate, weight_decay=0.0)
    denoiser.train()
    with progress_bar(progress, "PPD pre-training", config.pretrain_updates) as advance:
        for _ in range(config.pretrain_updates):
            batch = images[torch.randint(len(images), (config.pretrain_batch_size,), generator=generator)]
            condition = user_condition(torch.zeros(len(batch), size))
            loss = denoise_loss(denoiser, batch, condition, generator).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            advance(loss=round(float(loss.detach()), 4))
    denoiser.eval()


def train_personalized(
    base: Denoiser | None, population: Population, config: PersonalizedConfig = PersonalizedConfig(),
    progress: bool = False,
) -> AlignResult:  # fmt: skip
    """PPD: fine-tune (a copy of) ``base`` with Diffusion-DPO over the population's users at once, each pair
    conditioned on its user's embedding; with no base, one is first pre-trained on ``population.pool``.
    The history holds, per update, the loss, the implicit-reward accuracy (how often the policy's margin
    already prefers the labelled winner) and the mean utility of the sampled images to their own users."""
    config.check()
    if not population.users:
        raise ValueError("population.users is empty: PPD fine-tunes on at least one training user")
    generator = torch.Generator().manual_seed(config.seed)
    if base is None:
        policy = pretrained_base(population, config, progress)
    else:
        check_base(base, population.embedding_size, tuple(population.pool.shape[1:]))
        policy = base.copy()
    reference = policy.copy().eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(parameter_groups(policy, config), weight_decay=0.0)
    history: list[dict[str, float]] = []
    with progress_bar(progress, "PPD fine-tuning", config.updates) as advance:
        for update in range(config.updates):
            history.append(ppd_step(policy, reference, optimizer, population, config, generator))
            history[-1]["update"] = update
            advance(loss=round(history[-1]["loss"], 4))
    policy.eval()
    return AlignResult(policy, history)


def parameter_groups(policy: Denoiser, config: PersonalizedConfig) -> list[dict]:
    """The cross-attention layers that read the user embedding at ``embedding_learning_rate`` (they start at
    zero and must learn to read users from scratch, as an adapter does), the rest of the UNet at ``learning_rate``."""
    reads_user = [p for n, p in policy.named_parameters() if ".attn2." in n]
    rest = [p for n, p in policy.named_parameters() if ".attn2." not in n]
    return [{"params": reads_user, "lr": config.embedding_learning_rate}, {"params": rest, "lr": config.learning_rate}]


def check_base(base: Denoiser, embedding_size: int, image_shape: tuple[int, ...]) -> None:
    config = base.unet.config
    if type(base.unet).__name__ != "UNet2DConditionModel" or config.get("cross_attention_dim") != embedding_size:
        got = f"{type(base.unet).__name__}, cross_attention_dim={config.get('cross_attention_dim')}"
        raise ValueError(f"base must be a UNet2DConditionModel denoiser with cross_attention_dim = the embedding "
                         f"size {embedding_size} (got {got}); build one with conditional_unet")  # fmt: skip
    if base.image_shape != image_shape:
        raise ValueError(f"base makes images of shape {base.image_shape}, the pool's are {image_shape}")


def ppd_step(
    policy: Denoiser,
    reference: Denoiser,
    optimizer: torch.optim.Optimizer,
    population: Population,
    config: PersonalizedConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """One update: on-policy pairs for several users, each labelled by its user, and one Diffusion-DPO step."""
    users = torch.randint(len(population.users), (config.users_per_update,), generator=generator).tolist()
    embeddings = torch.stack([population.embed(population.users[u], config.embedding_pairs, generator) for u in users])
    per_pair = embeddings.repeat_interleave(config.pairs_per_user, 0)  # [U·P, D], one row per pair
    policy.eval()
    with torch.no_grad():
        a, b = candidate_pairs(policy, population, per_pair, config, generator)
        a_wins, utility = [], []
        for k, u in enumerate(users):
            rows = slice(k * config.pairs_per_user, (k + 1) * config.pairs_per_user)
            a_wins.append(population.users[u].prefers(a[rows], b[rows], generator))
            utility.append(population.users[u].utility(torch.cat([a[rows], b[rows]])).mean())
        mask = torch.cat(a_wins).view(-1, 1, 1, 1)
        winners, losers = torch.where(mask, a, b), torch.where(mask, b, a)
        t = torch.randint(0, policy.train_steps, (len(per_pair),), generator=generator)
        noise = torch.randn(winners.shape, generator=generator)
        alpha_bar = policy.alpha_bar[t]
        x_t = torch.cat([add_noise(winners, noise, alpha_bar), add_noise(losers, noise, alpha_bar)])
        condition = user_condition(per_pair.repeat(2, 1))
        ref_w, ref_l = errors(reference, x_t, t, noise, condition)
    policy.train()
    policy_w, policy_l = errors(policy, x_t, t, noise, condition)
    loss = diffusion_dpo_loss(policy_w, policy_l, ref_w, ref_l, config.beta).mean()
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
    optimizer.step()
    margin = -((policy_w - ref_w) - (policy_l - ref_l)).detach()
    return {"loss": float(loss.detach()), "implicit_accuracy": float((margin > 0).float().mean()),
            "utility": float(torch.stack(utility).mean())}  # fmt: skip


def candidate_pairs(
    policy: Denoiser, population: Population, per_pair: Tensor, config: PersonalizedConfig, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """The two images of each pair: sampled from the policy under the pair's user embedding (on-policy, as
    D3PO and online Diffusion-DPO gather them), or drawn from the pool (offline, as PPD's Pick-a-Pic pairs are)."""
    n = len(per_pair)
    if config.on_policy:
        images = sample(policy, 2 * n, config.sampling_steps, config.eta, user_condition(per_pair.repeat(2, 1)),
                        generator).images  # fmt: skip
        return images[:n], images[n:]
    i = torch.randint(len(population.pool), (n,), generator=generator)
    j = (i + torch.randint(1, len(population.pool), (n,), generator=generator)) % len(population.pool)
    return population.pool[i], population.pool[j]


def errors(model: Denoiser, x_t: Tensor, t: Tensor, noise: Tensor, condition: Condition) -> tuple[Tensor, Tensor]:
    """‖ε - ε̂(x_t, t, e_u)‖² (mean over pixels) on the winners (first half of x_t) and the losers."""
    eps = model(x_t, t.repeat(2), condition)
    n = len(t)
    return noise_error(eps[:n], noise), noise_error(eps[n:], noise)


@torch.no_grad()
def sample_for_user(
    denoiser: Denoiser, embedding: Tensor, n: int, steps: int = 20, generator: torch.Generator | None = None,
    eta: float = 1.0, noise: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """``n`` images for the user whose embedding is ``embedding`` ([D]; zeros for "no user")."""
    if embedding.dim() != 1:
        raise ValueError(f"embedding must be one user's [D] vector (got shape {tuple(embedding.shape)})")
    denoiser.eval()
    condition = user_condition(embedding.expand(n, -1))
    return sample(denoiser, n, steps, eta, condition, generator, noise).images
