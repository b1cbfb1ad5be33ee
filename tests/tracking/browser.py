"""A headless Chromium that a test drives like a person: open an address, click a link or a button,
read the page. One fresh profile per `Browser` (its local storage starts empty, as a new reviewer's
browser), driven over the DevTools protocol; `websockets` comes with Prefect."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect


class Browser:
    """Headless Chromium with a fresh profile, one page; a context manager that ends it."""

    def __init__(self, chromium: str, timeout_s: float = 120.0):
        self.timeout_s, self._calls = timeout_s, 0
        self._profile = Path(tempfile.mkdtemp(prefix="netadapt-chromium-"))
        self._process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
             f"--user-data-dir={self._profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port_file, deadline = self._profile / "DevToolsActivePort", time.monotonic() + timeout_s
            while not (port_file.exists() and port_file.read_text().strip()):
                assert self._process.poll() is None and time.monotonic() < deadline, "chromium did not start"
                time.sleep(0.2)
            port = port_file.read_text().split()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
                page = next(t for t in json.load(answer) if t["type"] == "page")
            self._socket = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_socket", None) is not None:
            self._socket.close()
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _call(self, method: str, **params: object) -> dict:
        self._calls += 1
        self._socket.send(json.dumps({"id": self._calls, "method": method, "params": params}))
        while True:  # events of the page come in between; the answer carries the call's id
            message = json.loads(self._socket.recv(timeout=self.timeout_s))
            if message.get("id") == self._calls:
                assert "error" not in message, (method, message["error"])
                return message["result"]

    def js(self, expression: str) -> object:
        """The value of a JavaScript expression in the page."""
        result = self._call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def wait_for(self, expression: str) -> object:
        """The first truthy value of `expression`, polled while the page loads (fails after `timeout_s`)."""
        deadline = time.monotonic() + self.timeout_s
        while not (value := self.js(expression)):
            assert time.monotonic() < deadline, f"waited {self.timeout_s:.0f} s for {expression}: {self.text()[:1500]}"
            time.sleep(0.5)
        return value

    def open(self, url: str) -> None:
        """Go to `url` as if typed in the address bar (a new hash on the same page keeps its scripts' state)."""
        self._call("Page.navigate", url=url)

    def text(self) -> str:
        """The page's visible text."""
        return str(self.js("document.body ? document.body.innerText : ''"))

    def click(self, selector: str, text: str) -> None:
        """Click the element matching CSS `selector` whose text is `text`, once the page shows it."""
        elements = f"[...document.querySelectorAll({json.dumps(selector)})]"
        find = f"{elements}.find(e => e.textContent.trim() === {json.dumps(text)})"
        self.wait_for(f"{find} !== undefined")
        self.js(f"{find}.click()")

    def location(self) -> str:
        return str(self.js("location.href"))
