"""Does a model answer the same through `selfevolve serve` as loaded here? The logged conversations of a run,
answered greedily both ways, all at once (the server batches the concurrent requests as it would in a run).

    python bench/served_vs_local.py [--run runs/evolve-program/regression-lm-0] [--calls 16] [--max-tokens 256]
                                    [--model smollm2]

Prints one JSON line: how many replies are equal, and for each one that is not, where it first differs
(characters into the reply) and the two replies' lengths. Equal replies mean a served run and a run with
the model loaded here differ only by their random draws.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from common import emit
from evolve_program import served

from selfevolve.models.lm import OpenAILM, TransformerLM, logged_calls
from selfevolve.store import RunStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/evolve-program/regression-lm-0"))
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    conversations = [json.loads(c) for c, _ in logged_calls(RunStore.open(args.run))[: args.calls]]
    local = TransformerLM.from_pretrained(args.model).chats(conversations, temperature=0.0, max_tokens=args.max_tokens)
    with served(args.model, args.threads) as base:
        remote = OpenAILM(base, "lm").chats(conversations, temperature=0.0, max_tokens=args.max_tokens)
    differ = [{"call": i, "at": len(os.path.commonprefix([a.text, b.text])), "local_chars": len(a.text),
               "served_chars": len(b.text)} for i, (a, b) in enumerate(zip(local, remote, strict=True))
              if a.text != b.text]
    emit(bench="served_vs_local", run=str(args.run), calls=len(conversations),
         equal=len(conversations) - len(differ), differ=differ)


if __name__ == "__main__":
    main()
