"""The `instructions` recipe section: how every sample gets its instruction."""
from __future__ import annotations

from typing import Literal

from datagen.config import Section, register_section


class InstructionsConfig(Section):
    method: Literal["template"] = "template"


register_section("instructions", InstructionsConfig)
