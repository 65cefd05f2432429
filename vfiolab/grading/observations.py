"""Observations: the plain data a lab's observers read from the board, and how it travels.

Observers run where the learner's state lives (the notebook's kernel); checks run on the data they
produced. Between the two the data is encoded to JSON (bytes as base64), in the notebook as well as
in the grader, so a check sees exactly the same types in both places.
"""
import base64
import json

from .checks import Fail


class Unobservable:
    """Stands in for an observation whose observer raised: checks that read it fail with why."""

    def __init__(self, reason):
        self.reason = reason


class Seen(dict):
    """The observations a check receives: seen["dst"] is the value, or a Fail saying why not."""

    def __getitem__(self, name):
        if name not in self:
            raise KeyError(f"no observation named {name!r} (add an @observe({name!r}) function)")
        value = dict.__getitem__(self, name)
        if isinstance(value, Unobservable):
            raise Fail(f"could not observe {name}: {value.reason}")
        return value


class LazySeen(Seen):
    """Seen for one exercise in the notebook: an observer runs only when a check reads its name,
    so a check cell costs what its own checks look at, not the whole lab's observers."""

    def __init__(self, observers, ns):
        super().__init__()
        self._observers = {obs.name: obs for obs in observers}
        self._ns = ns

    def __contains__(self, name):
        return name in self._observers

    def __getitem__(self, name):
        if name in self._observers and not dict.__contains__(self, name):
            observed = round_trip(observe_all([self._observers[name]], self._ns))
            dict.__setitem__(self, name, from_data(observed[name]))
        return super().__getitem__(name)

    def get(self, name, default=None):
        try:
            self[name]          # observe it now; get() returns the raw value, as Seen's does
        except (KeyError, Fail):
            pass
        return dict.get(self, name, default)


def to_data(value):
    """A JSON-able copy of an observed value: bytes-like become {"$bytes": base64}."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return to_data(value.tolist())
    raise TypeError(f"a value of type {type(value).__name__} is not data (return bytes, numbers, "
                    "str, lists or dicts)")


def from_data(data):
    if isinstance(data, list):
        return [from_data(v) for v in data]
    if isinstance(data, dict):
        if set(data) == {"$bytes"}:
            return base64.b64decode(data["$bytes"])
        if set(data) == {"$unobservable"}:
            return Unobservable(data["$unobservable"])
        return {k: from_data(v) for k, v in data.items()}
    return data


class NotDefined(KeyError):
    def __str__(self):
        return f"{self.args[0]!r} is not defined in the notebook"


class Namespace(dict):
    """The notebook's namespace as observers see it: a missing name says so plainly."""

    def __missing__(self, name):
        raise NotDefined(name)


def observe_all(observers, ns):
    """Run every observer on the namespace ns: {name: data or {"$unobservable": reason}}."""
    ns = Namespace(ns)
    out = {}
    for obs in observers:
        try:
            out[obs.name] = to_data(obs.function(ns))
        except NotDefined as e:
            out[obs.name] = {"$unobservable": str(e)}
        except NotImplementedError:
            out[obs.name] = {"$unobservable": "NotImplementedError: this part is not written yet"}
        except Exception as e:
            out[obs.name] = {"$unobservable": f"{type(e).__name__}: {e}" if str(e)
                             else f"{type(e).__name__} raised"}
        except BaseException as e:  # SystemExit from learner code called by an observer
            out[obs.name] = {"$unobservable": f"{type(e).__name__} raised"}
    return out


def seen_from(data):
    """The Seen mapping checks receive, from observe_all's (possibly JSON round-tripped) output."""
    return Seen({name: from_data(value) for name, value in data.items()})


def round_trip(data):
    """What observe_all's output becomes after crossing a JSON channel."""
    return json.loads(json.dumps(data))


def real_board(ns, name="board"):
    """ns[name] if it is a board vfiolab made (not a stand-in defined in the notebook)."""
    board = ns[name]
    module = type(board).__module__ or ""
    if not module.startswith("vfiolab.board"):
        raise TypeError(f"{name} is a {type(board).__module__}.{type(board).__name__}, not a board "
                        "from vfiolab.open_board(): checks judge the real board")
    return board
