"""A learner with needs (Man, Damasio and Neven 2022, "Need is all you need: homeostatic neural networks
adapt to concept shift"), on a stream of generated digits whose labels swap.

The network classifies each digit before it learns from it (prequential accuracy). Its internal
state is an energy in [0, 1] with a set point at 1: a right answer feeds it (+`gain`), a wrong one
costs it (-`cost`), and its need is how far below the set point it is. The homeostatic learner's
step size grows with its need, lr = base x (1 + `coupling` x need): a string of errors after a
concept shift makes it hungry and so plastic, and being right again calms it. The regulators it
is compared with, at the same base step size:

- `constant`: a fixed step size (the best of a grid, chosen on dev seeds);
- `random`: the homeostatic learner's own step sizes of the same stream, shuffled in time (the same
  amount of regulation, none of it timed by need);
- `surprise` (the control of this reading): lr = base x (1 + coupling x e), with e a moving
  average of its own errors, the same signal with no internal state in between;
- `adam`: Adam with its usual step size.

`lrh` is the regulation of the paper's released code (its "homeostatic decision making"): half the
classes excite the step size and half inhibit it (labels 5-9 and 0-4). Every `interval` samples the
learner imagines two steps on the current sample, one at its step size ("leave it") and one nudged
by the effect of the class it guessed ("take it"), and scores both on its last `memory` samples; if
taking it is better, the step size moves by the effect of the true label, so a wrong guess pushes it
the wrong way. `lookahead` is the control the paper lacks: the same two imagined steps with the nudge
up or down by a coin flip, kept when it is better, with no classes exciting or inhibiting anything.

Digits are 5 x 7 glyphs at a random offset in a 7 x 9 canvas with flipped pixels. A concept shift
swaps the labels of two classes every `swap_every` samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GLYPHS = ["01110100011001110101110011000101110", "00100011000010000100001000010001110",
          "01110100010000100010001000100011111", "11111000100010000010000011000101110",
          "00010001100101010010111110001000010", "11111100001111000001000011000101110",
          "00110010001000011110100011000101110", "11111000010001000100010000100001000",
          "01110100011000101110100011000101110", "01110100011000101111000010001001100"]
ROWS, COLS, CANVAS_ROWS, CANVAS_COLS = 7, 5, 9, 7
REGULATORS = ("homeostatic", "surprise", "random", "constant", "adam", "lrh", "lookahead")
EXCITING = 5  # labels from this one up raise lrh's step size, those below lower it


def digits(n: int, rng: np.random.Generator, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """n noisy digit images (n, 63) in {0, 1} and their classes."""
    glyphs = np.array([[int(b) for b in g] for g in GLYPHS], dtype=np.float32).reshape(10, ROWS, COLS)
    classes = rng.integers(0, 10, n)
    images = np.zeros((n, CANVAS_ROWS, CANVAS_COLS), dtype=np.float32)
    dr, dc = rng.integers(0, CANVAS_ROWS - ROWS + 1, n), rng.integers(0, CANVAS_COLS - COLS + 1, n)
    for i in range(n):
        images[i, dr[i]:dr[i] + ROWS, dc[i]:dc[i] + COLS] = glyphs[classes[i]]
    flips = rng.random(images.shape) < noise
    return np.abs(images - flips).reshape(n, -1), classes


def swapped_labels(classes: np.ndarray, swap_every: int, rng: np.random.Generator) -> np.ndarray:
    """The stream's labels: every `swap_every` samples two classes trade labels (and stay traded)."""
    mapping, labels = np.arange(10), np.empty_like(classes)
    for start in range(0, len(classes), swap_every):
        if start:
            a, b = rng.choice(10, 2, replace=False)
            mapping[[a, b]] = mapping[[b, a]]
        labels[start:start + swap_every] = mapping[classes[start:start + swap_every]]
    return labels


@dataclass
class Need:
    """The internal state: energy in [0, 1], set point 1; need = 1 - energy."""

    gain: float = 0.05
    cost: float = 0.2
    energy: float = 1.0

    def feel(self, right: bool) -> float:
        """Update the energy by one outcome; returns the need after it."""
        self.energy = float(np.clip(self.energy + (self.gain if right else -self.cost), 0.0, 1.0))
        return 1.0 - self.energy


class MLP:
    """One hidden layer (tanh), softmax output, trained one sample at a time by SGD or Adam."""

    def __init__(self, rng: np.random.Generator, inputs: int = CANVAS_ROWS * CANVAS_COLS, hidden: int = 48) -> None:
        self.params = [rng.normal(0, 1 / np.sqrt(inputs), (inputs, hidden)), np.zeros(hidden),
                       rng.normal(0, 1 / np.sqrt(hidden), (hidden, 10)), np.zeros(10)]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def predict(self, x: np.ndarray) -> tuple[int, list[np.ndarray]]:
        w1, b1, w2, b2 = self.params
        h = np.tanh(x @ w1 + b1)
        logits = h @ w2 + b2
        p = np.exp(logits - logits.max())
        return int(p.argmax()), [x, h, p / p.sum()]

    def gradients(self, cache: list[np.ndarray], label: int) -> list[np.ndarray]:
        x, h, p = cache
        dlogits = p.copy()
        dlogits[label] -= 1.0
        dh = (self.params[2] @ dlogits) * (1 - h * h)
        return [np.outer(x, dh), dh, np.outer(h, dlogits), dlogits]

    def accuracy_after(self, grads: list[np.ndarray], lr: float, x: np.ndarray, labels: np.ndarray) -> float:
        """Accuracy on (x, labels) of the network as it would be after an SGD step (it is not taken)."""
        w1, b1, w2, b2 = (p - lr * g for p, g in zip(self.params, grads, strict=True))
        return float(((np.tanh(x @ w1 + b1) @ w2 + b2).argmax(1) == labels).mean())

    def sgd(self, grads: list[np.ndarray], lr: float) -> None:
        for p, g in zip(self.params, grads, strict=True):
            p -= lr * g

    def adam(self, grads: list[np.ndarray], lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= lr * (m / (1 - b1 ** self.t)) / (np.sqrt(v / (1 - b2 ** self.t)) + eps)


def stream(seed: int, samples: int, swap_every: int, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 0])
    x, classes = digits(samples, rng, noise)
    return x, swapped_labels(classes, swap_every, rng)


def learn(x: np.ndarray, labels: np.ndarray, regulator: str, lr: float, seed: int, coupling: float = 4.0,
          need: Need | None = None, schedule: np.ndarray | None = None, surprise_decay: float = 0.9,
          interval: int = 10, memory: int = 20, nudge: float = 0.1) -> dict:
    """One pass over the stream, predicting each sample before learning from it. Returns the prequential
    right/wrong per sample and the step size used at each (lrh and lookahead: nudges of `nudge` x lr)."""
    net, need = MLP(np.random.default_rng([seed, 1])), need or Need()
    coin = np.random.default_rng([seed, 3])
    right = np.zeros(len(labels), dtype=bool)
    used = np.zeros(len(labels))
    level, errors, step = 0.0, 0.0, lr  # the need, the moving average of errors, lrh's current step size
    for i in range(len(labels)):
        guess, cache = net.predict(x[i])
        right[i] = guess == labels[i]
        grads = net.gradients(cache, int(labels[i]))
        if regulator == "homeostatic":
            used[i] = lr * (1 + coupling * level)
        elif regulator == "surprise":
            used[i] = lr * (1 + coupling * errors)
        elif regulator == "random":
            used[i] = schedule[i]
        elif regulator in ("lrh", "lookahead"):
            if i >= memory and i % interval == 0:
                step = decide(net, grads, step, lr * nudge, guess, int(labels[i]),
                              (x[i - memory:i], labels[i - memory:i]), regulator == "lrh", coin)
            used[i] = step
        else:
            used[i] = lr
        net.adam(grads, used[i]) if regulator == "adam" else net.sgd(grads, used[i])
        level = need.feel(bool(right[i]))
        errors = surprise_decay * errors + (1 - surprise_decay) * (not right[i])
    return {"right": right, "lr": used}


def decide(net: MLP, grads: list[np.ndarray], step: float, effect: float, guess: int, label: int,
           recent: tuple[np.ndarray, np.ndarray], coupled: bool, coin: np.random.Generator) -> float:
    """One decision of lrh (`coupled`) or lookahead: imagine a step at `step` and one nudged by `effect`
    (lrh: the guessed class's effect; lookahead: up or down by a coin flip), score both on the recent
    samples, and if the nudged one is better move: lrh by the true label's effect, lookahead by its nudge."""
    tried = (effect if guess >= EXCITING else -effect) if coupled else effect * coin.choice([-1, 1])
    if net.accuracy_after(grads, max(step + tried, 1e-8), *recent) > net.accuracy_after(grads, step, *recent):
        step += (effect if label >= EXCITING else -effect) if coupled else tried
    return max(step, 1e-8)


def shuffled(schedule: np.ndarray, seed: int) -> np.ndarray:
    """The same step sizes in a random order: regulation of the same amount, timed by nothing."""
    return np.random.default_rng([seed, 2]).permutation(schedule)
