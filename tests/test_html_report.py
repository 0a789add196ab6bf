"""``eval.html``: the reliability bins by hand, a self-contained and escaped page, and what a real
headless browser shows of it."""

from __future__ import annotations

import dataclasses
import getpass
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from scipy.special import logit
from synthetic import synthetic_pairs, write_jsonl
from typer.testing import CliRunner

import rewardlab
from rewardlab.cli import app
from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.calibration import expected_calibration_error, preference_probabilities
from rewardlab.evaluate.html_report import reliability_bins, reliability_png, render_html
from rewardlab.evaluate.pairwise import PairwiseEval, summarise_scores
from rewardlab.evaluate.report import write_report
from rewardlab.models.reward_model import RewardModel

torch.set_num_threads(1)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None, reason="needs a headless Chromium: apt-get install -y chromium (Debian package)"
)


def fake_eval(n: int = 120, *, subsets: bool = True, validation: bool = True, seed: int = 0) -> PairwiseEval:
    rng = np.random.default_rng(seed)
    pairs = [
        PreferencePair(
            prompt=f"question {i}",
            chosen="c" * int(rng.integers(5, 400)),
            rejected="r" * int(rng.integers(5, 400)),
            subset=("chat", "safety", "<b>hard</b>")[i % 3] if subsets else None,
        )
        for i in range(n)
    ]
    chosen, rejected = rng.normal(0.6, 1.0, n), rng.normal(0.0, 1.0, n)
    val = (rng.normal(0.6, 1.0, 40), rng.normal(0.0, 1.0, 40)) if validation else None
    return summarise_scores(pairs, chosen.tolist(), rejected.tolist(), precision="fp32", validation_scores=val)


def test_reliability_bins_by_hand():
    """Gaps with p = σ(gap) of 0.5, 0.72, 0.96 and 0.04, in 10 bins over confidence [0.5, 1]:

    - p = 0.5: confidence 0.5, bin 0, half right;
    - p = 0.72: confidence 0.72, bin ⌊0.22 · 20⌋ = 4, right;
    - p = 0.96 and 0.04: confidence 0.96, bin ⌊0.46 · 20⌋ = 9, one right and one wrong: accuracy 0.5.
    ECE = ¼ · |0.5 − 0.5| + ¼ · |1 − 0.72| + ½ · |0.5 − 0.96| = 0.07 + 0.23 = 0.30.
    """
    gaps = logit(np.array([0.5, 0.72, 0.96, 0.04]))
    b = reliability_bins(gaps, np.zeros(4), bins=10)
    assert b.count.tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 0, 2]
    np.testing.assert_allclose(b.confidence[[0, 4, 9]], [0.5, 0.72, 0.96])
    np.testing.assert_allclose(b.accuracy[[0, 4, 9]], [0.5, 1.0, 0.5])
    assert np.isnan(b.accuracy[1]) and np.isnan(b.confidence[1])
    np.testing.assert_allclose(b.edges, 0.5 + np.arange(10) / 20)
    assert b.ece() == pytest.approx(0.30)


@pytest.mark.parametrize("temperature", [1.0, 0.3, 4.0])
def test_reliability_bins_give_the_reported_ece(temperature):
    rng = np.random.default_rng(3)
    chosen, rejected = rng.normal(0.5, 2, 500), rng.normal(0, 2, 500)
    p = preference_probabilities(chosen, rejected, temperature)
    bins = reliability_bins(chosen, rejected, temperature=temperature, bins=7)
    assert bins.ece() == pytest.approx(expected_calibration_error(p, bins=7), abs=1e-12)
    assert bins.count.sum() == 500


def images(page: str) -> list[str]:
    return re.findall(r'<img alt="(\w+) plot" src="data:image/png;base64,', page)


def test_page_is_self_contained_escaped_and_has_every_plot():
    model, data = "runs/<script>alert(1)</script>", "data & more.jsonl"
    page = render_html(fake_eval(), model, data)
    assert images(page) == ["reliability", "margins", "histogram", "subsets", "length"]
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "data &amp; more.jsonl" in page
    assert "&lt;b&gt;hard&lt;/b&gt;" in page and "<b>hard</b>" not in page  # subset names in the numbers
    # nothing is fetched from elsewhere: every src is a data URL, no links to style sheets or scripts
    assert set(re.findall(r'src="(\w+):', page)) == {"data"} and "<link" not in page
    assert not re.search(r"(?:https?:)?//[\w.-]+\.\w+/", page.replace("http://www.w3.org", ""))
    assert "after temperature scaling" in page


def test_page_without_subsets_leaves_that_plot_out():
    page = render_html(fake_eval(subsets=False), "m", "d", "")
    assert images(page) == ["reliability", "margins", "histogram", "length"]


def test_page_when_every_pair_is_a_tie_has_numbers_but_no_plots(tmp_path):
    pairs = [PreferencePair(prompt="q", chosen="a", rejected="b", tie=True)] * 3
    result = summarise_scores(pairs, [1.0, 2.0, 3.0], [0.0, 0.0, 0.0], precision="fp32")
    page = write_report(result, tmp_path, "m", "d")[2].read_text()
    assert images(page) == [] and "every pair is labelled a tie" in page
    assert "pairs labelled as ties (left out of accuracy): 3" in page


def test_write_report_writes_four_files_atomically(tmp_path):
    paths = write_report(fake_eval(), tmp_path / "r", "m", "d")
    assert [p.name for p in paths] == ["eval.json", "eval.md", "eval.html", "predictions.jsonl"]
    names = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert names == ["eval.html", "eval.json", "eval.md", "predictions.jsonl"]  # no temp files
    assert (tmp_path / "r" / "eval.html").read_text().startswith("<!DOCTYPE html>")


def test_eval_cli_writes_the_html_beside_json_and_markdown(tiny_encoder_dir, tmp_path):
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64).save_pretrained(tmp_path / "model")
    rows = [f'{{"prompt": "q{i}", "chosen": "{"yes " * (i + 1)}", "rejected": "no"}}' for i in range(8)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(app, ["eval", str(model), str(data), "--report", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "eval.html" in result.output
    assert images((tmp_path / "r" / "eval.html").read_text()) == ["reliability", "margins", "histogram", "length"]


def chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={cwd / 'profile'}"]
    if os.name == "posix" and (os.geteuid() == 0 or getpass.getuser() == "root"):
        flags.append("--no-sandbox")  # Chromium refuses to start its sandbox as root
    done = subprocess.run([CHROMIUM, *flags, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def screenshot(page: Path, out: Path) -> np.ndarray:
    chromium(f"--screenshot={out}", "--window-size=1300,1600", page.as_uri(), cwd=out.parent)
    return (imread(out)[..., :3] * 255).round().astype(np.uint8)


def distinct_colours(region: np.ndarray) -> int:
    return len(np.unique(region.reshape(-1, 3), axis=0))


def hued_pixels(region: np.ndarray, hue: str) -> int:
    """Pixels clearly blue (blue channel 40 above red) or red (red 40 above blue): the plots'
    chosen and rejected colours, blended or not; text, grey lines and page background have neither."""
    r, b = region[..., 0].astype(int), region[..., 2].astype(int)
    return int(((b - r > 40) if hue == "blue" else (r - b > 40)).sum())


@NEEDS_CHROMIUM
def test_headless_chromium_shows_the_plots(tmp_path):
    """The page as a browser draws it: the title and heading in the DOM, and the plot area full of
    the plots' colours. The same page with its images removed is the control: the checks must
    fail on it, or they would not prove that the images were drawn."""
    write_report(fake_eval(), tmp_path, "runs/default/model", "default")
    page = tmp_path / "eval.html"
    dom = chromium("--dump-dom", page.as_uri(), cwd=tmp_path).stdout
    assert "<title>Reward model evaluation: runs/default/model</title>" in dom
    assert "<h1>Reward model evaluation</h1>" in dom and dom.count("<img") == 5

    shown = screenshot(page, tmp_path / "shown.png")
    blank_page = tmp_path / "blank.html"
    blank_page.write_text(re.sub(r"<img [^>]*>", "", page.read_text()))
    blank = screenshot(blank_page, tmp_path / "blank.png")

    plots = shown[150:1100]  # below the heading and summary, where the 2 × 2 grid of plots lies
    assert distinct_colours(plots) > 1500, "the plot area is nearly uniform: the images did not render"
    # the histogram's and the scatter's blue and red, as drawn by matplotlib
    assert hued_pixels(plots, "blue") > 5000 and hued_pixels(plots, "red") > 5000
    # a text-only page shows neither: so the checks above see the images, not the text
    assert distinct_colours(blank[150:1100]) < 600  # anti-aliased text only
    assert hued_pixels(blank, "blue") < 50 and hued_pixels(blank, "red") < 50


PROBE = (
    "<script>const lefts = new Set([...document.querySelectorAll('figure')].map(f => f.getBoundingClientRect().left));"
    "document.title = `scroll=${document.documentElement.scrollWidth} inner=${innerWidth} columns=${lefts.size}`"
    "</script></body>"
)


@NEEDS_CHROMIUM
@pytest.mark.parametrize(("width", "columns"), [(1280, 2), (500, 1)])
def test_the_page_fits_a_phone_and_a_desktop(tmp_path, width, columns):
    """Laid out by Chromium (a copy of the page with a measuring script): no sideways scrolling of
    the page at either width (wide tables scroll inside their box), the plots in two columns on a
    desktop and one on a phone (500 px: the narrowest window headless Chromium lays out)."""
    write_report(fake_eval(), tmp_path, "runs/default/model", "default")
    probe = tmp_path / "probe.html"
    probe.write_text((tmp_path / "eval.html").read_text().replace("</body>", PROBE))
    dom = chromium(f"--window-size={width},900", "--dump-dom", probe.as_uri(), cwd=tmp_path).stdout
    scroll, inner, shown = map(int, re.search(r"<title>scroll=(\d+) inner=(\d+) columns=(\d+)</title>", dom).groups())
    assert inner == width and scroll <= inner and shown == columns


def test_training_report_plots_the_temperature_scaled_curve(tiny_encoder_dir, tmp_path):
    """``rewardlab train`` fits a temperature on the validation pairs, so its eval.html shows the
    reliability curve after scaling as well (two curves in one plot: the page says which)."""
    data = write_jsonl(synthetic_pairs(80, seed=2), tmp_path / "pairs.jsonl")
    result = rewardlab.train(
        data=str(data),
        backbone=str(tiny_encoder_dir),
        output_dir=tmp_path / "run",
        max_steps=2,
        **{"precision": "fp32", "progress": False, "num_threads": 1, "model.max_length": 32},
    )
    page = (result.report_dir / "eval.html").read_text()
    assert images(page) == ["reliability", "margins", "histogram", "length"]
    assert "after temperature scaling (T = " in page and result.test.calibrated is not None


def test_reliability_plot_adds_the_scaled_curve_only_when_a_temperature_was_fitted():
    scaled = fake_eval()
    plain = dataclasses.replace(scaled, calibrated=None)
    assert reliability_png(plain) == reliability_png(dataclasses.replace(scaled, calibrated=None))  # deterministic
    assert reliability_png(scaled) != reliability_png(plain)
