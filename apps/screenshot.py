"""`python -m apps.screenshot`: render the page after one generation into docs/images/app.png.

Starts the app on a free local port, opens ``/?example=N`` (the page drafts that example on load) in
headless Chromium driven over the DevTools protocol (a pipe; no extra Python package), waits until the
draft and the image are shown, and saves a full-page screenshot. Chromium runs with every host but
127.0.0.1 unresolvable and records every request the page makes; the script prints any outside address
the page tried to reach (there should be none).
Needs a Chromium binary (Debian: ``apt-get install -y chromium``). Takes the app's pipeline flags:

    python -m apps.screenshot --mode grounded --example 0 --out docs/images/app.png
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import apps  # noqa: F401  (offline environment)

log = logging.getLogger(__name__)

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str:
    """Path of a Chromium-family browser, or a clear error saying how to install one."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no Chromium found: install it (Debian/Ubuntu: `apt-get install -y chromium`)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _local(url: str) -> bool:
    return re.match(r"(https?|wss?)://(127\.0\.0\.1|localhost)(:\d+)?(/|$)", url) is not None


def outside_urls(urls: Sequence[str]) -> list[str]:
    """The URLs that point anywhere but this machine (data:, blob: and about: are local too).

    >>> outside_urls(["http://127.0.0.1:5/x", "data:image/png;base64,AA", "https://fonts.googleapis.com/css"])
    ['https://fonts.googleapis.com/css']
    """
    return sorted({u for u in urls if re.match(r"(https?|wss?)://", u) and not _local(u)})


class _Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (fd 3/4): no extra packages."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._tmp = tempfile.TemporaryDirectory(prefix="rag_report_chromium_")
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        # Move the child's ends above 3/4 first so the dup2 calls below cannot clobber each other.
        hi_r, hi_w = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 100), fcntl.fcntl(res_w, fcntl.F_DUPFD, 100)

        def child_fds() -> None:
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [
                find_browser(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                f"--user-data-dir={self._tmp.name}",
                # Every host but this machine is unresolvable: the page cannot reach out even if it tried.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=child_fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in (cmd_r, res_w, hi_r, hi_w):
            os.close(fd)
        self._out, self._in = os.fdopen(cmd_w, "wb"), os.fdopen(res_r, "rb")
        self._next_id, self._buf = 0, b""
        self.requested: list[str] = []

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._out.write(json.dumps(msg).encode() + b"\0")
        self._out.flush()
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            reply = self._read()
            if reply.get("method") == "Network.requestWillBeSent":
                self.requested.append(reply["params"]["request"]["url"])
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise TimeoutError(f"no reply to {method} within {self.timeout_s} s")

    def _read(self) -> dict:
        while b"\0" not in self._buf:
            chunk = os.read(self._in.fileno(), 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # noqa: BLE001 - it may already be gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._tmp.cleanup()


#: The page is ready when the draft is filled, the preview has loaded and no component is pending.
READY_JS = """(() => {
  const t = document.querySelector('#draft textarea');
  const img = document.querySelector('#preview img');
  const busy = document.querySelector('.generating, .pending, .eta-bar');
  return !!(t && t.value.length > 0 && img && img.complete && img.naturalWidth > 0 && !busy);
})()"""


def capture(url: str, out: Path, *, width: int = 1400, timeout_s: float = 240.0) -> list[str]:
    """Open ``url``, wait until the page shows a draft, save a full-page PNG to ``out``.

    Returns the outside URLs the page asked for (there should be none).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    browser = _Browser(timeout_s)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.call("Network.enable", session=session)
        browser.call("Page.enable", session=session)
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        browser.call("Page.navigate", {"url": url}, session)
        deadline = time.monotonic() + timeout_s
        while True:
            ready = browser.call("Runtime.evaluate", {"expression": READY_JS, "returnByValue": True}, session)
            if ready.get("result", {}).get("value") is True:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the page at {url} showed no draft within {timeout_s:.0f} s")
            time.sleep(0.5)
        time.sleep(1.0)  # let fonts and layout settle after the last update
        size = browser.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": int(size["height"]) + 8, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        time.sleep(0.5)
        shot = browser.call("Page.captureScreenshot", {"format": "png"}, session)
        out.write_bytes(base64.b64decode(shot["data"]))
        return outside_urls(browser.requested)
    finally:
        browser.close()


def main(argv: Sequence[str] | None = None) -> int:
    from apps.gradio_app import build_parser, launch_app, parse_args

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--out", default="docs/images/app.png")
    extra.add_argument("--example", type=int, default=0, help="index of the example drafted on load")
    extra.add_argument("--width", type=int, default=1400, help="browser window width (the height fits the page)")
    extra.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the draft")
    if argv is None:
        argv = sys.argv[1:]
    if "-h" in argv or "--help" in argv:
        extra.print_help()
        build_parser().print_help()
        return 0
    own, rest = extra.parse_known_args(argv)
    serve, config = parse_args([*rest, "--port", str(free_port()), "--quiet"])
    from apps.ui import build_app
    from rag_report.pipeline import ReportPipeline

    app = build_app(ReportPipeline(config, progress=False), extra_llms=serve.extra_llms, concurrency=serve.concurrency)
    url = launch_app(app, serve, block=False)
    try:
        outside = capture(f"{url}?example={own.example}", Path(own.out), width=own.width, timeout_s=own.timeout)
    finally:
        app.close()
    print(json.dumps({"screenshot": own.out, "outside_urls": outside}))
    if outside:
        log.warning("the page tried to reach outside addresses: %s", outside)
    return 0


if __name__ == "__main__":
    sys.exit(main())
