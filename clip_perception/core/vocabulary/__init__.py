"""What the node's outputs mean: the label-set spec and its validation (``spec``), the
immutable snapshot with its embeddings (``snapshot``), building snapshots for a loaded model with
the adapter checks (``builder``), and the background builder that swaps snapshots by reference
(``manager``)."""
from .builder import LabelSetBuilder, check_adapter_header, load_checked_adapter
from .manager import LabelSetManager
from .snapshot import LabelSet, adapter_prompt_differences, build_label_set
from .spec import (ADAPTER_BLEND_FROM_FILE, DEFAULT_LANDMARK_TEMPLATES, LabelSetSpec, SpecError,
                   count_prompts, name_list_problem)

__all__ = ["ADAPTER_BLEND_FROM_FILE", "DEFAULT_LANDMARK_TEMPLATES", "LabelSet", "LabelSetBuilder",
           "LabelSetManager", "LabelSetSpec", "SpecError", "adapter_prompt_differences",
           "build_label_set", "check_adapter_header", "count_prompts", "load_checked_adapter",
           "name_list_problem"]
