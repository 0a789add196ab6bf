"""Image preference pairs (the file format, the simulated annotator) and the image reward model trained from them."""

import json
import math
from pathlib import Path

import pytest
import torch
from scipy.stats import spearmanr

from rewardlab.diffusion.classifier import ImageNet
from rewardlab.diffusion.image_pairs import (
    ImagePairs,
    preference_labels,
    read_image_pairs,
    simulate_pairs,
    write_image_pairs,
)
from rewardlab.diffusion.images import digits, write_png
from rewardlab.diffusion.known_rewards import ink_reward
from rewardlab.diffusion.reward_model import ImageRewardConfig, image_reward, train_image_reward

LEVEL = 1 / 127.5  # one step of an 8-bit PNG in [-1, 1]


pytestmark = pytest.mark.usefixtures("one_thread")


def random_images(n: int, seed: int, size: int = 8) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_write_then_read_round_trip(tmp_path: Path):
    chosen, rejected = random_images(3, 0), random_images(3, 1)
    path = write_image_pairs(tmp_path / "pairs", chosen, rejected, torch.tensor([0, 3, 9]), ["ann", "bo", "ann"])
    pairs = read_image_pairs(path)
    assert pairs.chosen.shape == (3, 1, 8, 8)
    assert (pairs.chosen - chosen).abs().max() <= LEVEL / 2 + 1e-6  # 8-bit rounding, nothing else
    assert (pairs.rejected - rejected).abs().max() <= LEVEL / 2 + 1e-6
    assert pairs.conditions.tolist() == [0, 3, 9] and pairs.users == ["ann", "bo", "ann"]
    plain = read_image_pairs(write_image_pairs(tmp_path / "plain", chosen, rejected))
    assert plain.conditions is None and plain.users is None


def test_paths_are_relative_to_the_file_and_blank_lines_skipped(tmp_path: Path):
    (tmp_path / "data" / "img").mkdir(parents=True)
    write_png(tmp_path / "data" / "img" / "a.png", torch.ones(1, 4, 4))
    write_png(tmp_path / "data" / "img" / "b.png", -torch.ones(1, 4, 4))
    line = json.dumps({"chosen": "img/a.png", "rejected": "img/b.png"})
    (tmp_path / "data" / "p.jsonl").write_text(f"{line}\n\n{line}\n")
    pairs = read_image_pairs(tmp_path / "data" / "p.jsonl")
    assert len(pairs) == 2 and pairs.chosen.min() == 1.0 and pairs.rejected.max() == -1.0


def make_folder(tmp_path: Path) -> Path:
    """A folder with images a.png (4×4), b.png (4×4) and big.png (5×5); the test writes the lines."""
    for name, size in (("a", 4), ("b", 4), ("big", 5)):
        write_png(tmp_path / f"{name}.png", torch.zeros(1, size, size))
    (tmp_path / "junk.png").write_text("not a png")
    return tmp_path / "pairs.jsonl"


GOOD = '{"chosen": "a.png", "rejected": "b.png"}'


@pytest.mark.parametrize(
    ("second_line", "field", "words"),
    [
        ('{"chosen": "a.png", "rejected": ', "", "not valid JSON"),
        ('["a.png", "b.png"]', "", "JSON object"),
        ('{"rejected": "b.png"}', "chosen", "missing"),
        ('{"chosen": "a.png"}', "rejected", "missing"),
        ('{"chosen": 3, "rejected": "b.png"}', "chosen", "PNG path"),
        ('{"chosen": "a.png", "rejected": "gone.png"}', "rejected", "no such file"),
        ('{"chosen": "junk.png", "rejected": "b.png"}', "chosen", "not a readable image"),
        ('{"chosen": "a.png", "rejected": "big.png"}', "rejected", "differs from the first"),
        ('{"chosen": "a.png", "rejected": "b.png", "condition": 2}', "condition", "on every line or on none"),
        ('{"chosen": "a.png", "rejected": "b.png", "user": "u"}', "user", "on every line or on none"),
    ],
)
def test_each_bad_line_is_named_by_file_line_and_field(tmp_path: Path, second_line: str, field: str, words: str):
    path = make_folder(tmp_path)
    path.write_text(f"{GOOD}\n{second_line}\n")
    with pytest.raises(ValueError) as error:
        read_image_pairs(path)
    message = str(error.value)
    assert message.startswith(f"{path}:2: {field}") and words in message


@pytest.mark.parametrize(("value", "field"), [("2.5", "condition"), ('"3"', "condition"), ("true", "condition"),
                                              ("-1", "condition"), ("7", "user")])  # fmt: skip
def test_bad_condition_or_user_values(tmp_path: Path, value: str, field: str):
    path = make_folder(tmp_path)
    path.write_text(json.dumps({"chosen": "a.png", "rejected": "b.png"})[:-1] + f', "{field}": {value}}}\n')
    with pytest.raises(ValueError, match=rf"^{path}:1: {field}: must be"):
        read_image_pairs(path)


def test_empty_file_and_missing_file(tmp_path: Path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no pairs"):
        read_image_pairs(tmp_path / "empty.jsonl")
    with pytest.raises(ValueError, match="no such image-pairs file"):
        read_image_pairs(tmp_path / "absent.jsonl")


def test_a_failed_write_leaves_no_folder_and_keeps_an_old_one(tmp_path: Path):
    with pytest.raises(ValueError, match="one label per pair"):
        write_image_pairs(tmp_path / "new", random_images(2, 0), random_images(2, 1), torch.tensor([1]))
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == []
    old = write_image_pairs(tmp_path / "old", random_images(2, 0), random_images(2, 1))
    with pytest.raises(ValueError, match="one shape"):
        write_image_pairs(tmp_path / "old", random_images(2, 0), random_images(2, 1, size=4))
    assert len(read_image_pairs(old)) == 2


def test_preference_labels_follow_bradley_terry():
    """r(a) - r(b) = 0.5 at T = 0.5: P(a ≻ b) = σ(1) = 0.7311; at T = 0 a wins exactly when r(a) > r(b)."""
    n = 40_000
    labels = preference_labels(torch.full((n,), 0.5), torch.zeros(n), 0.5, torch.Generator().manual_seed(0))
    assert labels.float().mean().item() == pytest.approx(1 / (1 + math.exp(-1)), abs=0.01)
    exact = preference_labels(torch.tensor([1.0, -1.0]), torch.zeros(2), 0.0)
    assert exact.tolist() == [True, False]
    with pytest.raises(ValueError, match="temperature"):
        preference_labels(torch.zeros(1), torch.zeros(1), -1.0)


def test_simulated_noiseless_annotator_puts_the_brighter_image_first():
    a, b = random_images(50, 0), random_images(50, 1)
    pairs = simulate_pairs(a, b, ink_reward, 0.0)
    assert (ink_reward(pairs.chosen) >= ink_reward(pairs.rejected)).all()
    assert torch.equal(torch.sort(torch.cat([pairs.chosen, pairs.rejected]).flatten(1), 0).values,
                       torch.sort(torch.cat([a, b]).flatten(1), 0).values)  # fmt: skip


def ink_pairs(n: int, temperature: float, seed: int) -> tuple[ImagePairs, torch.Tensor]:
    """``n`` pairs of real digits labelled by ink at ``temperature``, and 300 held-out digits."""
    images, _ = digits()
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=g)
    held_out, pool = images[order[:300]], images[order[300:]]
    a, b = pool[torch.randint(len(pool), (n,), generator=g)], pool[torch.randint(len(pool), (n,), generator=g)]
    return simulate_pairs(a, b, ink_reward, temperature, g), held_out


def recovery(model: ImageNet, held_out: torch.Tensor) -> tuple[float, float]:
    """Accuracy of the learned reward against the noiseless true order over every pair of held-out images,
    and the Spearman correlation of learned and true reward there."""
    learned, true = image_reward(model)(held_out), ink_reward(held_out)
    i, j = torch.triu_indices(len(held_out), len(held_out), 1)
    accuracy = ((learned[i] > learned[j]) == (true[i] > true[j])).float().mean().item()
    return accuracy, spearmanr(learned.numpy(), true.numpy()).statistic


@pytest.mark.parametrize("objective", ["bradley_terry", "davidson"])
def test_a_model_trained_on_simulated_pairs_recovers_the_known_ranking(objective: str, tmp_path: Path):
    """Noisy labels (T = 0.02, around a sixth of ink's spread between digits) of 400 pairs are enough to
    learn the ordering of unseen digits; the model saved and loaded scores the same."""
    pairs, held_out = ink_pairs(400, 0.02, seed=0)
    config = ImageRewardConfig(objective=objective, epochs=6, validation_fraction=0.2, augment=False)
    model, report = train_image_reward(pairs, config)
    accuracy, rho = recovery(model, held_out)
    assert accuracy > 0.85 and rho > 0.9, (accuracy, rho)
    assert report["validation_pairs"] == 80 and report["train_pairs"] == 320
    assert report["validation_accuracy"] > 0.7 and report["objective"] == objective
    model.save(tmp_path / "rm")
    assert torch.allclose(image_reward(ImageNet.load(tmp_path / "rm"))(held_out), image_reward(model)(held_out))


def test_the_reward_model_learns_nothing_from_random_labels():
    """The same data with labels at T = 1000 (coin flips): the learned order is no better than chance on
    unseen digits — the check above measures the labels, not the architecture."""
    pairs, held_out = ink_pairs(400, 1000.0, seed=0)
    model, _ = train_image_reward(pairs, ImageRewardConfig(epochs=6, augment=False))
    accuracy, _ = recovery(model, held_out)
    assert accuracy < 0.75


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"objective": "plackett_luce"}, "not pairwise"),
        ({"objective": "maxmin_em"}, "needs user"),
        ({"objective": "gpm"}, "'preference' head"),
        ({"objective": "no_such_objective"}, "no_such_objective"),
        ({"objective_options": {"nope": 1}}, "has no option 'nope'"),
        ({"objective_options": {"label_smoothing": 0.7}}, "label_smoothing"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
    ],
)
def test_bad_settings_are_refused_before_training(changes: dict, words: str):
    pairs = ImagePairs(random_images(4, 0), random_images(4, 1))
    with pytest.raises(ValueError, match=words):
        train_image_reward(pairs, ImageRewardConfig(**changes))
