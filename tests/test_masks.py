import cv2
import numpy as np
import pytest

from vcm.data import DATASETS
from vcm.masks import MASKS
from vcm.masks.damask import sample_visible, texture_scores
from vcm.masks.sideinfo import SideInfoError, decode_grid, encode_grid
from vcm.types import Mask


def test_mask_forms_on_odd_sizes() -> None:
    px = np.zeros((33, 50), bool)
    px[17, 49] = True
    m = Mask.from_pixels(px)
    assert m.grid.shape == (3, 4) and m.grid.sum() == 1 and m.grid[1, 3]
    assert m.coded_pixels().shape == (33, 50) and m.coded_pixels()[16:32, 48:].all()
    with pytest.raises(ValueError, match="does not fit"):
        Mask.from_grid(np.ones((2, 2), bool), 33, 50)


def test_gt_mask_is_union_of_instances(coco_root: str) -> None:
    ds = DATASETS.build("coco", {"root": coco_root, "limit": 2})
    s = ds.load(ds.ids()[0])
    m = MASKS.build("gt", {})(image=s.image, annotations=s.annotations)
    union = np.zeros(s.image.shape[:2], bool)
    for a in s.annotations:
        union |= ds.instances.annToMask(a).astype(bool)
    assert (m.pixels == union).all() and 0 < m.visible_fraction < 1
    person = MASKS.build("gt", {"category_ids": [1]})(image=s.image, annotations=s.annotations)
    assert person.pixels.sum() < union.sum()
    grown = MASKS.build("gt", {"dilate": 5})(image=s.image, annotations=s.annotations)
    assert grown.pixels.sum() > union.sum() and (grown.pixels | ~union).all()
    with pytest.raises(ValueError, match="needs annotations"):
        MASKS.build("gt", {})(image=s.image, annotations=None)


def test_laplacian_matches_opencv_ksize3_kernel() -> None:
    img = np.zeros((16, 16, 3), np.uint8)
    img[8, 8] = 10
    lap = cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_16S, ksize=3)
    assert lap[8, 8] == -80 and lap[7, 7] == 20 and lap[7, 8] == 0  # [[2,0,2],[0,-8,0],[2,0,2]]
    expected = np.abs(lap).mean()
    assert texture_scores(img)[0, 0] == pytest.approx(expected)


def test_gumbel_top_k_equals_multinomial_without_replacement() -> None:
    c = np.array([1.0, 2.0, 3.0, 4.0])
    rng = np.random.default_rng(0)
    n = 20000
    counts = np.zeros((4, 4))
    for _ in range(n):
        a, b = sample_visible(c, 2, rng)
        counts[a, b] += 1
    p = c / c.sum()
    expected = np.array([[0 if i == j else p[i] * p[j] / (1 - p[i]) for j in range(4)] for i in range(4)]) * n
    mask = expected > 0
    chi2 = (((counts - expected) ** 2)[mask] / expected[mask]).sum()
    assert chi2 < 32.9  # chi-square, 11 dof, p = 0.001


def test_damask_ratio_seed_and_structure(coco_root: str) -> None:
    ds = DATASETS.build("coco", {"root": coco_root, "limit": 1})
    s = ds.load(ds.ids()[0])
    gen = MASKS.build("damask", {"visible_ratio": 0.25, "seed": 3})
    a, b = gen(image=s.image, sample_id=s.id), gen(image=s.image, sample_id=s.id)
    assert (a.grid == b.grid).all() and a.grid.sum() == round(0.25 * a.grid.size)
    other = gen(image=s.image, sample_id="another")
    assert not (other.grid == a.grid).all()
    gt = MASKS.build("gt", {})(image=s.image, annotations=s.annotations)
    guided = gen(image=s.image, sample_id=s.id, structure=gt)
    assert (guided.grid & gt.grid).sum() > (a.grid & gt.grid).sum()  # structure pulls units onto objects
    with pytest.raises(ValueError, match="does not match"):
        gen(image=s.image, sample_id=s.id, structure=Mask.full(10, 10))
    assert sorted(guided.order.tolist()) == np.flatnonzero(guided.grid).tolist()  # sampling order kept


def test_damask_terms_for_mcms_ablation(coco_root: str) -> None:
    """texture-only ignores the structure input; structure-only ignores texture (MCM Table 2)."""
    ds = DATASETS.build("coco", {"root": coco_root, "limit": 1})
    s = ds.load(ds.ids()[0])
    gt = MASKS.build("gt", {})(image=s.image, annotations=s.annotations)
    ratio = 0.5 * gt.grid.mean()
    both = MASKS.build("damask", {"visible_ratio": ratio})(image=s.image, sample_id="a", structure=gt)
    tex = MASKS.build("damask", {"visible_ratio": ratio, "terms": "texture"})
    assert (tex(image=s.image, sample_id="a", structure=gt).grid == tex(image=s.image, sample_id="a").grid).all()
    struct = MASKS.build("damask", {"visible_ratio": ratio, "terms": "structure"})
    flat = np.zeros_like(s.image)  # no texture at all: only the structure can place the units
    on_obj = struct(image=flat, sample_id="a", structure=gt).grid
    assert (on_obj & gt.grid).sum() >= 0.9 * on_obj.sum() and not (on_obj == both.grid).all()
    with pytest.raises(ValueError, match="needs a structure"):
        struct(image=s.image, sample_id="a")
    with pytest.raises(ValueError, match="terms"):
        MASKS.build("damask", {"terms": "edges"})


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_empty_and_full_masks(ratio: float, noise_image: np.ndarray) -> None:
    for name in ("damask", "random"):
        m = MASKS.build(name, {"visible_ratio": ratio})(image=noise_image, sample_id="x")
        assert m.grid.all() if ratio else not m.grid.any()


def test_side_info_roundtrip_and_corruption() -> None:
    rng = np.random.default_rng(1)
    for shape, p in [((3, 5), 0.5), ((27, 40), 0.1), ((32, 48), 0.7), ((1, 1), 0.5)]:
        grid = rng.random(shape) < p
        data = encode_grid(grid)
        assert (decode_grid(data, *shape) == grid).all()
    blob = np.zeros((30, 40), bool)
    blob[5:20, 10:30] = True
    assert len(encode_grid(blob)) < 40  # a compact region codes to far less than 1200 bits
    assert len(encode_grid(np.ones((30, 40), bool))) == 1
    data = encode_grid(rng.random((20, 20)) < 0.5)
    with pytest.raises(SideInfoError):
        decode_grid(data[:-3], 20, 20)
    with pytest.raises(SideInfoError):
        decode_grid(b"", 20, 20)


def test_yolo_seg_mask_covers_people(coco_root: str) -> None:
    ds = DATASETS.build("coco", {"root": coco_root, "limit": 1})
    s = ds.load(ds.ids()[0])
    m = MASKS.build("yolo_seg", {"category_ids": [1], "score_threshold": 0.3})(image=s.image)
    person = np.zeros(s.image.shape[:2], bool)
    for a in s.annotations:
        if a["category_id"] == 1:
            person |= ds.instances.annToMask(a).astype(bool)
    inter = (m.pixels & person).sum() / max((m.pixels | person).sum(), 1)
    assert inter > 0.3 and m.shape == s.image.shape[:2]
