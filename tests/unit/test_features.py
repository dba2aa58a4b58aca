"""Feature extraction: cache reuse and invalidation, image pooling, bf16 agreement and fallback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from dermkit.core.errors import InputError
from dermkit.core.precision import native_bf16
from dermkit.data.table import Case, read_table, update_table, write_table
from dermkit.models import encoding as F
from dermkit.models import load_model
from dermkit.models.embeddings import l2_normalize
from dermkit.models.feature_cache import weights_fingerprint

torch.set_num_threads(1)


@pytest.fixture
def table(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    """Six cases, the odd ones with two images, over three splits."""
    cases = []
    for i in range(6):
        paths = [str(make_image(f"c{i}_{j}.png", size=(40, 36))) for j in range(1 + i % 2)]
        cases.append(Case(case_id=f"c{i}", image_paths=paths, source="syn", split=("train", "val", "test")[i % 3],
                          diagnosis_id="melanoma"))
    return write_table(cases, tmp_path / "table")


@pytest.fixture
def counting_model(monkeypatch: pytest.MonkeyPatch):
    """tiny-clip whose image encoder counts the images it sees."""
    loaded = load_model("tiny-clip")
    seen = {"images": 0}
    original = loaded.model.encode_image

    def encode_image(x, normalize=False):
        seen["images"] += len(x)
        return original(x, normalize=normalize)

    monkeypatch.setattr(loaded.model, "encode_image", encode_image)
    return loaded, seen


def extract(model, table, cache: Path, **kwargs):
    return F.extract_image_features(model, table, cache_dir=cache, num_workers=0, progress=False, **kwargs)


def test_second_extraction_reads_the_cache(table: Path, tmp_path: Path, counting_model) -> None:
    loaded, seen = counting_model
    first = extract(loaded, table, tmp_path / "cache", precision="fp32")
    assert seen["images"] == 6
    second = extract(loaded, table, tmp_path / "cache", precision="fp32")
    assert seen["images"] == 6, "the cached features must be reused without running the model"
    np.testing.assert_array_equal(first.embeddings, second.embeddings)
    assert list(second.case_ids) == [f"c{i}" for i in range(6)]
    np.testing.assert_allclose(np.linalg.norm(first.embeddings, axis=1), 1.0, rtol=1e-5)


def test_cache_is_invalidated_by_images_and_weights_not_by_labels(
    table: Path, tmp_path: Path, counting_model, make_image: Callable[..., Path]
) -> None:
    loaded, seen = counting_model
    cache = tmp_path / "cache"
    extract(loaded, table, cache, precision="fp32")

    frame = read_table(table)
    frame.loc[0, "diagnosis_id"] = "melanocytic_nevus"
    update_table(frame, table)
    extract(loaded, table, cache, precision="fp32")
    assert seen["images"] == 6, "relabelling does not change what the images look like"

    replacement = make_image("other.png", size=(50, 50))
    Path(frame.loc[0, "image_paths"][0]).write_bytes(replacement.read_bytes())
    extract(loaded, table, cache, precision="fp32")
    assert seen["images"] == 12, "a replaced image file must invalidate the cache"

    frame = frame.iloc[1:].reset_index(drop=True)
    extract(loaded, frame, cache, precision="fp32")
    assert seen["images"] == 17, "another set of cases is another table"

    other_weights = load_model("tiny-clip", seed=1)
    assert weights_fingerprint(other_weights.model) != weights_fingerprint(loaded.model)
    assert len(list(cache.iterdir())) == 3


def test_all_images_are_pooled_per_case(table: Path, tmp_path: Path) -> None:
    loaded = load_model("tiny-clip")
    features = extract(loaded, table, tmp_path / "cache", images="all", precision="fp32")
    assert len(features.embeddings) == 9
    rows = np.flatnonzero(features.case_ids == "c1")
    expected = features.embeddings[rows].mean(axis=0)
    expected /= np.linalg.norm(expected)
    pooled = features.by_case(["c1", "c0"])
    np.testing.assert_allclose(pooled[0], expected, rtol=1e-5)
    np.testing.assert_allclose(pooled[1], features.embeddings[features.case_ids == "c0"][0], rtol=1e-5)
    with pytest.raises(InputError, match="no features"):
        features.by_case(["missing"])


def test_worker_processes_give_the_same_embeddings(table: Path, tmp_path: Path) -> None:
    loaded = load_model("tiny-clip")
    inline = extract(loaded, table, tmp_path / "a", precision="fp32")
    workers = F.extract_image_features(loaded, table, cache_dir=tmp_path / "b", num_workers=1,
                                       precision="fp32", progress=False, batch_size=4)
    np.testing.assert_allclose(inline.embeddings, workers.embeddings, atol=1e-5)


@pytest.mark.skipif(not native_bf16("cpu"), reason="this CPU has no fast bf16")
def test_bf16_embeddings_agree_with_fp32(table: Path, tmp_path: Path) -> None:
    loaded = load_model("tiny-clip")
    fp32 = extract(loaded, table, tmp_path / "cache", precision="fp32")
    bf16 = extract(loaded, table, tmp_path / "cache", precision="bf16")
    assert bf16.meta["precision_used"] == "bf16" and fp32.meta["precision_used"] == "fp32"
    assert np.min(np.sum(fp32.embeddings * bf16.embeddings, axis=1)) >= F.BF16_MIN_COSINE


class _AutocastSensitive(torch.nn.Module):
    """Embeds an image as its channel means, but points elsewhere whenever autocast is on."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.eye(3))

    def encode_image(self, x, normalize=False):
        if torch.is_autocast_enabled("cpu"):
            return torch.tensor([[0.0, 0.0, 1.0]]).expand(len(x), 3)
        return x.mean(dim=(2, 3)) @ self.weight + torch.tensor([1.0, 0.0, 0.0])


def test_bf16_falls_back_to_fp32_when_embeddings_drift(table: Path, tmp_path: Path) -> None:
    from torchvision.transforms.functional import to_tensor

    from dermkit.models.loaded import LoadedModel

    fake = LoadedModel(model=_AutocastSensitive(), preprocess_train=to_tensor, preprocess_eval=to_tensor,
                       tokenizer=None, name="drifting", embed_dim=3)  # type: ignore[arg-type]
    with pytest.warns(RuntimeWarning, match="using fp32"):
        features = extract(fake, table, tmp_path / "cache", precision="bf16")
    assert features.meta["precision_used"] == "fp32"
    assert np.all(features.embeddings[:, 0] > 0.5)


def test_unknown_options_are_refused(table: Path, tmp_path: Path) -> None:
    loaded = load_model("tiny-clip")
    with pytest.raises(InputError, match="images must be"):
        extract(loaded, table, tmp_path / "cache", images="some")
    with pytest.raises(InputError, match="precision must be"):
        extract(loaded, table, tmp_path / "cache", precision="fp8")


def test_models_on_one_trunk_share_its_features_and_match_their_own_encoder(table: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """dermlip-lite, its export reloaded from disk (whose config prints lists where the built model
    prints tuples) and timm:efficientnet_lite0 share a trunk: it runs once, each model's head on top."""
    from dermkit.data.images import open_image
    from dermkit.models import ModelCard, export_model

    clip = load_model("dermlip-lite")
    export_model(clip, tmp_path / "export", ModelCard(model_id="export"))
    models = [clip, load_model("timm:efficientnet_lite0"), load_model(f"local-dir:{tmp_path / 'export'}")]
    runs = []
    original = F._embed_images
    monkeypatch.setattr(F, "_embed_images", lambda *args: runs.append(args[1]) or original(*args))
    cached = [extract(loaded, table, tmp_path / "cache", precision="fp32") for loaded in models]
    assert runs == [F.image_trunk(models[0].model)[0]]  # the second model found the trunk's features
    assert [f.meta["model"] for f in cached][:2] == ["dermlip-lite", "timm:efficientnet_lite0"]
    paths = F.image_index(read_table(table), "first")["path"]
    with torch.inference_mode():
        for loaded, features in zip(models, cached):
            pixels = torch.stack([loaded.preprocess_eval(open_image(p)) for p in paths])
            direct = l2_normalize(loaded.model.encode_image(pixels).float().numpy())
            np.testing.assert_allclose(features.embeddings, direct, atol=1e-5)


def test_a_tower_without_a_trunk_and_head_is_embedded_whole() -> None:
    assert F.image_trunk(load_model("tiny-clip").model) is None  # a ViT: the other tests cover that path


def test_text_embeddings_cut_padding_without_changing_the_result() -> None:
    loaded = load_model("dermlip-lite")
    texts = ["a melanoma on the back", "a benign nevus with a regular pigment network on the upper arm"]
    with torch.inference_mode():
        full = l2_normalize(loaded.model.encode_text(loaded.tokenizer(texts)).float().numpy())
    np.testing.assert_allclose(F.encode_texts(loaded, texts), full, atol=1e-5)
