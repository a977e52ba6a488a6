"""Preparing data: where HR images come from (sources, DIV2K, fetching, archives), image files (`io`), colour,
resizing, the degradation and training patches. Imports only `srcnn`'s base modules (errors, params, threads)."""
