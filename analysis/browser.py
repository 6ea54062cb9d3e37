"""Open a dashboard in headless Chromium with the network off: console errors, requests, a screenshot.

Talks the DevTools protocol over a pipe (``--remote-debugging-pipe``: commands on fd 3, replies
on fd 4, each a JSON text ended by a NUL byte), so it needs nothing but the browser: no
websocket client, no driver binary.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from trainable.errors import UserError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Without the background-networking flags Chromium keeps trying to reach Google's hosts.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-pipe")


class PageReport(NamedTuple):
    errors: list[str]  # uncaught exceptions, console.error calls, error log entries
    requests: list[str]  # every URL the page asked for (file: and data: only, when it works offline)
    evaluated: Any  # the value of the ``evaluate`` expression once the page was ready
    screenshot: bytes | None


def find_browser() -> str | None:
    explicit = os.environ.get("CGAN_STUDY_BROWSER")
    if explicit:
        return explicit
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int) -> None:
        self.write_fd, self.read_fd = write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for reply in self._read(deadline):
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                    return reply.get("result", {})
                self.events.append(reply)

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.events.extend(self._read(deadline, quiet=True))

    def _read(self, deadline: float, quiet: bool = False) -> list[dict[str, Any]]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if quiet:
                return []
            raise TimeoutError("the browser did not answer in time")
        ready, _, _ = select.select([self.read_fd], [], [], remaining)
        if not ready:
            return []
        chunk = os.read(self.read_fd, 1 << 20)
        if not chunk:
            raise RuntimeError("the browser closed its DevTools pipe (it crashed or could not start)")
        self.buffer += chunk
        *messages, self.buffer = self.buffer.split(b"\0")
        return [json.loads(m) for m in messages if m]


@contextlib.contextmanager
def _browser(executable: str) -> Iterator[_Pipe]:
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    # Move the child's ends above 2..4 first, so the dup2 onto 3 and 4 cannot clobber each other.
    child_in = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
    child_out = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
    for fd in (to_browser_r, from_browser_w):
        os.close(fd)
    profile = tempfile.mkdtemp(prefix="cgan-study-browser-")
    actions = [(os.POSIX_SPAWN_DUP2, child_in, 3), (os.POSIX_SPAWN_DUP2, child_out, 4),
               (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    try:
        pid = os.posix_spawn(executable, [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                             os.environ, file_actions=actions, setsid=True)
    except OSError as exc:
        raise UserError(f"cannot start {executable}: {exc}") from None
    finally:
        os.close(child_in)
        os.close(child_out)
    pipe = _Pipe(to_browser_w, from_browser_r)
    try:
        yield pipe
    finally:
        with contextlib.suppress(Exception):
            pipe.send("Browser.close", timeout=5)
        for _ in range(50):
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, 9)
            os.waitpid(pid, 0)
        os.close(to_browser_w)
        os.close(from_browser_r)
        shutil.rmtree(profile, ignore_errors=True)


def _errors(events: list[dict[str, Any]], session: str) -> tuple[list[str], list[str]]:
    errors, requests = [], []
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console." + params["type"] + ": " +
                          " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append("log: " + params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            requests.append(params.get("request", {}).get("url", "")[:80])
    return errors, requests


# Installed before any script of the page runs (and again in each new document): the page keeps its
# own list of uncaught errors and rejected promises, which open_page reads with its readiness.
_CATCH_ERRORS = """
window.__cgan_errors = [];
window.addEventListener('error', e => window.__cgan_errors.push(String((e.error && e.error.stack) || e.message)));
window.addEventListener('unhandledrejection', e => window.__cgan_errors.push('unhandled rejection: ' + String(e.reason)));
"""
_STATE = "({ready: !!(document.body && document.body.dataset.ready === '1'), errors: window.__cgan_errors || []})"


def open_page(html: str | Path, *, evaluate: str = "null", screenshot: bool = True, width: int = 1400,
              height: int = 1000, full_page: bool = False, timeout: float = 60.0,
              executable: str | None = None) -> PageReport:
    """Load ``html`` offline, wait until its script marks ``body[data-ready]``, then evaluate
    ``evaluate`` (a JavaScript expression, awaited) and take a screenshot."""
    executable = executable or find_browser()
    if not executable:
        raise UserError("no Chromium found (install Debian's 'chromium' package, or set CGAN_STUDY_BROWSER)")
    url = Path(html).resolve().as_uri()
    with _browser(executable) as pipe:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Runtime.enable", "Log.enable", "Network.enable", "Page.enable"):
            pipe.send(method, session=session)
        pipe.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1,
                                                       "uploadThroughput": -1}, session=session)
        pipe.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=session)
        pipe.send("Page.addScriptToEvaluateOnNewDocument", {"source": _CATCH_ERRORS}, session=session)
        pipe.send("Page.navigate", {"url": url}, session=session, timeout=timeout)
        deadline = time.monotonic() + timeout
        caught: list[str] = []
        while True:
            state = pipe.send("Runtime.evaluate", {"expression": _STATE, "returnByValue": True},
                              session=session).get("result", {}).get("value") or {}
            caught = list(state.get("errors") or [])
            if state.get("ready"):
                break
            errors, _ = _errors(pipe.events, session)
            if errors or caught or time.monotonic() > deadline:
                break  # the page's script failed before it finished: report what was seen
            pipe.pump(0.2)
        pipe.pump(0.5)  # let plotly finish drawing
        value = pipe.send("Runtime.evaluate", {"expression": evaluate, "returnByValue": True, "awaitPromise": True},
                          session=session, timeout=timeout)
        if "exceptionDetails" in value:
            raise RuntimeError(f"evaluate failed: {value['exceptionDetails'].get('text')}")
        image = None
        if screenshot:
            params: dict[str, Any] = {"format": "png"}
            if full_page:
                size = pipe.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
                params.update(clip={"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1},
                              captureBeyondViewport=True)
            image = base64.b64decode(pipe.send("Page.captureScreenshot", params, session=session,
                                               timeout=timeout)["data"])
        pipe.pump(0.1)
        errors, requests = _errors(pipe.events, session)
        # DevTools' own exception events come with more detail, but one thrown while the page's first
        # script ran was sometimes never sent (the broken-page test failed so twice in one day, once
        # after waiting 60 s): the page's own listener has it then.
        return PageReport(errors or caught, requests, value.get("result", {}).get("value"), image)
