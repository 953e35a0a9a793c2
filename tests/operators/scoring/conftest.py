"""The judge's fixtures: the tiny InternVL and the misbehaving OpenAI-compatible server of the instruction tests."""
from __future__ import annotations

import pytest

from tests.operators.instructions.conftest import ChatServer, build_tiny_internvl


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory):
    return build_tiny_internvl(tmp_path_factory.mktemp("tiny_judge"))


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
