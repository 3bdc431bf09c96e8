"""``warp:LEVEL:SPEC``: controlled viewpoint changes with known geometry."""
import numpy as np
import pytest

from anodfdnet.data import parse_spec
from anodfdnet.errors import UserError
from anodfdnet.data.warped import MARGIN


def _textured_pairs(root, n=3, size=160):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random((size // 4, size // 4, 3)) * 255).astype(np.uint8)
        img = np.array(Image.fromarray(img).resize((size, size), Image.BICUBIC))
        cur = img.copy()
        cur[70:90, 70:90] = 255
        mask = np.zeros((size, size), np.uint8)
        mask[70:90, 70:90] = 255
        d = root / f"p{i}"
        d.mkdir(parents=True)
        Image.fromarray(img).save(d / "hist.png")
        Image.fromarray(cur).save(d / "cur.png")
        Image.fromarray(mask).save(d / "cur_gt.png")
    return root


def test_level_zero_is_the_registered_central_part(tmp_path):
    root = _textured_pairs(tmp_path / "p")
    inner = parse_spec(f"pairs:{root}")
    w0 = parse_spec(f"warp:0:pairs:{root}")
    a, b = inner[0], w0[0]
    m = int(round(160 * MARGIN))
    assert np.array_equal(b.current, a.current[m:-m, m:-m]) and np.array_equal(b.mask, a.mask[m:-m, m:-m])
    assert np.abs(b.history.astype(int) - a.history[m:-m, m:-m]).max() <= 1


def test_warped_history_follows_its_homography_and_is_repeatable(tmp_path):
    import cv2

    root = _textured_pairs(tmp_path / "p")
    w = parse_spec(f"warp:1:pairs:{root}")
    pair, again = w[1], parse_spec(f"warp:1:pairs:{root}")[1]
    assert np.array_equal(pair.history, again.history)  # seeded by the pair's key
    inner = parse_spec(f"pairs:{root}")[1]
    H = w.homography(1)
    assert not np.allclose(H, np.eye(3), atol=1e-3)
    m = int(round(160 * MARGIN))
    # Undo the warp: the history view mapped back onto the current view matches the central history part.
    back = cv2.warpPerspective(pair.history, H, pair.current.shape[1::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    centre = slice(20, -20)
    err = np.abs(back[centre, centre].astype(int) - inner.history[m:-m, m:-m][centre, centre]).mean()
    assert err < 6, err
    assert np.array_equal(pair.mask, inner.mask[m:-m, m:-m])  # the ground truth is in current coordinates


def test_bad_warp_specs_say_what_is_wrong(tmp_path):
    with pytest.raises(UserError, match="warp:LEVEL:SPEC"):
        parse_spec("warp:big:synth:3")
    with pytest.raises(UserError, match="warp:LEVEL:SPEC"):
        parse_spec("warp:0.5")
