"""The judge's fixtures: the tiny InternVL (random, and taught the judge's answer) and
the misbehaving OpenAI-compatible server of the instruction tests."""

from __future__ import annotations

import pytest

from pipelines.rehearsal.tiny_language import build_tiny_internvl, build_tiny_judge
from pipelines.rehearsal.tiny_scoring import build_tiny_aesthetic, build_tiny_clip, build_tiny_dinov2
from tests.operators.instructions.conftest import ChatServer


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory):
    return build_tiny_internvl(tmp_path_factory.mktemp("tiny_judge"))


@pytest.fixture(scope="session")
def tiny_taught_judge(tmp_path_factory):
    """The rehearsal's tiny judge: a tiny InternVL taught to answer in the judge's format."""
    return build_tiny_judge(tmp_path_factory.mktemp("tiny_taught_judge"), steps=120)


@pytest.fixture
def judge_server():
    servers = []

    def start(**kw) -> ChatServer:
        s = ChatServer(**kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_clip")
    return {"pretrained": build_tiny_clip(root / "clip"), "aesthetic": str(build_tiny_aesthetic(root))}


@pytest.fixture(scope="session")
def tiny_dinov2(tmp_path_factory):
    return str(build_tiny_dinov2(tmp_path_factory.mktemp("tiny_dinov2")))
