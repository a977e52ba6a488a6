"""A review-ready report: what the workspace changed against a baseline revision, as one Markdown file with its
pictures, to paste into a pull request (what DVC's CML does in CI).

python -m srcnn.evaluation.review --baseline main -o report    # make report (BASELINE=main by default)

Writes OUT/report.md with: `dvc params diff --md`, `dvc metrics diff --md` (every evaluated set, training
and export figures), the training curves of both revisions in one picture (OUT/curves.png) and, for every
crop of the evaluate stage, the baseline's and the workspace's HR | bicubic | SRCNN pictures (OUT/crops/).
The folder is replaced as a whole. Both revisions' curves and crops are read from git (they are committed,
`cache: false` in dvc.yaml) and from the workspace, so nothing is recomputed.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from srcnn.errors import UserError
from srcnn.outputs import atomic_dir

CURVES = Path("metrics/train_log/plots/metrics")  # DVCLive's TSVs: {train,eval}/{loss,psnr}.tsv
CROPS = Path("metrics/crops")


class ReviewError(UserError, ValueError):
    """The baseline or the repository cannot be compared; the message says which and why."""


def _dvc(repo: Path, *args: str) -> str:
    dvc = Path(sys.executable).with_name("dvc")
    command = [str(dvc) if dvc.exists() else "dvc", *args]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise ReviewError(f"`dvc {' '.join(args)}` failed: {lines[-1] if lines else result.returncode}")
    return result.stdout.strip()


def _git_show(repo: Path, rev: str, path: Path) -> bytes | None:
    """The file at `path` in revision `rev`, or None when it is not there."""
    result = subprocess.run(["git", "show", f"{rev}:{path.as_posix()}"], cwd=repo, capture_output=True)
    return result.stdout if result.returncode == 0 else None


def check_baseline(repo: Path, rev: str) -> str:
    """The baseline's commit id; ReviewError naming `rev` when git does not know it."""
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=repo, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise ReviewError(f"--baseline {rev}: not a revision of the git repository at {repo}")
    return result.stdout.strip()


def read_curve(data: bytes | None) -> pd.DataFrame | None:
    return None if data is None else pd.read_csv(io.BytesIO(data), sep="\t")


def plot_curves(repo: Path, rev: str, path: Path) -> bool:
    """Loss and PSNR per epoch, train and validation, baseline dashed and workspace solid; False when neither
    revision has curves."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    drawn = False
    for ax, metric, unit in ((axes[0], "loss", "MSE on Y in [0, 1]"), (axes[1], "psnr", "dB, patches")):
        for split, colour in (("train", "tab:blue"), ("eval", "tab:orange")):
            tsv = CURVES / split / f"{metric}.tsv"
            workspace = (repo / tsv).read_bytes() if (repo / tsv).is_file() else None
            for label, data, style in ((rev, _git_show(repo, rev, tsv), "--"), ("workspace", workspace, "-")):
                frame = read_curve(data)
                if frame is not None and len(frame):
                    ax.plot(frame["step"] + 1, frame[metric], style, color=colour, label=f"{split}, {label}")
                    drawn = True
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{metric} ({unit})")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    if drawn:
        fig.savefig(path, metadata={"Software": None})  # no version stamp: the same curves, the same bytes
    plt.close(fig)
    return drawn


def write_report(repo: Path, rev: str, out: Path) -> Path:
    """OUT/report.md and its pictures, comparing the workspace at `repo` with revision `rev`. ReviewError when
    `rev` is unknown or DVC cannot diff."""
    repo = repo.resolve()
    commit = check_baseline(repo, rev)
    params = _dvc(repo, "params", "diff", rev, "--md")
    metrics = _dvc(repo, "metrics", "diff", rev, "--md")
    with atomic_dir(out) as tmp:
        lines = [
            f"# SRCNN: the workspace against `{rev}` ({commit[:10]})",
            "",
            "## Params",
            "",
            params or f"No params changed since `{rev}`.",
            "",
            "## Metrics",
            "",
            metrics or f"No metric changed since `{rev}`.",
            "",
            "## Training curves",
            "",
        ]
        if plot_curves(repo, rev, tmp / "curves.png"):
            lines += [f"![Loss and PSNR per epoch: `{rev}` dashed, workspace solid](curves.png)", ""]
        else:
            lines += ["Neither revision has training curves.", ""]
        lines += ["## HR | bicubic | SRCNN crops", ""]
        names = sorted({p.name for p in (repo / CROPS).glob("*.png")})
        if names:
            (tmp / "crops").mkdir()
            lines += [f"| image | `{rev}` | workspace |", "|---|---|---|"]
        for name in names:
            shutil.copyfile(repo / CROPS / name, tmp / "crops" / name)
            baseline = _git_show(repo, rev, CROPS / name)
            cell = "(not in the baseline)"
            if baseline is not None:
                (tmp / "crops" / f"baseline_{name}").write_bytes(baseline)
                cell = f"![{name} at {rev}](crops/baseline_{name})"
            lines.append(f"| {Path(name).stem} | {cell} | ![{name} in the workspace](crops/{name}) |")
        if not names:
            lines.append("The workspace has no crops (run `dvc repro evaluate`).")
        (tmp / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("-o", "--output", type=Path, default=Path("report"), help="output folder (default: report)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the project (default: the current folder)")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.repo, args.baseline, args.output)
    except ReviewError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {path} (paste it, with its pictures, into the pull request)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
