"""The synthetic pair generator: determinism, conventions, exact masks, the synth: SPEC, and writing pairs."""
import numpy as np
import pytest
from PIL import Image

from anodfdnet.data import synth
from anodfdnet.data.synth.views import _view_corners
from anodfdnet.data import parse_spec
from anodfdnet.errors import UserError

SIZE = 96  # small pairs keep the module fast; the generator scales everything with the size
PAINTED = ("foreign_body", "oil_leak", "scratch")
PARTS = ("missing", "displaced")


def changed(pair) -> np.ndarray:
    return (pair.current != pair.history).any(-1)


def test_same_seed_same_pair_and_different_seed_different_pair():
    a = synth.generate_pair(11, SIZE, "hard")
    b = synth.generate_pair(11, SIZE, "hard")
    for x, y in ((a.history, b.history), (a.current, b.current), (a.mask, b.mask)):
        assert np.array_equal(x, y)
    assert a.name == b.name
    c = synth.generate_pair(12, SIZE, "hard")
    assert not np.array_equal(a.history, c.history)
    d = synth.generate_pair(11, SIZE, "easy")
    assert not np.array_equal(a.current, d.current)


@pytest.mark.parametrize("hardness", ["easy", "hard"])
def test_shapes_and_dtypes(hardness):
    for seed in range(3):
        p = synth.generate_pair(seed, SIZE, hardness)
        assert p.history.shape == p.current.shape == (SIZE, SIZE, 3)
        assert p.history.dtype == p.current.dtype == np.uint8
        assert p.mask.shape == (SIZE, SIZE) and p.mask.dtype == bool
    p = synth.generate_pair(0, 64, hardness, "oil_leak")
    assert p.current.shape == (64, 64, 3) and p.mask.shape == (64, 64)


def test_none_has_an_empty_mask_but_nuisance_differences():
    p = synth.generate_pair(3, SIZE, "hard", "none")
    assert p.mask is not None and not p.mask.any()
    assert changed(p).mean() > 0.5  # viewpoint, colour, noise and JPEG differ everywhere, none of it labelled


@pytest.mark.parametrize("kind", synth.ANOMALIES)
@pytest.mark.parametrize("hardness", ["easy", "hard"])
def test_each_anomaly_type_has_a_modest_nonempty_mask(kind, hardness):
    for seed in range(2):
        p = synth.generate_pair(seed, SIZE, hardness, kind)
        assert p.mask.any(), f"{kind} seed {seed}: empty mask"
        assert p.mask.mean() < 0.30, f"{kind} seed {seed}: mask covers {p.mask.mean():.0%}"
        assert kind in p.name


def test_random_kinds_include_none_and_every_anomaly():
    kinds = {synth.generate_pair(s, 48).name.split("-")[1] for s in range(40)}
    assert kinds == set(synth.KINDS)


def test_foreign_body_on_constant_background_is_found_exactly():
    for seed in range(4):
        p = synth.generate_pair(seed, SIZE, "easy", "foreign_body", nuisance=False, background="constant")
        assert len(np.unique(p.history.reshape(-1, 3), axis=0)) == 1  # the history really is constant
        assert p.mask.any()
        assert np.array_equal(p.mask, changed(p))


def test_paste_foreign_body_mask_is_exactly_the_changed_pixels():
    rng = np.random.default_rng(0)
    for _ in range(6):
        img = np.full((80, 100, 3), 128, np.uint8)
        out, mask = synth.paste_foreign_body(img, rng)
        assert out.shape == img.shape and out.dtype == np.uint8 and mask.dtype == bool
        assert mask.any() and np.array_equal(mask, (out != img).any(-1))
        assert np.array_equal(img, np.full((80, 100, 3), 128, np.uint8))  # input untouched


@pytest.mark.parametrize("kind", PAINTED)
def test_without_nuisance_painted_anomalies_are_exactly_the_difference(kind):
    for seed in range(3):
        p = synth.generate_pair(seed, SIZE, "easy", kind, nuisance=False)
        assert np.array_equal(p.mask, changed(p)), f"{kind} seed {seed}"


@pytest.mark.parametrize("kind", PARTS)
def test_without_nuisance_parts_change_only_inside_the_mask(kind):
    for seed in range(3):
        p = synth.generate_pair(seed, SIZE, "easy", kind, nuisance=False)
        assert p.mask.any()
        assert not (changed(p) & ~p.mask).any(), f"{kind} seed {seed}: changes outside the mask"
        assert changed(p)[p.mask].mean() > 0.5  # the mask is mostly pixels that really changed


@pytest.mark.parametrize("hardness", ["easy", "hard"])
def test_views_stay_inside_the_world(hardness):
    """No black borders: every view's corners land inside the rendered world."""
    hz = synth.HARDNESS[hardness]
    rng = np.random.default_rng(1)
    n = int(np.ceil(SIZE * hz.margin))
    for _ in range(200):
        h = _view_corners(rng, n, SIZE, None, hz)
        c = _view_corners(rng, n, SIZE, h, hz)
        assert h.min() >= 0 and c.min() >= 0 and h.max() <= n - 1 and c.max() <= n - 1


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        synth.generate_pair(0, SIZE, "medium")
    with pytest.raises(ValueError):
        synth.generate_pair(0, SIZE, anomaly="rust")


def test_synth_spec_gives_n_pairs():
    src = parse_spec("synth:8:3")
    assert len(src) == 8 and src.spec == "synth:8:3"
    assert src.names == [f"synth-{i:06d}" for i in range(8)]
    p = src[2]
    assert p.name == "synth-000002" and p.current.shape == (256, 256, 3) and p.mask.dtype == bool
    assert np.array_equal(src[-6].current, p.current)  # negative indices and repeat reads agree
    assert src.key(2) != parse_spec("synth:8:4").key(2)  # different seeds, different identities
    assert not np.array_equal(parse_spec("synth:8:4")[2].history, p.history)
    assert parse_spec("synth:8:3:hard").hardness == "hard" and parse_spec("synth:5").seed == 0
    train, val = parse_spec("synth:20:1@train"), parse_spec("synth:20:1@val")
    assert len(train) + len(val) == 20


@pytest.mark.parametrize("spec", ["synth:abc", "synth:0", "synth:-3", "synth:8:x", "synth:8:-1",
                                  "synth:8:3:medium", "synth:8:3:hard:1", "synth:99999999"])
def test_bad_synth_specs_are_user_errors(spec):
    with pytest.raises(UserError):
        parse_spec(spec)


def test_gallery_has_one_of_each_kind():
    pairs = synth.gallery(n=6, size=128, seed=5)
    assert [p.name for p in pairs] == [f"example-{k + 1:02d}-{kind.replace('_', '-')}"
                                       for k, kind in enumerate(synth.GALLERY_ORDER)]
    for p, kind in zip(pairs, synth.GALLERY_ORDER):
        assert p.current.shape == (128, 128, 3)
        assert p.mask.any() == (kind != "none")
    again = synth.gallery(n=2, size=128, seed=5)
    assert np.array_equal(again[1].current, pairs[1].current)


def test_write_pairs_lays_out_the_pairs_folder(tmp_path):
    pairs = [synth.generate_pair(s, 64, anomaly=k) for s, k in enumerate(("oil_leak", "none", "missing"))]
    root = synth.write_pairs(pairs, tmp_path / "out")
    for p in pairs:
        d = root / p.name
        assert sorted(f.name for f in d.iterdir()) == ["cur.png", "cur_gt.png", "hist.png"]
        gt = np.array(Image.open(d / "cur_gt.png"))
        assert gt.dtype == np.uint8 and gt.ndim == 2 and set(np.unique(gt)) <= {0, 255}
    back = parse_spec(f"pairs:{root}")
    assert sorted(back.names) == sorted(p.name for p in pairs)
    for q in back:
        p = next(p for p in pairs if p.name == q.name)
        assert np.array_equal(q.history, p.history) and np.array_equal(q.current, p.current)
        assert np.array_equal(q.mask, p.mask)
