import numpy as np
import pytest
from PIL import Image

from clip_perception.core.preprocess import PreprocessConfig, Preprocessor, resized_shape

from conftest import natural_like_image


def open_clip_reference(clip, frame):
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    transform = image_transform_v2(
        PreprocessCfg(**open_clip.get_model_preprocess_cfg(clip.model)), is_train=False)
    return transform(Image.fromarray(frame)).numpy()


@pytest.mark.parametrize("shape", [(480, 640), (640, 480), (224, 224), (37, 50), (720, 1280)])
def test_matches_open_clip_preprocess_within_one_level(tiny_clip, shape):
    frame = natural_like_image(*shape, seed=shape[0])
    ours = Preprocessor(tiny_clip.preprocess)([frame])[0]
    ref = open_clip_reference(tiny_clip, frame)
    assert ours.shape == ref.shape
    # Compare in pixel levels (normalised difference times the channel's std*255): at most one
    # level apart, from float rounding of the resample box.
    std = np.asarray(tiny_clip.preprocess.std, np.float32)[:, None, None]
    assert (np.abs(ours - ref) * 255 * std).max() <= 1.0 + 1e-3


def test_matches_open_clip_for_vit_b_32_size(vit_b_32_clip):
    frame = natural_like_image(480, 640, seed=3)
    ours = Preprocessor(vit_b_32_clip.preprocess)([frame])[0]
    ref = open_clip_reference(vit_b_32_clip, frame)
    std = np.asarray(vit_b_32_clip.preprocess.std, np.float32)[:, None, None]
    assert ours.shape == (3, 224, 224)
    assert (np.abs(ours - ref) * 255 * std).max() <= 1.0 + 1e-3


def test_resized_shape_truncates_like_torchvision():
    assert resized_shape(480, 640, 224) == (224, 298)
    assert resized_shape(640, 480, 224) == (298, 224)


def test_batch_shape_and_dtype(tiny_clip):
    frames = [natural_like_image(48, 80, seed=i) for i in range(3)]
    batch = Preprocessor(tiny_clip.preprocess)(frames)
    assert batch.shape == (3, 3, 64, 64) and batch.dtype == np.float32


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                 np.zeros((0, 10, 3), np.uint8), np.zeros((10, 10, 4), np.uint8)])
def test_bad_frames_are_rejected_with_reason(tiny_clip, bad):
    with pytest.raises(ValueError, match="frame"):
        Preprocessor(tiny_clip.preprocess)([bad])


def test_unsupported_resize_mode_is_rejected():
    with pytest.raises(ValueError, match="resize_mode 'longest'"):
        PreprocessConfig(224, (0.5,) * 3, (0.5,) * 3, resize_mode="longest")
