"""Look at the MLflow UI the way a person does: a real ``mlflow ui`` and headless Chromium.

    python scripts/mlflow_ui_snapshot.py --store sqlite:///mlflow.db --experiment mesobench \\
        --out docs/img/mlflow-runs.png

starts ``mlflow ui`` on the store (127.0.0.1, a free port), opens the experiment's runs table in
the system's headless Chromium (Debian: ``apt-get install chromium``) driven by Playwright (the
``dev`` extra; it never downloads a browser here), expands the sweeps' parent runs, saves a
screenshot, prints which of the experiment's runs the page lists, and stops the server.

The UI is a React single-page app: the runs arrive by AJAX after the page has loaded, and the
runs of a sweep are nested, collapsed, under the sweep's parent run. Playwright waits for the
run names to be on screen (bounded), and clicks the parents' (+) to show the nested runs. A
plain ``chromium --headless=new --dump-dom --virtual-time-budget=5000 URL`` does render the
table reliably too, but cannot click.

MLflow 3.17's UI decides between its GenAI overview and the model-training runs table by the
browser's "workflow type" (the ``workflowType`` URL parameter, else the choice remembered in the
browser's local storage, else GenAI), not by the experiment's ``mlflow.experimentKind`` tag. So
the page opened here is ``#/experiments/<id>?workflowType=machine_learning``; ``--bare`` opens
``#/experiments/<id>`` as a fresh browser sees it (the GenAI overview).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mesobench.store.ui import MACHINE_LEARNING, landing_url


def chromium_binary() -> str | None:
    """Path of the system's Chromium (``chromium`` on Debian, ``chromium-browser`` elsewhere)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _mlflow_command() -> list[str]:
    mlflow = Path(sys.executable).parent / "mlflow"
    return [str(mlflow)] if mlflow.exists() else [sys.executable, "-m", "mlflow"]


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group (``mlflow ui`` starts uvicorn under it)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextlib.contextmanager
def mlflow_ui(store: str, port: int | None = None, timeout_s: float = 90.0) -> Iterator[str]:
    """Run ``mlflow ui`` on ``store`` at 127.0.0.1; yields its base URL once ``/health`` answers.

    The server (and everything it started) is stopped on exit, also when the body raises. Job
    execution (MLflow's background workers, which the UI does not need) is switched off.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="mlflow-ui-") as scratch:
        log_path = Path(scratch) / "mlflow-ui.log"
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        cmd = [
            *_mlflow_command(),
            "ui",
            "--backend-store-uri",
            store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"mlflow ui exited with code {proc.returncode} before answering on {url}; "
                        f"its output ends with:\n{_tail(log_path)}"
                    )
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                        if reply.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mlflow ui did not answer on {url} within {timeout_s:.0f}s; "
                        f"its output ends with:\n{_tail(log_path)}"
                    )
                time.sleep(0.5)
            yield url
        finally:
            _stop(proc)


@dataclass
class Page:
    url: str  # where the browser ended up (the UI redirects to a tab, e.g. .../runs)
    title: str
    landing: str  # visible text once the page had rendered, before expanding any row
    text: str  # visible text at the end (after expanding)
    expanded: int  # parent rows expanded
    missing: list[str]  # strings of `landing`/`expect` that did not appear in time
    screenshot: Path | None


# the Run Name cell of a parent run holds a (+) button that shows its nested runs
RUN_NAME = 'col-id="attributes.`Run Name`"'
EXPANDER = f'[role="gridcell"][{RUN_NAME}] button'
BLUR = "() => document.activeElement && document.activeElement.blur()"
RESIZER = f".ag-header-cell[{RUN_NAME}] .ag-header-cell-resize"  # the column's right edge
RENDERED = (  # the UI redirected to one of the experiment's tabs and titled the page
    r"() => / - Experiment /.test(document.title)"
    r" && /#\/experiments\/[^/?]+\/[a-z-]+/.test(location.hash)"
)


def _drag_right(page, selector: str, pixels: int) -> None:
    handle = page.locator(selector)
    box = handle.first.bounding_box() if handle.count() else None
    if box is None:
        return
    # grab just inside the left of the handle: its right half lies under the next column
    x, y = box["x"] + 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + pixels / 2, y, steps=5)
    page.mouse.move(x + pixels, y, steps=5)
    page.mouse.up()
    page.evaluate(BLUR)


def browse(
    url: str,
    screenshot: Path | None = None,
    size: tuple[int, int] = (1600, 900),
    landing: Sequence[str] = (),
    expect: Sequence[str] = (),
    expand: bool = False,
    widen: int = 0,
    timeout_s: float = 60.0,
    chromium: str | None = None,
) -> Page:
    """Open ``url`` in headless Chromium, driven by Playwright; what it shows, and a PNG.

    Waits until the UI has redirected to one of the experiment's tabs and set its title, then,
    on the runs table, until the table has loaded and every string of ``landing`` is on screen;
    ``expand`` then clicks the (+) of every parent run and waits for the strings of ``expect``;
    ``widen`` drags the Run Name column's edge that many pixels to the right (it is 190 px wide and
    cuts nested names short; cosmetic, skipped if the edge is not found).
    Everything shares one deadline; what did not appear is listed in ``missing`` (the caller
    decides). The browser is the system's Chromium (Playwright never downloads one here) with a
    fresh profile, so no choice remembered from an earlier visit applies.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    chromium = chromium or chromium_binary()
    if chromium is None:
        raise FileNotFoundError("no chromium or chromium-browser on PATH")
    deadline = time.monotonic() + timeout_s

    def left_ms() -> float:
        return max(deadline - time.monotonic(), 0.1) * 1000

    missing: list[str] = []

    def wait_for_text(page, strings: Sequence[str]) -> None:
        for text in strings:
            try:
                page.get_by_text(text, exact=True).first.wait_for(
                    state="visible", timeout=left_ms()
                )
            except PlaywrightTimeout:
                missing.append(text)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--disable-gpu", "--disable-dev-shm-usage", "--lang=en-US"],
            timeout=left_ms(),
        )
        try:
            page = browser.new_page(viewport={"width": size[0], "height": size[1]}, locale="en-US")
            page.goto(url, wait_until="domcontentloaded", timeout=left_ms())
            try:
                page.wait_for_function(RENDERED, timeout=left_ms())
                if page.title().startswith("Runs"):
                    page.get_by_text("matching runs").first.wait_for(timeout=left_ms())
            except PlaywrightTimeout:
                missing.append("(the experiment page)")
            wait_for_text(page, landing)
            landing_text = page.inner_text("body")
            expanded = 0
            if expand:
                buttons = page.locator(EXPANDER)
                for i in range(buttons.count()):
                    buttons.nth(i).click(timeout=left_ms())
                    expanded += 1
                wait_for_text(page, expect)
                page.evaluate(BLUR)  # no focus ring on the last (+) clicked
            if widen:
                _drag_right(page, RESIZER, widen)
            if screenshot is not None:
                screenshot = Path(screenshot).resolve()
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=screenshot, timeout=left_ms())
            return Page(
                url=page.url,
                title=page.title(),
                landing=" ".join(landing_text.split()),
                text=" ".join(page.inner_text("body").split()),
                expanded=expanded,
                missing=missing,
                screenshot=screenshot,
            )
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="tracking URI, e.g. sqlite:///mlflow.db")
    parser.add_argument("--experiment", default="mesobench")
    parser.add_argument("--out", type=Path, default=Path("docs/img/mlflow-runs.png"))
    parser.add_argument("--size", default="1600x900", help="window size WIDTHxHEIGHT")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for the page")
    parser.add_argument(
        "--no-expand", action="store_true", help="leave the sweeps' parent runs collapsed"
    )
    parser.add_argument(
        "--bare",
        action="store_true",
        help="open #/experiments/<id> without ?workflowType=machine_learning "
        "(MLflow 3.17 then shows a fresh browser its GenAI overview)",
    )
    args = parser.parse_args(argv)
    if chromium_binary() is None:
        print("no chromium on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=args.store)
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        print(f"no experiment {args.experiment!r} in {args.store}", file=sys.stderr)
        return 2
    # newest first, as the table sorts them; the table shows a first page (100 top-level runs)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    top = [r.info.run_name for r in runs if "mlflow.parentRunId" not in r.data.tags]
    nested = [r.info.run_name for r in runs if "mlflow.parentRunId" in r.data.tags]
    width, height = (int(v) for v in args.size.lower().split("x"))
    with mlflow_ui(args.store) as base:
        url = landing_url(base, exp.experiment_id, None if args.bare else MACHINE_LEARNING)
        page = browse(
            url,
            args.out,
            (width, height),
            landing=[] if args.bare else top[:3],
            expect=[] if args.bare else nested[:3],
            expand=not (args.no_expand or args.bare),
            widen=0 if args.bare else 160,
            timeout_s=args.timeout,
        )
    shown = [n for n in top + nested if n in page.text]
    print(f"opened {url}")
    print(f"title: {page.title}")
    print(f"runs listed: {len(shown)} of {len(runs)} ({page.expanded} parent rows expanded)")
    for name in shown:
        print(f"  {name}")
    if page.missing:
        print(f"did not appear within {args.timeout:.0f}s: {', '.join(page.missing)}")
    print(f"screenshot: {page.screenshot} ({width}x{height})")
    return 0 if shown or not runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
