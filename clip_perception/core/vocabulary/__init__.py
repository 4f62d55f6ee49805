"""What the node's outputs mean: the label-set spec and its validation (``spec``), the
immutable snapshot with its embeddings (``snapshot``), and the background builder that swaps
snapshots by reference (``manager``)."""
from .manager import LabelSetManager
from .snapshot import LabelSet, adapter_prompt_differences, build_label_set, load_checked_adapter
from .spec import (ADAPTER_BLEND_FROM_FILE, DEFAULT_LANDMARK_TEMPLATES, LabelSetSpec, SpecError,
                   count_prompts, name_list_problem)

__all__ = ["ADAPTER_BLEND_FROM_FILE", "DEFAULT_LANDMARK_TEMPLATES", "LabelSet", "LabelSetManager",
           "LabelSetSpec", "SpecError", "adapter_prompt_differences", "build_label_set",
           "count_prompts", "load_checked_adapter", "name_list_problem"]
