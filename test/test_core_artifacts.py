"""Where the engine cache lives: an explicit folder, else $CLIP_PERCEPTION_CACHE_DIR, else
~/.cache/clip_perception; and the test session never writes the real home directory."""
import os
from pathlib import Path

from clip_perception.core import artifacts
from clip_perception.core.artifacts import CACHE_DIR_ENV, cache_root, model_artifact_dir


def test_explicit_folder_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "from_env"))
    assert cache_root(tmp_path / "given") == tmp_path / "given"
    assert cache_root(None) == tmp_path / "from_env"
    assert cache_root("") == tmp_path / "from_env"


def test_without_the_variable_the_home_cache_is_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_root() == tmp_path / ".cache" / "clip_perception"
    assert artifacts.DEFAULT_CACHE_DIR == "~/.cache/clip_perception"


def test_a_model_folder_is_under_the_environment_cache(tiny_clip, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    folder = model_artifact_dir(tiny_clip)
    assert folder.parent == tmp_path
    assert tiny_clip.weights_hash[:16] in folder.name


def test_the_session_points_every_default_away_from_the_real_home(engine_cache_dir,
                                                                  tmp_path_factory):
    """conftest's autouse fixture: default cache, ROS logs and $HOME are in pytest's tmp."""
    base = tmp_path_factory.getbasetemp()
    for variable in (CACHE_DIR_ENV, "ROS_LOG_DIR", "HOME"):
        assert Path(os.environ[variable]).is_relative_to(base), variable
    assert cache_root().is_relative_to(base)
    assert engine_cache_dir.is_dir() and engine_cache_dir.is_relative_to(base)
