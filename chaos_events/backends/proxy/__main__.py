"""`python -m chaos_events.backends.proxy`: the fault proxy as its own process (see `cli.py` for the flags)."""
from gevent import monkey

monkey.patch_all()  # before anything below imports socket, ssl or threading

import sys  # noqa: E402

from chaos_events.backends.proxy.cli import main  # noqa: E402

sys.exit(main(prog="python -m chaos_events.backends.proxy"))
