"""Online update rules (DNO, SELM, VPO, P3O, BRAIn, CREAM) against hand-computed values, the properties
their papers claim, the tabular Nash dynamics on rock-paper-scissors, and the trainer's new batch fields.

The shared example of tests/test_policy_losses.py (two pairs, β = 0.5):

    log π(y_w) = [-1, -2], log π(y_l) = [-3, -1], log π_ref(y_w) = log π_ref(y_l) = [-2, -2]
    ρ_w = [1, 0], ρ_l = [-1, 1], h = [2, -1], β·h = [1, -0.5]
    ℓ(z) = −log σ(z): ℓ(1) = 0.3132617, ℓ(−0.5) = 0.9740770

and the identity used for the soft-label losses (DNO, CREAM), since ℓ(−z) − ℓ(z) = z:

    −p·log σ(z) − (1 − p)·log σ(−z) = ℓ(z) + (1 − p)·z
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardlab.data.records import PreferencePair
from rewardlab.policy import get_policy_loss
from rewardlab.policy.nash import (
    dno_step,
    exploitability,
    nash_md_step,
    regularised_nash_residual,
    rock_paper_scissors,
    softmax_policy,
)
from rewardlab.policy.online_losses import (
    brain_loss,
    cream_loss,
    dno_loss,
    dno_target,
    p3o_loss,
    ranking_consistency,
    scir_loss,
    selm_loss,
    vpo_loss,
)
from rewardlab.policy.trainer import PolicyTrainConfig, pair_fields, train_policy

torch.set_num_threads(1)


def example() -> dict[str, torch.Tensor]:
    return {
        "chosen_logps": torch.tensor([-1.0, -2.0]),
        "rejected_logps": torch.tensor([-3.0, -1.0]),
        "reference_chosen_logps": torch.tensor([-2.0, -2.0]),
        "reference_rejected_logps": torch.tensor([-2.0, -2.0]),
    }


def test_dno_hand_computed():
    """p = [0.75, 1]: ℓ(1) + 0.25·1 = 0.5632617; ℓ(−0.5) + 0 = 0.9740770 (p = 1 is DPO, DNO-Prct)."""
    out = dno_loss(**example(), strengths=torch.tensor([0.75, 1.0]), beta=0.5)
    assert out.losses.tolist() == pytest.approx([0.5632617, 0.9740770], abs=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx([0.5, 0.0]) and out.extras["target"].tolist() == [0.75, 1.0]
    with pytest.raises(ValueError, match="strengths must be probabilities"):
        dno_loss(**example(), strengths=torch.tensor([1.5, float("nan")]))


def test_dno_regression_reproduces_the_tabular_dno_iteration_on_rock_paper_scissors():
    """DNO's claim: regressing σ(β·h) onto σ(r_t(y_w) − r_t(y_l)), reference π_t and β = η, gives
    π_{t+1} ∝ π_t·exp(r_t/η). A tabular policy over (rock, paper, scissors) from π_t = [0.6, 0.3, 0.1],
    r_t = P·π_t = [0.4, 0.75, 0.35] (e.g. paper: 0.6·1 + 0.3·0.5 + 0.1·0 = 0.75), trained on the 3 pairs
    with the loss, ends at dno_step(π_t) to 1e-4."""
    preference, eta = rock_paper_scissors(), 2.0
    start = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    win = preference @ start
    assert win.tolist() == pytest.approx([0.4, 0.75, 0.35])
    i, j = torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2])
    logits = torch.log(start).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([logits], lr=0.02)
    for _ in range(1500):
        logps = torch.log_softmax(logits, -1)
        ref = torch.log(start)
        out = dno_loss(logps[i], logps[j], ref[i], ref[j], dno_target(win[i], win[j]), beta=eta)
        optimiser.zero_grad()
        out.losses.sum().backward()
        optimiser.step()
    expected = dno_step(start, preference, eta=eta)
    assert torch.softmax(logits, -1).tolist() == pytest.approx(expected.tolist(), abs=1e-4)


def test_cream_hand_computed_and_half_consistency_is_neutral():
    """C = [0.5, 0.9]: ℓ(1) + 0.5·1 = 0.8132617; ℓ(−0.5) + 0.1·(−0.5) = 0.9240770.

    With C = 1/2 the loss is symmetric in h, so at h = 0 its gradient is 0: a pair whose two
    rankings disagree as often as they agree teaches nothing.
    """
    out = cream_loss(**example(), consistencies=torch.tensor([0.5, 0.9]), beta=0.5)
    assert out.losses.tolist() == pytest.approx([0.8132617, 0.9240770], abs=1e-6)
    chosen = torch.zeros(1, requires_grad=True)
    cream_loss(chosen, torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.tensor([0.5])).losses.sum().backward()
    assert chosen.grad.item() == 0.0


def test_ranking_consistency_is_kendall_tau_rescaled():
    """[3, 2, 1] vs [3, 1, 2]: pairs (0,1) and (0,2) agree, (1,2) disagrees: τ = 1/3, C = (1/3 + 1)/2 = 2/3.

    Ties rank the earlier reply lower (ordinal ranks): [1, 1] orders as [1, 1] does, C = 1.
    """
    assert ranking_consistency(torch.tensor([3.0, 2.0, 1.0]), torch.tensor([3.0, 1.0, 2.0])) == pytest.approx(2 / 3)
    assert ranking_consistency(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0])) == 1.0
    assert ranking_consistency(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0])) == 0.0
    assert ranking_consistency(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 5.0])) == 1.0
    with pytest.raises(ValueError, match="K >= 2"):
        ranking_consistency(torch.tensor([1.0]), torch.tensor([1.0]))


def test_vpo_hand_computed_for_both_signs():
    """α = 0.2. Optimism (sign +1, both): value = β·(ρ_w + ρ_l)/2 = [0, 0.25], losses [ℓ(1), ℓ(−0.5) + 0.05]
    = [0.3132617, 1.0240770]. Pessimism (sign −1, chosen): value = β·ρ_w = [0.5, 0], losses
    [ℓ(1) − 0.1, ℓ(−0.5)] = [0.2132617, 0.9740770]."""
    online = vpo_loss(**example(), beta=0.5, alpha=0.2, sign=1, calibration="both")
    assert online.losses.tolist() == pytest.approx([0.3132617, 1.0240770], abs=1e-6)
    offline = vpo_loss(**example(), beta=0.5, alpha=0.2, sign=-1, calibration="chosen")
    assert offline.losses.tolist() == pytest.approx([0.2132617, 0.9740770], abs=1e-6)
    assert offline.extras["value"].tolist() == pytest.approx([0.5, 0.0])
    with pytest.raises(ValueError, match="sign must be"):
        vpo_loss(**example(), sign=0)
    with pytest.raises(ValueError, match="calibration must be"):
        vpo_loss(**example(), calibration="all")


def test_selm_is_vpo_online_and_its_gradient_lowers_both_sampled_replies():
    """SELM = VPO(sign +1, both). At h = 0, β = 0.4, α = 0.5: DPO's gradients ∓β/2 = ∓0.2 each gain
    +α·β/2 = 0.1: ∂/∂log π(y_w) = −0.1, ∂/∂log π(y_l) = 0.3. VPO offline (sign −1, chosen) instead
    adds −α·β = −0.2 on y_w: −0.4 and 0.2."""
    assert selm_loss(**example(), beta=0.5, alpha=0.2).losses.tolist() == pytest.approx(
        [0.3132617, 1.0240770], abs=1e-6
    )
    for fn, kwargs, expected in (
        (selm_loss, {}, (-0.1, 0.3)),
        (vpo_loss, {"sign": -1, "calibration": "chosen"}, (-0.4, 0.2)),
    ):
        chosen, rejected = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
        fn(chosen, rejected, torch.zeros(1), torch.zeros(1), beta=0.4, alpha=0.5, **kwargs).losses.sum().backward()
        assert (chosen.grad.item(), rejected.grad.item()) == pytest.approx(expected)


def test_selm_optimism_moves_more_mass_to_unsampled_replies_than_dpo():
    """SELM's claim: exploration. A tabular policy over 4 replies trained on the pair y_0 ≻ y_1 (the two
    replies sampled): after the same 30 steps SELM leaves more probability on y_2, y_3 than DPO."""

    def unsampled_mass(alpha: float) -> float:
        logits = torch.zeros(4, requires_grad=True)
        optimiser = torch.optim.SGD([logits], lr=0.5)
        for _ in range(30):
            logps = torch.log_softmax(logits, -1)
            ref = torch.full((1,), math.log(0.25))
            out = selm_loss(logps[:1], logps[1:2], ref, ref, beta=0.5, alpha=alpha)
            optimiser.zero_grad()
            out.losses.sum().backward()
            optimiser.step()
        return torch.softmax(logits, -1)[2:].sum().item()

    assert unsampled_mass(alpha=1.0) > unsampled_mass(alpha=0.0) + 0.05


def p3o_example(beta: float) -> dict[str, torch.Tensor]:
    return {
        **example(),
        "old_chosen_logps": torch.tensor([-1.5, -2.0]),
        "old_rejected_logps": torch.tensor([-2.0, -2.0]),
        "chosen_scores": torch.tensor([1.0, 2.0]),
        "rejected_scores": torch.tensor([0.0, 0.5]),
    }


def test_p3o_hand_computed():
    """β = 0.5, ε = 0.2. Pair 1: log R = (−1 + 1.5) − (−3 + 2) = 1.5, R = 4.48; old drift
    (−1.5 + 2) − 0 = 0.5, A = 1 − 0.5·0.5 = 0.75; min(4.48·0.75, 1.2·0.75) = 0.9 (clipped): loss −0.9.
    Pair 2: log R = 0 − 1 = −1, A = 1.5; min(e^−1·1.5, 0.8·1.5) = 0.5518192: loss −0.5518192."""
    batch = p3o_example(beta=0.5)
    batch["chosen_logps"] = batch["chosen_logps"].clone().requires_grad_(True)
    out = p3o_loss(**batch, beta=0.5, clip=0.2)
    assert out.losses.tolist() == pytest.approx([-0.9, -0.5518192], abs=1e-6)
    assert out.extras["advantage"].tolist() == pytest.approx([0.75, 1.5])
    assert out.extras["clipped"].tolist() == [1.0, 0.0]
    out.losses.sum().backward()
    assert batch["chosen_logps"].grad[0].item() == 0.0  # clipped: no gradient
    assert batch["chosen_logps"].grad[1].item() == pytest.approx(-math.exp(-1) * 1.5)


def test_p3o_is_invariant_to_a_per_prompt_shift_of_the_reward():
    """P3O's claim against PPO: rewards that differ by a per-prompt constant give the same update."""
    batch = p3o_example(beta=0.5)
    shifted = {
        **batch,
        "chosen_scores": batch["chosen_scores"] + 7.0,
        "rejected_scores": batch["rejected_scores"] + 7.0,
    }
    assert torch.equal(p3o_loss(**batch).losses, p3o_loss(**shifted).losses)
    with pytest.raises(ValueError, match="judge rewards"):
        p3o_loss(**{**batch, "chosen_scores": torch.tensor([float("nan"), 1.0])})


def brain_example() -> dict[str, torch.Tensor]:
    return {**example(), "chosen_scores": torch.tensor([1.0, 0.0]), "rejected_scores": torch.tensor([0.0, 0.0])}


def test_brain_hand_computed():
    """q = π_ref, τ = 1: w = softmax(r) = [σ(1), σ(−1)] = [0.7310586, 0.2689414] and [0.5, 0.5];
    v = softmax(log π − log q) = softmax([1, −1]) = [0.8807971, 0.1192029] and softmax([0, 1]) =
    [0.2689414, 0.7310586].
    With baseline: −Σ (w − v)·log π = −(−0.1497385·−1 + 0.1497385·−3) = 0.2994770;
    −(0.2310586·−2 − 0.2310586·−1) = 0.2310586.
    Without: −(0.7310586·−1 + 0.2689414·−3) = 1.5378828; −(0.5·−2 + 0.5·−1) = 1.5."""
    out = brain_loss(**brain_example())
    assert out.losses.tolist() == pytest.approx([0.2994770, 0.2310586], abs=1e-6)
    assert out.extras["target_weight"].tolist() == pytest.approx([0.7310586, 0.5], abs=1e-6)
    plain = brain_loss(**brain_example(), baseline=False)
    assert plain.losses.tolist() == pytest.approx([1.5378828, 1.5], abs=1e-6)
    with pytest.raises(ValueError, match="goodness must be"):
        brain_loss(**brain_example(), goodness="linear")


def test_brain_distils_the_posterior_reference_times_exp_reward():
    """BRAIn's claim: the policy is fitted to p(y | good) ∝ π_ref(y)·exp(r(y)/τ). A tabular policy over
    4 replies trained on all 6 pairs with q = π_ref converges to that posterior."""
    reference = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1]))
    reward = torch.tensor([0.0, 1.0, 2.0, -1.0])
    i, j = torch.triu_indices(4, 4, offset=1)
    logits = torch.zeros(4, requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=0.05)
    for _ in range(600):
        logps = torch.log_softmax(logits, -1)
        out = brain_loss(logps[i], logps[j], reference[i], reference[j], reward[i], reward[j], temperature=0.5)
        optimiser.zero_grad()
        out.losses.sum().backward()
        optimiser.step()
    posterior = torch.softmax(reference + reward / 0.5, -1)
    assert torch.softmax(logits, -1).tolist() == pytest.approx(posterior.tolist(), abs=1e-3)


def test_dno_on_rock_paper_scissors_converges_on_average_not_in_the_last_iterate():
    """From π_0 = [0.6, 0.3, 0.1], η = 2: the average of 2000 DNO iterates is within 0.01 of the
    uniform Nash (its exploitability max_y P(y ≻ π̄) − 1/2 < 0.01), while the last iterate circles
    away from it (exploitability > 0.3). DNO's guarantee is for the average, as the docstring says."""
    preference = rock_paper_scissors()
    policy = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    total = torch.zeros(3, dtype=torch.float64)
    for _ in range(2000):
        total += policy
        policy = dno_step(policy, preference, eta=2.0)
    assert exploitability(total / 2000, preference) < 0.01
    assert exploitability(policy, preference) > 0.3


def test_nash_md_last_iterate_converges_to_the_uniform_nash_on_rock_paper_scissors():
    """Nash-MD's claim is for the last iterate: with π_ref uniform, 100 steps (η = 0.5, τ = 1) from
    [0.6, 0.3, 0.1] reach the uniform policy to 1e-9."""
    preference = rock_paper_scissors()
    uniform = softmax_policy(torch.zeros(3))
    policy = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    for _ in range(100):
        policy = nash_md_step(policy, uniform, preference, eta=0.5, tau=1.0)
    assert policy.tolist() == pytest.approx([1 / 3] * 3, abs=1e-9)
    assert exploitability(policy, preference) == pytest.approx(0.0, abs=1e-9)


def test_nash_md_reaches_the_regularised_nash_within_order_eta():
    """With π_ref = [0.5, 0.3, 0.2] the τ-regularised equilibrium is not uniform; the last iterate's
    distance to it (the fixed-point residual) shrinks in proportion to the step: about 10x per 10x in η."""
    preference = rock_paper_scissors()
    reference = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    residuals = []
    for eta in (0.5, 0.05):
        policy = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
        for _ in range(int(60 / eta)):
            policy = nash_md_step(policy, reference, preference, eta=eta, tau=1.0)
        residuals.append(regularised_nash_residual(policy, reference, preference, tau=1.0))
    assert residuals[1] < 2e-3 and residuals[0] / residuals[1] == pytest.approx(10, rel=0.2)
    assert exploitability(policy, preference) > 0.1  # regularised toward π_ref: not the unregularised Nash
    with pytest.raises(ValueError, match="P\\[i, j\\] \\+ P\\[j, i\\] = 1"):
        dno_step(reference, torch.ones(3, 3, dtype=torch.float64) * 0.7, eta=1.0)


PAIRS = [
    PreferencePair(
        "What is the capital of France?", "Paris.", "I cannot help.", chosen_rating=2.0, rejected_rating=0.5
    ),
    PreferencePair("How do I bake bread?", "Mix flour and yeast.", "The fox.", strength=0.75, consistency=0.625),
    PreferencePair(
        "Write a poem.", "The sea at night.", "def add(a, b):", tie=True, chosen_rating=1, rejected_rating=1
    ),
]


def test_pair_fields_fill_the_labels_a_loss_reads():
    """strength (1 if unset, 1/2 for a tie), consistency (1 if unset), ratings as scores (required by P3O)."""
    fields = pair_fields(PAIRS, get_policy_loss("dno")) | pair_fields(PAIRS, get_policy_loss("cream"))
    assert fields["strengths"].tolist() == [1.0, 0.75, 0.5] and fields["consistencies"].tolist() == [1.0, 0.625, 1.0]
    scores = pair_fields([PAIRS[0], PAIRS[2]], get_policy_loss("p3o"))
    assert scores["chosen_scores"].tolist() == [2.0, 1.0] and scores["rejected_scores"].tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="1 of 3 pairs lack one"):
        pair_fields(PAIRS, get_policy_loss("p3o"))
    assert set(pair_fields(PAIRS, get_policy_loss("dpo"))) == set()
    multi = [dataclasses.replace(PAIRS[0], chosen_rating=(1.0, 2.0))]
    with pytest.raises(ValueError, match="reads chosen_rating as one reward"):
        pair_fields(multi, get_policy_loss("brain"))


def train(model_dir, loss: str, pairs, **loss_args):
    model, tokenizer = AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)
    before = [p.detach().clone() for p in model.parameters()]
    config = PolicyTrainConfig(loss=loss, loss_args=loss_args, steps=2, batch_pairs=3, lr=1e-3, precision="fp32")
    history = train_policy(model, tokenizer, pairs, config).history
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    return history, changed


def test_trainer_feeds_oracle_strengths_and_old_logps(tiny_decoder_dir):
    """Through train_policy on the tiny decoder: DNO with every strength 1/2 has zero gradient at the
    start (h = 0 is its optimum), so the weights do not move; P3O's old policy is the model before the
    first step, so its first ratio is exactly 1 and its loss −mean(A) = −mean(s_w − s_l)."""
    halves = [dataclasses.replace(p, strength=0.5, tie=False) for p in PAIRS]
    history, changed = train(tiny_decoder_dir, "dno", halves, beta=0.5)
    assert not changed and history[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert train(tiny_decoder_dir, "dno", PAIRS, beta=0.5)[1]
    rated = [dataclasses.replace(p, chosen_rating=float(k + 1), rejected_rating=0.0) for k, p in enumerate(PAIRS)]
    history, changed = train(tiny_decoder_dir, "p3o", rated)
    assert changed and history[0]["ratio"] == pytest.approx(1.0, abs=1e-6)
    assert history[0]["loss"] == pytest.approx(-2.0, abs=1e-5)  # A = [1, 2, 3]: −mean = −2
    with pytest.raises(ValueError, match=r"'brain' needs every pair's chosen_rating and rejected_rating.*1 of 3 pairs"):
        train(tiny_decoder_dir, "brain", PAIRS)


def test_old_logps_of_a_lora_policy_are_the_adapted_policy_not_its_base(tiny_decoder_dir):
    """A LoRA policy whose adapters already moved (a later round): P3O's old policy is the adapted model,
    so the first ratio is 1, while the reference (adapters off) differs, so the implicit rewards are not 0."""
    from rewardlab.policy.lora import LoraSettings, add_lora

    model, tokenizer = (
        AutoModelForCausalLM.from_pretrained(tiny_decoder_dir),
        AutoTokenizer.from_pretrained(tiny_decoder_dir),
    )
    policy = add_lora(model, LoraSettings(enabled=True, r=4, alpha=8))
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.add_(torch.randn_like(param) * 0.2)
    rated = [dataclasses.replace(p, chosen_rating=1.0, rejected_rating=0.0) for p in PAIRS]
    config = PolicyTrainConfig(loss="p3o", steps=1, batch_pairs=3, lr=1e-3, precision="fp32")
    first = train_policy(policy, tokenizer, rated, config).history[0]
    assert first["ratio"] == pytest.approx(1.0, abs=1e-6)
    assert abs(first["chosen_reward"]) > 1e-3


def test_scir_hand_computed_and_an_agreeing_judge_costs_nothing():
    """β·h = [1, −0.5], λ = 1. Pair 1, p_J = 0.75: the cross-entropy ℓ(1) + 0.25·1 = 0.5632617, less
    H(0.75) = 0.75·0.2876821 + 0.25·1.3862944 = 0.5623351, is the KL 0.0009266; loss 0.3132617 + 0.0009266
    = 0.3141883. Pair 2 has no judge probability (NaN): DPO's ℓ(−0.5) = 0.9740770. With p_J = σ(−0.5) =
    0.3775407, the judge agrees with the implicit reward: KL 0, DPO's loss again."""
    out = scir_loss(**example(), judge_probabilities=torch.tensor([0.75, float("nan")]), beta=0.5)
    assert out.losses.tolist() == pytest.approx([0.3141883, 0.9740770], abs=1e-6)
    assert out.extras["inconsistency"].tolist() == pytest.approx([0.0009266, 0.0], abs=1e-6)
    assert out.extras["judged"].tolist() == [1.0, 0.0]
    agreeing = scir_loss(**example(), judge_probabilities=torch.sigmoid(torch.tensor([1.0, -0.5])), beta=0.5)
    assert agreeing.extras["inconsistency"].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert agreeing.losses.tolist() == pytest.approx([0.3132617, 0.9740770], abs=1e-6)
    assert scir_loss(**example(), beta=0.5).losses.tolist() == pytest.approx([0.3132617, 0.9740770], abs=1e-6)
    with pytest.raises(ValueError, match="judge_probabilities must be probabilities"):
        scir_loss(**example(), judge_probabilities=torch.tensor([1.5, 0.5]))
    with pytest.raises(ValueError, match="consistency_weight must be >= 0"):
        scir_loss(**example(), judge_probabilities=torch.tensor([0.5, 0.5]), consistency_weight=-1.0)


@pytest.mark.parametrize(("judge", "weight"), [(0.2, 1.0), (0.6, 4.0), (0.9, 0.5)])
def test_scir_holds_the_implicit_preference_between_the_label_and_the_judge(judge, weight):
    """DPO alone pushes σ(β·h) to 1 (no finite optimum); with the penalty, the stationary point of
    ℓ(z) + λ·KL(p ‖ σ(z)) is −(1 − σ) + λ·(σ − p) = 0, σ(z*) = (1 + λ·p)/(1 + λ): the implicit reward's
    preference settles between the label's 1 and the judge's p, nearer the judge as λ grows."""
    chosen = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([chosen], lr=0.5)
    for _ in range(3000):
        optimizer.zero_grad()
        out = scir_loss(
            chosen, torch.zeros(1), torch.zeros(1), torch.zeros(1),
            judge_probabilities=torch.tensor([judge]), beta=1.0, consistency_weight=weight,
        )  # fmt: skip
        out.losses.sum().backward()
        optimizer.step()
    assert torch.sigmoid(chosen).item() == pytest.approx((1 + weight * judge) / (1 + weight), abs=1e-4)


def test_pair_fields_give_the_judge_probability_nan_where_unset():
    pairs = [PAIRS[0], dataclasses.replace(PAIRS[1], judge_probability=0.25)]
    fields = pair_fields(pairs, get_policy_loss("scir"))
    assert math.isnan(fields["judge_probabilities"][0]) and fields["judge_probabilities"][1].item() == 0.25
    assert "judge_probabilities" not in pair_fields(pairs, get_policy_loss("cream"))
