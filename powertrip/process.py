"""Ending a process that used a Temporal client."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """Leave without interpreter teardown, once the work is done and reported.

    The Temporal SDK's Rust threads can outlive the event loop and abort the process while the
    interpreter finalizes ("PyGILState_Release ... finalizing", temporalio/sdk-python#300),
    turning a success into exit code 134: a job runner would report a failure that did not
    happen.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os._exit(code)
