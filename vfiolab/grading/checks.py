"""Checks and observers: how a lab author says what to look at and how to judge it.

A check is a plain function decorated with @check(id, points=..., hidden=...). It receives the
observations (`seen`, a mapping filled by the lab's @observe functions) and passes by returning
normally; it fails by raising Fail("what was observed, what was expected"), or an AssertionError.
The decorators only tag the function; a lab's checks are collected from its module in the order
they are defined, so there is no global registry for a notebook to tamper with.
"""
from dataclasses import dataclass, field


class Fail(AssertionError):
    """Raised by a check that fails; its message is the hint the learner sees."""


@dataclass(frozen=True)
class Check:
    id: str
    points: float
    hidden: bool
    function: object = field(compare=False, repr=False)
    title: str = ""

    @property
    def exercise(self):
        """Check ids are "<exercise>-<what>": "ex1-bind" belongs to exercise "ex1"."""
        return self.id.split("-", 1)[0]


@dataclass(frozen=True)
class Observer:
    name: str
    function: object = field(compare=False, repr=False)


@dataclass(frozen=True)
class Result:
    """One check judged: what a gradebook row, a widget and a feedback file show."""
    id: str
    exercise: str
    points: float
    earned: float
    hidden: bool
    message: str

    @property
    def passed(self):
        return self.earned >= self.points


def check(id, points=1, hidden=False):
    """Mark a function as a check worth `points`; hidden checks belong in hidden_checks.py."""
    if not isinstance(id, str) or not id or " " in id:
        raise ValueError(f"a check id is a short name without spaces, like 'ex1-bind', not {id!r}")
    if not points > 0:
        raise ValueError(f"check {id!r}: points must be positive, not {points!r}")

    def tag(function):
        doc = (function.__doc__ or "").strip().splitlines()
        function.__vfiolab_check__ = Check(id, float(points), bool(hidden), function,
                                           doc[0] if doc else "")
        return function
    return tag


def observe(name):
    """Mark a function fn(ns) -> data as the observation `name`, made in the learner's kernel.

    ns is the notebook's namespace. Return plain data (numbers, str, bytes, lists, dicts) read from
    the board or the device, so checks judge what the hardware did, not what the code claims.
    """
    def tag(function):
        function.__vfiolab_observer__ = Observer(name, function)
        return function
    return tag


def checks_in(module_dict):
    """The checks defined in a module's namespace, in definition order."""
    return [v.__vfiolab_check__ for v in module_dict.values() if hasattr(v, "__vfiolab_check__")]


def observers_in(module_dict):
    """The observers defined in a module's namespace, in definition order."""
    return [v.__vfiolab_observer__ for v in module_dict.values()
            if hasattr(v, "__vfiolab_observer__")]


def judge(checks, seen):
    """Run each check on the observations; a check's failure never stops the others."""
    results = []
    for c in checks:
        try:
            verdict = c.function(seen)
            ok, message = (False, "the check returned False") if verdict is False else (True, "passed")
        except AssertionError as e:
            ok, message = False, str(e) or f"{c.id} failed"
        except Exception as e:  # a learner's value of the wrong type is a failure, with its reason
            ok, message = False, f"could not judge: {type(e).__name__}: {e}"
        results.append(Result(c.id, c.exercise, c.points, c.points if ok else 0.0, c.hidden, message))
    return results
