"""The figures the papers published, each written once with its source: PSNR (dB) and SSIM on Y, shave = scale,
the literature's protocol (`docs/development.md`, "Conventions"); the tables print ours beside them.
"""

from __future__ import annotations

# PSNR (dB) on Y, shave = scale: SRCNN 9-5-5 from Dong et al., TPAMI 2016 (Set5, Set14) and as compiled in
# the VDSR paper (Kim et al., CVPR 2016: BSD100, Urban100); SRCNN 9-1-5 from Dong et al., ECCV 2014; bicubic
# as in those papers.
PAPER_SRCNN_955 = {
    "Set5": (36.66, 32.75, 30.49),
    "Set14": (32.45, 29.30, 27.50),
    "BSD100": (31.36, 28.41, 26.90),
    "Urban100": (29.50, 26.24, 24.52),
}
PAPER_SRCNN_915 = {("Set5", 2): 36.34, ("Set5", 3): 32.39, ("Set5", 4): 30.09}
# SSIM of the 9-5-5 and of bicubic, from the same sources (../shared/benchmarks/README.md lists them all).
PAPER_SRCNN_955_SSIM = {
    "Set5": (0.9542, 0.9090, 0.8628),
    "Set14": (0.9067, 0.8215, 0.7513),
    "BSD100": (0.8879, 0.7863, 0.7101),
    "Urban100": (0.8946, 0.7989, 0.7221),
}
PAPER_BICUBIC_SSIM = {
    "Set5": (0.9299, 0.8682, 0.8104),
    "Set14": (0.8687, 0.7736, 0.7019),
    "BSD100": (0.8431, 0.7384, 0.6674),
    "Urban100": (0.8403, 0.7349, 0.6577),
}
PRESETS = {"9-1-5": ("SRCNN 9-1-5", "ECCV 2014"), "9-5-5": ("SRCNN 9-5-5", "TPAMI 2016")}
# FSRCNN (56, 12, 4) trained on the 91 images alone (Dong, Loy, Tang, ECCV 2016; 37.00 / 33.16 / 30.71 with
# General-100 added), Set5 ×2 / ×3 / ×4.
PAPER_FSRCNN_T91 = {"Set5": (36.94, 33.06, 30.55)}
# ESPCN trained on the 91 images (Shi et al., CVPR 2016, Table 1: ×3 only; its ×4 and later rows are trained on
# ImageNet). Quoted as reimplementations quote it (yjn870/ESPCN-pytorch's README, "Paper (91)"): no copy of the
# paper's table was at hand to check it against.
PAPER_ESPCN_T91 = {"Set5": (None, 32.55, None)}
# The networks on the LR image, as the README's second table shows them: (arch, preset) → (our name, source)
LR_PRESETS = {
    ("fsrcnn", "56-12-4"): ("FSRCNN (56,12,4)", "ECCV 2016, T91"),
    ("espcn", "5-3-3 tanh"): ("ESPCN", "CVPR 2016, T91"),
}
PAPER_BICUBIC = {
    "Set5": (33.66, 30.39, 28.42),
    "Set14": (30.23, 27.54, 26.00),
    "BSD100": (29.56, 27.21, 25.96),
    "Urban100": (26.88, 24.46, 23.14),
}


def paper_figure(preset: str, name: str, scale: int, arch: str = "srcnn") -> float | None:
    """The published PSNR of network `preset` of `arch` on set `name` at `scale`; None where none is published
    (or none is written here)."""
    if arch == "fsrcnn":
        return PAPER_FSRCNN_T91.get(name, (None,) * 3)[scale - 2] if preset == "56-12-4" else None
    if arch == "espcn":
        return PAPER_ESPCN_T91.get(name, (None,) * 3)[scale - 2] if preset == "5-3-3 tanh" else None
    if arch != "srcnn":
        return None
    if preset == "9-5-5":
        return PAPER_SRCNN_955.get(name, (None,) * 3)[scale - 2]
    return PAPER_SRCNN_915.get((name, scale))
