"""The registry of studies: one module per paper (see `../shared/STUDIES.md` for claims and protocols)."""

from __future__ import annotations

from genlab.errors import choice_error
from genlab.studies.base import Context, Preset, Study
from genlab.studies.demo import DemoStudy
from genlab.studies.hessian_spectrum import HessianSpectrumStudy
from genlab.studies.introspection import IntrospectionStudy
from genlab.studies.large_batch import LargeBatchStudy
from genlab.studies.optimizer_minima import OptimizerMinimaStudy
from genlab.studies.pooling_geometry import PoolingGeometryStudy
from genlab.studies.random_labels import RandomLabelsStudy
from genlab.studies.verdict import VERDICTS, Verdict, judge

STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        DemoStudy(),
        LargeBatchStudy(),
        RandomLabelsStudy(),
        HessianSpectrumStudy(),
        OptimizerMinimaStudy(),
        IntrospectionStudy(),
        PoolingGeometryStudy(),
    )
}


def get(name: str) -> Study:
    """The registered study `name`."""
    if name not in STUDIES:
        raise choice_error("study", name, STUDIES)
    return STUDIES[name]


__all__ = ["STUDIES", "VERDICTS", "Context", "Preset", "Study", "Verdict", "get", "judge"]
