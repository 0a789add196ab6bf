"""Word problems whose every step a checker verifies exactly: reasoning chains with known step errors
for process reward models (issue 34; the exact-label setting of PRM800K, Lightman et al. 2023).

A problem is a short story over small whole numbers: ``simple`` ones take two operations on numbers
below 20 (a 135M-parameter model solves some), ``multi-step`` ones three or four (shopping, change in
cents, a rope in metres, a train's distance). Its solution is a plan of operations,
each on numbers of the question or results of earlier operations; a correct chain writes one step per
operation (``Cost of the pens in cents: 4 × 35 = 140.``) and ends with ``The answer is N.``.

A wrong chain is the correct one with one step corrupted, the later steps carried on from the wrong
value as a careless solver would:
- ``slip``: the step's result is off by a small amount (its arithmetic is false);
- ``operation``: the step applies another operation to the right numbers (true arithmetic, wrong reasoning);
- ``operand``: the step uses a number the plan does not (true arithmetic, wrong number).
Its labels are 1 for the steps before the corrupted one and 0 from it on. A corruption that would make
a later value negative or fractional, or whose wrong number happens to be one of the problem's
reference values, is drawn again.

The checker (``check_steps``) needs no plan, so it labels chains a model wrote as well: a step is right
when every equation in it (``a op b [op c …] = d``; ``+ - − × x * / ÷``) is true and all its numbers are
reference values (the question's numbers, the unit constants, the plan's results), and a step saying
"the answer is N" is right when N is the answer; a step with neither is prose, right by itself. A step's
label is 1 while it and every step before it are right, and a whole chain's last step is right only if
the chain has stated the right answer. A step that computes something off the solution's path counts as
wrong. On generated chains it agrees with the construction exactly (tested). ``reply_steps`` cuts a
model's reply into steps (its lines, up to the answer).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from rewardlab.data.chains import StepChain

OPERATIONS: dict[str, Callable[[Fraction, Fraction], Fraction]] = {
    "+": lambda a, b: a + b,
    "−": lambda a, b: a - b,
    "×": lambda a, b: a * b,
    "÷": lambda a, b: a / b,
}
SYMBOLS = {"+": "+", "-": "−", "−": "−", "–": "−", "×": "×", "x": "×", "*": "×", "/": "÷", "÷": "÷"}
KINDS = ("slip", "operation", "operand")
NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goro", "Hana", "Ivan", "Jade")

_NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
_OPERATOR = r"[-+−–×x*/÷]"
_EQUATION = re.compile(rf"({_NUMBER}(?:\s*{_OPERATOR}\s*{_NUMBER})+)\s*=\s*({_NUMBER})")
_TOKEN = re.compile(rf"{_NUMBER}|{_OPERATOR}")
_ANSWER = re.compile(rf"answer is\s*\$?\s*({_NUMBER})", re.IGNORECASE)


@dataclass(frozen=True)
class Step:
    """One operation of a plan: ``values[left] op values[right]``, where ``values`` is the question's
    numbers followed by each earlier step's result; ``phrase`` names what it computes."""

    op: str
    left: int
    right: int
    phrase: str


@dataclass(frozen=True)
class Problem:
    question: str
    numbers: tuple[int, ...]
    """The question's numbers and the unit constants the plan uses (100 cents, 1000 m, 60 minutes)."""
    plan: tuple[Step, ...]

    def values(self, wrong: dict[int, Fraction] | None = None) -> list[Fraction]:
        """The numbers then each step's result; ``wrong`` replaces a step's result (a slip), carried on."""
        values = [Fraction(n) for n in self.numbers]
        for index, step in enumerate(self.plan):
            result = OPERATIONS[step.op](values[step.left], values[step.right])
            values.append(wrong[index] if wrong and index in wrong else result)
        return values

    @property
    def answer(self) -> int:
        answer = self.values()[-1]
        assert answer.denominator == 1, "a plan's answer is a whole number"
        return int(answer)

    @property
    def reference_values(self) -> frozenset[Fraction]:
        return frozenset(self.values())


def _shopping(rng: random.Random) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(("apples", "stickers", "marbles", "cards"))
    have, bags, each = rng.randint(5, 40), rng.randint(2, 9), rng.randint(2, 12)
    gives = rng.randint(1, have + bags * each - 1)
    question = (
        f"{name} has {have} {item}. {name} buys {bags} bags with {each} {item} in each, then gives "
        f"{gives} {item} to a friend. How many {item} does {name} have now?"
    )
    plan = (
        Step("×", 1, 2, f"{item.capitalize()} in the bags"),
        Step("+", 0, 4, f"{item.capitalize()} in all"),
        Step("−", 5, 3, f"{item.capitalize()} left"),
    )
    return Problem(question, (have, bags, each, gives), plan)


def _change(rng: random.Random) -> Problem:
    name, price, count = rng.choice(NAMES), rng.randint(15, 95), rng.randint(2, 9)
    note = rng.choice([n for n in (5, 10, 20) if n * 100 > price * count])
    question = (
        f"A pen costs {price} cents. {name} buys {count} pens and pays with a {note}-dollar note. "
        f"How much change, in cents, does {name} get?"
    )
    plan = (
        Step("×", 1, 0, "Cost of the pens in cents"),
        Step("×", 2, 3, "The note in cents"),
        Step("−", 5, 4, "Change in cents"),
    )
    return Problem(question, (price, count, note, 100), plan)


def _rope(rng: random.Random) -> Problem:
    km, metres, pieces = rng.randint(1, 9), 50 * rng.randint(1, 19), rng.choice((2, 5, 10, 25, 50))
    question = (
        f"A rope is {km} km {metres} m long. It is cut into {pieces} equal pieces. How many metres long is each piece?"
    )
    plan = (
        Step("×", 0, 3, "The kilometres in metres"),
        Step("+", 4, 1, "The whole rope in metres"),
        Step("÷", 5, 2, "Each piece in metres"),
    )
    return Problem(question, (km, metres, pieces, 1000), plan)


def _train(rng: random.Random) -> Problem:
    speed, hours = rng.randint(30, 90), rng.randint(1, 5)
    minutes = rng.choice((15, 20, 30, 40, 45))
    unit = 60 // math.gcd(minutes, 60)  # the second speed is a multiple of it, so the distance is whole
    second_speed = unit * rng.randint(-(-20 // unit), 90 // unit)
    question = (
        f"A train runs at {speed} km per hour for {hours} hour{'s' if hours > 1 else ''}, then at {second_speed} "
        f"km per hour for {minutes} minutes. How many km does it travel in all?"
    )
    plan = (
        Step("×", 0, 1, "The first part in km"),
        Step("×", 2, 3, "The second part's speed times its minutes"),
        Step("÷", 6, 4, "The second part in km"),
        Step("+", 5, 7, "The whole trip in km"),
    )
    return Problem(question, (speed, hours, second_speed, minutes, 60), plan)


def _pocket(rng: random.Random) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(("apples", "stickers", "marbles", "cards"))
    have, more = rng.randint(2, 15), rng.randint(2, 15)
    gives = rng.randint(1, have + more - 1)
    question = (
        f"{name} has {have} {item}. {name} gets {more} more, then gives away {gives}. "
        f"How many {item} does {name} have now?"
    )
    plan = (Step("+", 0, 1, f"{item.capitalize()} after getting more"), Step("−", 3, 2, f"{item.capitalize()} left"))
    return Problem(question, (have, more, gives), plan)


def _boxes(rng: random.Random) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(("pencils", "eggs", "buttons", "shells"))
    boxes, each, have = rng.randint(2, 5), rng.randint(2, 6), rng.randint(1, 10)
    question = (
        f"{name} has {have} {item} and buys {boxes} boxes of {each} {item}. How many {item} does {name} have in all?"
    )
    plan = (Step("×", 1, 2, f"{item.capitalize()} in the boxes"), Step("+", 0, 3, f"{item.capitalize()} in all"))
    return Problem(question, (have, boxes, each), plan)


LEVELS: dict[str, tuple[Callable[[random.Random], Problem], ...]] = {
    "simple": (_pocket, _boxes),
    "multi-step": (_shopping, _change, _rope, _train),
}
"""``simple``: two operations on numbers below 20 (a 135M-parameter model solves some); ``multi-step``:
three or four operations, with unit conversions."""


def make_problem(rng: random.Random, level: str = "multi-step") -> Problem:
    """A problem from one of the ``level``'s templates, drawn with ``rng``."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)} (got {level!r})")
    return rng.choice(LEVELS[level])(rng)


def format_number(value: Fraction) -> str:
    if value.denominator != 1 or value < 0:
        raise ValueError(f"{value} is not a whole number from 0 up")
    return str(value.numerator)


def write_steps(
    problem: Problem,
    operands: dict[int, tuple[int, int]] | None = None,
    ops: dict[int, str] | None = None,
    slips: dict[int, Fraction] | None = None,
) -> tuple[str, ...]:
    """The chain for ``problem``'s plan, steps changed where asked, each later step using the values
    the changed ones gave (the answer step states the last value). A value that is negative or not
    whole raises ``ValueError``: the generated chains keep to whole numbers from 0 up."""
    values = [Fraction(n) for n in problem.numbers]
    steps = []
    for index, step in enumerate(problem.plan):
        op = (ops or {}).get(index, step.op)
        left, right = (operands or {}).get(index, (step.left, step.right))
        a, b = _value(values, left), _value(values, right)
        result = OPERATIONS[op](a, b) + (slips or {}).get(index, 0)
        values.append(result)
        steps.append(f"{step.phrase}: {format_number(a)} {op} {format_number(b)} = {format_number(result)}.")
    steps.append(f"The answer is {format_number(values[-1])}.")
    return tuple(steps)


def _value(values: list[Fraction], ref: int) -> Fraction:
    """``ref`` ≥ 0 indexes ``values``; a negative ``ref`` is the number −ref itself (an operand corruption)."""
    return values[ref] if ref >= 0 else Fraction(-ref)


def corrupt(problem: Problem, rng: random.Random, kind: str | None = None) -> tuple[tuple[str, ...], int]:
    """A wrong chain for ``problem`` and the index of its corrupted step (``kind``: one of ``KINDS``, or drawn)."""
    reference, values = problem.reference_values, problem.values()
    for _ in range(1000):
        chosen = kind or rng.choice(KINDS)
        index = rng.randrange(len(problem.plan))
        step = problem.plan[index]
        a, b = values[step.left], values[step.right]
        changes: dict[str, dict] = {"ops": {}, "operands": {}, "slips": {}}
        if chosen == "slip":
            changes["slips"][index] = Fraction(rng.choice((-1, 1)) * rng.randint(1, 9))
            wrong = OPERATIONS[step.op](a, b) + changes["slips"][index]
            new_numbers: tuple[Fraction, ...] = ()
        elif chosen == "operation":
            op = rng.choice([o for o in ("+", "−", "×") if o != step.op])
            changes["ops"][index] = op
            wrong, new_numbers = OPERATIONS[op](a, b), ()
        elif chosen == "operand":
            side = rng.randrange(2)  # which operand is replaced
            number = (a, b)[side] + rng.choice((-1, 1)) * rng.randint(1, 9)
            if number <= 0:
                continue
            pair = [step.left, step.right]
            pair[side] = -int(number)
            changes["operands"][index] = (pair[0], pair[1])
            wrong = OPERATIONS[step.op](*((number, b) if side == 0 else (a, number)))
            new_numbers = (number,)
        else:
            raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
        try:
            steps = write_steps(problem, **changes)
        except (ValueError, ZeroDivisionError):  # a value is negative or fractional
            continue
        if wrong in reference or any(n in reference for n in new_numbers):
            continue
        return steps, index
    raise RuntimeError(f"no {kind or ''} corruption of this problem found in 1000 draws: {problem.question}")


def make_chains(count: int, wrong_fraction: float = 0.5, seed: int = 0, level: str = "multi-step") -> list[StepChain]:
    """``count`` labelled chains, each for a fresh problem; about ``wrong_fraction`` of them corrupted."""
    if count < 1:
        raise ValueError(f"count must be at least 1 (got {count})")
    if not 0.0 <= wrong_fraction <= 1.0:
        raise ValueError(f"wrong_fraction must be in [0, 1] (got {wrong_fraction})")
    rng = random.Random(seed)
    chains = []
    for number in range(count):
        problem = make_problem(rng, level)
        steps, first_wrong = write_steps(problem), None
        if rng.random() < wrong_fraction:
            steps, first_wrong = corrupt(problem, rng)
        labels = tuple(1.0 if first_wrong is None or i < first_wrong else 0.0 for i in range(len(steps)))
        chains.append(StepChain(problem.question, steps, labels, str(problem.answer), f"arithmetic-{seed}-{number}"))
    return chains


def one_to_many(count: int, incorrect: int = 9, seed: int = 0, level: str = "multi-step") -> list[dict]:
    """RewardMATH-style rows (Kim et al. 2024): for each of ``count`` problems, the correct chain
    (``chosen``) and ``incorrect`` distinct wrong ones (``rejected``, corruption kinds in turn), steps
    joined by line breaks; ``subset`` is the level."""
    if count < 1 or incorrect < 1:
        raise ValueError(f"count and incorrect must be at least 1 (got {count}, {incorrect})")
    rng = random.Random(seed)
    rows = []
    for number in range(count):
        problem = make_problem(rng, level)
        wrong: list[str] = []
        for attempt in range(50 * incorrect):
            text = "\n".join(corrupt(problem, rng, KINDS[attempt % len(KINDS)])[0])
            if text not in wrong:
                wrong.append(text)
            if len(wrong) == incorrect:
                break
        else:
            raise RuntimeError(f"fewer than {incorrect} distinct wrong chains for: {problem.question}")
        chosen = "\n".join(write_steps(problem))
        rows.append(
            {
                "id": f"rewardmath-{seed}-{number}",
                "prompt": problem.question,
                "chosen": chosen,
                "rejected": wrong,
                "subset": level,
            }
        )
    return rows


def parse_number(text: str) -> Fraction:
    """A number as chains write it (``1,250``, ``2.5``), exactly."""
    return Fraction(text.replace(",", ""))


def evaluate_expression(text: str) -> Fraction:
    """The value of ``a op b op c …`` with × and ÷ before + and −, exactly (no ``eval``)."""
    tokens = _TOKEN.findall(text)
    numbers = [parse_number(t) for t in tokens[::2]]
    operators = [SYMBOLS[t] for t in tokens[1::2]]
    terms, signs = [numbers[0]], []
    for op, number in zip(operators, numbers[1:], strict=True):
        if op in ("×", "÷"):
            terms[-1] = OPERATIONS[op](terms[-1], number)
        else:
            terms.append(number)
            signs.append(op)
    total = terms[0]
    for op, term in zip(signs, terms[1:], strict=True):
        total = OPERATIONS[op](total, term)
    return total


def equations(text: str) -> list[tuple[str, list[Fraction], Fraction]]:
    """Every calculation ``text`` writes out: (expression, its numbers, the result it states)."""
    return [
        (expression, [parse_number(t) for t in _TOKEN.findall(expression)[::2]], parse_number(result))
        for expression, result in _EQUATION.findall(text)
    ]


def step_is_right(step: str, reference: frozenset[Fraction], answer: Fraction) -> bool:
    """Every equation true and all its numbers reference values; a stated answer equal to ``answer``."""
    for expression, numbers, stated in equations(step):
        try:
            true = evaluate_expression(expression) == stated
        except ZeroDivisionError:
            return False
        if not true or any(n not in reference for n in (*numbers, stated)):
            return False
    return all(parse_number(n) == answer for n in _ANSWER.findall(step))


def stated_answer(steps: Sequence[str]) -> Fraction | None:
    """The last number a chain states as its answer ("... answer is N"), or None."""
    found = [n for step in steps for n in _ANSWER.findall(step)]
    return parse_number(found[-1]) if found else None


def check_steps(problem: Problem, steps: Sequence[str], complete: bool = True) -> tuple[float, ...]:
    """Each step's label: 1.0 while it and every step before it are right (``step_is_right``), else 0.0.

    A ``complete`` chain (a whole reply, not a prefix) must also end having stated the right answer:
    otherwise its last step is labelled 0 (a reply that stops without answering is not right)."""
    reference, answer = problem.reference_values, Fraction(problem.answer)
    labels, right = [], True
    for step in steps:
        right = right and step_is_right(step, reference, answer)
        labels.append(1.0 if right else 0.0)
    if complete and labels and stated_answer(steps) != answer:
        labels[-1] = 0.0
    return tuple(labels)


def reply_steps(reply: str) -> tuple[str, ...]:
    """A model's reply as steps: its non-empty lines, up to the first that states an answer, and never
    past a line that starts a new question (small models go on to invent one)."""
    steps: list[str] = []
    for line in reply.splitlines():
        line = line.strip()
        if line.lower().startswith("question"):
            break
        if line:
            steps.append(line)
            if _ANSWER.search(line):
                break
    return tuple(steps)
