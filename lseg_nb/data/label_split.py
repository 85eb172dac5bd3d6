"""The label texts of a run and the seen/unseen partition of one zero-shot fold, with the training lookup table."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class LabelSplit:
    """Class names plus the seen/unseen partition of one fold (all classes seen when no fold)."""

    class_names: tuple[str, ...]
    seen: tuple[int, ...]
    unseen: tuple[int, ...]

    @property
    def seen_names(self) -> list[str]:
        return [self.class_names[i] for i in self.seen]

    @property
    def unseen_names(self) -> list[str]:
        return [self.class_names[i] for i in self.unseen]

    def lut_size(self) -> int:
        """Entries of :meth:`train_lut`: every class index plus the dataset void value (255, or ``C`` when the
        ``C`` classes reach 255, as FSS-1000's 1001 labels do)."""
        return max(256, len(self.class_names) + 1)

    def train_lut(self, ignore_index: int = 255) -> Tensor:
        """Lookup table full class index -> position in the seen label list; unseen and void -> ``ignore_index``.

        ``max(256, C + 1)`` entries, so class indices above 255 keep their own entry (see :meth:`lut_size`).
        """
        lut = torch.full((self.lut_size(),), ignore_index, dtype=torch.long)
        for pos, cls in enumerate(self.seen):
            lut[cls] = pos
        return lut
