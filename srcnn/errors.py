"""The one base class of errors caused by the user's input, so every entry point reports them the same way.

A `UserError` message already names the file, key or URL and what is allowed; the stage scripts
(`srcnn.stage.run_stage`) print it as one line, `error in stage <name>: <message>`, with no traceback.
Subclasses live with the code that raises them (`ParamsError`, `ImageError`, `DownloadError`,
`PatchFileError`); this module imports nothing, so depending on it costs a stage no reruns.
"""


class UserError(Exception):
    """Bad input (a file, a param, a server's answer); the message says which and what is allowed."""


class UsageError(ValueError):
    """Bad arguments or an unusable model (`srcnn upscale`, `srcnn.load`): nothing is processed (exit code 2)."""


def exception_chain(err: BaseException | None) -> list[BaseException]:
    """`err`, then what it was raised from or during (its cause, else its context), down to the innermost: the
    real reason when a library wraps one error in others."""
    chain: list[BaseException] = []
    while err is not None and all(err is not seen for seen in chain):  # a cycle ends the walk
        chain.append(err)
        err = err.__cause__ or err.__context__
    return chain


def is_interrupt(err: BaseException | None) -> bool:
    """Whether `err` is a KeyboardInterrupt (Ctrl-C), or an error raised because of one: its cause or context,
    e.g. the `ImportError: initialization failed` a C extension makes of a Ctrl-C during its import."""
    return any(isinstance(e, KeyboardInterrupt) for e in exception_chain(err))
