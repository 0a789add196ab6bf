"""Pluralistic reward models (issue 33): the user models' maths, the four objectives against
hand-computed values, and the papers' claims on synthetic users with a known true reward."""

from __future__ import annotations

import functools
import math
from itertools import combinations, pairwise

import pytest
import torch

from rewardlab.objectives import get_objective, register_objective
from rewardlab.objectives.bradley_terry import bradley_terry_loss
from rewardlab.objectives.pluralistic import maxmin_em_loss, micro_loss, pal_loss, vpl_loss
from rewardlab.objectives.registry import dummy_batch
from rewardlab.rewards.pluralistic import USER_MODELS, latent_kl, user_model, user_rewards

LN3 = math.log(3.0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tensors of a few hundred numbers: a second thread only adds synchronisation (and waiting, on a busy
    machine). Restored for the tests that follow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def softplus(x: float) -> float:
    """−log σ(−x) = log(1 + eˣ)."""
    return math.log1p(math.exp(x))


# user models


def test_user_model_rewards_hand_computed():
    """mixture: softmax([ln 3, 0]) = [¾, ¼], ¾·2 + ¼·(−2) = 1; latent: μ·φ = 1·0.5 + 2·(−0.25) + 0 = 0;
    routed: softmax(router [ln 3, 0] + offsets 0)·[2, −2] = 1, and offsets [−ln 3, 0] cancel the router:
    ½·2 − ½·2 = 0."""
    mixture = user_rewards("mixture", torch.tensor([[2.0, -2.0]]), torch.tensor([[LN3, 0.0]]))
    latent = user_rewards("latent", torch.tensor([[0.5, -0.25]]), torch.tensor([[1.0, 2.0, -3.0, 5.0]]))
    outputs = torch.tensor([[2.0, -2.0, LN3, 0.0]])
    routed = user_rewards("routed", outputs, torch.tensor([[0.0, 0.0]]))
    cancelled = user_rewards("routed", outputs, torch.tensor([[-LN3, 0.0]]))
    assert mixture.tolist() == pytest.approx([1.0], abs=1e-6)
    assert latent.tolist() == pytest.approx([0.0], abs=1e-6)
    assert routed.tolist() == pytest.approx([1.0], abs=1e-6) and cancelled.tolist() == pytest.approx([0.0], abs=1e-6)


def test_population_rows_hand_computed():
    """mixture: weights [½, ½] and [¾, ¼] average to [⅝, ⅜], the row is their log;
    latent: μ [1, 0] and [3, 0] with σ = 1 → mean [2, 0], σ̄² = 1 + Var μ = [1 + 1, 1 + 0] → log σ̄ = [½ ln 2, 0];
    routed: zero offsets whatever the users' are."""
    mixture = user_model("mixture").population(torch.tensor([[0.0, 0.0], [LN3, 0.0]]))
    latent = user_model("latent").population(torch.tensor([[1.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0]]))
    routed = user_model("routed").population(torch.tensor([[1.0, -2.0]]))
    assert mixture.tolist() == pytest.approx([math.log(5 / 8), math.log(3 / 8)], abs=1e-6)
    assert latent.tolist() == pytest.approx([2.0, 0.0, 0.5 * math.log(2), 0.0], abs=1e-6)
    assert routed.tolist() == [0.0, 0.0]


def test_laplace_fit_hand_computed():
    """Prior N(0, 1) (one user, μ = 0, σ = 1); pairs with Δφ = +1 and −1 cancel, so the MAP is z = 0,
    where p = ½ and H = 2·p(1 − p) + 1 = 1.5: the posterior σ² = 2/3, log σ = ½ ln(2/3).
    No pairs at all: the row is the population's."""
    fit = user_model("latent").fit
    table = torch.zeros(1, 2)
    row = fit(torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0], [1.0]]), table)
    assert row.tolist() == pytest.approx([0.0, 0.5 * math.log(2 / 3)], abs=1e-6)
    assert fit(torch.zeros(0, 1), torch.zeros(0, 1), table).tolist() == pytest.approx([0.0, 0.0], abs=1e-9)


def test_fit_without_evidence_stays_at_the_population():
    """Pairs whose outputs tie in every reward say nothing: the MAP is the prior's mode."""
    table = torch.tensor([[0.0, 0.0], [LN3, 0.0]])
    same = torch.ones(3, 2)
    assert user_model("mixture").fit(same, same, table).tolist() == pytest.approx(
        [math.log(5 / 8), math.log(3 / 8)], abs=1e-5
    )
    assert user_model("routed").fit(torch.ones(3, 4), torch.ones(3, 4), table).tolist() == pytest.approx(
        [0.0, 0.0], abs=1e-6
    )


def test_initial_tables_have_the_row_size_and_repeat_for_a_seed():
    for name, outputs, row in [("mixture", 3, 3), ("latent", 3, 6), ("routed", 6, 3)]:
        model = user_model(name)
        first = model.init(5, outputs, torch.Generator().manual_seed(1))
        assert first.shape == (5, row) == (5, model.row_size(outputs))
        assert torch.equal(first, model.init(5, outputs, torch.Generator().manual_seed(1)))


def test_bad_user_models_and_options_give_one_clear_error():
    with pytest.raises(ValueError, match=r"unknown user model 'tribal' \(known: mixture, latent, routed\)"):
        user_model("tribal")
    with pytest.raises(ValueError, match="a routed head has 2K outputs"):
        user_model("routed").row_size(3)
    with pytest.raises(ValueError, match=r"unknown user model 'tribal'"):
        register_objective("p1_test_unknown_users", head="users", users="tribal")(pal_loss)
    with pytest.raises(ValueError, match=r'users= \(a user model\) is set exactly when head is "users"'):
        register_objective("p1_test_no_users", head="users")(pal_loss)
    with pytest.raises(ValueError, match=r'users= \(a user model\) is set exactly when head is "users"'):
        register_objective("p1_test_reward_users", users="mixture")(bradley_terry_loss)
    for name, option in [("pal", "prototypes"), ("maxmin_em", "clusters"), ("vpl", "features"), ("micro", "heads")]:
        (problem,) = get_objective(name).check_values({option: 0})
        assert f"{option} (" in problem and "must be a positive integer (got 0)" in problem
    assert get_objective("vpl").check_values({"kl_weight": -1.0}) == [
        "objective.args: kl_weight must be ≥ 0 (got -1.0) (objective 'vpl')"
    ]


def test_registry_declares_the_user_model_and_sizes_the_dummy_rows():
    """Every pluralistic objective needs ``user`` rows (so annotator ids), and its dummy batch's rows
    have the user model's row size: K logits, 2D for a Gaussian, K offsets for 2K routed outputs."""
    expected = {"pal": ("mixture", 2, 2), "maxmin_em": ("mixture", 2, 2), "vpl": ("latent", 8, 16)}
    expected["micro"] = ("routed", 4, 2)
    for name, (users, outputs, row) in expected.items():
        objective = get_objective(name)
        assert objective.head == "users" and objective.users == users and "user" in objective.required
        assert objective.outputs({}) == outputs and objective.check_values({}) == []
        assert dummy_batch(objective, {})["user"].shape == (2, row)
    assert get_objective("bradley_terry").users is None and set(USER_MODELS) == {"mixture", "latent", "routed"}


# objectives, hand-computed


def test_pal_hand_computed():
    """Weights ½, ½ and Δ = [1, 0]: gap ½, −log σ(½) = log(1 + e^−½) = 0.474077;
    weights ¾, ¼ and Δ = [2, −2]: gap 1, −log σ(1) = 0.313262."""
    out = pal_loss(torch.tensor([[1.0, 0.0], [2.0, -2.0]]), torch.zeros(2, 2), torch.tensor([[0.0, 0.0], [LN3, 0.0]]))
    assert out.losses.tolist() == pytest.approx([softplus(-0.5), softplus(-1.0)], abs=1e-6)
    assert out.losses.tolist() == pytest.approx([0.474077, 0.313262], abs=1e-6)
    assert out.metrics["accuracy"].tolist() == [1.0, 1.0]


def test_maxmin_em_hand_computed():
    """Linear in the weights: ½·(−log σ(1)) + ½·(−log σ(0)) = ½·0.313262 + ½·0.693147 = 0.503204;
    ¾·(−log σ(2)) + ¼·(−log σ(−2)) = ¾·0.126928 + ¼·2.126928 = 0.626928."""
    out = maxmin_em_loss(
        torch.tensor([[1.0, 0.0], [2.0, -2.0]]), torch.zeros(2, 2), torch.tensor([[0.0, 0.0], [LN3, 0.0]])
    )
    assert out.losses.tolist() == pytest.approx([0.503204, 0.626928], abs=1e-6)


def test_maxmin_em_moves_a_user_to_the_cluster_that_fits():
    """The loss is linear in the weights, so its gradient in the logits points to the cluster with the
    smaller Bradley-Terry loss: cluster 0 orders the pair right (Δ = 2), cluster 1 wrong (Δ = −2)."""
    user = torch.zeros(1, 2, requires_grad=True)
    maxmin_em_loss(torch.tensor([[2.0, -2.0]]), torch.zeros(1, 2), user).losses.sum().backward()
    assert user.grad[0, 0] < 0 < user.grad[0, 1]


def test_vpl_hand_computed():
    """σ = e^−30 makes z = μ: μ·Δφ = 1·0.5 + 2·(−0.25) = 0, −log σ(0) = ln 2, with β = 0 no KL.
    Δφ = 0 gives ln 2 for any z; the KL of μ = [1, 0], log σ = [0, ln 2] is
    ½[(1 + 1 − 1 − 0) + (0 + 4 − 1 − 2 ln 2)] = 1.306853, so β = 0.1 adds 0.130685: 0.823832."""
    sharp = torch.tensor([[1.0, 2.0, -30.0, -30.0]])
    out = vpl_loss(torch.tensor([[0.5, -0.25]]), torch.zeros(1, 2), sharp, features=2, kl_weight=0.0)
    assert out.losses.item() == pytest.approx(math.log(2), abs=1e-6)
    wide = torch.tensor([[1.0, 0.0, 0.0, math.log(2)]])
    assert latent_kl(wide).item() == pytest.approx(1.306853, abs=1e-6)
    out = vpl_loss(torch.ones(1, 2), torch.ones(1, 2), wide, features=2, kl_weight=0.1, samples=3)
    assert out.losses.item() == pytest.approx(0.823832, abs=1e-6)


def test_vpl_gradient_reaches_the_spread_through_the_samples():
    """Reparameterised draws: log σ gets a gradient from the likelihood term even with β = 0."""
    torch.manual_seed(0)
    user = torch.tensor([[1.0, 0.0, 0.0, 0.0]], requires_grad=True)
    vpl_loss(torch.tensor([[1.0, -1.0]]), torch.zeros(1, 2), user, features=2, kl_weight=0.0).losses.sum().backward()
    assert user.grad[0, 2:].abs().sum() > 0


def test_micro_hand_computed():
    """w = softmax(0) = [½, ½], Δ = [1, 0]: −log(½σ(1) + ½σ(0)) = −log(½·0.731059 + ¼) = −log(0.615529) = 0.485273;
    router [ln 9, 0] and [0, 0] average to [ln 3, 0], so w = [¾, ¼], Δ = [2, −2]:
    −log(¾σ(2) + ¼σ(−2)) = −log(0.690399) = 0.370487; offsets [−ln 3, 0] bring w back to [½, ½]: −log ½."""
    chosen = torch.tensor([[1.0, 0.0, 0.0, 0.0], [2.0, -2.0, math.log(9), 0.0], [2.0, -2.0, math.log(9), 0.0]])
    rejected = torch.zeros(3, 4)
    user = torch.tensor([[0.0, 0.0], [0.0, 0.0], [-LN3, 0.0]])
    out = micro_loss(chosen, rejected, user)
    assert out.losses.tolist() == pytest.approx([0.485273, 0.370487, math.log(2)], abs=1e-5)


def test_shapes_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match=r"pal needs \(B, 2\) user rows, one per pair \(got \(2, 3\)\)"):
        pal_loss(torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"micro needs \(B, 6\) outputs per reply"):
        micro_loss(torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 2), heads=3)


# the papers' claims on synthetic users

TRUE_REWARD = torch.tensor([2.0, -1.0, 1.5, 1.0])
"""Group A's reward w·x; group B's flips the sign of the first (largest) coordinate."""


def group_rewards() -> torch.Tensor:
    flipped = TRUE_REWARD.clone()
    flipped[0] = -flipped[0]
    return torch.stack([TRUE_REWARD, flipped])


def labelled_pairs(weights: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One pair of x ~ N(0, I) per row of ``weights`` (the labeller's true reward), chosen by Bradley-Terry."""
    a, b = torch.randn(2, *weights.shape, generator=generator)
    first = torch.bernoulli(torch.sigmoid(((a - b) * weights).sum(-1)), generator=generator).bool()
    return torch.where(first[:, None], a, b), torch.where(first[:, None], b, a)


def two_groups(seed: int, users: int = 20, minority: int = 6, pairs: int = 40, one_group: bool = False):
    """20 users, 70/30 in two groups, 40 Bradley-Terry-labelled pairs each; ``one_group``: all agree."""
    generator = torch.Generator().manual_seed(seed)
    group = torch.tensor([0] * (users - minority) + [1] * minority)
    if one_group:
        group = torch.zeros_like(group)
    annotator = torch.arange(users).repeat_interleave(pairs)
    chosen, rejected = labelled_pairs(group_rewards()[group][annotator], generator)
    return group, annotator, chosen, rejected, generator


@functools.cache
def train_linear(name: str, seed: int, one_group: bool = False, steps: int = 400, **options):
    """A linear head (outputs = x @ W, as many as the objective needs) and the user table, full-batch
    Adam on the objective; torch's global generator (VPL's draws) seeded too. Cached: tests only read it
    (and draw their held-out pairs from a generator of their own)."""
    torch.manual_seed(seed)
    group, annotator, chosen, rejected, generator = two_groups(seed, one_group=one_group)
    objective = get_objective(name)
    width = objective.outputs(options)
    heads = (0.5 * torch.randn(4, width, generator=generator)).requires_grad_()
    table = user_model(objective.users).init(len(group), width, generator).requires_grad_()
    optimiser = torch.optim.Adam([heads, table], lr=0.05)
    for _ in range(steps):
        batch = {"chosen": chosen @ heads, "rejected": rejected @ heads, "user": table[annotator]}
        loss = objective(batch, **options).losses.mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return group, heads.detach(), table.detach()


def train_bradley_terry(seed: int, one_group: bool = False, steps: int = 400) -> torch.Tensor:
    """One linear reward for everybody on the same pairs: the single-reward baseline."""
    _, _, chosen, rejected, _ = two_groups(seed, one_group=one_group)
    weights = torch.zeros(4, requires_grad=True)
    optimiser = torch.optim.Adam([weights], lr=0.05)
    for _ in range(steps):
        loss = bradley_terry_loss(chosen @ weights, rejected @ weights).losses.mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return weights.detach()


def adjusted_rand_index(labels: list[int], truth: list[int]) -> float:
    """Hubert & Arabie's ARI from the pair-counting contingency table: 1 for the same partition."""
    pairs = list(combinations(range(len(labels)), 2))
    same_labels = [labels[i] == labels[j] for i, j in pairs]
    same_truth = [truth[i] == truth[j] for i, j in pairs]
    both = sum(a and b for a, b in zip(same_labels, same_truth, strict=True))
    expected = sum(same_labels) * sum(same_truth) / len(pairs)
    best = (sum(same_labels) + sum(same_truth)) / 2
    return (both - expected) / (best - expected) if best != expected else 1.0


def held_out_accuracy(score, weights: torch.Tensor, generator: torch.Generator, count: int = 2000) -> float:
    """How often ``score`` (x → reward) orders fresh pairs as the true reward ``weights`` does."""
    a, b = torch.randn(2, count, 4, generator=generator)
    return ((score(a) - score(b)) * ((a - b) @ weights) > 0).float().mean().item()


@pytest.mark.parametrize("name", ["maxmin_em", "pal"])
def test_mixture_recovers_every_users_group_and_serves_the_minority(name):
    """MaxMin-RLHF's and PAL's claim: K = 2 rewards find the two groups (the argmax of each user's weights
    is its true group up to relabelling, ARI = 1), and the minority's own reward orders its pairs far
    better than one Bradley-Terry reward fitted to everybody, which follows the majority (0.96-0.97
    against 0.67 here)."""
    group, heads, table = train_linear(name, seed=0)
    generator = torch.Generator().manual_seed(100)
    assignment = table.argmax(dim=-1).tolist()
    assert adjusted_rand_index(assignment, group.tolist()) == 1.0
    minority_row = table[group == 1][0]
    minority = held_out_accuracy(
        lambda x: user_rewards("mixture", x @ heads, minority_row), group_rewards()[1], generator
    )
    pooled = train_bradley_terry(seed=0)
    single = held_out_accuracy(lambda x: x @ pooled, group_rewards()[1], generator)
    assert minority > 0.9 and minority - single > 0.2, (minority, single)


@pytest.mark.parametrize(("name", "options"), [("micro", {"heads": 2}), ("vpl", {"features": 4, "kl_weight": 1 / 40})])
def test_routed_and_latent_users_separate_the_groups(name, options):
    """MiCRo's and VPL's claim on the same two groups: the users' rows tell the groups apart (micro: the
    argmax of the router offsets; vpl: the side of each μ along the line between the groups' mean μ;
    ARI = 1 both) and a minority user's own reward orders the minority's held-out pairs (> 0.85).
    VPL's β = 1/40 is 1/n_u, the exact ELBO for 40 pairs a user."""
    group, heads, table = train_linear(name, seed=0, **options)
    generator = torch.Generator().manual_seed(100)
    users = get_objective(name).users
    if users == "routed":
        assignment = table.argmax(dim=-1)
    else:
        mean = table[:, : table.shape[1] // 2]
        direction = mean[group == 1].mean(dim=0) - mean[group == 0].mean(dim=0)
        assignment = ((mean - mean.mean(dim=0)) @ direction > 0).long()
    assert adjusted_rand_index(assignment.tolist(), group.tolist()) == 1.0
    row = table[group == 1][0]
    own = held_out_accuracy(lambda x: user_rewards(users, x @ heads, row), group_rewards()[1], generator)
    assert own > 0.85, own


def test_fit_on_a_few_pairs_of_a_known_group_recovers_its_weights():
    """PAL's few-shot claim: with the heads frozen, 20 pairs of a new user give the weights of the user's
    group. For 10 new users of each group: every one's largest weight is on the group's cluster, and
    their mean weight there is within 0.1 of the group's training users' (the prior shrinks a little
    toward the population, 0.44/0.56 here)."""
    group, heads, table = train_linear("pal", seed=0)
    generator = torch.Generator().manual_seed(100)
    for which in (0, 1):
        trained = torch.softmax(table[group == which], dim=-1).mean(dim=0)
        cluster = trained.argmax().item()
        fitted = []
        for _ in range(10):
            chosen, rejected = labelled_pairs(group_rewards()[which].expand(20, 4), generator)
            fitted.append(torch.softmax(user_model("mixture").fit(chosen @ heads, rejected @ heads, table), dim=-1))
        weights = torch.stack(fitted)
        assert (weights.argmax(dim=-1) == cluster).all(), weights
        assert abs(weights[:, cluster].mean() - trained[cluster]) < 0.1, (weights[:, cluster].mean(), trained)


def test_population_score_is_the_one_reward_when_everybody_agrees():
    """All 20 users share one true reward: the pluralistic population row orders held-out pairs as
    that reward does to within 0.03 of a plain Bradley-Terry fit on the same pairs (0.988 and 0.984 here)."""
    _, heads, table = train_linear("pal", seed=1, one_group=True)
    generator = torch.Generator().manual_seed(100)
    population = user_model("mixture").population(table)
    plural = held_out_accuracy(lambda x: user_rewards("mixture", x @ heads, population), TRUE_REWARD, generator)
    weights = train_bradley_terry(seed=1, one_group=True)
    single = held_out_accuracy(lambda x: x @ weights, TRUE_REWARD, generator)
    assert plural > 0.93 and abs(plural - single) < 0.03, (plural, single)


def test_latent_posterior_concentrates_as_pairs_accumulate():
    """VPL's claim that the latent is inferred from a user's pairs: with features φ = x and the prior of
    a two-group population, the Laplace posterior's mean σ shrinks monotonically with k (averaged over
    10 users: 1.22, 1.09, 0.81, 0.43 for k = 1, 4, 16, 64) and its mean's accuracy on the user's
    held-out pairs is higher with 64 pairs than with one (0.95 against 0.82)."""
    table = torch.cat([group_rewards(), torch.zeros(2, 4)], dim=-1)
    spreads, accuracies = [], []
    for k in (1, 4, 16, 64):
        spread, accuracy = 0.0, 0.0
        for seed in range(10):
            generator = torch.Generator().manual_seed(seed)
            truth = group_rewards()[seed % 2]
            chosen, rejected = labelled_pairs(truth.expand(k, 4), generator)
            row = user_model("latent").fit(chosen, rejected, table)
            spread += row[4:].exp().mean().item() / 10
            accuracy += held_out_accuracy(lambda x, row=row: user_rewards("latent", x, row), truth, generator) / 10
        spreads.append(spread)
        accuracies.append(accuracy)
    assert all(a > b for a, b in pairwise(spreads)), spreads
    assert accuracies[-1] > accuracies[0] + 0.1 and accuracies[-1] > 0.9, accuracies
