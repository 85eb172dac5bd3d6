"""How the command line ends: one line for what the user can fix, a traceback and a request for a report for a
bug, one line for Ctrl-C.

* :data:`USER_ERRORS` - lseg_nb's own error types (:class:`~lseg_nb.utils.errors.UserError`: bad input, missing
  downloads, a busy run folder, a diverged run) and the operating system's (``OSError``: missing files, full
  disks, permissions): the message as one line, exit 2.
* Ctrl-C: one line (a training run says the step it stopped at and that rerunning resumes), exit 130; SIGTERM is
  turned into the same exception, so temporary files are removed and a training run saves its step (exit 143).
* Anything else is a bug in lseg_nb: its traceback, then a request to report it with the command, exit 1.

``LSEG_NB_DEBUG=1`` re-raises every exception instead.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import traceback
from collections.abc import Callable

from lseg_nb.utils.errors import Interrupted, UserError, printable
from lseg_nb.utils.optional import MissingDependencyError

USER_ERRORS = (UserError, OSError, MissingDependencyError)
BUG_REPORT = "this is a bug in lseg_nb; please report it with the command and the traceback above"
SIGTERM_TEXT = "stopped by SIGTERM"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise Interrupted(SIGTERM_TEXT)


def run_command(cmd: str, run: Callable[[], object], argv: list[str]) -> int:
    """Run command ``cmd`` (``argv``: the whole command line, for the bug report) and return its exit code."""
    debug = os.environ.get("LSEG_NB_DEBUG") == "1"
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 must not crash a print
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt) if main_thread else None
    try:
        run()
    except KeyboardInterrupt as e:
        if debug:
            raise
        text = str(e).strip() or "interrupted (Ctrl-C); nothing more was written"
        print(f"lseg-nb {cmd}: {printable(text)}", file=sys.stderr)
        return 143 if text == SIGTERM_TEXT else 130
    except USER_ERRORS as e:
        if debug:
            raise
        text = " ".join((str(e).strip() or type(e).__name__).split())
        print(f"lseg-nb {cmd}: error: {printable(text)}", file=sys.stderr)
        print("(set LSEG_NB_DEBUG=1 for the full traceback)", file=sys.stderr)
        return 2
    except Exception:
        if debug:
            raise
        print(printable(traceback.format_exc()), file=sys.stderr, end="")
        command = " ".join(shlex.quote(printable(a)) for a in ["lseg-nb", *argv])
        print(f"lseg-nb {cmd}: {BUG_REPORT}: {command}", file=sys.stderr)
        return 1
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return 0
