"""Shared fixtures. Other test modules may append fixtures here; keep each one small."""
import contextlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_real_data = pytest.mark.skipif(not REAL_DATA.exists(), reason="../shared/data is absent (a user's clone has no ../shared)")


def write_tiny_pairs(root: Path, n: int = 8, size: int = 64, seed: int = 0) -> Path:
    """n pairs in the `pairs:` layout: a smooth random background, the current with a bright square."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = rng.integers(40, 120, size=(size // 8, size // 8, 3), dtype=np.uint8)
        hist = np.array(Image.fromarray(base).resize((size, size), Image.BILINEAR))
        cur = hist.copy()
        mask = np.zeros((size, size), bool)
        s = int(rng.integers(size // 8, size // 4))
        y, x = rng.integers(0, size - s, size=2)
        cur[y:y + s, x:x + s] = (230, 230, 60)
        mask[y:y + s, x:x + s] = True
        d = root / f"pair{i:02d}"
        d.mkdir(parents=True)
        Image.fromarray(hist).save(d / "hist.png")
        Image.fromarray(cur).save(d / "cur.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(d / "cur_gt.png")
    return root


@pytest.fixture
def tiny_pairs(tmp_path) -> Path:
    return write_tiny_pairs(tmp_path / "tiny")


# --- The app (app.py), launched per test module (tests/test_app_api.py, tests/test_app_browser.py) ---

SHIPPED_CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
APP_DEPTHS = (0, 1, 2, 4, 8)


def shipped_checkpoint(name: str) -> Path | None:
    p = SHIPPED_CHECKPOINTS / f"anodfdnet-{name}.safetensors"
    return p if p.is_file() else None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """URL of app.py's app served in-process on a free port, with its state in a temp folder.

    Module-scoped so that the environment it sets ends with the module (other tests see none of it);
    a second launch in one process costs about a second.

    Untrained stand-ins ``untrained-dN`` are saved for every depth whose shipped ``effnet-dN`` is
    missing, so the app always offers depths 0, 1, 2, 4, 8; the example gallery is cached in the
    repository's ignored .cache/ folder; the Label tab writes to the temp folder and never talks to the Hub.
    """
    import torch

    from anodfdnet.checkpoint import save_checkpoint
    from anodfdnet.models import ModelConfig, build_model

    tmp = tmp_path_factory.mktemp("app")
    ckpts = tmp / "checkpoints"
    ckpts.mkdir()
    for d in APP_DEPTHS:
        if shipped_checkpoint(f"effnet-d{d}") is None:
            torch.manual_seed(d)
            save_checkpoint(ckpts / f"untrained-d{d}.safetensors", build_model(ModelConfig.from_preset("lite", d)),
                            {"note": "untrained stand-in for tests"})
    with served_app(tmp, ckpts) as url:
        yield url


@contextlib.contextmanager
def served_app(tmp: Path, checkpoint_dir: Path, env: dict | None = None):
    """Serve app.py's app in-process on a free port with checkpoints from ``checkpoint_dir``, labels in
    ``tmp/labels``, the example gallery in the repository's ignored .cache/, and no Hub access; ``env``
    sets more variables (e.g. ANODFDNET_QUEUE) for as long as it is served."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ANODFDNET_CHECKPOINT_DIR", str(checkpoint_dir))
    mp.setenv("ANODFDNET_CACHE", str(SHIPPED_CHECKPOINTS.parent / ".cache" / "anodfdnet"))  # ignored; examples kept
    mp.setenv("ANODFDNET_LABEL_DIR", str(tmp / "labels"))
    mp.setenv("HF_HUB_OFFLINE", "1")
    for name in ("ANODFDNET_DATASET_REPO", "HF_TOKEN", "ANODFDNET_QUEUE"):
        mp.delenv(name, raising=False)
    for name, value in (env or {}).items():
        mp.setenv(name, value)
    import app

    blocks = app.build_app()
    _, url, _ = app.launch(blocks, server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield url
    finally:
        blocks.close()
        mp.undo()



# --- A real browser (Debian chromium driven by Playwright), for browser tests that add no setup of their own ---

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)")


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium for the module (never `playwright install`: no download)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
