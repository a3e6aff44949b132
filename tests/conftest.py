import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("SELFEVOLVE_TEST_THREADS", "2")))


@pytest.fixture
def tok():
    from selfevolve.models.tokenizer import CharTokenizer

    return CharTokenizer()
