"""The object_proposals stage: once per photo, the objects it holds (detector + SAM, or the classical regions), written
onto the photo (SourceImage.proposals) for every edit that removes, replaces or cuts out an object."""

from __future__ import annotations

from typing import Any, ClassVar

from datagen import placement
from datagen.batch import ITEM_PROPOSALS, ITEMS, WorkBatch
from datagen.devices import resolve_device
from datagen.operator import Operator, OperatorConfig, Resources, Role
from datagen.placement import Placement
from operators.edits.object_proposals import ProposalConfig, Proposer

NO_PROPOSALS = "photo has no object proposals (the object_proposals stage did not run before this one)"


class ObjectProposalsConfig(OperatorConfig, Placement, ProposalConfig):
    """The proposal settings (ProposalConfig) and where the stage runs. The edits read what it wrote; its settings
    go into their samples' parameters (key) as `proposals`, as when each edit had its own."""

    def settings(self) -> ProposalConfig:
        """The proposal settings alone: what the edits record in their samples."""
        return ProposalConfig(**{name: getattr(self, name) for name in ProposalConfig.model_fields})


class ObjectProposals(Operator):
    """Finds each photo's objects once; it makes no sample. A MAKE-role stage, placed before the first edit that reads
    them: a photo it fails on is quarantined with its error, like one a maker fails on."""

    name = "object_proposals"
    version = "1"
    role = Role.MAKE
    reads = (ITEMS,)
    writes = (ITEM_PROPOSALS,)
    Config: ClassVar[type[ObjectProposalsConfig]] = ObjectProposalsConfig

    def __init__(self, config=None, **context: Any):
        super().__init__(config, **context)
        self.stateful = self.config.backend == "model"
        self._proposer: Proposer | None = None

    def resources(self) -> Resources:
        if self.config.backend != "model":
            return Resources(batch_size=16)
        return placement.resources(self.config)

    def models(self) -> tuple[str, ...]:
        c = self.config
        if c.backend != "model":
            return ()
        return (f"detector {c.detector}",) + ((f"sam {c.sam_checkpoint}",) if c.sam_checkpoint else ())

    def describe(self) -> str:
        return f"object_proposals: {Proposer(self.config.settings()).describe()}, once per photo"

    def setup(self) -> None:
        if self._proposer is None:
            self._proposer = Proposer(self.config.settings(), resolve_device(self.config.device))
            self._proposer.setup()

    def process(self, batch: WorkBatch) -> WorkBatch:
        self.setup()
        for item in batch.items:
            item.proposals = self._proposer.propose(item.image, item.caption)
        return batch
