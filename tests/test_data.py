"""Image loading and data sources, on small real files written into tmp_path (and on ../shared/data)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anodfdnet import data
from anodfdnet.data import ConcatSource, PairDataset, parse_spec, split
from anodfdnet.data import spec as registry
from anodfdnet.data.folders import ABSource
from conftest import REAL_DATA, needs_real_data
from anodfdnet.errors import UserError
from anodfdnet.data.images import (
    load_mask,
    load_rgb,
    mask_to_tensor,
    resize_mask,
    resize_rgb,
    save_mask_png,
    save_rgb_png,
    to_tensor,
)



def _rand_rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, a, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (a if isinstance(a, Image.Image) else Image.fromarray(a)).save(path, **kw)
    return path


# ----------------------------------------------------------------------------------------------
# images.py


def test_load_rgb_odd_modes(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    out = load_rgb(_save(tmp_path / "l.png", grey))
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3)
    assert (out == grey[..., None]).all()

    rgba = np.dstack([_rand_rgb(6, 8), np.full((6, 8), 7, np.uint8)])
    assert (load_rgb(_save(tmp_path / "rgba.png", rgba)) == rgba[..., :3]).all()

    pal = Image.new("P", (8, 6))
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.putpixel((3, 2), 1)
    out = load_rgb(_save(tmp_path / "p.png", pal))
    assert tuple(out[2, 3]) == (10, 200, 30) and tuple(out[0, 0]) == (0, 0, 0)

    wide = np.array([[0, 65535], [257 * 100, 257 * 200]], dtype=np.uint16)
    path16 = _save(tmp_path / "i16.png", Image.fromarray(wide))
    with Image.open(path16) as im:
        assert im.mode.startswith("I")
    assert (load_rgb(path16)[..., 0] == [[0, 255], [100, 200]]).all()

    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red
    out = load_rgb(_save(tmp_path / "cmyk.jpg", cmyk, quality=95))
    assert out.shape == (8, 8, 3)
    assert out[..., 0].min() > 200 and out[..., 1:].max() < 60

    la = Image.new("LA", (5, 4), (200, 50))
    assert (load_rgb(_save(tmp_path / "la.png", la)) == 200).all()

    bilevel = Image.new("1", (4, 3), 1)
    assert (load_rgb(_save(tmp_path / "b.png", bilevel)) == 255).all()


def test_load_rgb_applies_exif_orientation(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high
    stored[:, :20] = (255, 0, 0)  # left half red
    stored[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display = rotate 90 degrees clockwise
    path = _save(tmp_path / "rot.jpg", stored, exif=exif, quality=95)
    out = load_rgb(path)
    assert out.shape == (40, 20, 3)
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 60  # top is the old left (red)
    assert out[35, 10, 2] > 200 and out[35, 10, 0] < 60  # bottom is the old right (blue)


def test_load_rgb_arrays_and_pil():
    g = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert (load_rgb(g) == g[..., None]).all() and load_rgb(g).shape == (3, 4, 3)
    assert load_rgb(g[..., None]).shape == (3, 4, 3)
    assert (load_rgb(np.ones((2, 2), bool)) == 255).all()
    assert (load_rgb(np.full((2, 2, 3), 0.5, np.float32)) == 128).all()
    assert (load_rgb(np.full((2, 2), 65535, np.uint16)) == 255).all()
    rgba = np.zeros((2, 3, 4), np.uint8)
    assert load_rgb(rgba).shape == (2, 3, 3)
    src = _rand_rgb(3, 3)
    out = load_rgb(src)
    out[0, 0] = 0
    assert (src == _rand_rgb(3, 3)).all()  # never aliases the caller's array
    assert (load_rgb(Image.fromarray(src)) == src).all()
    with pytest.raises(UserError):
        load_rgb(np.zeros((2, 2, 5), np.uint8))


def test_load_mask_rule(tmp_path):
    m = np.zeros((6, 8), bool)
    m[1:3, 2:5] = True
    u8 = m.astype(np.uint8) * 255
    assert (load_mask(_save(tmp_path / "m.png", u8)) == m).all()
    assert (load_mask(_save(tmp_path / "m01.png", m.astype(np.uint8))) == m).all()  # label-index PNG
    grey = np.where(m, 128, 127).astype(np.uint8)
    assert (load_mask(grey) == m).all()  # 8-bit threshold: > 127
    assert (load_mask(_save(tmp_path / "m1.png", Image.fromarray(m))) == m).all()  # mode "1"
    assert (load_mask(_save(tmp_path / "rgb.png", np.dstack([u8 * 0, u8, u8 * 0]))) == m).all()
    painted = np.zeros((6, 8, 4), np.uint8)  # a paint layer: black brush, transparent background
    painted[..., 3] = u8
    assert (load_mask(_save(tmp_path / "layer.png", painted)) == m).all()
    opaque = np.dstack([u8, u8, u8, np.full_like(u8, 255)])
    assert (load_mask(_save(tmp_path / "opaque.png", opaque)) == m).all()
    assert (load_mask(_save(tmp_path / "m16.png", Image.fromarray(m.astype(np.uint16) * 40000))) == m).all()
    assert (load_mask(m.astype(np.float32) * 0.9) == m).all()
    assert load_mask(m).dtype == bool


def test_missing_corrupt_and_truncated_files_name_the_file(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(UserError, match="nope.png"):
        load_rgb(missing)
    with pytest.raises(UserError, match="nope.png"):
        load_mask(str(missing))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"this is not a png")
    with pytest.raises(UserError, match="corrupt.png"):
        load_rgb(corrupt)
    whole = _save(tmp_path / "whole.png", _rand_rgb(64, 64)).read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError, match="truncated.png"):
        load_rgb(truncated)
    with pytest.raises(UserError, match="cannot read image"):
        load_rgb(tmp_path)  # a folder


def test_resize_tensors_and_save(tmp_path):
    img = _rand_rgb(40, 30)
    assert resize_rgb(img, (20, 15)).shape == (20, 15, 3)
    assert resize_rgb(img, (80, 64)).shape == (80, 64, 3)
    m = np.zeros((40, 30), bool)
    m[10:20, 5:15] = True
    small = resize_mask(m, (20, 15))
    assert small.dtype == bool and small.shape == (20, 15) and small.sum() == 25
    t = to_tensor(np.array([[[0, 255, 127]]], np.uint8))
    assert t.shape == (3, 1, 1) and t.dtype == torch.float32
    assert t.min() == -1 and t.max() == 1
    mt = mask_to_tensor(m)
    assert mt.shape == (1, 40, 30) and set(mt.unique().tolist()) == {0.0, 1.0}
    path = tmp_path / "out.png"
    save_mask_png(path, m)
    back = Image.open(path)
    assert back.mode == "L" and set(np.unique(np.array(back)).tolist()) == {0, 255}
    assert (load_mask(path) == m).all()
    with pytest.raises(UserError, match="out.png"):
        save_mask_png(tmp_path / "no_such_dir" / "out.png", m)
    save_rgb_png(tmp_path / "rgb.png", img)
    assert (load_rgb(tmp_path / "rgb.png") == img).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "rgb.png"]  # no temporary left


# ----------------------------------------------------------------------------------------------
# Built-in sources


def test_pairs_layout(tmp_path):
    root = tmp_path / "pairs"
    m = np.zeros((16, 20), bool)
    m[4:8, 4:8] = True
    _save(root / "b_pair" / "hist.jpg", _rand_rgb(8, 10))  # half size: resized to the current
    _save(root / "b_pair" / "cur.jpg", _rand_rgb(16, 20))
    _save(root / "b_pair" / "cur_gt.png", m.astype(np.uint8) * 255)
    _save(root / "a_pair" / "hist.png", _rand_rgb(16, 20))
    _save(root / "a_pair" / "cur.png", _rand_rgb(16, 20))
    src = parse_spec(f"pairs:{root}")
    assert src.names == ["a_pair", "b_pair"] and len(src) == 2 and src.key(1) == "b_pair"
    a, b = src[0], src[1]
    assert a.mask is None
    assert b.history.shape == b.current.shape == (16, 20, 3) and b.history.dtype == np.uint8
    assert (b.mask == m).all()
    assert src[-1].name == "b_pair"
    with pytest.raises(IndexError):
        src[2]

    _save(root / "c_pair" / "hist.png", _rand_rgb(16, 20))
    _save(root / "c_pair" / "cur.png", _rand_rgb(16, 20))
    _save(root / "c_pair" / "cur_gt.png", np.zeros((12, 20), np.uint8))
    with pytest.raises(UserError, match="cur_gt.png"):
        parse_spec(f"pairs:{root}")[2]

    (root / "d_pair").mkdir()
    _save(root / "d_pair" / "cur.png", _rand_rgb(4, 4))
    with pytest.raises(UserError, match="d_pair"):
        parse_spec(f"pairs:{root}")


def _ab_root(tmp_path, n=3, labels=True, size=(12, 16)):
    root = tmp_path / "ab"
    for i in range(n):
        a = _rand_rgb(*size, seed=10 + i)
        b = _rand_rgb(*size, seed=20 + i)
        _save(root / "A" / f"img{i}.png", a)
        _save(root / "B" / f"img{i}.png", b)
        if labels:
            m = np.zeros(size, np.uint8)
            m[i, :] = 255
            _save(root / "label" / f"img{i}.png", m)
    return root


def test_ab_and_ba(tmp_path):
    root = _ab_root(tmp_path)
    ab, ba = parse_spec(f"ab:{root}"), parse_spec(f"ba:{root}")
    assert ab.names == ba.names == ["img0", "img1", "img2"]
    p, q = ab[1], ba[1]
    assert (p.history == _rand_rgb(12, 16, seed=11)).all() and (p.current == _rand_rgb(12, 16, seed=21)).all()
    assert (q.history == p.current).all() and (q.current == p.history).all()
    assert p.mask[1].all() and p.mask.sum() == 16

    # Labels matched by stem: JPEG images, PNG labels.
    jroot = tmp_path / "jpg"
    _save(jroot / "A" / "x.jpg", _rand_rgb(8, 8))
    _save(jroot / "B" / "x.jpg", _rand_rgb(8, 8))
    _save(jroot / "label" / "x.png", np.full((8, 8), 255, np.uint8))
    assert parse_spec(f"ab:{jroot}")[0].mask.all()


def test_file_backed_sources_give_each_pair_as_files_a_worker_loads_alone(tmp_path, monkeypatch):
    """``detached(i)``: absolute paths (relative SPECs and manifest paths resolved where the source was made), picklable,
    loading the same arrays as ``source[i]`` from another folder; a manifest keeps URLs and names its line in errors."""
    import pickle

    root = _ab_root(tmp_path)
    _save(tmp_path / "pairs" / "p0" / "hist.png", _rand_rgb(6, 6, seed=1))
    _save(tmp_path / "pairs" / "p0" / "cur.png", _rand_rgb(6, 6, seed=2))
    (tmp_path / "m.csv").write_text("id,history,current\nrel,ab/A/img0.png,ab/B/img0.png\n"
                                    "gone,ab/A/img1.png,ab/B/missing.png\nurl,memory://x/h.png,memory://x/c.png\n")
    monkeypatch.chdir(tmp_path)
    sources = [parse_spec("ab:ab"), parse_spec("ba:ab"), parse_spec("pairs:pairs"), parse_spec("manifest:m.csv")]
    monkeypatch.chdir(tmp_path / "pairs")  # a worker's own folder: nothing relative may be left
    for src in sources:
        for i in range(len(src) if src is not sources[3] else 1):
            files = pickle.loads(pickle.dumps(src.detached(i)))
            assert all(f is None or Path(f).is_absolute() for f in (files.history, files.current, files.mask))
            got, want = files.load(), src[i]
            assert got.name == want.name and (got.history == want.history).all() and (got.current == want.current).all()
            assert (got.mask is None and want.mask is None) or (got.mask == want.mask).all()
    assert sources[0].detached(1).mask == str(root / "label" / "img1.png")
    gone = pickle.loads(pickle.dumps(sources[3].detached(1)))
    with pytest.raises(UserError, match=r"^m.csv line 3 \(id 'gone'\): .*missing.png"):
        gone.load()
    assert sources[3].detached(2).history == "memory://x/h.png"
    assert parse_spec("synth:4:0").detached(0) is None  # generated pairs are not files
    val = parse_spec(f"ab:{root}@val")  # views hand over their parts' files
    assert val.detached(0) == sources[0].detached(sources[0].names.index(val.names[0]))
    both = ConcatSource([sources[2], sources[3]])
    assert both.detached(1) == sources[3].detached(0) and both.detached(0).name == "p0"


def test_ab_without_labels_and_mismatches(tmp_path):
    root = _ab_root(tmp_path, labels=False)
    assert parse_spec(f"ab:{root}")[0].mask is None
    (root / "B" / "img2.png").unlink()
    with pytest.raises(UserError, match="img2"):
        parse_spec(f"ab:{root}")
    (tmp_path / "onlyA" / "A").mkdir(parents=True)
    with pytest.raises(UserError, match="no B/ folder"):
        parse_spec(f"ab:{tmp_path / 'onlyA'}")


def test_bad_specs(tmp_path):
    with pytest.raises(UserError, match="no scheme") as e:
        parse_spec("just/a/path")
    assert "ab" in str(e.value) and "deeppcb" in str(e.value)
    with pytest.raises(UserError, match="unknown scheme 'nope'") as e:
        parse_spec("nope:/x")
    assert "pairs" in str(e.value)
    with pytest.raises(UserError, match="nothing after"):
        parse_spec("ab:")
    with pytest.raises(UserError, match="does not exist"):
        parse_spec(f"ab:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty"):
        parse_spec(f"pairs:{tmp_path / 'empty'}")
    with pytest.raises(UserError, match="does not exist"):
        parse_spec(f"deeppcb:{tmp_path / 'missing.txt'}")


def test_register_source_is_the_mechanism(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_SCHEMES", dict(registry._SCHEMES))
    root = _ab_root(tmp_path)
    seen = []

    def factory(arg, spec):
        seen.append((arg, spec))
        return ABSource(arg, spec)

    data.register_source("mine", factory, "mine:ROOT   a test scheme")
    src = parse_spec(f"mine:{root}")
    assert seen == [(str(root), f"mine:{root}")] and len(src) == 3
    assert "mine:ROOT" in data.spec_help() and "deeppcb:LISTFILE" in data.spec_help()


# ----------------------------------------------------------------------------------------------
# DeepPCB


def test_deeppcb_mask_recipe(tmp_path):
    root = tmp_path / "PCBData"
    hist = np.zeros((20, 24), np.uint8)
    cur = hist.copy()
    cur[3, 2] = 255  # inside box 1 (its top-left corner)
    cur[6, 5] = 200  # inside box 1 (bottom-right corner: coordinates are inclusive)
    cur[6, 6] = 255  # just outside box 1: excluded
    cur[4, 3] = 120  # changed but on the same side of 127: not a difference
    hist[10, 10] = 255  # removed copper, outside every box: excluded
    hist[19, 23] = 255  # inside box 2, which runs past the image and is clipped
    cur[17, 20] = 255  # inside box 2
    _save(root / "g1" / "n1" / "00000001_temp.png", hist)
    _save(root / "g1" / "n1" / "00000001_test.png", cur)
    ann = root / "g1" / "n1_not" / "00000001.txt"
    ann.parent.mkdir(parents=True)
    ann.write_text("2 3 5 6 1\n15,15,40,40,2\n\n")
    listfile = root / "list.txt"
    listfile.write_text("g1/n1/00000001.png g1/n1_not/00000001.txt\n")

    src = parse_spec(f"deeppcb:{listfile}")
    assert src.names == ["00000001"]
    pair = src[0]
    assert pair.history.shape == (20, 24, 3) and (pair.history == hist[..., None]).all()
    expected = np.zeros((20, 24), bool)
    expected[3, 2] = expected[6, 5] = expected[19, 23] = expected[17, 20] = True
    assert (pair.mask == expected).all()

    listfile.write_text("g1/n1/00000001.png\n")
    with pytest.raises(UserError, match="line 1"):
        parse_spec(f"deeppcb:{listfile}")
    listfile.write_text("g1/n1/00000002.png g1/n1_not/00000001.txt\n")
    with pytest.raises(UserError, match="00000002_temp.png"):
        parse_spec(f"deeppcb:{listfile}")
    listfile.write_text("g1/n1/00000001.png g1/n1_not/00000001.txt\n")
    ann.write_text("1 2 three 4 1\n")
    with pytest.raises(UserError, match="00000001.txt"):
        parse_spec(f"deeppcb:{listfile}")[0]


# ----------------------------------------------------------------------------------------------
# Split and concatenation


def test_split_is_deterministic_disjoint_and_order_free(tmp_path):
    root = _ab_root(tmp_path, n=30, labels=False, size=(4, 4))
    src = parse_spec(f"ab:{root}")
    train, val = split(src, 0.2, seed=0)
    train2, val2 = split(src, 0.2, seed=0)
    assert train.names == train2.names and val.names == val2.names
    assert set(train.names).isdisjoint(val.names)
    assert sorted(train.names + val.names) == sorted(src.names)
    assert 0 < len(val) < len(src)
    assert train.spec == f"{src.spec}@train" and val.spec == f"{src.spec}@val"
    # The same pair lands on the same side whatever else is in the source.
    sub_train, sub_val = split(data.Subset(src, list(range(29, -1, -2)), "odd"), 0.2, seed=0)
    assert set(sub_val.names) == set(val.names) & set(sub_val.names + sub_train.names)
    assert set(sub_train.names) <= set(train.names)
    # Another seed gives another split; recorded specs parse back to the same pairs.
    assert split(src, 0.2, seed=1)[1].names != val.names
    assert parse_spec(val.spec).names == val.names
    t3, v3 = split(src, 0.3, seed=5)
    assert parse_spec(v3.spec).names == v3.names and parse_spec(t3.spec).names == t3.names
    # Both sides non-empty from two pairs on.
    two = data.Subset(src, [0, 1], "two")
    for s in range(10):
        a, b = split(two, 0.2, seed=s)
        assert len(a) == len(b) == 1
    assert (val[0].current == src[src.names.index(val.names[0])].current).all()


def test_concat(tmp_path):
    a = parse_spec(f"ab:{_ab_root(tmp_path / 'x', n=2)}")
    b = parse_spec(f"ba:{_ab_root(tmp_path / 'y', n=3)}")
    c = ConcatSource([a, b])
    assert len(c) == 5 and c.names == a.names + b.names
    assert c.spec == f"{a.spec} + {b.spec}"
    assert (c[3].current == b[1].current).all() and c.key(3) == b.key(1)


# ----------------------------------------------------------------------------------------------
# PairDataset


def _aligned_root(tmp_path, size=(48, 40)):
    """An ab: folder whose masks are exactly where current differs from history."""
    root = tmp_path / "aligned"
    rng = np.random.default_rng(3)
    for i in range(3):
        h = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        c = h.copy()
        m = np.zeros(size, bool)
        m[rng.integers(0, size[0], 40), rng.integers(0, size[1], 40)] = True
        m[2:9, 3:6] = True  # an asymmetric blob so that flips are visible
        c[m] = c[m] ^ 0x80
        _save(root / "A" / f"{i}.png", h)
        _save(root / "B" / f"{i}.png", c)
        _save(root / "label" / f"{i}.png", m.astype(np.uint8) * 255)
    return root


def _check_item(item, s):
    assert item["history"].shape == item["current"].shape == (3, s, s)
    assert item["mask"].shape == (1, s, s)
    for k in ("history", "current"):
        assert item[k].dtype == torch.float32 and item[k].min() >= -1 and item[k].max() <= 1
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}


def test_pair_dataset_modes(tmp_path):
    src = parse_spec(f"ab:{_aligned_root(tmp_path)}")
    ds = PairDataset(src, size=32, mode="resize")
    item = ds[1]
    _check_item(item, 32)
    assert item["index"] == 1 and len(ds) == 3
    crop = PairDataset(src, size=24, mode="crop", augment=True)
    for i in range(3):
        _check_item(crop[i], 24)
    big = PairDataset(src, size=64, mode="crop")  # larger than the 48x40 pair: padded
    it = big[0]
    _check_item(it, 64)
    assert it["mask"].sum() == mask_to_tensor(src[0].mask).sum()  # zero-padded, nothing lost
    unlabelled = parse_spec(f"ab:{_ab_root(tmp_path, labels=False)}")
    assert PairDataset(unlabelled, size=8)[0]["mask"].sum() == 0
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["history"].shape == (2, 3, 32, 32) and batch["index"].tolist() == [0, 1]


def test_augmentation_keeps_history_current_mask_aligned(tmp_path):
    src = parse_spec(f"ab:{_aligned_root(tmp_path, size=(32, 32))}")
    torch.manual_seed(0)
    seen = set()
    orig = mask_to_tensor(src[0].mask)[0]
    variants = {
        "identity": orig, "vflip": orig.flip(0), "hflip": orig.flip(1), "rot180": orig.flip(0).flip(1)
    }
    for mode, size in (("resize", 32), ("crop", 20)):
        ds = PairDataset(src, size=size, mode=mode, augment=True)
        for _ in range(12):
            for i in range(len(ds)):
                it = ds[i]
                differs = (it["current"] != it["history"]).any(0)
                assert torch.equal(differs, it["mask"][0].bool())
                if mode == "resize" and i == 0:
                    seen |= {k for k, v in variants.items() if torch.equal(v, it["mask"][0])}
    assert len(seen) >= 3  # the four transforms do occur (24 draws)


def test_crops_favour_tiny_defects(tmp_path):
    root = tmp_path / "tiny"
    h = _rand_rgb(128, 128)
    m = np.zeros((128, 128), bool)
    m[100:103, 7:10] = True
    _save(root / "A" / "t.png", h)
    _save(root / "B" / "t.png", h)
    _save(root / "label" / "t.png", m.astype(np.uint8) * 255)
    ds = PairDataset(parse_spec(f"ab:{root}"), size=32, mode="crop", seed=1)
    hits = sum(bool(ds[0]["mask"].any()) for _ in range(60))
    assert 15 <= hits <= 50  # about half, where a uniform crop would hit ~6%


@needs_real_data
def test_real_deeppcb():
    src = parse_spec(f"deeppcb:{REAL_DATA / 'deeppcb' / 'trainval.txt'}")
    assert len(src) == 1000
    pair = src[0]
    assert pair.history.shape == pair.current.shape == (640, 640, 3)
    assert pair.mask.shape == (640, 640) and 0 < pair.mask.mean() < 0.05


@needs_real_data
def test_real_tunnel_synthetic():
    src = parse_spec(f"ba:{REAL_DATA / 'tunnel_synthetic'}")
    assert len(src) == 300
    for i in (0, 299):
        pair = src[i]
        assert pair.history.shape == pair.current.shape == (512, 512, 3)
        assert pair.mask.shape == (512, 512) and pair.mask.any()


@needs_real_data
def test_real_levir_samples():
    src = parse_spec(f"ab:{REAL_DATA / 'levir_samples'}")
    assert len(src) == 11
    pair = src[0]
    assert pair.history.shape == pair.current.shape == (256, 256, 3) and pair.mask.shape == (256, 256)
