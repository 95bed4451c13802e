"""Pickles of the domain model (and of a FHIR body's read) that load without running
their dataclasses' code (issue 7).

The SR reader process (:mod:`.sr_reader_process`) answers with a pickled report, which
the serving process loads on its event loop. Pickle rebuilds a frozen slotted dataclass
through ``dataclasses._dataclass_setstate``, which calls ``dataclasses.fields`` and
``object.__setattr__`` for each field of each object: a 10-lesion report (~75 objects)
loaded in ~210 us, and py-spy had those loads at ~15 % of the serving process's time
under load. :func:`dumps` pickles each model object as a call of its class's builder
(below) with its field values: the builder makes the object and sets its slots through
their descriptors, as ``__init__`` would but without ``__post_init__``, whose checks
the object passed when the reader made it and whose derived fields are among the
values. The same report then loads in ~80 us; a 10-Observation Bundle's read (its
reports and index records) in ~60 us instead of ~100. Objects of other types pickle as
usual.
"""

from __future__ import annotations

import copyreg
import dataclasses
import io
import pickle  # nosec B403
from collections import ChainMap
from collections.abc import Callable
from typing import Any

from service.adapters import fhir_inbound
from service.adapters.fhir_record import FhirRecord
from service.domain import model

_Reducer = Callable[[Any], tuple[Callable[..., Any], tuple[Any, ...]]]


def _builder(cls: type) -> tuple[Callable[..., Any], tuple[str, ...]]:
    """A module-level function making an instance of *cls* from its fields' values in
    order (importable by name, as pickle requires), and the fields' names."""
    names = tuple(field.name for field in dataclasses.fields(cls))
    parameters = ", ".join(f"v{index}" for index in range(len(names)))
    settings = "".join(f"    s{index}(made, v{index})\n" for index in range(len(names)))
    source = f"def build({parameters}):\n    made = new(cls)\n{settings}    return made\n"
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    namespace.update({f"s{index}": cls.__dict__[name].__set__ for index, name in enumerate(names)})
    # Field names are identifiers; nothing of any input reaches this source.
    exec(source, namespace)  # nosec B102
    build: Callable[..., Any] = namespace["build"]
    build.__name__ = build.__qualname__ = f"_build_{cls.__name__}"
    build.__module__ = __name__
    globals()[build.__name__] = build
    return build, names


def _reducer(build: Callable[..., Any], names: tuple[str, ...]) -> _Reducer:
    def reduce(value: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return build, tuple([getattr(value, name) for name in names])

    return reduce


MODEL_CLASSES: tuple[type, ...] = (
    *(
        cls
        for cls in vars(model).values()
        if isinstance(cls, type)
        and cls.__module__ == model.__name__
        and dataclasses.is_dataclass(cls)
    ),
    # What a FHIR body's read answers (sr_reader_process.read_fhir).
    FhirRecord,
    fhir_inbound.Received,
    fhir_inbound.FhirRead,
)
# The model's reducers first, then those registered with copyreg (as pickle.dumps reads).
_DISPATCH = ChainMap[type, Any](
    {cls: _reducer(*_builder(cls)) for cls in MODEL_CLASSES}, copyreg.dispatch_table
)


def dumps(value: object) -> bytes:
    """*value* pickled (highest protocol), its model objects as their builders' calls;
    ``pickle.loads`` reads it back in any process that imports this module's name."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(value)
    return buffer.getvalue()
