"""Import TensorFlow and Keras with their C++ start-up lines kept off the terminal.

TensorFlow 2.21 prints `WARNING: All log messages before absl::InitializeLog() …` and oneDNN and
CPU-feature notes to stderr while it loads, and `TF_CPP_MIN_LOG_LEVEL` no longer silences them, so
every stage's log used to open with them. Import this module before `keras` or `tensorflow`: it
loads both with file descriptor 2 pointed at a temporary file, then puts stderr back. If the import
fails, what was captured is printed before the error (not after a Ctrl-C). `SRCNN_VERBOSE=1` shows everything.
"""

from __future__ import annotations

import os
import sys
import tempfile

if os.environ.get("SRCNN_VERBOSE") != "1" and "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Python-side TensorFlow logging
    sys.stderr.flush()
    _saved = os.dup(2)
    with tempfile.TemporaryFile() as _captured:
        os.dup2(_captured.fileno(), 2)
        try:
            import keras  # noqa: F401  (loads TensorFlow, its backend)
            import tensorflow  # noqa: F401
        except BaseException as _err:
            os.dup2(_saved, 2)
            from srcnn.errors import is_interrupt

            if not is_interrupt(_err):  # Ctrl-C: the caller's one line, not TensorFlow's start-up notes
                _captured.seek(0)
                sys.stderr.write(_captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(_saved, 2)
            os.close(_saved)
