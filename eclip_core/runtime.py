"""The process-wide runtime setup every entry point shares: nothing reaches the network.

:func:`setup_offline` is called first by every command-line entry point (``rag-report``,
``python -m eclip_core.train``, ``python -m apps.gradio_app``, ``python -m eval.report_gen``, the
benchmarks) and by ``import apps``, before the Hugging Face libraries or gradio are imported (some read
these variables at import). Values the caller set already are kept, so a user may still opt in to
something explicitly.

>>> env = {"HF_HUB_OFFLINE": "0"}
>>> setup_offline(env) is env, env["HF_HUB_OFFLINE"], env["TRANSFORMERS_OFFLINE"]
(True, '0', '1')
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: What keeps the libraries off the network: the Hugging Face hub, transformers and evaluate offline, no
#: hub telemetry, no gradio analytics.
OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
}


def setup_offline(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set :data:`OFFLINE_ENV` in ``env`` (default ``os.environ``) where not set already; returns ``env``.

    Idempotent and cheap (imports nothing), so it can run at the top of any entry point.
    """
    env = os.environ if env is None else env
    for key, value in OFFLINE_ENV.items():
        env.setdefault(key, value)
    return env


#: OpenMP threads that wait for work sleep instead of spinning (GNU OpenMP, which torch's CPU builds use).
#: The same threads split the same work, so the numbers do not change; but a spinning thread holds its core,
#: so on a 2-core machine a data-loader worker or another job waits behind it. Measured on the default
#: bundle's training (docs/perf/cold_start.md): the same weights for a fifth of the CPU seconds on a busy
#: machine. Only for long CPU jobs (building, training): a small model's latency may prefer spinning.
BUILD_ENV: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}


def setup_build_threads(env: MutableMapping[str, str] | None = None) -> bool:
    """Set :data:`BUILD_ENV` in ``env`` (default ``os.environ``) where not set already, for a process about to
    build or train. It takes effect only where torch (its OpenMP runtime) is not loaded yet, which this
    returns (True: effective or ``env`` is not this process's).

    >>> env = {"OMP_WAIT_POLICY": "ACTIVE"}
    >>> setup_build_threads(env), env["OMP_WAIT_POLICY"]
    (True, 'ACTIVE')
    """
    import sys

    target = os.environ if env is None else env
    for key, value in BUILD_ENV.items():
        target.setdefault(key, value)
    return env is not None or "torch" not in sys.modules


def offline_env(base: MutableMapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with the offline settings and ``extra`` added, for a
    child process (``extra`` overrides; the offline settings only fill gaps).

    >>> offline_env({}, OMP_NUM_THREADS="1")["OMP_NUM_THREADS"], offline_env({})["HF_HUB_OFFLINE"]
    ('1', '1')
    """
    env = dict(os.environ if base is None else base)
    setup_offline(env)
    env.update(extra)
    return env
