"""The search space of a sweep: distributions, the searchable parameters, the CLI syntax.

A distribution is uniform on the axis it is sampled on (course notes 7.2): the
learning rate on a log axis, so that each decade of [1e-6, 1e-2] gets a quarter of
the trials; a momentum or Adam beta on a log axis of ``1 - beta``, so that 0.9 ->
0.99 gets as many trials as 0.99 -> 0.999.  Each one maps the unit interval onto its
values (``from_unit``) and back (``to_unit``), so samplers work in the unit cube
[0, 1)^d, one axis per sampled parameter, whatever the parameters are.

A configuration is a plain dict of canonical parameter names (the book's, see
``PARAMETERS``) to JSON-able values; ``Space.complete`` fills in every default, and
for the defaults that depend on other parameters (the optimizer's learning rate, a
schedule's arguments) the value the trial uses.  Learning-rate schedules are
``fastnet.schedules``' by name (``lr_schedule``), each argument its own parameter.
Nothing here imports the kernels or the nets.
"""
import copy
import difflib
import math
import numbers
import sys
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "Distribution", "Uniform", "LogUniform", "OneMinusLogUniform", "IntUniform", "LogInt",
    "Choice", "uniform", "log_uniform", "one_minus_log_uniform", "int_uniform", "log_int",
    "choice", "distribution_from_json", "Parameter", "PARAMETERS", "OPTIMIZER_HYPERPARAMETERS",
    "OPTIMIZER_DEFAULTS", "SCHEDULE_ARGUMENTS", "schedule_spec", "Space", "parse_param",
]


def _did_you_mean(name, known):
    """`` (did you mean 'x'?)`` for the known name closest to ``name``, or ``''``."""
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(what, name, known, spellings=None):
    """The error for an unknown ``name``: the closest of ``spellings`` (default: the
    ``known`` names) as a suggestion, then the ``known`` names."""
    return ValueError(f"unknown {what} {name!r}{_did_you_mean(name, spellings or known)}; "
                      f"known: {', '.join(known)}")


def _is_real(value):
    """A finite real number, as a float64 too (an int past 1.8e308 is not)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _same(a, b):
    """``a == b``, except that a bool never equals a number (``True == 1`` in Python)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _plain(value):
    """``value`` with tuples turned into lists, as JSON would return it."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


class Distribution:
    """A distribution of one parameter's values: what every distribution has.

    ``from_unit(u)`` maps u in [0, 1] monotonically onto the values (uniform u gives
    the distribution), ``to_unit(value)`` is its inverse, ``grid(n)`` spreads points
    on the axis the distribution is uniform on, ``scale`` names that axis for plots
    ('linear', 'log', 'one_minus_log' or 'categorical'), ``to_json()`` is undone by
    ``distribution_from_json``.
    """

    kind: ClassVar[str]   # the JSON "type", and the name of the constructor
    scale: ClassVar[str]


def _unit(u):
    if not _is_real(u) or not 0 <= u <= 1:
        raise ValueError(f"u must be a number in [0, 1], got {u!r}")
    return float(u)


def _grid_size(n):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    return int(n)


# The axis each numeric scale is uniform on: (value -> axis, axis -> value).
_AXES = {
    "linear": (lambda x: x, lambda t: t),
    "log": (math.log10, lambda t: 10.0 ** t),
    "one_minus_log": (lambda x: math.log10(1.0 - x), lambda t: 1.0 - 10.0 ** t),
}


@dataclass(frozen=True, repr=False)
class _Range(Distribution):
    """Numbers from ``low`` to ``high`` (both included), uniform on the ``scale`` axis.

    An integer range is the continuous one from ``low - 0.5`` to ``high + 0.5``,
    rounded to the nearest integer, so that the ends get their fair share.
    """

    low: float
    high: float
    integer: ClassVar[bool] = False

    def __post_init__(self):
        for end in ("low", "high"):
            value = getattr(self, end)
            if self.integer:
                if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                    raise ValueError(f"{self.kind}: {end} must be an int, got {value!r}")
                if not _is_real(value):  # a float64 on the sampled axis
                    raise ValueError(f"{self.kind}: {end} must be at most "
                                     f"{sys.float_info.max:.3g}, got an int of "
                                     f"{len(str(abs(value)))} digits")
                object.__setattr__(self, end, int(value))
            elif not _is_real(value):
                raise ValueError(f"{self.kind}: {end} must be a finite number, got {value!r}")
            else:
                object.__setattr__(self, end, float(value))
        if self.low >= self.high:
            raise ValueError(f"{self.kind}: low must be < high, got low={self.low!r}, "
                             f"high={self.high!r}")
        if not math.isfinite(float(self.high) - float(self.low)):
            raise ValueError(f"{self.kind}: high - low must be a finite float64 (the width "
                             f"samples are drawn in), got low={self.low!r}, high={self.high!r}")
        self._check_ends()

    def _check_ends(self):
        """Raise ValueError when the range leaves the scale's domain."""

    def _axis_ends(self):
        to_axis = _AXES[self.scale][0]
        if self.integer:
            return to_axis(self.low - 0.5), to_axis(self.high + 0.5)
        return to_axis(self.low), to_axis(self.high)

    def _snap(self, x):
        """``x`` rounded (for integers) and clipped to [low, high]."""
        if self.integer:
            x = math.floor(x + 0.5)
        return min(max(x, self.low), self.high)

    def from_unit(self, u):
        """``from_axis(a + u (b - a))``, a and b the ends on the scale's axis."""
        a, b = self._axis_ends()
        return self._snap(_AXES[self.scale][1](a + _unit(u) * (b - a)))

    def to_unit(self, value):
        """``(to_axis(value) - a) / (b - a)``; ValueError for a value outside the range."""
        if (not _is_real(value) or not self.low <= value <= self.high
                or self.integer and not float(value).is_integer()):
            raise ValueError(f"{value!r} is not a value of {self!r}")
        a, b = self._axis_ends()
        return (_AXES[self.scale][0](value) - a) / (b - a)

    def grid(self, n):
        """``n`` points evenly spaced on the scale's axis from low to high (one point:
        the middle); integers rounded, repeats dropped."""
        n = _grid_size(n)
        to_axis, from_axis = _AXES[self.scale]
        a, b = to_axis(self.low), to_axis(self.high)
        steps = [0.5] if n == 1 else [k / (n - 1) for k in range(n)]
        return list(dict.fromkeys(self._snap(from_axis(a + s * (b - a))) for s in steps))

    def to_json(self):
        return {"type": self.kind, "low": self.low, "high": self.high}

    def __repr__(self):
        return f"{self.kind}({self.low!r}, {self.high!r})"


class Uniform(_Range):
    """``uniform(low, high)``: a float, ``low + u (high - low)``."""

    kind, scale = "uniform", "linear"


class LogUniform(_Range):
    """``log_uniform(low, high)``: a float, ``10**U(log10 low, log10 high)``; needs
    ``0 < low < high``."""

    kind, scale = "log_uniform", "log"

    def _check_ends(self):
        if self.low <= 0:
            raise ValueError(f"{self.kind}: a log range needs low > 0, got low={self.low!r}")


class OneMinusLogUniform(_Range):
    """``one_minus_log_uniform(low, high)``: a float, ``1 - 10**U(log10(1 - high),
    log10(1 - low))``, dense near 1 (momentum, Adam's betas); needs
    ``0 <= low < high < 1``."""

    kind, scale = "one_minus_log_uniform", "one_minus_log"

    def _check_ends(self):
        if self.low < 0 or self.high >= 1:
            raise ValueError(f"{self.kind}: needs 0 <= low < high < 1, got low={self.low!r}, "
                             f"high={self.high!r}")


class IntUniform(_Range):
    """``int_uniform(low, high)``: an int from low to high, both included, each as
    likely: ``round(low - 0.5 + u (high - low + 1))``."""

    kind, scale, integer = "int_uniform", "linear", True


class LogInt(_Range):
    """``log_int(low, high)``: an int from low to high, both included, log-uniform then
    rounded: ``round(10**U(log10(low - 0.5), log10(high + 0.5)))``; needs
    ``1 <= low < high``."""

    kind, scale, integer = "log_int", "log", True

    def _check_ends(self):
        if self.low < 1:
            raise ValueError(f"{self.kind}: needs low >= 1, got low={self.low!r}")


@dataclass(frozen=True, repr=False)
class Choice(Distribution):
    """``choice(options)``: one of the options (JSON-able values, at least one, no two
    equal), each as likely: ``options[floor(u n)]``; ``to_unit`` gives the bin centre
    ``(k + 0.5) / n``."""

    options: tuple
    kind: ClassVar[str] = "choice"
    scale: ClassVar[str] = "categorical"

    def __post_init__(self):
        if isinstance(self.options, (str, bytes, dict)) or not hasattr(self.options, "__iter__"):
            raise ValueError(f"choice: options must be a list, got {self.options!r}")
        options = tuple(_plain(option) for option in self.options)
        if not options:
            raise ValueError("choice: needs at least one option, got none")
        for k, option in enumerate(options):
            if isinstance(option, float) and not math.isfinite(option):
                raise ValueError(f"choice: options must be finite, got {option!r}")
            if any(_same(option, earlier) for earlier in options[:k]):
                raise ValueError(f"choice: options must differ, got {option!r} twice")
        object.__setattr__(self, "options", options)

    def from_unit(self, u):
        k = min(int(_unit(u) * len(self.options)), len(self.options) - 1)
        return copy.deepcopy(self.options[k])

    def to_unit(self, value):
        for k, option in enumerate(self.options):
            if _same(option, value):
                return (k + 0.5) / len(self.options)
        raise ValueError(f"{value!r} is not an option of {self!r}")

    def grid(self, n):
        """Every option, whatever ``n``."""
        _grid_size(n)
        return copy.deepcopy(list(self.options))

    def to_json(self):
        return {"type": self.kind, "options": list(self.options)}

    def __repr__(self):
        return f"choice({list(self.options)!r})"


# The constructors under the design's names.
uniform, log_uniform, one_minus_log_uniform = Uniform, LogUniform, OneMinusLogUniform
int_uniform, log_int, choice = IntUniform, LogInt, Choice

_DISTRIBUTIONS = {cls.kind: cls for cls in (Uniform, LogUniform, OneMinusLogUniform,
                                            IntUniform, LogInt, Choice)}


def distribution_from_json(d):
    """The distribution ``d`` describes (``{"type": "log_uniform", "low": ..., "high":
    ...}``, as ``to_json`` writes it); ValueError for an unknown type or fields."""
    if not isinstance(d, dict):
        raise ValueError(f"a distribution must be a dict with a 'type', got {d!r}")
    kind = d.get("type")
    if kind not in _DISTRIBUTIONS:
        raise _unknown("distribution type", kind, _DISTRIBUTIONS)
    cls = _DISTRIBUTIONS[kind]
    fields = {key: value for key, value in d.items() if key != "type"}
    expected = ["options"] if cls is Choice else ["high", "low"]
    if sorted(fields) != expected:
        raise ValueError(f"{kind} takes the fields {', '.join(expected)}, "
                         f"got {', '.join(sorted(fields)) or 'none'}")
    return cls(**fields)


# Domains: what values a parameter takes.  ``accepts`` says whether a value is one,
# ``canonical`` gives the form a configuration stores, ``parse`` reads the command
# line's text (best effort: text it cannot read comes back as is, and ``accepts``
# rejects it with the parameter's usual message).

MAX_EPOCHS = 10**6  # a trial's most epochs (see ``PARAMETERS["epochs"]``)


class _Numbers:
    """Finite numbers from ``low`` up to ``high`` (each end open or closed), of one
    kind: 'int', 'float' (ints accepted, stored as floats) or 'number' (either)."""

    def __init__(self, kind, low, low_open=False, high=None, high_open=True):
        self.kind, self.low, self.low_open = kind, low, low_open
        self.high, self.high_open = high, high_open
        self.integer = kind == "int"
        article = "an" if self.integer else "a"
        if high is not None:
            self.expected = (f"{article} {kind} in {'(' if low_open else '['}{low}, "
                             f"{high}{')' if high_open else ']'}")
        else:
            self.expected = f"{article} {kind} {'>' if low_open else '>='} {low}"

    def accepts(self, value):
        return (_is_real(value) and (not self.integer or isinstance(value, numbers.Integral))
                and (value > self.low if self.low_open else value >= self.low)
                and (self.high is None
                     or (value < self.high if self.high_open else value <= self.high)))

    def canonical(self, value):
        """A float for 'float', an int for 'int'; for 'number', an int where the value
        is a whole number (``2.0`` is stored as ``2``: one spec for either spelling)."""
        if self.kind == "float" or not (isinstance(value, numbers.Integral)
                                        or self.kind == "number" and float(value).is_integer()):
            return float(value)
        return int(value)

    def parse(self, text):
        for number in (int, float):
            try:
                return number(text)
            except ValueError:
                pass
        return text


class _Names:
    """One of a few names, case-insensitive in, the canonical spelling out; ``aliases``
    maps short spellings to names."""

    integer = False

    def __init__(self, *names, aliases=None):
        aliases = aliases or {}
        self.names = {**{alias.lower(): name for alias, name in aliases.items()},
                      **{name.lower(): name for name in names}}
        self.expected = f"one of {', '.join(map(repr, names))}" + (
            f" (or {', '.join(aliases)})" if aliases else "")

    def accepts(self, value):
        return isinstance(value, str) and value.lower() in self.names

    def canonical(self, value):
        return self.names[value.lower()]

    def parse(self, text):
        return text


class _Bool:
    integer = False
    expected = "true or false"

    def accepts(self, value):
        return isinstance(value, bool)

    def canonical(self, value):
        return value

    def parse(self, text):
        return {"true": True, "false": False}.get(text.lower(), text)


class _LayerSizes:
    """A list of hidden layer widths; on the command line ``100x4`` (four layers of
    100) and ``100-50`` (100 then 50), which combine: ``100x2-50``."""

    integer = False
    expected = "a non-empty list of ints >= 1 (on the command line 100x4 or 100-50)"

    def accepts(self, value):
        return (isinstance(value, (list, tuple)) and len(value) > 0
                and all(isinstance(size, numbers.Integral) and not isinstance(size, bool)
                        and size >= 1 for size in value))

    def canonical(self, value):
        return [int(size) for size in value]

    def parse(self, text):
        sizes = []
        for part in text.split("-"):
            width, times, repeat = part.partition("x")
            try:  # "100x" (a repeat count left out) is malformed, not 100
                sizes += [int(width)] * (int(repeat) if times else 1)
            except ValueError:
                return text
        return sizes


class _Either:
    """A value of the first domain, else of the second."""

    integer = False

    def __init__(self, first, second):
        self.domains = (first, second)
        self.expected = f"{first.expected} or {second.expected}"

    def _domain_of(self, value):
        return next((domain for domain in self.domains if domain.accepts(value)), None)

    def accepts(self, value):
        return self._domain_of(value) is not None

    def canonical(self, value):
        return self._domain_of(value).canonical(value)

    def parse(self, text):
        for domain in self.domains:
            value = domain.parse(text)
            if domain.accepts(value):
                return value
        return text


class Parameter:
    """One searchable parameter: canonical ``name``, ``default``, CLI ``aliases`` and
    the values it takes (``expected``, in words).  A parameter whose default is None
    also takes None (meaning: not set; ``none`` on the command line)."""

    def __init__(self, name, domain, default, aliases=(), hint=""):
        self.name, self.default, self.aliases = name, default, tuple(aliases)
        self._domain, self._hint = domain, hint  # hint: said of a value refused
        self.integer = domain.integer
        self.expected = domain.expected + (" (or None)" if default is None else "")

    def __repr__(self):
        return f"Parameter({self.name!r}: {self.expected}, default {self.default!r})"

    def canonical(self, value, where="", spelled=None):
        """``value`` in the form a configuration stores (optimizer names capitalized
        as the book does, tuples as lists, floats as floats); ValueError naming the
        parameter as the user ``spelled`` it (default: its name) when the value is not
        one it takes."""
        if self.default is None and (value is None or isinstance(value, str)
                                     and value.lower() == "none"):
            return None  # 'none', the command line's spelling, from Python too
        if not self._domain.accepts(value):
            raise ValueError(f"{spelled or self.name} must be {self.expected}, "
                             f"got {value!r}{where}{self._hint}")
        return self._domain.canonical(value)

    def check(self, spec, spelled=None):
        """A distribution or constant for this parameter, checked: a constant and
        every option of a choice in canonical form, both ends of a range values the
        parameter takes (so ``dropout_ratio=uniform(0, 1)`` is refused: 1 is not in
        [0, 1))."""
        if isinstance(spec, Choice):
            options = [self.canonical(option, f" (an option of {spec!r})", spelled)
                       for option in spec.options]
            try:  # options that differ only in spelling ('adam', 'Adam') are one
                return Choice(options)
            except ValueError as err:
                raise ValueError(f"{spelled or self.name}: "
                                 f"{spec!r}{str(err).removeprefix('choice')}") from None
        if isinstance(spec, Distribution):
            for end in ("low", "high"):
                self.canonical(getattr(spec, end), f" (the {end} end of {spec!r})", spelled)
            return spec
        return self.canonical(spec, spelled=spelled)

    def parse(self, text):
        """The value ``text`` spells on the command line (checked by ``canonical``);
        ``none`` is None where the parameter takes None."""
        if self.default is None and text.lower() == "none":
            return None
        return self._domain.parse(text)


_BETA = _Numbers("float", 0, high=1)
_INIT_NAMES = _Names("relu", "he", "sigmoid", "xavier")
_OPTIMIZER_NAMES = ("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "AdamW")
_NORMALIZATIONS = ("batch", "layer", "group", "instance", "weight", "switchable")

# Each optimizer's hyperparameters: configuration name -> the optimizer's keyword.
# AdamW's decoupled decay is ``decoupled_weight_decay`` here: ``weight_decay`` is the
# sweep's name of the book's L2 term in the loss (``weight_decay_lambda``).
OPTIMIZER_HYPERPARAMETERS = {
    "SGD": {"lr": "lr"}, "Momentum": {"lr": "lr", "momentum": "momentum"},
    "Nesterov": {"lr": "lr", "momentum": "momentum"}, "AdaGrad": {"lr": "lr"},
    "RMSprop": {"lr": "lr", "decay_rate": "decay_rate"},
    "Adam": {"lr": "lr", "beta1": "beta1", "beta2": "beta2"},
    "AdamW": {"lr": "lr", "beta1": "beta1", "beta2": "beta2",
              "decoupled_weight_decay": "weight_decay"},
}
# The optimizers' own defaults where they differ between optimizers (the parameter's
# default is None, and a configuration stores the value its optimizer uses).
OPTIMIZER_DEFAULTS = {
    "SGD": {"lr": 0.01}, "Momentum": {"lr": 0.01}, "Nesterov": {"lr": 0.01},
    "AdaGrad": {"lr": 0.01}, "RMSprop": {"lr": 0.01}, "Adam": {"lr": 0.001},
    "AdamW": {"lr": 0.001, "decoupled_weight_decay": 0.01},
}
# Each learning-rate schedule's arguments (``fastnet.schedules``): configuration name ->
# the schedule's field, and the fields' defaults (cosine_decay's decay_steps defaults to
# the trial's epochs, rounded up).  ``lr_decay_rate``: ``decay_rate`` is RMSprop's.
SCHEDULE_ARGUMENTS = {
    "step_decay": {"step_size": "step_size", "gamma": "gamma"},
    "exponential_decay": {"gamma": "gamma"},
    "inverse_time_decay": {"lr_decay_rate": "decay_rate"},
    "cosine_decay": {"decay_steps": "decay_steps", "alpha": "alpha"},
}
_SCHEDULE_DEFAULTS = {"step_decay": {"gamma": 0.1}, "cosine_decay": {"alpha": 0.0}}

# Defaults are MultiLayerNetExtend's, the optimizers' and the Trainer's; those of None
# are filled in by ``Space.complete`` with the value the trial uses, where one is used
# (lr: the optimizer's own, 0.01, Adam's and AdamW's 0.001).
PARAMETERS = {parameter.name: parameter for parameter in [
    Parameter("hidden_size_list", _LayerSizes(), [100, 100, 100, 100], aliases=["hidden"]),
    Parameter("hidden_size", _Numbers("int", 1), None),
    Parameter("hidden_layers", _Numbers("int", 1), None),
    Parameter("activation", _Names("relu", "sigmoid", "tanh"), "relu"),
    Parameter("weight_init_std", _Either(_Numbers("float", 0, low_open=True), _INIT_NAMES),
              "relu"),
    Parameter("use_batchnorm", _Bool(), False, aliases=["batchnorm"]),
    Parameter("normalization", _Names(*_NORMALIZATIONS), None),
    Parameter("groups", _Numbers("int", 1), 2),
    Parameter("use_dropout", _Bool(), False, aliases=["dropout"],
              hint=" (the ratio is dropout_ratio)"),
    Parameter("dropout_ratio", _BETA, 0.5),
    Parameter("weight_decay_lambda", _Numbers("float", 0), 0.0, aliases=["weight_decay"]),
    Parameter("optimizer", _Names(*_OPTIMIZER_NAMES), "SGD"),
    Parameter("lr", _Numbers("float", 0, low_open=True), None),
    Parameter("momentum", _BETA, 0.9),
    Parameter("beta1", _BETA, 0.9),
    Parameter("beta2", _BETA, 0.999),
    Parameter("decay_rate", _BETA, 0.99),
    Parameter("decoupled_weight_decay", _Numbers("float", 0), None),
    Parameter("lr_schedule", _Names(*SCHEDULE_ARGUMENTS, aliases={
        name.removesuffix("_decay"): name for name in SCHEDULE_ARGUMENTS}), None),
    Parameter("step_size", _Numbers("int", 1), None),
    Parameter("gamma", _Numbers("float", 0, low_open=True, high=1, high_open=False), None),
    Parameter("lr_decay_rate", _Numbers("float", 0), None),
    Parameter("decay_steps", _Numbers("int", 1), None),
    Parameter("alpha", _Numbers("float", 0, high=1, high_open=False), None),
    Parameter("mini_batch_size", _Numbers("int", 1), 100, aliases=["batch_size"]),
    # at most a million: a trial records every whole epoch (the coordinator lists them)
    Parameter("epochs", _Numbers("number", 0, low_open=True, high=MAX_EPOCHS,
                                 high_open=False), 20),
]}
"""The searchable parameters by canonical name (the book's), in the design's order."""

_NAMES = {alias: parameter.name for parameter in PARAMETERS.values()
          for alias in (parameter.name, *parameter.aliases)}
# The parameters as an unknown name's error lists them: their aliases in parentheses
_KNOWN = [f"{p.name} ({', '.join(p.aliases)})" if p.aliases else p.name
          for p in PARAMETERS.values()]

# Parameters that only some values of another one read: name -> (that one, its values
# that read it).  ``Space.ignored`` warns of a given parameter no trial reads.
_READ_ONLY_WITH = {
    "dropout_ratio": ("use_dropout", (True,)),
    "groups": ("normalization", ("group", "instance")),
    **{name: ("optimizer", tuple(o for o, names in OPTIMIZER_HYPERPARAMETERS.items()
                                 if name in names))
       for names in OPTIMIZER_HYPERPARAMETERS.values() for name in names if name != "lr"},
    **{name: ("lr_schedule", tuple(s for s, names in SCHEDULE_ARGUMENTS.items()
                                   if name in names))
       for names in SCHEDULE_ARGUMENTS.values() for name in names},
}


def _schedule_default(name, key, config):
    """The default of argument ``key`` of schedule ``name`` in ``config``; None where
    the schedule needs it given."""
    if key == "decay_steps":
        return max(1, math.ceil(config["epochs"]))
    return _SCHEDULE_DEFAULTS.get(name, {}).get(key)


def schedule_spec(config):
    """The ``fastnet.schedules`` spec (``{"name": ..., **arguments}``) of a complete
    ``config``'s ``lr_schedule``, None without one; ValueError for a missing argument."""
    name = config.get("lr_schedule")
    if name is None:
        return None
    spec = {"name": name}
    for key, field in SCHEDULE_ARGUMENTS[name].items():
        value = config.get(key)
        spec[field] = _schedule_default(name, key, config) if value is None else value
        if spec[field] is None:
            raise ValueError(f"lr_schedule {name!r} needs {key} (--param {key}=...)")
    return spec


def _spellings(spelled):
    """``name`` as the user spelled it: ``spelled[name]`` where given, else the name."""
    return lambda name: spelled.get(name, name)


def _canonical_items(mapping, what):
    """``(given, spelled)``: ``mapping`` with every key a canonical parameter name, and
    each name's spelling in ``mapping``; ValueError for an unknown name or one given
    twice (say as ``batch_size`` and ``mini_batch_size``)."""
    if not isinstance(mapping, dict):
        raise ValueError(f"{what} must be a dict of parameter names to values, got {mapping!r}")
    given, spelled = {}, {}
    for key, value in mapping.items():
        if key not in _NAMES:
            raise _unknown("parameter", key, _KNOWN, _NAMES)
        name = _NAMES[key]
        if name in given:
            raise ValueError(f"{name} is given twice, as {spelled[name]!r} and {key!r}")
        given[name], spelled[name] = value, key
    return given, spelled


class Space:
    """The search space of a sweep: each parameter a distribution or a constant.

    ``Space({"lr": log_uniform(1e-6, 1e-2), "batch_size": 100})``: names may be
    aliases (``batch_size``), values are checked against the parameter
    (``Parameter.check``).  ``params`` holds them by canonical name, ``dimensions`` the
    names of the distributions in sorted order (the axes of the unit cube samplers
    draw from), ``constants`` the rest, ``spelled`` each name as it was given.  Raises
    ValueError naming the parameter as given for an unknown name (with the closest
    known one), a name given twice, a value the parameter does not take, a learning-rate
    schedule whose arguments are missing, or ``use_batchnorm`` together with
    ``normalization``.
    """

    def __init__(self, params):
        given, spelled = _canonical_items(params, "params")
        self.spelled = {name: spelled[name] for name in sorted(given)}
        self.params = {name: PARAMETERS[name].check(given[name], spelled[name])
                       for name in sorted(given)}
        self.dimensions = tuple(name for name, spec in self.params.items()
                                if isinstance(spec, Distribution))
        self.constants = {name: spec for name, spec in self.params.items()
                          if name not in self.dimensions}
        say = _spellings(self.spelled)
        if "normalization" in self.params and True in self.values("use_batchnorm"):
            raise ValueError(f"{say('use_batchnorm')} and {say('normalization')} conflict: "
                             f"give {say('normalization')}=batch in place of "
                             f"{say('use_batchnorm')}")
        norms, groups, hidden = (self.values(name) for name in
                                 ("normalization", "groups", "hidden_size_list"))
        if (norms and groups and hidden and len(norms) == len(groups) == len(hidden) == 1
                and norms[0] in ("group", "instance")
                and any(width % groups[0] for width in hidden[0])):  # no trial could build
            raise ValueError(f"{say('groups')}={groups[0]} does not divide every hidden "
                             f"width of {say('hidden_size_list')}={hidden[0]} ({norms[0]} "
                             f"norm splits every hidden width into that many groups)")
        for schedule in self.values("lr_schedule"):
            for key in SCHEDULE_ARGUMENTS.get(schedule, ()):
                needed = _schedule_default(schedule, key, {"epochs": 1}) is None
                if needed and key not in self.params:
                    raise ValueError(f"{say('lr_schedule')} {schedule!r} needs {key} "
                                     f"(--param {key}=...)")

    def __eq__(self, other):
        return isinstance(other, Space) and self.params == other.params

    def __repr__(self):
        return f"Space({self.params!r})"

    def values(self, name):
        """The values parameter ``name`` may take in this space: its constant, its
        choice's options or its default; None for a numeric range."""
        spec = self.params.get(name, PARAMETERS[name].default)
        if isinstance(spec, Choice):
            return list(spec.options)
        return None if isinstance(spec, Distribution) else [spec]

    def ignored(self):
        """One message for each parameter of the space that no trial reads (say
        ``momentum`` where the only optimizer is Adam): it changes nothing."""
        say = _spellings(self.spelled)
        messages = []
        for name in self.params:
            if name not in _READ_ONLY_WITH:
                continue
            controller, readers = _READ_ONLY_WITH[name]
            values = self.values(controller)
            if values is not None and not any(_same(v, r) for v in values for r in readers):
                messages.append(
                    f"{say(name)} is given but no trial reads it: only {say(controller)} "
                    f"{' or '.join(map(repr, readers))} does, and this space's "
                    f"{say(controller)} is {' or '.join(map(repr, values))}")
        return messages

    @staticmethod
    def complete(config):
        """``config`` with aliases resolved, every value canonical and every parameter
        that is not given at its default, in ``PARAMETERS`` order.

        ``hidden_size`` and ``hidden_layers`` (when either is set) override
        ``hidden_size_list``: it becomes ``[hidden_size] * hidden_layers``, the one not
        set taken from the list (its first width, its length).  Defaults of None that
        the trial reads become the value it uses: ``lr`` and ``decoupled_weight_decay``
        the optimizer's own, the arguments of ``lr_schedule`` the schedule's defaults
        (``decay_steps``: the epochs, rounded up); ``use_batchnorm`` and
        ``normalization='batch'`` imply each other.  ValueError as for ``Space``; a
        distribution is not a value.
        """
        given, spelled = _canonical_items(config, "config")
        given = {name: PARAMETERS[name].canonical(value, spelled=spelled[name])
                 for name, value in given.items()}
        full = {name: given[name] if name in given else copy.deepcopy(parameter.default)
                for name, parameter in PARAMETERS.items()}
        width, layers = full["hidden_size"], full["hidden_layers"]
        if width is not None or layers is not None:
            sizes = full["hidden_size_list"]
            full["hidden_size_list"] = ([sizes[0] if width is None else width]
                                        * (len(sizes) if layers is None else layers))
        if full["use_batchnorm"] and full["normalization"] not in (None, "batch"):
            say = _spellings(spelled)
            raise ValueError(f"{say('use_batchnorm')}=True and {say('normalization')}="
                             f"{full['normalization']!r} conflict")
        if full["use_batchnorm"] or full["normalization"] == "batch":
            full["use_batchnorm"], full["normalization"] = True, "batch"
        for name, value in OPTIMIZER_DEFAULTS[full["optimizer"]].items():
            if full[name] is None:
                full[name] = value
        spec = schedule_spec(full)
        for key, field in SCHEDULE_ARGUMENTS.get(full["lr_schedule"], {}).items():
            full[key] = spec[field]
        return full

    def config_from_unit(self, u_vector):
        """The complete configuration at point ``u_vector`` of the unit cube: entry j
        goes through ``from_unit`` of dimension j (``dimensions`` order), the constants
        and defaults fill the rest.  ValueError for a wrong length or an entry outside
        [0, 1]."""
        u_vector = list(u_vector)
        if len(u_vector) != len(self.dimensions):
            raise ValueError(f"u_vector must have {len(self.dimensions)} entries, one per "
                             f"dimension ({', '.join(self.dimensions)}), got {len(u_vector)}")
        values = {name: self.params[name].from_unit(u)
                  for name, u in zip(self.dimensions, u_vector)}
        return self.complete({**self.constants, **values})

    def to_json(self):
        """``{name: distribution.to_json() or the constant}`` (a constant is never a
        dict, a distribution always is)."""
        return {name: spec.to_json() if isinstance(spec, Distribution) else copy.deepcopy(spec)
                for name, spec in self.params.items()}

    @classmethod
    def from_json(cls, d):
        """The space ``to_json`` wrote."""
        if not isinstance(d, dict):
            raise ValueError(f"a space must be a dict of parameter names to values, got {d!r}")
        return cls({name: distribution_from_json(spec) if isinstance(spec, dict) else spec
                    for name, spec in d.items()})


# Constants spelled two ways that train the same nets: parameter -> {value: the other}
_SAME_AS = {"weight_init_std": {"he": "relu", "xavier": "sigmoid"}}


def without_defaults(space_json):
    """``space_json`` (``Space.to_json``'s) in one spelling of the trials it trains:
    ``use_batchnorm: true`` as ``normalization: 'batch'`` (the book's spelling of it),
    ``weight_init_std`` 'he' and 'xavier' as 'relu' and 'sigmoid' (the same std), and
    without the constants given at their parameter's default (``mini_batch_size:
    100``), which make the same configurations as leaving them out:
    ``Space.complete`` fills in that default."""
    space_json = dict(space_json)
    if space_json.get("use_batchnorm") is True and "normalization" not in space_json:
        del space_json["use_batchnorm"]
        space_json["normalization"] = "batch"
    for name, same in _SAME_AS.items():
        if isinstance(space_json.get(name), str):
            space_json[name] = same.get(space_json[name], space_json[name])
    return {name: value for name, value in space_json.items()
            if isinstance(value, dict) or name not in PARAMETERS
            or value != PARAMETERS[name].default}


# The scales of ``name=low:high:scale`` and how each reads its ends.
_RANGE_SCALES = {"linear": (uniform, float), "log": (log_uniform, float),
                 "one-minus-log": (one_minus_log_uniform, float),
                 "int": (int_uniform, int), "log-int": (log_int, int)}
_SYNTAX = "name=value, name=low:high[:linear|log|one-minus-log|int|log-int] or name=a,b,c:choice"


def parse_param(text):
    """``(canonical name, distribution or constant)`` from one ``--param`` of the CLI.

    ``lr=1e-6:1e-2:log`` a range (scales: linear, log, one-minus-log, int, log-int; the
    default is int for an int parameter, else linear), ``optimizer=sgd,adam:choice`` a
    choice, ``use_batchnorm=true`` a constant (booleans true/false).  Hidden layers:
    ``hidden=100x4`` is ``[100, 100, 100, 100]``, ``hidden=100-50`` is ``[100, 50]``,
    ``hidden=100x4,200x2:choice`` a choice of two lists.  Names may be aliases.  The
    value is checked as ``Space`` checks it; ValueError naming the parameter as typed
    otherwise.
    """
    key, equals, spec = text.partition("=")
    if not equals:
        raise ValueError(f"--param must be {_SYNTAX}, got {text!r}")
    if key not in _NAMES:
        raise _unknown("parameter", key, _KNOWN, _NAMES)
    parameter = PARAMETERS[_NAMES[key]]
    parts = spec.split(":")
    if len(parts) == 1:
        return parameter.name, parameter.check(parameter.parse(spec), key)
    if len(parts) == 2 and parts[1] == "choice":
        options = parts[0].split(",") if parts[0] else []  # ''.split(',') is ['']
        try:
            distribution = choice([parameter.parse(option) for option in options])
        except ValueError as err:
            raise ValueError(f"{key}: {err}") from None
        return parameter.name, parameter.check(distribution, key)
    if len(parts) > 3 or parts[-1] == "choice":
        raise ValueError(f"--param must be {_SYNTAX}, got {text!r}")
    scale = parts[2] if len(parts) == 3 else "int" if parameter.integer else "linear"
    if scale not in _RANGE_SCALES:
        raise _unknown(f"scale for {key}", scale, [*_RANGE_SCALES, "choice"])
    make, number = _RANGE_SCALES[scale]
    try:
        low, high = number(parts[0]), number(parts[1])
    except ValueError:
        raise ValueError(f"{key}: the ends of the {scale} range must be "
                         f"{'ints' if number is int else 'numbers'}, got {spec!r}") from None
    try:
        distribution = make(low, high)
    except ValueError as err:
        raise ValueError(f"{key}: {err}") from None
    return parameter.name, parameter.check(distribution, key)
