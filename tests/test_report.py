"""The README's results table is generated from metrics/, never typed by hand."""

from __future__ import annotations

import json
from pathlib import Path

from srcnn.shipping import report

PROJECT = Path(__file__).resolve().parents[1]


def test_readme_results_block_matches_committed_metrics():
    readme = (PROJECT / "README.md").read_text()
    fresh = report.block(PROJECT / "metrics/evaluate.json", PROJECT / "params.yaml")
    assert report.current_block(readme) == fresh, "README results are stale: run `make results`"


def test_render_puts_paper_numbers_beside_ours():
    metrics = {
        "valid": {
            "images": 4,
            "psnr_bicubic": 30.7946,
            "psnr_srcnn": 31.8601,
            "psnr_gain": 1.0655,
            "ssim_bicubic": 0.8757,
            "ssim_srcnn": 0.8999,
        },
        "Set5": {
            "images": 5,
            "psnr_bicubic": 33.6614,
            "psnr_srcnn": 35.493,
            "psnr_gain": 1.8316,
            "ssim_bicubic": 0.9299,
            "ssim_srcnn": 0.9454,
        },
    }
    table = report.render(metrics, scale=2)
    assert "| Set5 | 5 | 33.66 / 0.9299 | 35.49 / 0.9454 | +1.83 dB | 33.66 / 0.9299 | 36.34 | 36.66 |" in table
    assert "| valid | 4 | 30.79 / 0.8757 | 31.86 / 0.8999 | +1.07 dB | — | — | — |" in table
    # At another scale the ×2 paper figures do not apply.
    assert "36.34" not in report.render(metrics, scale=3)


def test_a_16_bit_set_is_said_to_be_at_65535():
    scores = {"psnr_bicubic": 65.87, "psnr_srcnn": 61.25, "psnr_gain": -4.62, "ssim_bicubic": 0.99, "ssim_srcnn": 0.98}
    eight = report.render({"valid": {"images": 2, **scores}}, scale=2)
    sixteen = report.render({"valid": {"images": 2, "peak": 65535, **scores}}, scale=2)
    assert "65535" not in eight
    assert sixteen.splitlines()[0] == (
        "×2, from `metrics/evaluate.json` by `make results`; valid: 16-bit, PSNR at 65535 and SSIM with data "
        "range 65535:"
    )
    assert sixteen.splitlines()[1:] == eight.splitlines()[1:]


def test_write_and_check(tmp_path):
    metrics = tmp_path / "evaluate.json"
    metrics.write_text(
        json.dumps(
            {
                "valid": {
                    "images": 1,
                    "psnr_bicubic": 30.0,
                    "psnr_srcnn": 31.0,
                    "psnr_gain": 1.0,
                    "ssim_bicubic": 0.8,
                    "ssim_srcnn": 0.9,
                }
            }
        )
    )
    params = tmp_path / "params.yaml"
    params.write_text("scale: 2\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.BEGIN}\nold\n{report.END}\noutro\n")
    args = ["--metrics", str(metrics), "--params", str(params), "--readme", str(readme)]
    assert report.main([*args, "--check"]) == 1
    assert report.main([*args, "--write"]) == 0
    assert report.main([*args, "--check"]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "| valid | 1 | 30.00 / 0.8000" in text
