"""PEARL (Liu et al. 2024): cross-task label transfer by Gromov-Wasserstein, and the robust Gaussian reward."""

import math

import numpy as np
import pytest
import torch

from rewardlab.control.mdp import DELIVERY_WEIGHTS, TabularMDP, greedy_policy, random_gridworld, value_iteration
from rewardlab.control.pearl import (
    fit_robust_reward,
    gromov_wasserstein_plan,
    robust_bt_loss,
    segment_features,
    transfer_labels,
    transfer_preferences,
)
from rewardlab.control.preference_models import sample_segment
from rewardlab.control.segments import Segment, SegmentPreference

TRUE = np.array(DELIVERY_WEIGHTS)


def partial_return(mdp: TabularMDP, segment: Segment, weights: np.ndarray = TRUE) -> float:
    return float(segment_features(mdp, segment).sum(0) @ weights)


def relabelled(mdp: TabularMDP, perm: np.ndarray) -> TabularMDP:
    """The same task with state s renamed perm[s]."""
    inv = np.argsort(perm)
    return TabularMDP(
        mdp.transitions[inv][:, :, inv],
        mdp.features[inv],
        mdp.terminal[inv],
        mdp.start[inv],
        mdp.gamma,
        mdp.feature_names,
    )


def distinct_segments(mdp: TabularMDP, n: int, rng: np.random.Generator) -> list[Segment]:
    """``n`` random segments whose summed features all differ (no two at distance 0)."""
    found: list[Segment] = []
    sums: list[np.ndarray] = []
    while len(found) < n:
        seg = sample_segment(mdp, 6, rng)
        total = segment_features(mdp, seg).sum(0)
        if all(not np.allclose(total, other) for other in sums):
            found.append(seg)
            sums.append(total)
    return found


def test_gw_recovers_a_relabelled_copy_and_transfers_the_labels_exactly():
    """Target = the source task with its states renamed, its pairs listed in another order: the GW plan is the
    segment correspondence (a permutation, mass 1/n each), so every transferred label is the source label."""
    rng = np.random.default_rng(0)
    source = random_gridworld(rng, 5)
    perm = rng.permutation(source.n_states)
    target = relabelled(source, perm)
    segs = distinct_segments(source, 12, rng)
    pairs = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (0, 5), (3, 7)]
    prefs = []
    for i, j in pairs:
        gap = partial_return(source, segs[i]) - partial_return(source, segs[j])
        prefs.append(SegmentPreference(segs[i], segs[j], "a" if gap > 0 else "b" if gap < 0 else "equal"))

    def rename(seg: Segment) -> Segment:
        return Segment(tuple(int(perm[s]) for s in seg.observations), seg.actions)

    order = rng.permutation(len(pairs))
    target_pairs = [(rename(prefs[k].a), rename(prefs[k].b)) for k in order]
    out = transfer_preferences(prefs, source, target_pairs, target, task="copy")
    assert np.allclose(np.sort(out.plan * 12, axis=None)[-12:], 1.0) and np.allclose(out.plan.sum(), 1.0)
    assert out.labels.tolist() == [prefs[k].label for k in order]
    assert out.weights == pytest.approx(np.ones(len(pairs)))
    assert [p.preferred for p in out.preferences] == [prefs[k].preferred for k in order]
    assert {p.task for p in out.preferences} == {"copy"}


def test_transfer_labels_hand_computed():
    """Plan [[3/8, 1/8], [1/8, 3/8]] → T̂ = [[3/4, 1/4], [1/4, 3/4]]; one source pair (0, 1) with y = 1.
    Target (0, 1): forward T̂00·T̂11 = 9/16, backward T̂10·T̂01 = 1/16 → w = 10/16, ŷ = 9/10.
    Target (1, 0): forward 1/16, backward 9/16 → ŷ = 1/10. Target (0, 0): forward = backward = 3/16 → ŷ = 1/2."""
    plan = np.array([[3, 1], [1, 3]]) / 8
    label, weight = transfer_labels(plan, [(0, 1)], [1.0], [(0, 1), (1, 0), (0, 0)])
    assert label == pytest.approx([0.9, 0.1, 0.5])
    assert weight == pytest.approx([10 / 16, 10 / 16, 6 / 16])
    soft, _ = transfer_labels(plan, [(0, 1)], [0.75], [(0, 1)])
    assert soft == pytest.approx([(9 / 16 * 0.75 + 1 / 16 * 0.25) / (10 / 16)])  # 0.7


def test_transfer_labels_without_evidence_is_a_half_with_zero_weight():
    """Target item 2 corresponds only to source item 2, which no labelled pair contains."""
    label, weight = transfer_labels(np.eye(3) / 3, [(0, 1)], [1.0], [(0, 2), (0, 1)])
    assert label.tolist() == [0.5, 1.0] and weight.tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="2 source labels for 1 source pairs"):
        transfer_labels(np.eye(3) / 3, [(0, 1)], [1.0, 0.0], [(0, 1)])


def test_entropic_plan_is_softer_and_keeps_the_marginals():
    x = np.array([[0.0, 1.0, 3.0], [1.0, 0.0, 2.0], [3.0, 2.0, 0.0]]) / 3  # normalised, as distance_matrix gives
    hard, soft = gromov_wasserstein_plan(x, x), gromov_wasserstein_plan(x, x, epsilon=0.5)
    assert np.allclose(hard, np.eye(3) / 3, atol=1e-6)
    assert np.allclose(soft.sum(0), 1 / 3, atol=1e-4) and np.allclose(soft.sum(1), 1 / 3, atol=1e-4)
    assert soft.max() < hard.max()
    with pytest.raises(ValueError, match="square distance matrix"):
        gromov_wasserstein_plan(x[:2], x)


def test_gaussian_loss_is_bradley_terry_at_zero_sigma():
    """μ_a = (1, 0.5), μ_b = (0, 0.5): d = 1.5 − 0.5 = 1; −log σ(1) = 0.3132617; with y = 3/4:
    0.75·0.3132617 + 0.25·1.3132617 = 0.5632617. σ = 0 makes the noise irrelevant."""
    mean_a, mean_b = torch.tensor([[1.0, 0.5]]), torch.tensor([[0.0, 0.5]])
    zero, noise = torch.zeros(1, 2), torch.randn(4, 1, 2, generator=torch.Generator().manual_seed(0))
    for y, expected in ((1.0, 0.3132617), (0.75, 0.5632617)):
        out = robust_bt_loss(mean_a, zero, mean_b, zero, torch.tensor([y]), noise, -noise)
        assert out.item() == pytest.approx(expected, abs=1e-6)
    tiny = torch.full((1, 2), 1e-9)
    near = robust_bt_loss(mean_a, tiny, mean_b, tiny, torch.tensor([1.0]), noise, noise.flip(0))
    assert near.item() == pytest.approx(0.3132617, abs=1e-6)


def test_gaussian_loss_hand_computed_with_kl():
    """σ = 1/2 everywhere, ε_a = (1, 1), ε_b = 0: R̃_a = 1.5 + 0.5·2 = 2.5, R̃_b = 0.5, d = 2 → −log σ(2) = 0.1269280.
    KL(N(μ, ¼) ‖ N(0, 1)) = ½μ² − 3/8 + log 2: μ = 1 → 0.8181472, μ = ½ → 0.4431472 (twice), μ = 0 → 0.3181472;
    sum 2.0225887 over 2T = 4 steps, β = 1 → 0.5056472; total 0.6325752."""
    half = torch.full((1, 2), 0.5)
    out = robust_bt_loss(
        torch.tensor([[1.0, 0.5]]),
        half,
        torch.tensor([[0.0, 0.5]]),
        half,
        torch.tensor([1.0]),
        torch.ones(1, 1, 2),
        torch.zeros(1, 1, 2),
        kl_coef=1.0,
    )
    assert out.item() == pytest.approx(-math.log(1 / (1 + math.exp(-2))) + 2.0225887 / 4, abs=1e-6)
    assert out.item() == pytest.approx(0.6325752, abs=1e-6)


def noisy_case(seed: int, n_pairs: int, flip: float) -> tuple[TabularMDP, list[SegmentPreference], list[Segment]]:
    """Pairs of 6-step segments (optimal actions, random half the time), labelled by the true partial return,
    then each label flipped with probability ``flip``; 400 held-out segments."""
    rng = np.random.default_rng(seed)
    mdp = random_gridworld(rng, 5)
    optimal = greedy_policy(value_iteration(mdp, mdp.reward(TRUE))[1])
    segs = [sample_segment(mdp, 6, rng, optimal, epsilon=0.5) for _ in range(2 * n_pairs + 400)]
    prefs = []
    for a, b in zip(segs[0 : 2 * n_pairs : 2], segs[1 : 2 * n_pairs : 2], strict=True):
        gap = partial_return(mdp, a) - partial_return(mdp, b)
        first = gap > 0 if gap != 0 else rng.random() < 0.5
        prefs.append(SegmentPreference(a, b, "a" if first != (rng.random() < flip) else "b"))
    return mdp, prefs, segs[2 * n_pairs :]


def ordering_accuracy(mdp: TabularMDP, weights: np.ndarray, held_out: list[Segment]) -> float:
    """Share of held-out pairs (with different true returns) that ``weights`` puts in the true order."""
    sums = np.stack([segment_features(mdp, s).sum(0) for s in held_out])
    true, learned = sums @ TRUE, sums @ weights
    i, j = np.triu_indices(len(held_out), 1)
    keep = true[i] != true[j]
    agree = np.sign(true[i] - true[j]) == np.sign(learned[i] - learned[j])
    return float(agree[keep].mean())


def test_clean_labels_teach_the_true_ordering():
    mdp, prefs, held_out = noisy_case(0, 100, 0.0)
    for gaussian in (True, False):
        assert ordering_accuracy(mdp, fit_robust_reward(mdp, prefs, gaussian=gaussian).weights, held_out) > 0.95


def test_robust_reward_orders_segments_better_than_bt_under_flipped_labels():
    """PEARL's claim for RRL: with 30 % of the labels flipped, the Gaussian reward (β = 1) orders held-out
    segments by their true partial return more often than plain Bradley-Terry, over four seeded tasks."""
    robust, plain = [], []
    for seed in range(4):
        mdp, prefs, held_out = noisy_case(seed, 100, 0.3)
        robust.append(ordering_accuracy(mdp, fit_robust_reward(mdp, prefs, kl_coef=1.0).weights, held_out))
        plain.append(ordering_accuracy(mdp, fit_robust_reward(mdp, prefs, gaussian=False).weights, held_out))
    assert np.mean(robust) > np.mean(plain) + 0.03


def test_fit_rejects_bad_input():
    rng = np.random.default_rng(0)
    mdp = random_gridworld(rng, 4)
    seg, longer = sample_segment(mdp, 1, rng), sample_segment(mdp, 2, rng)
    with pytest.raises(ValueError, match="probabilities in"):
        fit_robust_reward(mdp, [SegmentPreference(seg, seg, "a")], [1.5])
    with pytest.raises(ValueError, match=r"preference 0: segments a and b have 1 and 2 steps"):
        fit_robust_reward(mdp, [SegmentPreference(seg, longer, "a")])
    with pytest.raises(ValueError, match="the MDP has"):
        segment_features(mdp, Segment((0, 99), (0,)))
