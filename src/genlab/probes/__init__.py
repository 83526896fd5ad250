"""Probes: pure measurements of parameters on data through one `Objective` (see DESIGN.md, "The spine").

Curvature: `top_eigenvalues` (block Lanczos), `spectral_density` (SLQ), `full_spectrum` (exact, small models),
`trace` (Hutchinson / Hutch++), `eps_sharpness` (Keskar et al.). Landscapes on train AND test data:
`interpolate`, `line`, `plane`, `barycentric`, `bilinear`, `barrier`, `basin_radius`, `random_directions`
(figures in `genlab.probes.plots`, a submodule so that importing probes does not load matplotlib). Each
returns a dataclass with the numbers, the cost and the mode, and a `to_dict()`.

Probes never train and never touch the store; they must not import genlab.train, genlab.store, genlab.studies
or genlab.cli.
"""

from genlab.probes.curvature import FullSpectrum, TraceEstimate, full_spectrum, hessian_matrix, trace
from genlab.probes.directions import BasinRadius, Directions, basin_radius, random_directions
from genlab.probes.lanczos import Eigenpairs, SpectralDensity, outlier_count, spectral_density, top_eigenvalues
from genlab.probes.landscape import Barrier, Landscape, barrier, barycentric, bilinear, interpolate, line, plane
from genlab.probes.objective import Cost, Objective, ParamInfo, ParamSpace
from genlab.probes.sharpness import Sharpness, eps_sharpness

__all__ = [
    "Barrier",
    "BasinRadius",
    "Cost",
    "Directions",
    "Eigenpairs",
    "FullSpectrum",
    "Landscape",
    "Objective",
    "ParamInfo",
    "ParamSpace",
    "Sharpness",
    "SpectralDensity",
    "TraceEstimate",
    "barrier",
    "barycentric",
    "basin_radius",
    "bilinear",
    "eps_sharpness",
    "full_spectrum",
    "hessian_matrix",
    "interpolate",
    "line",
    "outlier_count",
    "plane",
    "random_directions",
    "spectral_density",
    "top_eigenvalues",
    "trace",
]
