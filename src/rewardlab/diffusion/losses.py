"""Pairwise preference losses for diffusion models, as pure functions: tensors in, one loss per pair out.

All four are DPO (Rafailov et al. 2023) read through a diffusion model. DPO needs log π_θ(x)/π_ref(x) of
the preferred and the dispreferred sample, which a diffusion model does not give; the methods differ in
what stands in for it:

- Diffusion-DPO: the ε-prediction error at a random forward-noised latent (an ELBO bound);
- D3PO: the exact log-density of each denoising step of the chain that made the image;
- InPO: the ε-prediction error at the latent DDIM inversion assigns the image (not random noise);
- SmPO: Diffusion-DPO's margin on inverted latents, with a soft label from a reward model.

Every "error" here is the per-sample mean over pixels of (ε - ε̂)², as the reference implementations
compute it; the constant that turns a mean into a sum is part of β.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor


def noise_error(prediction: Tensor, target: Tensor) -> Tensor:
    """‖target - prediction‖² averaged over every dimension but the batch: one error per sample."""
    return ((prediction - target) ** 2).flatten(1).mean(1)


def diffusion_margin(
    policy_error_w: Tensor, policy_error_l: Tensor, ref_error_w: Tensor, ref_error_l: Tensor
) -> Tensor:
    """h = -[(e_θ^w - e_ref^w) - (e_θ^l - e_ref^l)]: how much more the policy (than the reference) lowered
    its denoising error on the winner than on the loser. h > 0 is the implicit reward preferring the winner."""
    return -((policy_error_w - ref_error_w) - (policy_error_l - ref_error_l))


def diffusion_dpo_loss(
    policy_error_w: Tensor, policy_error_l: Tensor, ref_error_w: Tensor, ref_error_l: Tensor, beta: float
) -> Tensor:
    """Diffusion-DPO (Wallace et al. 2023, eq. 14), per pair:

        L = -log σ(-β·[(‖ε_w - ε_θ(x^w_t, t)‖² - ‖ε_w - ε_ref(x^w_t, t)‖²)
                      - (‖ε_l - ε_θ(x^l_t, t)‖² - ‖ε_l - ε_ref(x^l_t, t)‖²)])

    with x^w_t, x^l_t the winner and loser noised at the same t with the same ε. The paper's factor
    T·ω(λ_t) (constant for the ε-parametrisation) is folded into β, as is the reference code's ½.
    The errors are the bound on -log p(x_0) that stands in for DPO's log-likelihood; at θ = ref the loss is log 2.
    """
    check_beta(beta)
    return -F.logsigmoid(beta * diffusion_margin(policy_error_w, policy_error_l, ref_error_w, ref_error_l))


def d3po_loss(
    policy_logp_w: Tensor,
    policy_logp_l: Tensor,
    ref_logp_w: Tensor,
    ref_logp_l: Tensor,
    beta: float,
    ratio_clip: float | None = None,
) -> Tensor:
    """D3PO (Yang et al. 2024, "Using Human Feedback to Fine-tune Diffusion Models without Any Reward Model",
    eq. 11), per pair and denoising step: DPO on the step x_t → x_{t-1} of the preferred and the dispreferred chain,

        L = -log σ(β·log π_θ(x^w_{t-1}|x^w_t)/π_ref(x^w_{t-1}|x^w_t)
                   - β·log π_θ(x^l_{t-1}|x^l_t)/π_ref(x^l_{t-1}|x^l_t))

    Each step of a preferred chain counts as a preferred action (the paper's assumption that every state of a
    preferred chain is at least as good). ``ratio_clip`` = ε clips each ratio π_θ/π_ref to [1-ε, 1+ε], the
    trust region of the authors' code (no gradient flows through a clipped ratio); None is the paper's loss.
    """
    check_beta(beta)
    log_ratio_w, log_ratio_l = policy_logp_w - ref_logp_w, policy_logp_l - ref_logp_l
    if ratio_clip is not None:
        if not 0.0 < ratio_clip < 1.0:
            raise ValueError(f"ratio_clip must be in (0, 1) (got {ratio_clip})")
        low, high = math.log(1 - ratio_clip), math.log(1 + ratio_clip)
        log_ratio_w, log_ratio_l = log_ratio_w.clamp(low, high), log_ratio_l.clamp(low, high)
    return -F.logsigmoid(beta * (log_ratio_w - log_ratio_l))


def smpo_loss(
    policy_error_w: Tensor,
    policy_error_l: Tensor,
    ref_error_w: Tensor,
    ref_error_l: Tensor,
    probability: Tensor,
    beta: float,
) -> Tensor:
    """SmPO-Diffusion (Lu et al. 2025, "Smoothed Preference Optimization via ReNoise Inversion", eq. 9), per pair:

        L = -log σ((2p - 1)·β·h),   h = -[(e_θ^w - e_ref^w) - (e_θ^l - e_ref^l)]

    with the errors e measured against the noise that inversion assigns each image, and p = P(w ≻ l) the
    smoothed preference a reward model gives. It comes from replacing each image's likelihood by the
    smoothed p̃(x^w) ∝ p(x^w)^α·p(x^l)^(1-α) (and symmetrically for x^l), "preference likelihood averaging",
    with α = p: the DPO log-ratio of p̃ is (2p - 1) times that of p. At p = 1 it is Diffusion-DPO; at p = ½
    (two equally good images) the loss is log 2 whatever h is, so a tie pushes the model nowhere; and
    swapping the pair (p → 1 - p, h → -h) leaves the loss unchanged, so label orientation does not matter.
    """
    check_beta(beta)
    if bool(((probability < 0) | (probability > 1)).any()):
        raise ValueError("smpo: preference probabilities must lie in [0, 1]")
    h = diffusion_margin(policy_error_w, policy_error_l, ref_error_w, ref_error_l)
    return -F.logsigmoid((2 * probability - 1) * beta * h)


def inverted_noise(x_t: Tensor, x0: Tensor, alpha_bar: Tensor) -> Tensor:
    """ε* = (x_t - √ᾱ_t·x_0) / √(1-ᾱ_t): the noise that, by q(x_t|x_0), carries x_0 to the latent x_t
    inversion found. ``alpha_bar`` is per sample ([B])."""
    a = alpha_bar.view(-1, *([1] * (x0.dim() - 1)))
    return (x_t - a.sqrt() * x0) / (1 - a).sqrt()


def inpo_loss(
    policy_eps_w: Tensor,
    policy_eps_l: Tensor,
    ref_eps_w: Tensor,
    ref_eps_l: Tensor,
    x0_w: Tensor,
    x0_l: Tensor,
    x_t_w: Tensor,
    x_t_l: Tensor,
    alpha_bar: Tensor,
    beta: float,
) -> Tensor:
    """DDIM-InPO (Lu et al. 2025, "InPO: Inversion Preference Optimization with Reparametrized DDIM"), per
    pair. The diffusion model is read as a one-step generator x_t → x_0 (the DDIM reparametrisation
    x_0 = (x_t - √(1-ᾱ_t)·ε_θ(x_t, t))/√ᾱ_t), so a latent x_t gets the implicit reward
    β·log p_θ(x_0|x_t)/p_ref(x_0|x_t), which for Gaussian p is, up to a constant folded into β,
    -(‖ε* - ε_θ(x_t, t)‖² - ‖ε* - ε_ref(x_t, t)‖²) with ε* = (x_t - √ᾱ_t·x_0)/√(1-ᾱ_t). The latents
    x^w_t, x^l_t come from DDIM inversion of the images (the latents that generate them), not from random
    forward noise; DPO on the two rewards gives

        L = -log σ(-β·[(‖ε*_w - ε_θ(x^w_t)‖² - ‖ε*_w - ε_ref(x^w_t)‖²)
                      - (‖ε*_l - ε_θ(x^l_t)‖² - ‖ε*_l - ε_ref(x^l_t)‖²)])

    ``policy_eps_*``/``ref_eps_*`` are the two models' ε̂ at the latents, ``alpha_bar`` ᾱ_t per pair.
    """
    check_beta(beta)
    target_w, target_l = inverted_noise(x_t_w, x0_w, alpha_bar), inverted_noise(x_t_l, x0_l, alpha_bar)
    h = diffusion_margin(
        noise_error(policy_eps_w, target_w),
        noise_error(policy_eps_l, target_l),
        noise_error(ref_eps_w, target_w),
        noise_error(ref_eps_l, target_l),
    )
    return -F.logsigmoid(beta * h)


def check_beta(beta: float) -> None:
    if not beta > 0:
        raise ValueError(f"beta must be positive (got {beta})")
