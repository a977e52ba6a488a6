"""SRCNN super-resolution: `srcnn.load()` opens a shipped or trained model (`srcnn.api.load`).

`import srcnn` stays light: `srcnn.load` is `srcnn.api.load` itself, imported on first use (a module
`__getattr__`, PEP 562), so `help(srcnn.load)` shows its own signature and documentation, and its warnings
point at the caller's line.
"""


def __getattr__(name: str):
    if name == "load":
        from srcnn.api import load

        return load
    raise AttributeError(f"module 'srcnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "load"])
