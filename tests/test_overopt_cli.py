"""``rewardlab overopt`` end to end on tiny models: reports, curves, the generation cache, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.models.reward_model import RewardModel
from rewardlab.sampling.best_of_n import best_of_n_kl

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def reward_dirs(tiny_encoder_dir, tmp_path_factory):
    """Four tiny reward models with differently seeded heads: a gold and three proxies."""
    root = tmp_path_factory.mktemp("rewards")
    dirs = []
    for seed in range(4):
        torch.manual_seed(seed)
        dirs.append(RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64).save_pretrained(root / f"rm{seed}"))
    return dirs


def run(args: list[str]):
    return CliRunner().invoke(app, ["overopt", *args])


def said(result, text: str) -> bool:
    """``text`` in the output, ignoring where rich wrapped the line (even inside a long path)."""
    return "".join(text.split()) in "".join(result.output.split())


def common(policy, gold, out, n=6, prompts=3) -> list[str]:
    return [
        "--policy", str(policy), "--gold", str(gold), "--output", str(out), "--n", str(n),
        "--prompts", str(prompts), "--max-new-tokens", "6", "--chunk", "4", "--precision", "fp32",
    ]  # fmt: skip


def test_overopt_writes_curves_and_reuses_its_cache(tiny_decoder_dir, reward_dirs, tmp_path):
    gold, *proxies = reward_dirs
    out = tmp_path / "study"
    result = run([*common(tiny_decoder_dir, gold, out), "--proxy", str(proxies[0])])
    assert result.exit_code == 0, result.output
    assert said(result, "; 0 prompts read from")
    for name in ("overopt.json", "overopt.md", "overopt.png"):
        assert (out / name).is_file(), name
    assert (out / "overopt.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "overopt.json").read_text())
    assert report["n_values"] == [1, 2, 3, 4, 5, 6]
    assert report["kl"] == pytest.approx([best_of_n_kl(k) for k in range(1, 7)])
    assert set(report["curves"]) == {"proxy", "gold (oracle)"}
    proxy, oracle = report["curves"]["proxy"], report["curves"]["gold (oracle)"]
    # N=1 is the plain mean of the gold rewards whatever picks the reply; the oracle's gold curve only rises
    assert proxy["gold"][0] == pytest.approx(oracle["gold"][0])
    assert all(b >= a - 1e-9 for a, b in zip(oracle["gold"], oracle["gold"][1:], strict=False))
    assert all(b >= a - 1e-9 for a, b in zip(proxy["proxy"], proxy["proxy"][1:], strict=False))
    assert all(g <= o + 1e-9 for g, o in zip(proxy["gold"], oracle["gold"], strict=True))
    assert report["replies"]["count"] == 18
    cache_files = list((out / "generations").glob("generations-*.jsonl"))
    assert len(cache_files) == 1
    lines = cache_files[0].read_text().splitlines()
    assert len(lines) == 1 + 3 and len(json.loads(lines[1])["samples"]) == 6
    assert "| 4 | " in (out / "overopt.md").read_text()
    # the KL-optimal tilt of the same samples: the plain mean at KL 0, never below best-of-N at the
    # KL the best-of-N estimator's weights have on the 6 samples (log 6 at N = 6: both the maximum)
    tilt = report["kl_optimal"]
    assert tilt["rule"] == "proxy"
    assert tilt["proxy"][0] == pytest.approx(proxy["proxy"][0]) and tilt["gold"][0] == pytest.approx(proxy["gold"][0])
    assert all(t >= b - 1e-9 for t, b in zip(tilt["proxy_at_sample_kl"], proxy["proxy"], strict=True))
    assert tilt["proxy_at_sample_kl"][-1] == pytest.approx(proxy["proxy"][-1])
    assert "KL-constrained optimum (proxy)" in (out / "overopt.md").read_text()

    # another set of reward models: the replies are read back, not sampled again
    stamp = cache_files[0].stat().st_mtime_ns
    out2 = tmp_path / "study2"
    again = run([*common(tiny_decoder_dir, gold, out2), "--cache-dir", str(out / "generations"), *_proxies(proxies)])
    assert again.exit_code == 0, again.output
    assert said(again, "; 3 prompts read from")
    assert cache_files[0].stat().st_mtime_ns == stamp
    ensemble = json.loads((out2 / "overopt.json").read_text())
    assert set(ensemble["curves"]) == {
        "proxy 1 (single)", "ensemble mean", "ensemble wco", "ensemble uwo", "gold (oracle)",
    }  # fmt: skip
    # the single proxy saw the same replies, so its curves are those of the one-proxy run
    assert ensemble["curves"]["proxy 1 (single)"]["gold"] == pytest.approx(proxy["gold"])
    wco, mean = ensemble["curves"]["ensemble wco"]["proxy"], ensemble["curves"]["ensemble mean"]["proxy"]
    assert wco[0] <= mean[0] + 1e-9  # the worst member never scores above the mean

    # a different seed is a different cache entry
    third = run([*common(tiny_decoder_dir, gold, out), "--proxy", str(proxies[0]), "--seed", "1"])
    assert third.exit_code == 0, third.output
    assert len(list((out / "generations").glob("generations-*.jsonl"))) == 2


def _proxies(paths) -> list[str]:
    return [arg for p in paths for arg in ("--proxy", str(p))]


def test_samples_do_not_depend_on_the_other_prompts(tiny_decoder_dir, reward_dirs, tmp_path):
    """Seeded per prompt: the first two prompts get the same replies in a 2-prompt and a 3-prompt run."""
    gold, proxy = reward_dirs[:2]
    replies = []
    for count in (2, 3):
        out = tmp_path / f"p{count}"
        result = run([*common(tiny_decoder_dir, gold, out, prompts=count), "--proxy", str(proxy)])
        assert result.exit_code == 0, result.output
        (cache,) = (out / "generations").glob("*.jsonl")
        rows = [json.loads(line) for line in cache.read_text().splitlines()[1:]]
        replies.append([r["samples"] for r in rows[:2]])
    assert replies[0] == replies[1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n", "0"], "n must be a positive integer"),
        (["--temperature", "0"], "temperature must be positive"),
        (["--prompts", "0"], "--prompts must be at least 1"),
        (["--split", "dev"], "--split must be all, train, validation or test"),
        (["--precision", "fp16"], "precision must be auto, bf16 or fp32"),
    ],
)
def test_bad_options_exit_2_with_one_line(tiny_decoder_dir, reward_dirs, tmp_path, extra, message):
    gold, proxy = reward_dirs[:2]
    result = run([*common(tiny_decoder_dir, gold, tmp_path / "x"), "--proxy", str(proxy), *extra])
    assert result.exit_code == 2, result.output
    assert said(result, message)
    assert "Traceback" not in result.output


def test_missing_models_and_damaged_cache_are_named(tiny_decoder_dir, reward_dirs, tmp_path):
    gold, proxy = reward_dirs[:2]
    missing = tmp_path / "nowhere"
    result = run([*common(tiny_decoder_dir, missing, tmp_path / "x"), "--proxy", str(proxy)])
    assert result.exit_code == 2
    assert said(result, f"gold {missing}: no such folder")
    result = run(common(tiny_decoder_dir, gold, tmp_path / "x"))
    assert result.exit_code == 2
    assert said(result, "give at least one proxy")

    out = tmp_path / "damaged"
    assert run([*common(tiny_decoder_dir, gold, out, n=2, prompts=2), "--proxy", str(proxy)]).exit_code == 0
    (cache,) = (out / "generations").glob("*.jsonl")
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join([*lines[:2], '{"index": 1, "samples": "oops"}']) + "\n")
    result = run([*common(tiny_decoder_dir, gold, out, n=2, prompts=2), "--proxy", str(proxy)])
    assert result.exit_code == 2
    assert said(result, f'{cache}:3: field "samples"')
