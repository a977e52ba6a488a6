"""Scoring a trained network on whole images (PSNR/SSIM against bicubic), its pictures, and the review report."""
