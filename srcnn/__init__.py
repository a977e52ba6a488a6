"""SRCNN super-resolution: `srcnn.load()` opens a shipped or trained model (see `srcnn.api`)."""


def load(model=None, scale=None, tile=512):
    """`srcnn.api.load`: imported on first use, so `import srcnn` stays light."""
    from srcnn.api import load as _load

    return _load(model, scale, tile)
