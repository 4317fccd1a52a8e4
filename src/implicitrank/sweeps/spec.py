"""Sweep specs: a base configuration and the axes to vary, read from TOML.

    name = "arora2019-small"    # optional; default: the file name

    [base]                      # any RunConfig field (implicitrank.run.RunConfig)
    shape = [12, 12]
    max_steps = 300

    [axes]                      # Cartesian product: every combination of these values
    depth = [2, 3, 4]
    init_scale = [1e-3, 1e-4]
    seed = "0..4"               # an inclusive integer range: 0, 1, 2, 3, 4

    [[zip]]                     # zipped axes: the i-th values go together (equal lengths);
    shape = [[12, 12], [16, 16]]    # each [[zip]] group is then crossed with the other axes
    num_observations = [60, 100]

    tensorboard = true          # optional: also write each run's TensorBoard events (as --tensorboard)

    [slurm]                     # defaults of the slurm executor (command-line options override them)
    partition = "debug"
    time = 60

Every combination is validated as a ``RunConfig`` when the spec is expanded, so a bad value is
reported, with the axis values that produced it, before anything runs.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MissingInputError, UsageError
from ..run import RunConfig, has_field_type, unused_fields

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SECTIONS = ("name", "base", "axes", "zip", "slurm", "tensorboard")
RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")
MAX_RANGE = 100_000  # values a range may hold: 0..10000000 was planned for minutes (commands._common.MAX_RANGE)
FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(RunConfig)}


@dataclass(frozen=True)
class SweepSpec:
    """A base configuration, Cartesian axes and zipped axis groups (values already expanded).

    The runs are the Cartesian product of the groups: each Cartesian axis is a group of one field,
    each zipped group moves its fields together. Axis values override ``base``.

    Attributes
    ----------
    name : str
        The sweep's name (non-empty), e.g. the spec file's stem.
    base : dict of str to Any
        ``RunConfig`` fields shared by every run. Default empty.
    axes : dict of str to list
        Cartesian axes: field -> its non-empty list of values. Default empty.
    zips : list of dict of str to list
        Zipped groups: in each, field -> values, all of equal length; the i-th values go together. Default
        empty.
    slurm : dict of str to Any
        Defaults of the Slurm executor (``SlurmOptions`` fields). Default empty.
    tensorboard : bool
        Also write each run's TensorBoard events. Default False.

    Raises
    ------
    UsageError
        On construction: nothing set or varied, an unknown field or a value of the wrong kind, a field varied
        twice, an empty axis or zip group, zipped axes of unequal lengths, or bad ``slurm`` options.
    """

    name: str
    base: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list] = field(default_factory=dict)
    zips: list[dict[str, list]] = field(default_factory=list)
    slurm: dict[str, Any] = field(default_factory=dict)
    tensorboard: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.tensorboard, bool):
            raise UsageError(f"tensorboard must be true or false, got {self.tensorboard!r}")
        if not self.name or not isinstance(self.name, str):
            raise UsageError(f"name must be a non-empty string, got {self.name!r}")
        if "/" in self.name or "\\" in self.name or self.name in (".", ".."):  # the default out is runs/<name>
            raise UsageError(f"name must be a plain name (no '/', '\\', '.' or '..'), got {self.name!r}")
        if not (self.base or self.axes or self.zips):
            raise UsageError("spec: names no field in [base], [axes] or [zip]; a sweep spec names at least one thing "
                             "to set or vary, e.g. [axes] seed = \"0..4\"")
        for key, value in self.base.items():
            _check_value("base", key, value)
        seen: dict[str, str] = {}
        for where, group in [("axes", self.axes)] + [(f"zip[{i}]", g) for i, g in enumerate(self.zips)]:
            if where != "axes" and not group:
                raise UsageError(f"{where} is empty; give it at least one field")
            for key, values in group.items():
                if key in seen:
                    raise UsageError(f"{where}.{key}: the field is already an axis in {seen[key]}; vary it once")
                seen[key] = where
                if not isinstance(values, list) or not values:
                    raise UsageError(f"{where}.{key} is empty; give it a non-empty list of values or a range 'A..B'")
                for value in values:
                    _check_value(where, key, value)
            lengths = {key: len(values) for key, values in group.items()}
            if where != "axes" and len(set(lengths.values())) > 1:
                raise UsageError(f"{where}: zipped axes must have equal lengths, got {lengths}")
        from .executors import SlurmOptions

        SlurmOptions.from_dict(self.slurm)

    def groups(self) -> list[list[dict[str, Any]]]:
        """Each group as its list of assignments: every Cartesian axis, then every zipped group.

        Returns
        -------
        list of list of dict of str to Any
            Per group, one assignment (field -> value) per position; an axis's assignments set one field, a
            zipped group's set all of its fields.
        """
        groups = [[{key: v} for v in values] for key, values in self.axes.items()]
        groups += [[dict(zip(group, values)) for values in zip(*group.values())] for group in self.zips]
        return groups

    def assignments(self) -> list[dict[str, Any]]:
        """Every run's axis values: the Cartesian product of ``groups``.

        Returns
        -------
        list of dict of str to Any
            One dict (field -> value) per run, in the order of the axes (the last axis varies fastest).
        """
        return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*self.groups())]

    def configs(self) -> list[RunConfig]:
        """Every run's validated configuration: ``base`` overridden by the run's axis values.

        Integers given for float fields count as floats, so ``1`` and ``1.0`` name the same run. A run with ``data``
        and no ``shape`` takes the data file's shape, as ``mf --data`` does (the file is read once per path).

        Returns
        -------
        list of RunConfig
            In the order of ``assignments``.

        Raises
        ------
        UsageError
            For a combination that is not a valid configuration (naming its axis values), two combinations that
            are the same run, or a data file that cannot be read.
        """
        from ..tasks.files import data_observations, data_shape

        configs, ids, files = [], {}, {}
        for values in self.assignments():
            fields = {**self.base, **values}
            # the file's shape and (.npz) observations; with a shape given, a file not there yet fails its runs
            if fields.get("data") is not None and ("shape" not in fields or Path(fields["data"]).is_file()):
                if fields["data"] not in files:
                    files[fields["data"]] = list(data_shape(fields["data"])), data_observations(fields["data"])
                shape, observed = files[fields["data"]]
                fields.setdefault("shape", shape)
                if observed is not None:  # a .npz fixes its observations
                    if fields.setdefault("num_observations", observed) != observed:
                        raise UsageError(f"the run with {values}: num_observations {fields['num_observations']} "
                                         f"does not match the data file {fields['data']}, whose mask observes "
                                         f"{observed} entries; leave num_observations out")
            unused = unused_fields(fields)
            if unused:  # it would be ignored: a table of runs that differ only in it would show identical numbers
                raise UsageError(f"the run with {values}: {'; '.join(unused)} (leave it out)")
            try:
                config = RunConfig.from_dict(_as_declared(fields))
            except ValueError as err:
                raise UsageError(f"the run with {values} is not a valid configuration: {err}") from err
            if config.run_id in ids:
                raise UsageError(f"the runs with {ids[config.run_id]} and {values} are the same run; "
                                 "remove the repeated axis values")
            ids[config.run_id] = values
            configs.append(config)
        return configs

    def to_dict(self) -> dict[str, Any]:
        """The spec as its TOML tables (as recorded in ``sweep.json``).

        Returns
        -------
        dict of str to Any
            ``name``, ``base``, ``axes``, ``zip`` (the zipped groups), ``slurm`` and ``tensorboard``.
        """
        return {"name": self.name, "base": self.base, "axes": self.axes, "zip": self.zips, "slurm": self.slurm,
                "tensorboard": self.tensorboard}


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a TOML sweep spec (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The TOML file; its stem is the sweep's name unless the spec gives ``name``.

    Returns
    -------
    SweepSpec
        The spec, its ranges expanded and its values checked.

    Raises
    ------
    MissingInputError
        When there is no such file.
    UsageError
        When the file is not valid TOML or not a valid spec.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"spec: no such file {str(path)!r}")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"spec: {path} is not valid TOML: {err}") from err
    except PermissionError as err:
        raise UsageError(f"spec: {path} cannot be read: {err.strerror}") from err
    return parse_spec(data, default_name=path.stem)


def parse_spec(data: dict[str, Any], default_name: str = "sweep") -> SweepSpec:
    """A spec from its TOML tables (see the module docstring); ranges 'A..B' are expanded.

    Parameters
    ----------
    data : dict of str to Any
        The tables: ``name``, ``base``, ``axes``, ``zip`` (a table or an array of tables), ``slurm``,
        ``tensorboard``.
    default_name : str, optional
        The name when ``data`` gives none. Default ``"sweep"``.

    Returns
    -------
    SweepSpec
        The validated spec.

    Raises
    ------
    UsageError
        For unknown sections, a section of the wrong kind, an axis that is neither a list nor an integer range
        'A..B', an empty range, or a spec ``SweepSpec`` refuses.
    """
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise UsageError(f"spec: unknown sections {unknown}; allowed: {list(SECTIONS)}")
    for section in ("base", "axes", "slurm"):
        if not isinstance(data.get(section, {}), dict):
            raise UsageError(f"spec: [{section}] must be a table")
    zips = data.get("zip", [])
    zips = [zips] if isinstance(zips, dict) else zips
    if not isinstance(zips, list) or not all(isinstance(g, dict) for g in zips):
        raise UsageError("spec: zip must be a table [zip] or an array of tables [[zip]]")
    return SweepSpec(
        name=data.get("name", default_name),
        base=dict(data.get("base", {})),
        axes={k: _axis_values(f"axes.{k}", v) for k, v in data.get("axes", {}).items()},
        zips=[{k: _axis_values(f"zip[{i}].{k}", v) for k, v in g.items()} for i, g in enumerate(zips)],
        slurm=dict(data.get("slurm", {})),
        tensorboard=data.get("tensorboard", False),
    )


def _axis_values(where: str, values: Any) -> list:
    """A list as it is; 'A..B' as the integers A, A+1, ..., B."""
    if isinstance(values, str):
        match = RANGE.match(values)
        if match is None:
            raise UsageError(f"{where}: expected a list of values or an integer range 'A..B', got {values!r}")
        lo, hi = int(match.group(1)), int(match.group(2))
        if hi < lo:
            raise UsageError(f"{where}: the range {values!r} is empty (B < A)")
        if hi - lo >= MAX_RANGE:
            raise UsageError(f"{where}: the range {values!r} holds more than {MAX_RANGE:,} values (each one a run)")
        return list(range(lo, hi + 1))
    if not isinstance(values, list):
        raise UsageError(f"{where}: expected a list of values or an integer range 'A..B', got {values!r}; "
                         "put single values in [base]")
    return list(values)


def _check_value(where: str, key: str, value: Any) -> None:
    """Refuse unknown fields and values of the wrong kind (a float for an int field, ...)."""
    if key not in FIELD_TYPES:
        raise UsageError(f"{where}.{key}: unknown config field; allowed: {sorted(FIELD_TYPES)}")
    if not has_field_type(FIELD_TYPES[key], value):
        raise UsageError(f"{where}.{key}: expected {FIELD_TYPES[key]}, got {value!r}")


def _as_declared(values: dict[str, Any]) -> dict[str, Any]:
    """Integers given for float fields as floats, so that ``1`` and ``1.0`` name the same run."""
    return {k: float(v) if FIELD_TYPES[k].startswith("float") and isinstance(v, int) else v for k, v in values.items()}
